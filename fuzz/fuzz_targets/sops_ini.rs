//! A ini file as `enseal decrypt`/`edit`/`updatekeys` and the controller read it: parse,
//! lossless write-back, metadata, open and verify with test identity `a` (see
//! [`enseal_fuzz::sops_file`]).
#![no_main]

use enseal_sops::stores::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| enseal_fuzz::sops_file(Format::Ini, data));

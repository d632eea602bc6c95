//! Flux's credential entries a tenant writes in their namespace key Secret: `sops.aws-kms`,
//! `sops.azure-kv` and `sops.gcp-kms` (see [`enseal_fuzz::flux_entries`]).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| enseal_fuzz::flux_entries(data));

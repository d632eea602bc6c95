//! The command-line half of enseal as a library. Argument parsing, files, editor and exit codes
//! live here; the file formats live in the `enseal-sops` and `enseal-sealing` crates.
//!
//! The `enseal` binary (src/main.rs) is `main` below. It is a library so that the pre-commit
//! package at the repository root (`enseal-check`, for pre-commit's `language: rust`, which
//! installs the package at the root) runs exactly this code without being a second binary
//! named `enseal`.

mod args;
mod commands;
mod context;
mod exit;
mod file_io;
mod plan;
mod private_dir;
mod terminal;
mod tree_path;
mod voice;

use std::ffi::OsString;

/// Runs enseal with `argv` (the program name first, as `std::env::args_os`) and returns the
/// process exit code. Failures are printed on standard error as `enseal: MESSAGE` (as sops
/// prints them when run under the name `sops`: see `voice`); bad arguments print clap's usage
/// message and exit the process, as clap does.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let argv: Vec<OsString> = argv.into_iter().collect();
    voice::choose(argv.first().map(OsString::as_os_str));
    match args::parse(argv).and_then(commands::run) {
        Ok(code) => code,
        Err(failure) => {
            voice::failure(&failure);
            failure.code
        }
    }
}

//! `enseal-check FILES...` is `enseal check FILES...`: the binary of the `enseal-check-build`
//! pre-commit hook (.pre-commit-hooks.yaml). pre-commit's `language: rust` runs
//! `cargo install --bins --path .` at the repository root, so this package sits there and
//! installs only this binary; the CLI itself is the `enseal_cli` library, so messages and exit
//! codes are those of `enseal check`.

use std::ffi::OsString;

fn main() {
    // `enseal` as the program name, so usage and error messages read as `enseal check`'s.
    let argv = [OsString::from("enseal"), OsString::from("check")]
        .into_iter()
        .chain(std::env::args_os().skip(1));
    std::process::exit(enseal_cli::main(argv));
}

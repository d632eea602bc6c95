//! How enseal speaks on standard error: as itself (`enseal: MESSAGE`, with details and
//! warnings), or as sops when it is installed under that name.
//!
//! Tools that call `sops` (helm-secrets, editors, kustomize plugins, sops' own functional
//! tests) run enseal through a `sops` link and may show or compare its standard error; under
//! that name a failure is printed as sops prints it (the bare message, no `enseal: ` prefix, no
//! enseal-only detail) and warnings about input sops accepts silently are not printed. Exit
//! codes and standard output are the same under either name.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::OnceLock;

use crate::exit::Failure;

static AS_SOPS: OnceLock<bool> = OnceLock::new();

/// Chooses the voice from the program name (`argv[0]`): `sops` (or `sops.exe`) speaks as sops.
pub fn choose(program: Option<&OsStr>) {
    let as_sops = program
        .and_then(|p| Path::new(p).file_stem())
        .is_some_and(|stem| stem == "sops");
    let _ = AS_SOPS.set(as_sops);
}

fn as_sops() -> bool {
    AS_SOPS.get().copied().unwrap_or(false)
}

/// Prints a failure: `enseal: MESSAGE (DETAIL)`, or sops' bare `MESSAGE`.
pub fn failure(failure: &Failure) {
    match (&failure.detail, as_sops()) {
        (_, true) => eprintln!("{}", failure.message),
        (Some(detail), false) => eprintln!("enseal: {} ({detail})", failure.message),
        (None, false) => eprintln!("enseal: {}", failure.message),
    }
}

/// A warning about input sops accepts without a word (an unknown `.sops.yaml` key, ...):
/// printed by enseal, not when speaking as sops.
pub fn warning(message: &str) {
    if !as_sops() {
        eprintln!("enseal: warning: {message}");
    }
}

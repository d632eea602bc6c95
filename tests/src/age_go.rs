//! The reference age implementation, Go age v1.3.2 (`age`, `age-keygen`), for the keys that
//! Debian's age 1.1 does not have: post-quantum hybrid `age1pq1...` keys and the plugin
//! protocol as sops 3.12+ uses it.
//!
//! Missing is a broken set-up, never a skip: `ENSEAL_AGE_GO_BIN_DIR` (exported by
//! scripts/test.sh), else `tests/tools/age-go.sh` builds the tools through the Go module proxy
//! (once, seconds; cached under ~/.cache/enseal/tools).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::peers::repo_root;

/// The directory holding the Go `age` and `age-keygen` v1.3.2.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("ENSEAL_AGE_GO_BIN_DIR").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                let script = repo_root().join("tests/tools/age-go.sh");
                let out = Command::new("bash")
                    .arg(&script)
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
                assert!(
                    out.status.success(),
                    "{} failed (it builds Go age through the Go module proxy; install Go or set \
                     ENSEAL_AGE_GO_BIN_DIR):\n{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        for tool in ["age", "age-keygen"] {
            assert!(
                dir.join(tool).is_file(),
                "{} has no {tool}: set ENSEAL_AGE_GO_BIN_DIR to the directory \
                 tests/tools/age-go.sh prints",
                dir.display()
            );
        }
        let version = Command::new(dir.join("age"))
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}/age: {e}", dir.display()));
        let said = String::from_utf8_lossy(&version.stdout);
        assert_eq!(
            said.trim(),
            "v1.3.2",
            "{}/age is not Go age v1.3.2",
            dir.display()
        );
        dir
    })
    .clone()
}

/// Go `age` v1.3.2.
pub fn age() -> PathBuf {
    bin_dir().join("age")
}

/// Go `age-keygen` v1.3.2.
pub fn age_keygen() -> PathBuf {
    bin_dir().join("age-keygen")
}

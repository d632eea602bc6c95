//! Throwaway GnuPG homes for the PGP tests: the real Debian `gpg`, one home per test, keys
//! generated in it (or imported), and its gpg-agent stopped when the home is dropped.
//!
//! gpg missing is a broken test set-up, not a reason to skip: every helper panics with the
//! command that installs it (`apt-get install -y gnupg`, which scripts/test.sh runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The gpg binary the tests use: `ENSEAL_GPG_BIN`, else `gpg` from PATH.
pub fn gpg_bin() -> PathBuf {
    std::env::var_os("ENSEAL_GPG_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gpg"))
}

/// A GnuPG home directory (mode 0700, as gpg wants it) that lives as long as this value.
pub struct GnupgHome {
    dir: PathBuf,
}

impl GnupgHome {
    /// An empty home at `dir` (created; its parent must exist). Kept short: gpg-agent's socket
    /// lives inside it, and a Unix socket path has at most 107 bytes.
    pub fn new(dir: &Path) -> GnupgHome {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 the GnuPG home");
        GnupgHome {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `gpg --homedir HOME --batch ARGS` with `stdin`, and returns what it printed;
    /// panics when gpg cannot be started or fails.
    pub fn gpg(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(gpg_bin())
            .arg("--homedir")
            .arg(&self.dir)
            .arg("--batch")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): the PGP tests need GnuPG (apt-get install -y gnupg; \
                     scripts/test.sh installs it) or ENSEAL_GPG_BIN",
                    gpg_bin().display()
                )
            });
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin).expect("write gpg's stdin");
        drop(pipe);
        let out = child.wait_with_output().expect("wait for gpg");
        assert!(
            out.status.success(),
            "gpg {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Generates a key pair without a passphrase (ed25519 to sign, cv25519 to encrypt: fast)
    /// and returns the primary key's fingerprint.
    pub fn generate(&self, name: &str) -> String {
        let uid = format!("{name} <{name}@enseal.test>");
        self.gpg(
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                &uid,
                "future-default",
                "default",
                "never",
            ],
            b"",
        );
        self.fingerprint(&uid)
    }

    /// The primary fingerprint of the key `user_id` names.
    pub fn fingerprint(&self, user_id: &str) -> String {
        let out = self.gpg(&["--with-colons", "--list-keys", user_id], b"");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:::::::::"))
            .and_then(|l| l.split(':').next())
            .unwrap_or_else(|| panic!("no fingerprint listed for {user_id}"))
            .to_string()
    }

    /// The secret key `fingerprint`, ASCII-armored.
    pub fn export_secret(&self, fingerprint: &str) -> Vec<u8> {
        self.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--armor",
                "--export-secret-keys",
                fingerprint,
            ],
            b"",
        )
        .stdout
    }

    /// The public key `fingerprint`, ASCII-armored.
    pub fn export_public(&self, fingerprint: &str) -> Vec<u8> {
        self.gpg(&["--armor", "--export", fingerprint], b"").stdout
    }

    /// Imports armored keys (public or secret).
    pub fn import(&self, armored: &[u8]) {
        self.gpg(&["--import"], armored);
    }
}

impl Drop for GnupgHome {
    /// Stops the gpg-agent (and any other daemon) the home started; the directory itself goes
    /// with the test's sandbox.
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.dir)
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

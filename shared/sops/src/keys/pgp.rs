//! PGP as a key source, through the `gpg` binary as sops does it (pgp/keysource.go in sops
//! 3.11 to 3.13): the data key is encrypted with `gpg --encrypt -a -r FINGERPRINT` to the public
//! key in the user's GnuPG keyring, and decrypted with `gpg -d`, so that gpg-agent, pinentry
//! and OpenPGP smartcards work exactly as they do for sops. `SOPS_GPG_EXEC` names another
//! binary; `GNUPGHOME` reaches gpg through the environment it inherits (sops passes
//! `--homedir` only when its key service is given a home, which the command line never does).
//!
//! sops first tries the Go OpenPGP library on `pubring.gpg`/`secring.gpg`, the keyring files of
//! GnuPG before 2.1, and falls back to the binary. GnuPG 2.1+ keeps keys in `pubring.kbx` and
//! `private-keys-v1.d/`, which that library cannot read, so with any current GnuPG sops uses the
//! binary, as enseal always does. Both write the same kind of `enc`: an ASCII-armored OpenPGP
//! message holding the data key (or its Shamir share), surrounding white space trimmed.
//!
//! gpg is always started with an argument vector, never through a shell; a fingerprint is
//! checked to be hex before it is passed (it may come from a file someone else wrote). Nothing
//! the messages carry comes from the decrypted data key: only the fingerprint and gpg's own
//! words on standard error.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::str::FromStr;

use zeroize::Zeroizing;

use super::{KeyAccess, MasterKey, Recipient, Stanza, WrapError};
use crate::format::metadata::{now_rfc3339, PgpStanza};

/// The variable that names the gpg binary (sops' `SopsGpgExecEnv`).
pub const SOPS_GPG_EXEC: &str = "SOPS_GPG_EXEC";

/// The most bytes `gpg -d` may print for one `enc`: a data key is 32 bytes, a Shamir share 33.
/// More is not a sops data key (a compressed message could unpack to gigabytes), and gpg is
/// stopped.
const MAX_DATA_KEY_LEN: usize = 1024;

/// The gpg binary to run.
#[derive(Clone, Debug)]
pub struct GnuPg {
    program: OsString,
}

impl Default for GnuPg {
    /// `gpg`, found on `PATH`.
    fn default() -> Self {
        GnuPg {
            program: "gpg".into(),
        }
    }
}

impl GnuPg {
    pub fn new(program: impl Into<OsString>) -> GnuPg {
        GnuPg {
            program: program.into(),
        }
    }

    /// `SOPS_GPG_EXEC` when set and not empty, else `gpg` (sops' `gpgBinary`). The value is one
    /// program path, not a command line: sops hands it to exec.Command as is.
    pub fn from_env() -> GnuPg {
        match std::env::var_os(SOPS_GPG_EXEC) {
            Some(p) if !p.is_empty() => GnuPg::new(p),
            _ => GnuPg::default(),
        }
    }

    fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// Runs gpg with `args`, feeding it `stdin` and keeping at most `max_out` bytes of its
    /// standard output (in a zeroizing buffer: for `-d` it is a data key). `Ok(None)` for the
    /// output means gpg printed more than that and was stopped.
    fn run(&self, args: &[&OsStr], stdin: &[u8], max_out: usize) -> Result<Run, std::io::Error> {
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().expect("stdin is piped");
        let mut output = child.stdout.take().expect("stdout is piped");
        let mut errors = child.stderr.take().expect("stderr is piped");
        let (stdout, stderr) = std::thread::scope(|s| {
            // gpg may stop reading early (no such key): a broken pipe is then its answer,
            // reported through its exit status and standard error.
            s.spawn(move || {
                let _ = input.write_all(stdin);
            });
            let err = s.spawn(move || {
                let mut text = Vec::new();
                let _ = errors.read_to_end(&mut text);
                text
            });
            let mut out = Zeroizing::new(Vec::with_capacity(max_out.min(4096) + 1));
            let read = (&mut output).take(max_out as u64 + 1).read_to_end(&mut out);
            let overflow = out.len() > max_out;
            if overflow {
                let _ = child.kill();
            }
            drop(output);
            let stderr = err.join().unwrap_or_default();
            (read.map(|_| (!overflow).then_some(out)), stderr)
        });
        let status = child.wait()?;
        Ok(Run {
            success: status.success(),
            stdout: stdout?,
            // One line, so that it reads as one reason in a list of failed keys.
            stderr: String::from_utf8_lossy(&stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

struct Run {
    success: bool,
    /// `None` when gpg printed more than it was allowed to.
    stdout: Option<Zeroizing<Vec<u8>>>,
    stderr: String,
}

/// Why PGP could not wrap or unwrap a data key. The fingerprint is in every message; gpg's
/// standard error is quoted as it said it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PgpError {
    /// The keyring was given neither gpg nor armored secret keys (keys/openpgp.rs).
    #[error("PGP keys are not supported here: they need gpg, or an armored PGP secret key (in the controller: an `*.asc` entry of the key Secret)")]
    NoGpg,
    #[error("invalid PGP fingerprint {fingerprint:?}: {reason}")]
    InvalidFingerprint { fingerprint: String, reason: String },
    #[error("cannot run {program} for PGP key {fingerprint} (install GnuPG, or name its binary in SOPS_GPG_EXEC): {reason}")]
    CannotRunGpg {
        program: String,
        fingerprint: String,
        reason: String,
    },
    #[error("could not encrypt the data key with PGP key {fingerprint}: the public key is not in the GnuPG keyring: {gpg}")]
    NoPublicKey { fingerprint: String, gpg: String },
    #[error("could not encrypt the data key with PGP key {fingerprint}: {gpg}")]
    Encrypt { fingerprint: String, gpg: String },
    /// gpg's "Unusable public key": expired, revoked, or without an encryption subkey.
    #[error("could not encrypt the data key with PGP key {fingerprint}: the key cannot encrypt (expired, revoked, or no encryption subkey): {gpg}")]
    UnusableKey { fingerprint: String, gpg: String },
    #[error("could not decrypt the data key with PGP key {fingerprint}: no secret key for it in the GnuPG keyring: {gpg}")]
    NoSecretKey { fingerprint: String, gpg: String },
    /// The secret key is in the keyring but gpg could not use it: mostly a passphrase that
    /// gpg-agent could not ask for (no terminal or display for pinentry), or a wrong one.
    #[error("could not decrypt the data key with PGP key {fingerprint}: its secret key is in the GnuPG keyring but could not be unlocked (a passphrase-protected key needs gpg-agent's pinentry, on a terminal or a display): {gpg}")]
    SecretKeyLocked { fingerprint: String, gpg: String },
    #[error("could not decrypt the data key with PGP key {fingerprint}: {gpg}")]
    Decrypt { fingerprint: String, gpg: String },
    /// What sops reports when an old GnuPG drops packets it cannot read (an AEAD message) and
    /// exits 0 with nothing on standard output (sops issue 896).
    #[error("could not decrypt the data key with PGP key {fingerprint}: gpg returned zero bytes")]
    Empty { fingerprint: String },
    #[error("could not decrypt the data key with PGP key {fingerprint}: the message holds more than {MAX_DATA_KEY_LEN} bytes, which is no data key")]
    TooLong { fingerprint: String },
}

/// A PGP key to wrap data keys for, named by its fingerprint as in `.sops.yaml`, `--pgp`,
/// `SOPS_PGP_FP` or a file's `fp`: hex digits, spaces removed (sops removes them), and an
/// optional final `!` that makes gpg use exactly that (sub)key (sops issue 1365).
#[derive(Clone, PartialEq, Eq)]
pub struct PgpFingerprint(String);

impl PgpFingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 16 hex digits (and the `!`), what sops passes to `--trusted-key`
    /// (`shortenFingerprint`: older GnuPG wanted a long key ID there).
    fn key_id(&self) -> &str {
        let s = self.0.as_str();
        let digits = if s.ends_with('!') { 17 } else { 16 };
        &s[s.len().saturating_sub(digits)..]
    }
}

impl FromStr for PgpFingerprint {
    type Err = PgpError;

    fn from_str(s: &str) -> Result<Self, PgpError> {
        let text: String = s.trim().chars().filter(|c| *c != ' ').collect();
        let invalid = |reason: &str| PgpError::InvalidFingerprint {
            fingerprint: s.to_string(),
            reason: reason.to_string(),
        };
        let digits = text.strip_suffix('!').unwrap_or(&text);
        if digits.is_empty() {
            return Err(invalid("empty"));
        }
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("a fingerprint is hex digits"));
        }
        // gpg takes key IDs of 8 and 16 digits and fingerprints of 32, 40 and 64; anything
        // shorter than a short key ID would name no key reliably.
        if digits.len() < 8 {
            return Err(invalid("too short for a key ID or fingerprint"));
        }
        Ok(PgpFingerprint(text))
    }
}

impl fmt::Display for PgpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PgpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgpFingerprint({})", self.0)
    }
}

impl Recipient for PgpFingerprint {
    fn name(&self) -> String {
        self.0.clone()
    }

    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let gpg = access
            .gpg
            .ok_or_else(|| WrapError::Failed(PgpError::NoGpg.to_string()))?;
        let enc = wrap(secret, self, gpg).map_err(|e| WrapError::Failed(e.to_string()))?;
        Ok(Stanza::Pgp(PgpStanza {
            fp: self.0.clone(),
            created_at: now_rfc3339(),
            enc,
        }))
    }
}

impl MasterKey for PgpStanza {
    fn describe(&self) -> String {
        format!("pgp {}", self.fp)
    }

    /// PGP's one rule: the armored secret keys the keyring was given open the stanza
    /// in-process (keys/openpgp.rs), else gpg does, else PGP is not available here. A keyring
    /// holds one of the two: the CLI gpg (as sops), the controller its `*.asc` key entries.
    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        match (access.pgp_keys, access.gpg) {
            (Some(keys), _) => keys.unwrap(&self.enc, &self.fp).map_err(|e| e.to_string()),
            (None, Some(gpg)) => unwrap(&self.enc, &self.fp, gpg).map_err(|e| e.to_string()),
            (None, None) => Err(PgpError::NoGpg.to_string()),
        }
    }
}

/// Encrypts `secret` to the public key `fingerprint` of the GnuPG keyring, with the arguments
/// sops gives gpg (encryptWithGnuPG): no default recipient and no `encrypt-to` from gpg.conf,
/// so the message is for this key only, and the key trusted for this run so that gpg does not
/// ask about an uncertified key.
pub fn wrap(secret: &[u8], fingerprint: &PgpFingerprint, gpg: &GnuPg) -> Result<String, PgpError> {
    let fp = fingerprint.as_str();
    let args: [&OsStr; 9] = [
        "--no-default-recipient".as_ref(),
        "--yes".as_ref(),
        "--encrypt".as_ref(),
        "-a".as_ref(),
        "-r".as_ref(),
        fp.as_ref(),
        "--trusted-key".as_ref(),
        fingerprint.key_id().as_ref(),
        "--no-encrypt-to".as_ref(),
    ];
    // An armored message for a 33-byte secret is well under 64 KiB, whatever the key size.
    let run = gpg
        .run(&args, secret, 64 * 1024)
        .map_err(|e| cannot_run(gpg, fp, e))?;
    let out = match (run.success, run.stdout) {
        (true, Some(out)) => out,
        (_, stdout) => {
            let gpg = if stdout.is_none() {
                "gpg printed an unexpectedly long message".to_string()
            } else {
                run.stderr
            };
            return Err(if gpg.contains("No public key") {
                PgpError::NoPublicKey {
                    fingerprint: fp.to_string(),
                    gpg,
                }
            } else if gpg.contains("Unusable public key") {
                PgpError::UnusableKey {
                    fingerprint: fp.to_string(),
                    gpg,
                }
            } else {
                PgpError::Encrypt {
                    fingerprint: fp.to_string(),
                    gpg,
                }
            });
        }
    };
    // sops stores gpg's output with the surrounding white space trimmed (bytes.TrimSpace).
    let text = String::from_utf8_lossy(&out);
    Ok(text.trim().to_string())
}

/// Decrypts an `enc` with `gpg -d`, exactly the argument sops gives (decryptWithGnuPG), so
/// gpg finds the secret key itself (keyring, agent, smartcard) and asks for a passphrase through
/// pinentry when it needs one. `fingerprint` only names the key in messages.
pub fn unwrap(enc: &str, fingerprint: &str, gpg: &GnuPg) -> Result<Zeroizing<Vec<u8>>, PgpError> {
    let run = gpg
        .run(&["-d".as_ref()], enc.as_bytes(), MAX_DATA_KEY_LEN)
        .map_err(|e| cannot_run(gpg, fingerprint, e))?;
    let fp = || fingerprint.to_string();
    let Some(out) = run.stdout else {
        return Err(PgpError::TooLong { fingerprint: fp() });
    };
    if !run.success {
        // gpg ends with "No secret key" also when the key is there but could not be unlocked
        // (a passphrase and no pinentry to ask for it): that case says so first.
        return Err(if run.stderr.contains("public key decryption failed") {
            PgpError::SecretKeyLocked {
                fingerprint: fp(),
                gpg: run.stderr,
            }
        } else if run.stderr.contains("No secret key") {
            PgpError::NoSecretKey {
                fingerprint: fp(),
                gpg: run.stderr,
            }
        } else {
            PgpError::Decrypt {
                fingerprint: fp(),
                gpg: run.stderr,
            }
        });
    }
    if out.is_empty() {
        return Err(PgpError::Empty { fingerprint: fp() });
    }
    Ok(out)
}

fn cannot_run(gpg: &GnuPg, fingerprint: &str, e: std::io::Error) -> PgpError {
    PgpError::CannotRunGpg {
        program: gpg.program_name(),
        fingerprint: fingerprint.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_hex_with_spaces_removed_and_an_optional_bang() {
        let fp: PgpFingerprint = " FBC7 B9E2 A4F9 289A C0C1  D484 3D16 CEE4 A273 81B4 "
            .parse()
            .unwrap();
        assert_eq!(fp.as_str(), "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4");
        assert_eq!(fp.key_id(), "3D16CEE4A27381B4");
        let sub: PgpFingerprint = "71D962851765394F76DB9CFC25294A17CD90507F!".parse().unwrap();
        assert_eq!(sub.key_id(), "25294A17CD90507F!");
        let short: PgpFingerprint = "A27381B4".parse().unwrap();
        assert_eq!(short.key_id(), "A27381B4");
    }

    #[test]
    fn a_fingerprint_that_is_not_hex_never_reaches_gpg() {
        for bad in [
            "",
            "!",
            "ABC",
            "--homedir=/tmp/x",
            "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4;rm",
            "0xA27381B4",
            "FBC7B9E2!!",
        ] {
            assert!(
                matches!(
                    bad.parse::<PgpFingerprint>(),
                    Err(PgpError::InvalidFingerprint { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn a_missing_gpg_binary_is_named_with_the_fingerprint() {
        let gpg = GnuPg::new("/nonexistent/enseal-test-gpg");
        let err = unwrap("x", "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4", &gpg).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, PgpError::CannotRunGpg { .. }));
        assert!(
            message.contains("/nonexistent/enseal-test-gpg"),
            "{message}"
        );
        assert!(
            message.contains("FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"),
            "{message}"
        );
    }
}

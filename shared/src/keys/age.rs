//! age as a key source: wraps the data key for an `age1...` recipient as the ASCII-armored `enc`
//! text sops stores, and unwraps it with identities loaded from the places sops looks.
//!
//! Where sops looks (age/keysource.go in sops 3.11), all of them, not the first that exists:
//! `SOPS_AGE_KEY` (key text), `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD` (split like a shell
//! command line and run without a shell, stdout holds the keys), then the default file
//! `$XDG_CONFIG_HOME/sops/age/keys.txt` or `$HOME/.config/sops/age/keys.txt`. SSH identities,
//! age plugins and passphrase-protected identity files are not supported.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::ExposeSecret;
use age::{DecryptError, Decryptor, Encryptor};
use zeroize::Zeroizing;

use super::KeyError;

pub const SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
pub const SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";
pub const SOPS_AGE_KEY_CMD: &str = "SOPS_AGE_KEY_CMD";
pub const SOPS_AGE_SSH_PRIVATE_KEY_FILE: &str = "SOPS_AGE_SSH_PRIVATE_KEY_FILE";

/// An age recipient as written in `.sops.yaml`, on the command line, or in a file's metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeRecipient {
    text: String,
    key: age::x25519::Recipient,
}

impl FromStr for AgeRecipient {
    type Err = KeyError;

    /// Accepts what sops accepts for X25519 keys, surrounding whitespace included (sops trims
    /// it). Plugin (`age1<name>1...`) and SSH recipients are recognised and refused by name.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let text = s.trim();
        if text.starts_with("age1") && text.matches('1').count() > 1 {
            return Err(KeyError::UnsupportedRecipient {
                kind: "age plugin",
                recipient: text.to_owned(),
            });
        }
        if text.starts_with("age1") {
            let key =
                age::x25519::Recipient::from_str(text).map_err(|e| KeyError::InvalidRecipient {
                    recipient: text.to_owned(),
                    reason: e.to_owned(),
                })?;
            return Ok(AgeRecipient {
                text: text.to_owned(),
                key,
            });
        }
        if text.starts_with("ssh-") {
            return Err(KeyError::UnsupportedRecipient {
                kind: "age SSH",
                recipient: text.to_owned(),
            });
        }
        Err(KeyError::InvalidRecipient {
            recipient: text.to_owned(),
            reason: "unknown recipient type".to_owned(),
        })
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({})", self.text)
    }
}

/// Encrypts `data_key` to one recipient, armored as sops writes `enc`: the
/// `-----BEGIN AGE ENCRYPTED FILE-----` header, 64-column base64 lines, the end line and a
/// final newline.
pub fn wrap(data_key: &[u8], recipient: &AgeRecipient) -> Result<String, KeyError> {
    let encryptor = Encryptor::with_recipients(std::iter::once(&recipient.key as _))
        .map_err(|e| KeyError::Encrypt(e.to_string()))?;
    let io_err = |e: std::io::Error| KeyError::Encrypt(e.to_string());
    let armor = ArmoredWriter::wrap_output(Vec::new(), Format::AsciiArmor).map_err(io_err)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io_err)?;
    writer.write_all(data_key).map_err(io_err)?;
    let armored = writer.finish().and_then(|a| a.finish()).map_err(io_err)?;
    // The armor is base64 and fixed ASCII lines, so this cannot fail; map it anyway rather than
    // unwrap.
    String::from_utf8(armored).map_err(|e| KeyError::Encrypt(e.to_string()))
}

/// Decrypts an `enc` text. Tells "none of these identities is a recipient"
/// ([`KeyError::NoMatchingIdentity`]) from "this is not a valid age file" ([`KeyError::Corrupt`]).
pub fn unwrap(armored: &str, ids: &AgeIdentities) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if ids.identities.is_empty() {
        return Err(KeyError::NoIdentities {
            searched: ids.searched.clone(),
        });
    }
    let decryptor = Decryptor::new(ArmoredReader::new(armored.as_bytes()))
        .map_err(|e| KeyError::Corrupt(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(ids.identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            DecryptError::NoMatchingKeys => KeyError::NoMatchingIdentity {
                searched: ids.searched.clone(),
            },
            other => KeyError::Corrupt(other.to_string()),
        })?;
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|e| KeyError::Corrupt(e.to_string()))?;
    Ok(plain)
}

/// A new X25519 key pair: the identity file text in age-keygen's layout (`# created: ...`,
/// `# public key: ...`, the `AGE-SECRET-KEY-1...` line) and the recipient.
pub fn generate() -> (Zeroizing<String>, String) {
    generate_at(SystemTime::now())
}

fn generate_at(created: SystemTime) -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        rfc3339_utc(created),
        recipient,
        secret.expose_secret()
    ));
    (text, recipient)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as age-keygen prints when the zone is UTC.
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::metadata::format_unix_seconds(secs)
}

/// The age identities available for decryption. Secret keys are zeroized on drop (age's
/// `StaticSecret` does it); the key text they were read from is kept in `Zeroizing` buffers.
#[derive(Default)]
pub struct AgeIdentities {
    identities: Vec<age::x25519::Identity>,
    /// Where identities were looked for, for error messages.
    searched: Vec<String>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeIdentities")
            .field("count", &self.identities.len())
            .field("searched", &self.searched)
            .finish()
    }
}

impl AgeIdentities {
    /// Loads identities from the process environment and the default key file, as sops does.
    pub fn from_env() -> Result<AgeIdentities, KeyError> {
        Self::from_sources(&|name: &str| std::env::var_os(name))
    }

    /// Like [`Self::from_env`] but reads variables through `env`, so tests need not touch the
    /// process environment. Every configured source is read; a source that is set but cannot
    /// be read or holds a malformed line is an error (sops would only mention it if decryption
    /// then failed). A missing default key file is not an error.
    pub fn from_sources(env: &dyn Fn(&str) -> Option<OsString>) -> Result<AgeIdentities, KeyError> {
        let mut ids = AgeIdentities::default();

        if let Some(text) = env(SOPS_AGE_KEY) {
            let text = Zeroizing::new(os_to_string(text, SOPS_AGE_KEY)?);
            ids.add_text(SOPS_AGE_KEY, &text)?;
        }

        if let Some(path) = env(SOPS_AGE_KEY_FILE) {
            let path = PathBuf::from(path);
            let name = format!("{SOPS_AGE_KEY_FILE} ({})", path.display());
            let bytes = read_key_file(&path, &name)?;
            ids.add_bytes(&name, &bytes)?;
        }

        if let Some(cmd) = env(SOPS_AGE_KEY_CMD) {
            let cmd = os_to_string(cmd, SOPS_AGE_KEY_CMD)?;
            let out = run_key_command(&cmd)?;
            ids.add_bytes(SOPS_AGE_KEY_CMD, &out)?;
        }

        if let Some(path) = default_key_file(env) {
            let name = path.display().to_string();
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ids.searched.push(name),
                _ => {
                    let bytes = read_key_file(&path, &name)?;
                    ids.add_bytes(&name, &bytes)?;
                }
            }
        }

        if env(SOPS_AGE_SSH_PRIVATE_KEY_FILE).is_some() {
            ids.searched.push(format!(
                "{SOPS_AGE_SSH_PRIVATE_KEY_FILE} (ignored: SSH identities are not supported)"
            ));
        }
        Ok(ids)
    }

    /// Parses identities from key text (a keys.txt, or a Kubernetes Secret's value).
    /// `source_name` names the text in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<AgeIdentities, KeyError> {
        let mut ids = AgeIdentities::default();
        ids.add_text(source_name, text)?;
        Ok(ids)
    }

    pub fn push(&mut self, identity: age::x25519::Identity) {
        self.identities.push(identity);
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    fn add_bytes(&mut self, source_name: &str, bytes: &[u8]) -> Result<(), KeyError> {
        let text = std::str::from_utf8(bytes).map_err(|e| KeyError::MalformedIdentity {
            source_name: source_name.to_owned(),
            line: line_of_offset(bytes, e.valid_up_to()),
            reason: "not UTF-8 text".to_owned(),
        })?;
        self.add_text(source_name, text)
    }

    /// One identity per line; empty lines and lines starting with `#` are skipped, exactly the
    /// lines sops skips (a line of spaces is an error in sops too).
    fn add_text(&mut self, source_name: &str, text: &str) -> Result<(), KeyError> {
        self.searched.push(source_name.to_owned());
        if text.starts_with("age-encryption") || text.starts_with("-----BEGIN AGE") {
            return Err(KeyError::EncryptedIdentityFile {
                source_name: source_name.to_owned(),
            });
        }
        for (idx, line) in text.lines().enumerate() {
            let malformed = |reason: &str| KeyError::MalformedIdentity {
                source_name: source_name.to_owned(),
                line: idx + 1,
                reason: reason.to_owned(),
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-PLUGIN-") {
                return Err(malformed("age plugin identities are not supported"));
            }
            if !line.starts_with("AGE-SECRET-KEY-1") {
                return Err(malformed(
                    "unknown identity type (expected AGE-SECRET-KEY-1...)",
                ));
            }
            let identity = age::x25519::Identity::from_str(line).map_err(malformed)?;
            self.identities.push(identity);
        }
        Ok(())
    }
}

fn os_to_string(value: OsString, name: &str) -> Result<String, KeyError> {
    value
        .into_string()
        .map_err(|_| KeyError::IdentitySourceUnreadable {
            source_name: name.to_owned(),
            reason: "not valid UTF-8".to_owned(),
        })
}

fn read_key_file(path: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| KeyError::IdentitySourceUnreadable {
            source_name: name.to_owned(),
            reason: e.to_string(),
        })
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Go's `os.UserConfigDir` on Unix: `$XDG_CONFIG_HOME` when set and absolute (a relative one
/// makes Go give up, and sops then skips the default file), else `$HOME/.config`.
fn default_key_file(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let base = match env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(xdg) => {
            let xdg = PathBuf::from(xdg);
            if !xdg.is_absolute() {
                return None;
            }
            xdg
        }
        None => PathBuf::from(env("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("sops").join("age").join("keys.txt"))
}

/// Runs `SOPS_AGE_KEY_CMD` as sops does: split with shell-like quoting rules, executed directly
/// (no shell), stdin from /dev/null. Its stderr goes to ours so the user sees why it failed.
fn run_key_command(cmd: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let fail = |reason: String| KeyError::KeyCommand {
        command: cmd.to_owned(),
        reason,
    };
    let args = shell_words(cmd).map_err(|e| fail(e.to_owned()))?;
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| fail("empty command".to_owned()))?;
    let output = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(fail(output.status.to_string()));
    }
    Ok(stdout)
}

/// Splits a command line the way github.com/google/shlex (used by sops) does: blanks separate
/// words, `'...'` is literal, `"..."` and bare words honour backslash escapes, and `#` at the
/// start of a word comments out the rest of the line.
fn shell_words(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed single quote"),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("unclosed double quote"),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unclosed double quote"),
                    }
                },
                '\\' => match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash"),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "enseal-age-{tag}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Pulls the `enc` block scalars out of a sops YAML fixture, in file order. Indentation
    /// is stripped; good enough for the fixtures sops wrote.
    fn enc_blocks(yaml: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        for line in yaml.lines() {
            let t = line.trim();
            if let Some(buf) = current.as_mut() {
                buf.push_str(t);
                buf.push('\n');
                if t == "-----END AGE ENCRYPTED FILE-----" {
                    out.push(current.take().unwrap());
                }
            } else if t == "enc: |" {
                current = Some(String::new());
            }
        }
        out
    }

    #[test]
    fn recipient_round_trips_its_text() {
        let text = "age1q6tj20qmu36rmhnvwtenf6ezz2hrtt4aknnxsyu6k5wklw4aw4psu4ec22";
        let r: AgeRecipient = format!("  {text}\n").parse().unwrap();
        assert_eq!(r.to_string(), text);
    }

    #[test]
    fn recipient_errors_name_the_kind() {
        assert!(matches!(
            "age1yubikey1qwerty".parse::<AgeRecipient>(),
            Err(KeyError::UnsupportedRecipient {
                kind: "age plugin",
                ..
            })
        ));
        assert!(matches!(
            "ssh-ed25519 AAAAC3Nza user@host".parse::<AgeRecipient>(),
            Err(KeyError::UnsupportedRecipient {
                kind: "age SSH",
                ..
            })
        ));
        assert!(matches!(
            "age1notbech32".parse::<AgeRecipient>(),
            Err(KeyError::InvalidRecipient { .. })
        ));
        assert!(matches!(
            "pgp:ABCDEF".parse::<AgeRecipient>(),
            Err(KeyError::InvalidRecipient { .. })
        ));
    }

    /// The armor framing sops (Go's filippo.io/age/armor) writes: header line, full 64-column
    /// base64 lines, a last shorter-or-equal line, the end line, one final newline, no CR.
    fn assert_sops_armor(enc: &str) {
        assert!(!enc.contains('\r'));
        assert!(
            enc.ends_with("\n-----END AGE ENCRYPTED FILE-----\n"),
            "{enc}"
        );
        let lines: Vec<&str> = enc.lines().collect();
        assert_eq!(lines[0], "-----BEGIN AGE ENCRYPTED FILE-----");
        let body = &lines[1..lines.len() - 1];
        let (last, full) = body.split_last().unwrap();
        assert!(full.iter().all(|l| l.len() == 64), "{enc}");
        assert!(!last.is_empty() && last.len() <= 64, "{enc}");
    }

    /// Our stanza is longer than sops' because the age crate adds a random "grease" recipient
    /// stanza (spec-compliant; Go's age skips it). The framing is the same.
    #[test]
    fn wrap_writes_the_armor_sops_writes() {
        let (_, recipient) = generate();
        let enc = wrap(&[1u8; 32], &recipient.parse().unwrap()).unwrap();
        assert_sops_armor(&enc);
        for sops_enc in enc_blocks(&fixture("single.enc.yaml")) {
            assert_sops_armor(&sops_enc);
        }
    }

    #[test]
    fn wrap_then_unwrap_round_trips() {
        let (key_text, recipient) = generate();
        let ids = AgeIdentities::parse("test", &key_text).unwrap();
        let enc = wrap(
            b"0123456789abcdef0123456789abcdef",
            &recipient.parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            &unwrap(&enc, &ids).unwrap()[..],
            b"0123456789abcdef0123456789abcdef"
        );
    }

    /// Flips one base64 character of the payload line (the last body line), keeping it valid
    /// base64 so the damage reaches the cipher rather than the armor decoder.
    fn damage_payload(enc: &str) -> String {
        let mut lines: Vec<String> = enc.lines().map(str::to_owned).collect();
        let n = lines.len() - 2;
        lines[n] = lines[n]
            .chars()
            .enumerate()
            .map(|(i, c)| match (i, c) {
                (0, 'A') => 'B',
                (0, _) => 'A',
                _ => c,
            })
            .collect();
        lines.join("\n") + "\n"
    }

    #[test]
    fn unwrap_tells_wrong_identity_from_corruption() {
        let (key_text, recipient) = generate();
        let ids = AgeIdentities::parse("k", &key_text).unwrap();
        let (other_key, _) = generate();
        let other = AgeIdentities::parse("other", &other_key).unwrap();
        let enc = wrap(&[9u8; 32], &recipient.parse().unwrap()).unwrap();
        assert!(matches!(
            unwrap(&enc, &other),
            Err(KeyError::NoMatchingIdentity { .. })
        ));
        assert!(matches!(
            unwrap("not age at all", &other),
            Err(KeyError::Corrupt(_))
        ));
        assert!(matches!(
            unwrap(&damage_payload(&enc), &ids),
            Err(KeyError::Corrupt(_))
        ));
    }

    #[test]
    fn unwrap_without_identities_says_so() {
        let ids = AgeIdentities::from_sources(&env_of(&[])).unwrap();
        assert!(ids.is_empty());
        assert!(matches!(
            unwrap("x", &ids),
            Err(KeyError::NoIdentities { .. })
        ));
    }

    #[test]
    fn unwraps_data_key_written_by_sops() {
        let ids = AgeIdentities::parse("k1", &fixture("k1.txt")).unwrap();
        let enc = &enc_blocks(&fixture("single.enc.yaml"))[0];
        let key = unwrap(enc, &ids).unwrap();
        assert_eq!(key.len(), 32);
        // Both recipients of the file wrap the same data key.
        let ids2 = AgeIdentities::parse("k2", &fixture("k2.txt")).unwrap();
        let enc2 = &enc_blocks(&fixture("single.enc.yaml"))[1];
        assert_eq!(unwrap(enc2, &ids2).unwrap(), key);
        assert!(matches!(
            unwrap(enc2, &ids),
            Err(KeyError::NoMatchingIdentity { .. })
        ));
    }

    /// A peer tool, from its variable (as scripts/test.sh sets them) or PATH.
    fn peer(var: &str, name: &str) -> OsString {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| name.into())
    }

    #[test]
    fn age_cli_opens_what_we_wrap() {
        let dir = temp_dir("cli");
        let (key_text, recipient) = generate();
        let key_file = dir.join("keys.txt");
        std::fs::write(&key_file, key_text.as_bytes()).unwrap();
        let enc = wrap(
            b"the data key, 32 bytes long.....",
            &recipient.parse().unwrap(),
        )
        .unwrap();
        let mut child = Command::new(peer("ENSEAL_AGE_BIN", "age"))
            .arg("-d")
            .arg("-i")
            .arg(&key_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the age CLI must be on PATH for the interop tests");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(enc.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"the data key, 32 bytes long.....");
        // And age-keygen agrees on the recipient of the generated identity.
        let y = Command::new(peer("ENSEAL_AGE_KEYGEN_BIN", "age-keygen"))
            .arg("-y")
            .arg(&key_file)
            .output()
            .expect("age-keygen must be on PATH for the interop tests");
        assert_eq!(String::from_utf8(y.stdout).unwrap().trim(), recipient);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generated_file_has_age_keygen_layout() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_796_080_202);
        let (text, recipient) = generate_at(t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "# created: 2026-11-30T23:10:02Z");
        assert_eq!(lines[1], format!("# public key: {recipient}"));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
        assert!(text.ends_with('\n'));
        assert!(recipient.starts_with("age1"));
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn key_text_skips_comments_and_blank_lines_and_holds_several_keys() {
        let (k1, _) = generate();
        let (k2, _) = generate();
        let text = format!("# comment\n\n{}\r\n{}", k1.as_str(), k2.as_str());
        let ids = AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY, &text)])).unwrap();
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn malformed_key_file_error_names_file_and_line_not_the_key() {
        let dir = temp_dir("bad");
        let path = dir.join("keys.txt");
        let secret_looking = "AGE-SECRET-KEY-1NOTREALLYAKEYBUTITLOOKSLIKEONE";
        std::fs::write(&path, format!("# created\n\n{secret_looking}\n")).unwrap();
        let err =
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_FILE, path.to_str().unwrap())]))
                .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KeyError::MalformedIdentity { line: 3, .. }));
        assert!(msg.contains(path.to_str().unwrap()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(!msg.contains("NOTREALLY"), "{msg}");

        std::fs::write(&path, "   \n").unwrap();
        assert!(matches!(
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_FILE, path.to_str().unwrap())])),
            Err(KeyError::MalformedIdentity { line: 1, .. })
        ));

        let missing = dir.join("nope.txt");
        let err =
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_FILE, missing.to_str().unwrap())]))
                .unwrap_err();
        assert!(matches!(err, KeyError::IdentitySourceUnreadable { .. }));
        assert!(err.to_string().contains("nope.txt"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passphrase_protected_identity_file_is_refused_by_name() {
        assert!(matches!(
            AgeIdentities::parse("f", "-----BEGIN AGE ENCRYPTED FILE-----\nabc\n"),
            Err(KeyError::EncryptedIdentityFile { .. })
        ));
        assert!(matches!(
            AgeIdentities::parse("f", "AGE-PLUGIN-YUBIKEY-1ABC\n"),
            Err(KeyError::MalformedIdentity { line: 1, .. })
        ));
    }

    #[test]
    fn all_sources_are_combined_like_sops() {
        let dir = temp_dir("sources");
        let (k_env, _) = generate();
        let (k_file, _) = generate();
        let (k_cmd, _) = generate();
        let (k_default, _) = generate();
        let file = dir.join("file.txt");
        std::fs::write(&file, k_file.as_bytes()).unwrap();
        let cmd_file = dir.join("cmd key.txt");
        std::fs::write(&cmd_file, k_cmd.as_bytes()).unwrap();
        let xdg = dir.join("xdg");
        std::fs::create_dir_all(xdg.join("sops/age")).unwrap();
        std::fs::write(xdg.join("sops/age/keys.txt"), k_default.as_bytes()).unwrap();
        // Quoted path with a space: split like a shell would, no shell involved.
        let cmd = format!("cat '{}'", cmd_file.display());
        let ids = AgeIdentities::from_sources(&env_of(&[
            (SOPS_AGE_KEY, k_env.as_str()),
            (SOPS_AGE_KEY_FILE, file.to_str().unwrap()),
            (SOPS_AGE_KEY_CMD, &cmd),
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
            ("HOME", "/nonexistent"),
        ]))
        .unwrap();
        assert_eq!(ids.len(), 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn default_file_falls_back_to_home_and_may_be_missing() {
        let dir = temp_dir("home");
        let ids = AgeIdentities::from_sources(&env_of(&[("HOME", dir.to_str().unwrap())])).unwrap();
        assert!(ids.is_empty());
        let (k, r) = generate();
        std::fs::create_dir_all(dir.join(".config/sops/age")).unwrap();
        std::fs::write(dir.join(".config/sops/age/keys.txt"), k.as_bytes()).unwrap();
        let ids = AgeIdentities::from_sources(&env_of(&[("HOME", dir.to_str().unwrap())])).unwrap();
        let enc = wrap(&[3u8; 32], &r.parse().unwrap()).unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[3u8; 32]);
        // A relative XDG_CONFIG_HOME makes Go's UserConfigDir fail: no default file at all,
        // not even the $HOME one.
        let ids = AgeIdentities::from_sources(&env_of(&[
            ("HOME", dir.to_str().unwrap()),
            ("XDG_CONFIG_HOME", "relative/dir"),
        ]))
        .unwrap();
        assert!(ids.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failing_key_command_is_an_error() {
        let err = AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_CMD, "false")])).unwrap_err();
        assert!(matches!(err, KeyError::KeyCommand { .. }));
        let err = AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_CMD, "  ")])).unwrap_err();
        assert!(matches!(err, KeyError::KeyCommand { .. }));
    }

    #[test]
    fn shell_words_follow_shlex() {
        assert_eq!(
            shell_words(r#"pass show "age key" 'a b'\ c # comment"#).unwrap(),
            vec!["pass", "show", "age key", "a b c"]
        );
        assert_eq!(shell_words(r#"a"b"'c'"#).unwrap(), vec!["abc"]);
        assert!(shell_words("'open").is_err());
        assert!(shell_words("").unwrap().is_empty());
    }
}

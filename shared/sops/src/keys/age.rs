//! age as a key source: wraps the data key for an `age1...`, post-quantum `age1pq1...` or SSH
//! (`ssh-ed25519 ...`, `ssh-rsa ...`) recipient as the ASCII-armored `enc` text sops stores, and
//! unwraps it with identities loaded from the places sops looks.
//!
//! Post-quantum keys (sops 3.12+, age v1.3): the hybrid ML-KEM-768 + X25519 recipient type
//! `mlkem768x25519` (Go: filippo.io/age pq.go; HPKE with the X-Wing KEM, HKDF-SHA256 and
//! ChaCha20-Poly1305, info `age-encryption.org/mlkem768x25519`). The age crate has it since
//! 0.13 (`age::pq`, on the RustCrypto `x-wing`/`ml-kem` crates through `hpke`), so enseal uses
//! the same maintained crate for every age key type rather than a second implementation.
//!
//! Where sops looks (age/keysource.go and age/ssh_parse.go in sops 3.13), all of them, not the
//! first that exists: the SSH private key in `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, the one printed by
//! `SOPS_AGE_SSH_PRIVATE_KEY_CMD` (3.12+), then `$HOME/.ssh/id_ed25519` and `$HOME/.ssh/id_rsa`
//! when they exist, then `SOPS_AGE_KEY` (key text), `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`
//! (stdout holds the keys), then the default file `$XDG_CONFIG_HOME/sops/age/keys.txt` or
//! `$HOME/.config/sops/age/keys.txt`. The two commands are split like a shell command line and
//! run without a shell, for each age master key tried, with that key's recipient in
//! `SOPS_AGE_RECIPIENT` (so that a password manager can hand out the one key asked for), as
//! sops runs them (`getOutputFromCmd`, once per key: its key service loads identities anew
//! for every stanza).
//!
//! A passphrase-protected age identity file (what `age -p` makes of a keys.txt, binary or
//! armored), in any of those places: sops asks for its passphrase when the identities before
//! it opened nothing (age/encrypted_keys.go). Asking is the binary's business, through a
//! [`PassphrasePrompt`]: the CLI asks on the terminal; without one (the controller, a closed
//! terminal) the file is named in a clear error. enseal asks once per file and run, where sops
//! asks again for every master key it tries (unless a gpg-agent caches the passphrase).
//!
//! A passphrase-protected SSH key: sops asks for the passphrase on the terminal, and only when
//! the key is the recipient of the data key being opened. enseal asks the same way, through the
//! [`PassphrasePrompt`] (once per run); without one it reports that case by file name
//! ([`KeyError::SshKeyNeedsPassphrase`]), and otherwise ignores the key.
//! age plugins (`age1<name>1...` recipients, `AGE-PLUGIN-<NAME>-1...` identities) run the
//! binary `age-plugin-<name>` found on PATH, through the age plugin protocol (the age crate's
//! `plugin` module, c2sp.org/age-plugin), as age and sops do; it is looked for when a data key
//! is wrapped or unwrapped, not when the key is read.

use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::ExposeSecret;
use age::ssh::{Identity as SshIdentity, UnsupportedKey};
use age::{DecryptError, Decryptor, Encryptor};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{KeyAccess, KeyError, MasterKey, Recipient, Stanza, WrapError};
use crate::format::metadata::AgeStanza;

pub const SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
pub const SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";
pub const SOPS_AGE_KEY_CMD: &str = "SOPS_AGE_KEY_CMD";
pub const SOPS_AGE_SSH_PRIVATE_KEY_FILE: &str = "SOPS_AGE_SSH_PRIVATE_KEY_FILE";
pub const SOPS_AGE_SSH_PRIVATE_KEY_CMD: &str = "SOPS_AGE_SSH_PRIVATE_KEY_CMD";
/// Set for the key commands: the recipient of the master key being opened.
pub const SOPS_AGE_RECIPIENT: &str = "SOPS_AGE_RECIPIENT";

/// The largest passphrase-protected identity file read, as sops limits it (16 MiB).
const ENCRYPTED_IDENTITY_FILE_LIMIT: usize = 1 << 24;
/// The highest scrypt work factor accepted for a passphrase-protected identity file: Go age's
/// default limit (`ScryptIdentity.SetMaxWorkFactor`, 22), so that the files sops opens open
/// here too, and no more (a crafted file could otherwise ask for hours and gigabytes).
const MAX_SCRYPT_WORK_FACTOR: u8 = 22;

/// What a passphrase is asked for.
#[derive(Clone, Copy, Debug)]
pub enum Locked<'a> {
    /// A passphrase-protected age identity file, named as errors name sources
    /// (`SOPS_AGE_KEY_FILE (/path)`, a path).
    IdentityFile(&'a str),
    /// A passphrase-protected SSH private key, by path.
    SshKey(&'a str),
}

/// Asks the user for the passphrase of a passphrase-protected age identity file or SSH key.
/// Asking is the binary's business (the CLI asks on the terminal, as sops does); a set of
/// identities without a prompt reports such a key by name instead.
pub trait PassphrasePrompt: Send + Sync {
    /// The passphrase of `what`, or why it could not be had.
    fn passphrase(&self, what: Locked<'_>) -> Result<Zeroizing<String>, String>;
}

/// An age recipient as written in `.sops.yaml`, on the command line, or in a file's metadata.
/// The text is kept as given (trimmed): sops writes it back as `recipient:` unchanged, so an SSH
/// recipient keeps its comment (`ssh-ed25519 AAAA... user@host`).
#[derive(Clone)]
pub struct AgeRecipient {
    text: String,
    key: RecipientKey,
}

// The classic X25519 and SSH recipient types are deprecated in age 0.13 (not post-quantum),
// but they are what sops files are encrypted to, and sops 3.13 still writes them.
#[allow(deprecated)]
#[derive(Clone)]
enum RecipientKey {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
    /// `age1pq1...`: ML-KEM-768 + X25519 hybrid (sops 3.12+).
    Pq(age::pq::Recipient),
    /// `age1<name>1...`: wrapped by the plugin binary `age-plugin-<name>`.
    Plugin(age::plugin::Recipient),
}

/// The key is a function of the text, so comparing texts compares both.
impl PartialEq for AgeRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for AgeRecipient {}

impl AgeRecipient {
    /// Whether this is an SSH public key (age's `ssh-ed25519` / `ssh-rsa` recipient types).
    pub fn is_ssh(&self) -> bool {
        matches!(self.key, RecipientKey::Ssh(_))
    }

    /// Whether this is a post-quantum hybrid recipient (`age1pq1...`).
    pub fn is_post_quantum(&self) -> bool {
        matches!(self.key, RecipientKey::Pq(_))
    }
}

impl FromStr for AgeRecipient {
    type Err = KeyError;

    /// Accepts what sops accepts for X25519, post-quantum, plugin and SSH keys, surrounding
    /// whitespace included (sops trims it). A plugin recipient is only parsed here: its plugin is
    /// looked for on PATH when it wraps a data key.
    #[allow(deprecated)] // X25519 and SSH recipients: see RecipientKey
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let text = s.trim();
        // The order of sops' parseRecipient (age/keysource.go, 3.13): `age1pq1` before the
        // plugin test, since `age1pq1...` also has a second `1` (Bech32 data never has one).
        if text.starts_with("age1pq1") {
            let key =
                age::pq::Recipient::from_str(text).map_err(|e| KeyError::InvalidRecipient {
                    recipient: text.to_owned(),
                    reason: e.to_owned(),
                })?;
            return Ok(AgeRecipient {
                text: text.to_owned(),
                key: RecipientKey::Pq(key),
            });
        }
        if text.starts_with("age1") && text.matches('1').count() > 1 {
            let key =
                age::plugin::Recipient::from_str(text).map_err(|e| KeyError::InvalidRecipient {
                    recipient: text.to_owned(),
                    reason: format!("not an age plugin recipient: {e}"),
                })?;
            return Ok(AgeRecipient {
                text: text.to_owned(),
                key: RecipientKey::Plugin(key),
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
                key: RecipientKey::X25519(key),
            });
        }
        if text.starts_with("ssh-") {
            // sops hands the whole line to agessh.ParseRecipient (ssh.ParseAuthorizedKey): the
            // comment after the key is allowed and ignored; age's parser does the same.
            use age::ssh::ParseRecipientKeyError as E;
            let invalid = |reason: String| KeyError::InvalidRecipient {
                recipient: text.to_owned(),
                reason,
            };
            let key = age::ssh::Recipient::from_str(text).map_err(|e| match e {
                E::Invalid(why) => invalid(format!("not an age-ssh public key: {why}")),
                E::RsaModulusTooSmall => invalid("RSA key smaller than 2048 bits".to_owned()),
                E::RsaModulusTooLarge => invalid("RSA key larger than 4096 bits".to_owned()),
                E::Unsupported(kind) => invalid(format!(
                    "SSH key type {kind} is not supported (only ssh-ed25519 and ssh-rsa)"
                )),
                E::Ignore => invalid("not an age-ssh public key".to_owned()),
                _ => invalid("not an age-ssh public key".to_owned()),
            })?;
            return Ok(AgeRecipient {
                text: text.to_owned(),
                key: RecipientKey::Ssh(key),
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

impl Recipient for AgeRecipient {
    fn name(&self) -> String {
        self.to_string()
    }

    fn wrap(&self, secret: &[u8], _: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let enc = wrap(secret, self).map_err(|e| WrapError::Failed(e.to_string()))?;
        Ok(Stanza::Age(AgeStanza {
            recipient: self.to_string(),
            enc,
        }))
    }
}

impl MasterKey for AgeStanza {
    fn describe(&self) -> String {
        format!("age {}", self.recipient)
    }

    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        unwrap_stanza(self, access.age).map_err(|e| e.to_string())
    }
}

/// The data key (or share) of one age stanza, with `ids` and what the key commands print for
/// its recipient (run here, as sops runs them for each key it tries).
fn unwrap_stanza(stanza: &AgeStanza, ids: &AgeIdentities) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let from_commands = ids.run_commands(&stanza.recipient);
    unwrap_with(&stanza.enc, &[ids, &from_commands])
}

/// Encrypts `data_key` to one recipient, armored as sops writes `enc`: the
/// `-----BEGIN AGE ENCRYPTED FILE-----` header, 64-column base64 lines, the end line and a
/// final newline.
pub fn wrap(data_key: &[u8], recipient: &AgeRecipient) -> Result<String, KeyError> {
    let plugin;
    let key: &dyn age::Recipient = match &recipient.key {
        RecipientKey::X25519(k) => k,
        RecipientKey::Ssh(k) => k,
        RecipientKey::Pq(k) => k,
        RecipientKey::Plugin(k) => {
            plugin = age::plugin::RecipientPluginV1::new(
                k.plugin(),
                std::slice::from_ref(k),
                &[],
                PluginUi,
            )
            .map_err(|e| KeyError::Encrypt(resolve_error(&e)))?;
            &plugin
        }
    };
    let encryptor = Encryptor::with_recipients(std::iter::once(key))
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

/// Decrypts an `enc` text with `ids`, without their key commands (those need the stanza's
/// recipient: the [`MasterKey`] impl of [`AgeStanza`] runs them). Tells "none of these
/// identities is a recipient" ([`KeyError::NoMatchingIdentity`]) from "this is not a valid age
/// file" ([`KeyError::Corrupt`]).
pub fn unwrap(armored: &str, ids: &AgeIdentities) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    unwrap_with(armored, &[ids])
}

/// [`unwrap`] with the identities of several sets (the loaded ones, and those a key command
/// printed for this stanza); the first set's passphrase prompt opens every set's
/// passphrase-protected files.
fn unwrap_with(armored: &str, sets: &[&AgeIdentities]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let searched = || -> Vec<String> {
        sets.iter()
            .flat_map(|ids| ids.searched.iter().cloned())
            .collect()
    };
    if sets.iter().all(|ids| ids.is_empty()) {
        return Err(KeyError::NoIdentities {
            searched: searched(),
        });
    }
    // new_buffered: the header is read a line at a time from the armour, instead of age parsing
    // it again at every read (about 0.6M instructions per data key, measured).
    let decryptor = Decryptor::new_buffered(ArmoredReader::new(armored.as_bytes()))
        .map_err(|e| KeyError::Corrupt(e.to_string()))?;
    let prompt = sets.iter().find_map(|ids| ids.prompt.as_deref());
    let probes: Vec<PassphraseProbe> = sets
        .iter()
        .flat_map(|ids| &ids.ssh_encrypted)
        .map(|key| PassphraseProbe {
            key,
            prompt,
            matched: Cell::new(false),
            failed: Cell::new(false),
        })
        .collect();
    let locked: Vec<LockedIdentity> = sets
        .iter()
        .flat_map(|ids| &ids.encrypted)
        .map(|file| LockedIdentity {
            file,
            prompt,
            failed: Cell::new(false),
        })
        .collect();
    // One connection per plugin, holding all of its identities (as age and sops group them).
    // A plugin is started only when the native identities before it matched no stanza.
    let plugin_ids: Vec<age::plugin::Identity> = sets
        .iter()
        .flat_map(|ids| ids.plugin.iter().cloned())
        .collect();
    let (plugins, missing) = plugins(&plugin_ids);
    // SSH identities first, as sops loads them first; then the plain age keys, then the
    // passphrase-protected files (asking for a passphrase only when those opened nothing);
    // plugins last, as they start processes.
    let all = sets
        .iter()
        .flat_map(|ids| ids.ssh.iter().map(|i| i as &dyn age::Identity))
        .chain(
            sets.iter()
                .flat_map(|ids| ids.identities.iter().map(|i| i as &dyn age::Identity)),
        )
        .chain(
            sets.iter()
                .flat_map(|ids| ids.pq.iter().map(|i| i as &dyn age::Identity)),
        )
        .chain(probes.iter().map(|p| p as &dyn age::Identity))
        .chain(locked.iter().map(|l| l as &dyn age::Identity))
        .chain(plugins.iter().map(|p| p as &dyn age::Identity));
    let decrypted = decryptor.decrypt(all);
    // A passphrase-protected file or SSH key that could not be opened stops the search, as in
    // sops (its error is the error of this stanza), and is reported as itself.
    if let Some(l) = locked.iter().find(|l| l.failed.get()) {
        if let Some(Err(e)) = l.file.opened.get() {
            return Err(e.clone());
        }
    }
    if let Some(p) = probes.iter().find(|p| p.failed.get()) {
        if let Some(Err(e)) = p.key.opened.get() {
            return Err(e.clone());
        }
    }
    let mut reader = decrypted.map_err(|e| match e {
        DecryptError::NoMatchingKeys => match probes.iter().find(|p| p.matched.get()) {
            Some(p) => KeyError::SshKeyNeedsPassphrase {
                path: p.key.path.clone(),
            },
            None => match missing.into_iter().next() {
                Some(binary_name) => KeyError::PluginNotFound {
                    binary_name,
                    searched: searched(),
                },
                None => KeyError::NoMatchingIdentity {
                    searched: searched(),
                },
            },
        },
        DecryptError::Plugin(errors) => KeyError::Plugin(
            errors
                .iter()
                .map(|e| e.to_string().trim_end().to_owned())
                .collect::<Vec<_>>()
                .join("; "),
        ),
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
    generate_at(SystemTime::now(), KeyKind::X25519)
}

/// A new post-quantum hybrid key pair (`age-keygen -pq`): the identity file text, whose secret
/// line is `AGE-SECRET-KEY-PQ-1...`, and the `age1pq1...` recipient (about 1,960 characters).
pub fn generate_pq() -> (Zeroizing<String>, String) {
    generate_at(SystemTime::now(), KeyKind::PostQuantum)
}

#[derive(Clone, Copy)]
enum KeyKind {
    X25519,
    PostQuantum,
}

fn generate_at(created: SystemTime, kind: KeyKind) -> (Zeroizing<String>, String) {
    let (recipient, secret) = match kind {
        // Deprecated in age 0.13 for new keys; still the default of age-keygen and sops users.
        #[allow(deprecated)]
        KeyKind::X25519 => {
            let identity = age::x25519::Identity::generate();
            (identity.to_public().to_string(), identity.to_string())
        }
        KeyKind::PostQuantum => {
            let identity = age::pq::Identity::generate();
            (identity.to_public().to_string(), identity.to_string())
        }
    };
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
    crate::format::metadata::format_unix_seconds(secs)
}

/// A passphrase-protected SSH private key: the stanza type and the 4-byte key tag age puts in
/// a stanza's first argument (to tell that a stanza is addressed to it without the
/// passphrase), and the encrypted key, opened once when it is.
struct EncryptedSshKey {
    path: String,
    stanza_type: &'static str,
    tag: String,
    key: age::ssh::EncryptedKey,
    /// The decrypted key, or why it could not be had (asked once per run).
    opened: OnceLock<Result<SshIdentity, KeyError>>,
}

impl EncryptedSshKey {
    fn open(&self, prompt: &dyn PassphrasePrompt) -> &Result<SshIdentity, KeyError> {
        self.opened.get_or_init(|| {
            let fail = |reason: String| KeyError::SshKeyPassphrase {
                path: self.path.clone(),
                reason,
            };
            let passphrase = prompt
                .passphrase(Locked::SshKey(&self.path))
                .map_err(|reason| fail(format!("could not read its passphrase: {reason}")))?;
            self.key
                .decrypt(age::secrecy::SecretString::from(passphrase.to_string()))
                .map(SshIdentity::Unencrypted)
                .map_err(|_| fail("incorrect passphrase".to_owned()))
        })
    }
}

/// Stands in for a passphrase-protected SSH key during one decryption. When a stanza is
/// addressed to its key (where sops prompts): with a prompt, asks for the passphrase and
/// unwraps; without one, notes it, to be reported by name.
struct PassphraseProbe<'a> {
    key: &'a EncryptedSshKey,
    prompt: Option<&'a dyn PassphrasePrompt>,
    matched: Cell<bool>,
    /// Set when the key could not be opened; its error is then the stanza's error.
    failed: Cell<bool>,
}

impl age::Identity for PassphraseProbe<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, DecryptError>> {
        if stanza.tag != self.key.stanza_type
            || stanza.args.first().map(String::as_str) != Some(self.key.tag.as_str())
        {
            return None;
        }
        self.matched.set(true);
        match self.key.open(self.prompt?) {
            Ok(identity) => identity.unwrap_stanza(stanza),
            Err(_) => {
                self.failed.set(true);
                Some(Err(DecryptError::KeyDecryptionFailed))
            }
        }
    }
}

/// A passphrase-protected age identity file (`age -p` over a keys.txt): the age file, kept
/// until the identities before it open nothing, then opened once with the passphrase the
/// user gives.
struct EncryptedIdentityFile {
    /// The source it came from, as messages name sources.
    location: String,
    /// The age file, binary (de-armored when it was armored).
    contents: Vec<u8>,
    /// The identities it holds, or why it could not be opened (asked once per run).
    opened: OnceLock<Result<AgeIdentities, KeyError>>,
}

impl EncryptedIdentityFile {
    /// Opens the file with the passphrase `prompt` gets, the first time only. As Go age's
    /// `ParseIdentities`, which sops uses on the decrypted text, it holds X25519 and
    /// post-quantum keys only.
    fn open(&self, prompt: Option<&dyn PassphrasePrompt>) -> &Result<AgeIdentities, KeyError> {
        self.opened.get_or_init(|| {
            let fail = |reason: String| KeyError::IdentityPassphrase {
                source_name: self.location.clone(),
                reason,
            };
            let decryptor = Decryptor::new_buffered(&self.contents[..])
                .map_err(|e| fail(format!("not a valid age file: {e}")))?;
            if !decryptor.is_scrypt() {
                return Err(fail(
                    "it is an age file, but not one encrypted with a passphrase".to_owned(),
                ));
            }
            let prompt = prompt.ok_or_else(|| {
                fail("nothing here can ask for its passphrase (only the enseal command line does, on a terminal)".to_owned())
            })?;
            let passphrase = prompt
                .passphrase(Locked::IdentityFile(&self.location))
                .map_err(|reason| fail(format!("could not read its passphrase: {reason}")))?;
            let mut scrypt =
                age::scrypt::Identity::new(age::secrecy::SecretString::from(passphrase.to_string()));
            scrypt.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
            let mut reader = decryptor
                .decrypt(std::iter::once(&scrypt as &dyn age::Identity))
                .map_err(|e| match e {
                    DecryptError::DecryptionFailed | DecryptError::KeyDecryptionFailed => {
                        fail("incorrect passphrase".to_owned())
                    }
                    DecryptError::ExcessiveWork { required, .. } => fail(format!(
                        "its scrypt work factor {required} is above the limit of {MAX_SCRYPT_WORK_FACTOR}"
                    )),
                    other => fail(other.to_string()),
                })?;
            let mut text = Zeroizing::new(Vec::new());
            reader
                .read_to_end(&mut text)
                .map_err(|e| fail(format!("cannot decrypt it: {e}")))?;
            let mut ids = AgeIdentities::default();
            ids.add_bytes(&self.location, &text)?;
            if !(ids.plugin.is_empty() && ids.encrypted.is_empty()) {
                return Err(fail(
                    "it holds a plugin identity or another encrypted file; only \
                     AGE-SECRET-KEY-1... and AGE-SECRET-KEY-PQ-1... keys are read from it, as sops reads it"
                        .to_owned(),
                ));
            }
            Ok(ids)
        })
    }
}

/// Stands in for a passphrase-protected identity file during one decryption: asks for the
/// passphrase when it is reached (no identity before it matched), then tries the keys inside.
struct LockedIdentity<'a> {
    file: &'a EncryptedIdentityFile,
    prompt: Option<&'a dyn PassphrasePrompt>,
    /// Set when the file could not be opened; its error is then the stanza's error.
    failed: Cell<bool>,
}

impl age::Identity for LockedIdentity<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, DecryptError>> {
        match self.file.open(self.prompt) {
            Ok(ids) => ids
                .identities
                .iter()
                .map(|i| i as &dyn age::Identity)
                .chain(ids.pq.iter().map(|i| i as &dyn age::Identity))
                .find_map(|i| i.unwrap_stanzas(stanzas)),
            Err(_) => {
                // Ends the search, as the Go identity's error does; the caller reports it.
                self.failed.set(true);
                Some(Err(DecryptError::KeyDecryptionFailed))
            }
        }
    }
}

/// Which kind of key a key command prints.
#[derive(Clone, Copy)]
enum CommandOutput {
    /// `SOPS_AGE_SSH_PRIVATE_KEY_CMD`: one SSH private key, unencrypted.
    SshKey,
    /// `SOPS_AGE_KEY_CMD`: age identities, one per line (or a passphrase-protected file).
    AgeKeys,
}

/// A key command as configured: run for each age master key tried.
struct KeyCommand {
    variable: &'static str,
    command: String,
    output: CommandOutput,
}

/// The age identities available for decryption. Secret keys are zeroized on drop (age's
/// `StaticSecret`, its SSH Ed25519 `SecretBox` and the `rsa` crate's private key do it); the key
/// text they were read from is kept in `Zeroizing` buffers.
#[derive(Default)]
pub struct AgeIdentities {
    identities: Vec<age::x25519::Identity>,
    /// Post-quantum hybrid identities (`AGE-SECRET-KEY-PQ-1...`); the X-Wing seed they hold is
    /// zeroized on drop (x-wing's `zeroize` feature, which hpke turns on).
    pq: Vec<age::pq::Identity>,
    /// Plugin identities (`AGE-PLUGIN-<NAME>-1...`), kept as text (age keeps it in a
    /// `SecretString`) until a plugin gets them.
    plugin: Vec<age::plugin::Identity>,
    /// Unencrypted SSH private keys (always `SshIdentity::Unencrypted`).
    ssh: Vec<SshIdentity>,
    ssh_encrypted: Vec<EncryptedSshKey>,
    /// Passphrase-protected identity files, opened when the identities before them open
    /// nothing.
    encrypted: Vec<EncryptedIdentityFile>,
    /// `SOPS_AGE_SSH_PRIVATE_KEY_CMD` and `SOPS_AGE_KEY_CMD`, run for each age master key.
    commands: Vec<KeyCommand>,
    /// Asks for the passphrase of passphrase-protected identity files; none by default.
    prompt: Option<Arc<dyn PassphrasePrompt>>,
    /// Where identities were looked for, for error messages.
    searched: Vec<String>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeIdentities")
            .field("count", &self.len())
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
    /// process environment. Every configured source is read, lazily as sops reads them: a
    /// source that is set but cannot be read, fails (`SOPS_AGE_KEY_CMD`) or holds a malformed
    /// line adds nothing and is listed as unusable, with why, in the "looked in" list that a
    /// failed decryption shows; another source (or a KMS key) may still open the file. A
    /// missing default key file is not a problem. `SOPS_AGE_KEY` may hold several keys on a
    /// line, separated by blanks (sops 3.13).
    ///
    /// SSH keys: `SOPS_AGE_SSH_PRIVATE_KEY_FILE` is a configured source like the others.
    /// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa` are picked up when present, and one that is not a
    /// usable key is skipped with a note, as sops notes it, so a stray file there never blocks
    /// age keys.
    pub fn from_sources(env: &dyn Fn(&str) -> Option<OsString>) -> Result<AgeIdentities, KeyError> {
        let mut ids = AgeIdentities::default();
        // Noted here, run for each master key (they get its recipient); in sops' order.
        let command = |ids: &mut AgeIdentities, variable: &'static str, output| {
            if let Some(cmd) = env(variable) {
                match cmd.into_string() {
                    Ok(command) => ids.commands.push(KeyCommand {
                        variable,
                        command,
                        output,
                    }),
                    Err(_) => ids
                        .searched
                        .push(format!("{variable} (unusable: not valid UTF-8)")),
                }
            }
        };

        if let Some(path) = env(SOPS_AGE_SSH_PRIVATE_KEY_FILE) {
            let path = PathBuf::from(path);
            let name = format!("{SOPS_AGE_SSH_PRIVATE_KEY_FILE} ({})", path.display());
            ids.try_source(&name, |ids| {
                let bytes = read_key_file(&path, &name)?;
                ids.add_ssh_key(&path, &bytes).map_err(|reason| {
                    KeyError::IdentitySourceUnreadable {
                        source_name: name.clone(),
                        reason,
                    }
                })?;
                ids.searched.push(name.clone());
                Ok(())
            });
        }
        command(
            &mut ids,
            SOPS_AGE_SSH_PRIVATE_KEY_CMD,
            CommandOutput::SshKey,
        );

        // Go's os.UserHomeDir on Unix: $HOME, and nothing when it is empty.
        if let Some(home) = env("HOME").filter(|v| !v.is_empty()) {
            for file in ["id_ed25519", "id_rsa"] {
                let path = PathBuf::from(&home).join(".ssh").join(file);
                let name = path.display().to_string();
                if !path.exists() {
                    ids.searched.push(name);
                    continue;
                }
                let added = read_key_file(&path, &name)
                    .map_err(|e| match e {
                        KeyError::IdentitySourceUnreadable { reason, .. } => reason,
                        other => other.to_string(),
                    })
                    .and_then(|bytes| ids.add_ssh_key(&path, &bytes));
                match added {
                    Ok(()) => ids.searched.push(name),
                    Err(reason) => ids.searched.push(format!("{name} (skipped: {reason})")),
                }
            }
        }

        if let Some(text) = env(SOPS_AGE_KEY) {
            ids.try_source(SOPS_AGE_KEY, |ids| {
                let text = Zeroizing::new(os_to_string(text, SOPS_AGE_KEY)?);
                ids.add_text(SOPS_AGE_KEY, &text, true)
            });
        }

        if let Some(path) = env(SOPS_AGE_KEY_FILE) {
            let path = PathBuf::from(path);
            let name = format!("{SOPS_AGE_KEY_FILE} ({})", path.display());
            ids.try_source(&name, |ids| {
                let bytes = read_key_file(&path, &name)?;
                ids.add_bytes(&name, &bytes)
            });
        }

        command(&mut ids, SOPS_AGE_KEY_CMD, CommandOutput::AgeKeys);

        if let Some(path) = default_key_file(env) {
            let name = path.display().to_string();
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ids.searched.push(name),
                _ => ids.try_source(&name, |ids| {
                    let bytes = read_key_file(&path, &name)?;
                    ids.add_bytes(&name, &bytes)
                }),
            }
        }

        Ok(ids)
    }

    /// Loads one source into a scratch set and keeps it only when it loads whole (sops drops a
    /// source with a malformed line entirely); otherwise notes it, with why, as unusable.
    fn try_source(
        &mut self,
        name: &str,
        load: impl FnOnce(&mut AgeIdentities) -> Result<(), KeyError>,
    ) {
        let mut loaded = AgeIdentities::default();
        match load(&mut loaded) {
            Ok(()) => {
                self.identities.append(&mut loaded.identities);
                self.pq.append(&mut loaded.pq);
                self.plugin.append(&mut loaded.plugin);
                self.ssh.append(&mut loaded.ssh);
                self.ssh_encrypted.append(&mut loaded.ssh_encrypted);
                self.encrypted.append(&mut loaded.encrypted);
                self.searched.append(&mut loaded.searched);
            }
            Err(e) => self.searched.push(format!("{name} (unusable: {e})")),
        }
    }

    /// Parses identities from key text (a keys.txt, or a Kubernetes Secret's value).
    /// `source_name` names the text in errors. A passphrase-protected identity file is refused
    /// here ([`KeyError::EncryptedIdentityFile`]): whoever hands key text by value (the
    /// controller) has nobody to ask for a passphrase.
    pub fn parse(source_name: &str, text: &str) -> Result<AgeIdentities, KeyError> {
        if is_age_file(text.as_bytes()) {
            return Err(KeyError::EncryptedIdentityFile {
                source_name: source_name.to_owned(),
            });
        }
        let mut ids = AgeIdentities::default();
        ids.add_text(source_name, text, false)?;
        Ok(ids)
    }

    /// Passphrase-protected identity files found in these sources are opened with the
    /// passphrase `prompt` asks for.
    pub fn with_passphrase_prompt(mut self, prompt: Arc<dyn PassphrasePrompt>) -> AgeIdentities {
        self.prompt = Some(prompt);
        self
    }

    /// The identities the key commands print for the master key of `recipient`, run with it
    /// in `SOPS_AGE_RECIPIENT`; a command that fails or prints no usable key is noted as
    /// unusable, with why, like any other source.
    fn run_commands(&self, recipient: &str) -> AgeIdentities {
        let mut ids = AgeIdentities::default();
        for c in &self.commands {
            ids.try_source(c.variable, |ids| {
                let out = run_key_command(c.variable, &c.command, recipient)?;
                match c.output {
                    CommandOutput::AgeKeys => ids.add_bytes(c.variable, &out),
                    CommandOutput::SshKey => {
                        ids.add_ssh_key_from_command(c.variable, &out)?;
                        ids.searched.push(c.variable.to_owned());
                        Ok(())
                    }
                }
            });
        }
        ids
    }

    pub fn push(&mut self, identity: age::x25519::Identity) {
        self.identities.push(identity);
    }

    /// All identities, SSH keys included (passphrase-protected ones too).
    pub fn len(&self) -> usize {
        self.identities.len()
            + self.pq.len()
            + self.plugin.len()
            + self.ssh.len()
            + self.ssh_encrypted.len()
            + self.encrypted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the SSH private key read from `path` (OpenSSH format, or PEM for RSA). The error is
    /// a reason without key material; the caller names the file.
    #[allow(deprecated)] // age::ssh::Recipient, only to read the public half: see RecipientKey
    fn add_ssh_key(&mut self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let shown = path.display().to_string();
        let identity = SshIdentity::from_buffer(bytes, Some(shown.clone()))
            .map_err(|_| "not an SSH private key age can use".to_owned())?;
        match identity {
            SshIdentity::Unencrypted(_) => self.ssh.push(identity),
            SshIdentity::Encrypted(ref key) => {
                let key = key.clone();
                // The public half is stored in clear in an OpenSSH key file: enough to know
                // which stanzas are addressed to it.
                let recipient = age::ssh::Recipient::try_from(identity)
                    .map_err(|_| "unsupported passphrase-protected SSH key".to_owned())?;
                let (stanza_type, wire) = match &recipient {
                    age::ssh::Recipient::SshEd25519(wire, _) => ("ssh-ed25519", wire),
                    age::ssh::Recipient::SshRsa(wire, _) => ("ssh-rsa", wire),
                };
                self.ssh_encrypted.push(EncryptedSshKey {
                    path: shown,
                    stanza_type,
                    tag: ssh_key_tag(wire),
                    key,
                    opened: OnceLock::new(),
                });
            }
            SshIdentity::Unsupported(why) => return Err(unsupported_reason(&why)),
        }
        Ok(())
    }

    /// An SSH private key printed by `SOPS_AGE_SSH_PRIVATE_KEY_CMD`: as sops, a
    /// passphrase-protected one is refused (there is no file to name in a prompt).
    fn add_ssh_key_from_command(&mut self, variable: &str, bytes: &[u8]) -> Result<(), KeyError> {
        let unreadable = |reason: String| KeyError::IdentitySourceUnreadable {
            source_name: variable.to_owned(),
            reason,
        };
        let identity = SshIdentity::from_buffer(bytes, None).map_err(|_| {
            unreadable("its output is not an SSH private key age can use".to_owned())
        })?;
        match identity {
            SshIdentity::Unencrypted(_) => self.ssh.push(identity),
            SshIdentity::Encrypted(_) => {
                return Err(unreadable(
                    "the SSH key it printed is passphrase-protected, which sops does not \
                     support for a command's key either"
                        .to_owned(),
                ))
            }
            SshIdentity::Unsupported(why) => return Err(unreadable(unsupported_reason(&why))),
        }
        Ok(())
    }

    /// Identities from a source's bytes: a passphrase-protected identity file (binary or
    /// armored age file) is kept to be opened when needed; anything else is key text.
    fn add_bytes(&mut self, source_name: &str, bytes: &[u8]) -> Result<(), KeyError> {
        if is_age_file(bytes) {
            return self.add_encrypted_file(source_name, bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| KeyError::MalformedIdentity {
            source_name: source_name.to_owned(),
            line: line_of_offset(bytes, e.valid_up_to()),
            reason: "not UTF-8 text".to_owned(),
        })?;
        self.add_text(source_name, text, false)
    }

    /// One identity per line (with `several_per_line`, as sops reads `SOPS_AGE_KEY`: any
    /// number, separated by blanks); empty lines and lines starting with `#` are skipped,
    /// exactly the lines sops skips (a line of spaces is an error in sops too).
    fn add_text(
        &mut self,
        source_name: &str,
        text: &str,
        several_per_line: bool,
    ) -> Result<(), KeyError> {
        if is_age_file(text.as_bytes()) {
            return self.add_encrypted_file(source_name, text.as_bytes());
        }
        self.searched.push(source_name.to_owned());
        for (idx, line) in text.lines().enumerate() {
            let malformed = |reason: &str| KeyError::MalformedIdentity {
                source_name: source_name.to_owned(),
                line: idx + 1,
                reason: reason.to_owned(),
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let keys: Vec<&str> = if several_per_line {
                line.split_whitespace().collect()
            } else {
                vec![line]
            };
            for key in keys {
                // The prefixes and their order are sops' parseIdentity (age/keysource.go, 3.13).
                if key.starts_with("AGE-PLUGIN-") {
                    let identity = age::plugin::Identity::from_str(key).map_err(malformed)?;
                    self.plugin.push(identity);
                    continue;
                }
                if key.starts_with("AGE-SECRET-KEY-PQ-1") {
                    let identity = age::pq::Identity::from_str(key).map_err(malformed)?;
                    self.pq.push(identity);
                    continue;
                }
                if !key.starts_with("AGE-SECRET-KEY-1") {
                    return Err(malformed(
                        "unknown identity type (expected AGE-SECRET-KEY-1... or \
                         AGE-SECRET-KEY-PQ-1...)",
                    ));
                }
                let identity = age::x25519::Identity::from_str(key).map_err(malformed)?;
                self.identities.push(identity);
            }
        }
        Ok(())
    }
}

impl AgeIdentities {
    /// Keeps a passphrase-protected identity file (sops' `unwrapIdentities`: the source
    /// starts `age-encryption` or `-----BEGIN AGE`), de-armored, to be opened when needed.
    fn add_encrypted_file(&mut self, source_name: &str, bytes: &[u8]) -> Result<(), KeyError> {
        let fail = |reason: String| KeyError::IdentityPassphrase {
            source_name: source_name.to_owned(),
            reason,
        };
        let mut contents = Vec::new();
        ArmoredReader::new(bytes)
            .take(ENCRYPTED_IDENTITY_FILE_LIMIT as u64)
            .read_to_end(&mut contents)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        if contents.len() == ENCRYPTED_IDENTITY_FILE_LIMIT {
            return Err(fail("the file is too long".to_owned()));
        }
        self.searched.push(source_name.to_owned());
        self.encrypted.push(EncryptedIdentityFile {
            location: source_name.to_owned(),
            contents,
            opened: OnceLock::new(),
        });
        Ok(())
    }
}

/// Whether a key source holds an age file (binary or armored) rather than key text: what a
/// passphrase-protected identity file looks like, tested as sops tests it.
fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption") || bytes.starts_with(b"-----BEGIN AGE")
}

/// The plugin connections for `identities`, one per plugin name in the order the names first
/// appear, and the binaries of the plugins not found on PATH.
fn plugins(
    identities: &[age::plugin::Identity],
) -> (Vec<age::plugin::IdentityPluginV1<PluginUi>>, Vec<String>) {
    let mut names: Vec<&str> = Vec::new();
    for identity in identities {
        if !names.contains(&identity.plugin()) {
            names.push(identity.plugin());
        }
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match age::plugin::IdentityPluginV1::new(name, identities, PluginUi) {
            Ok(plugin) => found.push(plugin),
            Err(_) => missing.push(format!("age-plugin-{name}")),
        }
    }
    (found, missing)
}

/// What a plugin may ask of the user while it runs. Like sops' pluginTerminalUI
/// (age/tui.go), messages go to standard error; questions (a PIN, a confirmation) get no
/// answer here, which the plugin treats as the user declining.
#[derive(Clone, Copy)]
struct PluginUi;

impl age::Callbacks for PluginUi {
    fn display_message(&self, message: &str) {
        eprintln!("age: {message}");
    }

    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, _: &str) -> Option<age::secrecy::SecretString> {
        None
    }
}

fn resolve_error(e: &age::plugin::ResolveError) -> String {
    match e {
        age::plugin::ResolveError::MissingPlugin { binary_name } => {
            format!("the age plugin {binary_name} is not on PATH")
        }
        other => other.to_string(),
    }
}

/// age's SSH stanza tag: the first 4 bytes of SHA-256 over the public key's wire encoding,
/// unpadded base64 (agessh.sshFingerprint in Go, ssh_tag in the age crate).
fn ssh_key_tag(wire: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&Sha256::digest(wire)[..4])
}

fn unsupported_reason(key: &UnsupportedKey) -> String {
    match key {
        UnsupportedKey::EncryptedPem => {
            "passphrase-protected PEM key; only the OpenSSH format is supported \
             (ssh-keygen -p -o converts it)"
                .to_owned()
        }
        UnsupportedKey::EncryptedSsh(cipher) => {
            format!("SSH key encrypted with the unsupported cipher {cipher}")
        }
        UnsupportedKey::Hardware(kind) | UnsupportedKey::Type(kind) => {
            format!("SSH key type {kind} is not supported (only ssh-ed25519 and ssh-rsa)")
        }
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

/// Runs a key command (`variable` names it) as sops does: split with shell-like quoting rules,
/// executed directly (no shell), stdin from /dev/null, our environment plus
/// `SOPS_AGE_RECIPIENT`. Its stderr goes to ours so the user sees why it failed.
fn run_key_command(
    variable: &str,
    cmd: &str,
    recipient: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let fail = |reason: String| KeyError::KeyCommand {
        variable: variable.to_owned(),
        command: cmd.to_owned(),
        reason,
    };
    let args = shell_words(cmd).map_err(|e| fail(e.to_owned()))?;
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| fail("empty command".to_owned()))?;
    let output = Command::new(program)
        .args(rest)
        .env(SOPS_AGE_RECIPIENT, recipient)
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
        // A plugin recipient whose Bech32 is damaged names the kind it was taken for.
        let err = "age1yubikey1qwerty".parse::<AgeRecipient>().unwrap_err();
        assert!(matches!(err, KeyError::InvalidRecipient { .. }), "{err}");
        assert!(err.to_string().contains("age plugin"), "{err}");
        // SSH recipients are accepted now (sops 3.11 does), but a damaged one names the kind.
        let err = "ssh-ed25519 AAAAC3Nza user@host"
            .parse::<AgeRecipient>()
            .unwrap_err();
        assert!(matches!(err, KeyError::InvalidRecipient { .. }));
        assert!(err.to_string().contains("age-ssh public key"), "{err}");
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
        for (kind, secret_prefix, public_prefix) in [
            (KeyKind::X25519, "AGE-SECRET-KEY-1", "age1"),
            (KeyKind::PostQuantum, "AGE-SECRET-KEY-PQ-1", "age1pq1"),
        ] {
            let (text, recipient) = generate_at(t, kind);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[0], "# created: 2026-11-30T23:10:02Z");
            assert_eq!(lines[1], format!("# public key: {recipient}"));
            assert!(lines[2].starts_with(secret_prefix));
            assert!(text.ends_with('\n'));
            assert!(recipient.starts_with(public_prefix));
        }
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

    /// What a failed decryption says when `env`'s sources give no identity (they are read
    /// lazily, as sops reads them: a broken source is an error only if nothing else opens).
    fn failure_with(env: &[(&str, &str)]) -> String {
        let ids = AgeIdentities::from_sources(&env_of(env)).expect("sources are read lazily");
        assert!(ids.is_empty(), "{ids:?}");
        let err = unwrap("not read", &ids).unwrap_err();
        assert!(matches!(err, KeyError::NoIdentities { .. }), "{err}");
        err.to_string()
    }

    #[test]
    fn malformed_key_file_is_named_with_its_line_not_the_key_when_nothing_opens() {
        let dir = temp_dir("bad");
        let path = dir.join("keys.txt");
        let secret_looking = "AGE-SECRET-KEY-1NOTREALLYAKEYBUTITLOOKSLIKEONE";
        std::fs::write(&path, format!("# created\n\n{secret_looking}\n")).unwrap();
        let msg = failure_with(&[(SOPS_AGE_KEY_FILE, path.to_str().unwrap())]);
        assert!(msg.contains(path.to_str().unwrap()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(!msg.contains("NOTREALLY"), "{msg}");

        std::fs::write(&path, "   \n").unwrap();
        let msg = failure_with(&[(SOPS_AGE_KEY_FILE, path.to_str().unwrap())]);
        assert!(msg.contains("line 1"), "{msg}");

        let missing = dir.join("nope.txt");
        let msg = failure_with(&[(SOPS_AGE_KEY_FILE, missing.to_str().unwrap())]);
        assert!(msg.contains("nope.txt"), "{msg}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A malformed `SOPS_AGE_KEY`, a failing `SOPS_AGE_KEY_CMD` or a missing
    /// `SOPS_AGE_KEY_FILE` does not stop another source from opening the file, as in sops.
    #[test]
    fn a_broken_source_does_not_stop_a_working_one() {
        let dir = temp_dir("lazy");
        let (k, r) = generate();
        let good = dir.join("keys.txt");
        std::fs::write(&good, k.as_str()).unwrap();
        let missing = dir.join("missing.txt");
        let ids = AgeIdentities::from_sources(&env_of(&[
            (SOPS_AGE_KEY, "AGE-SECRET-KEY-1BROKEN"),
            (SOPS_AGE_KEY_CMD, "false"),
            (SOPS_AGE_KEY_FILE, good.to_str().unwrap()),
        ]))
        .unwrap();
        let enc = wrap(&[5u8; 32], &r.parse().unwrap()).unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[5u8; 32]);
        let ids = AgeIdentities::from_sources(&env_of(&[
            (SOPS_AGE_KEY, k.as_str()),
            (SOPS_AGE_KEY_FILE, missing.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[5u8; 32]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// sops 3.13 reads several keys from one `SOPS_AGE_KEY` line, separated by blanks.
    #[test]
    fn sops_age_key_may_hold_several_keys_on_a_line() {
        let (k1, _) = generate();
        let (k2, r2) = generate();
        let key = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .unwrap()
                .to_string()
        };
        let line = format!("{} {}", key(&k1), key(&k2));
        let ids = AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY, &line)])).unwrap();
        assert_eq!(ids.len(), 2);
        let enc = wrap(&[6u8; 32], &r2.parse().unwrap()).unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[6u8; 32]);
    }

    #[test]
    fn passphrase_protected_identity_file_is_refused_by_name() {
        assert!(matches!(
            AgeIdentities::parse("f", "-----BEGIN AGE ENCRYPTED FILE-----\nabc\n"),
            Err(KeyError::EncryptedIdentityFile { .. })
        ));
        // A damaged plugin identity is named by line like any other.
        assert!(matches!(
            AgeIdentities::parse("f", "AGE-PLUGIN-YUBIKEY-1ABC\n"),
            Err(KeyError::MalformedIdentity { line: 1, .. })
        ));
    }

    /// Plugin keys parse without their plugin; a missing plugin is named when it would have
    /// been needed (the data key is for nobody else), and when wrapping.
    #[test]
    fn plugin_keys_parse_and_a_missing_plugin_is_named() {
        // From the age-plugin-yubikey README (a public recipient and an identity that only
        // names a slot; neither holds key material).
        let recipient = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t";
        let r: AgeRecipient = recipient.parse().unwrap();
        assert_eq!(r.to_string(), recipient);
        let err = wrap(&[1u8; 32], &r).unwrap_err().to_string();
        assert!(err.contains("age-plugin-yubikey is not on PATH"), "{err}");

        let identity = age::plugin::Identity::default_for_plugin("enseal-missing").unwrap();
        let ids = AgeIdentities::parse("keys.txt", &format!("{identity}\n")).unwrap();
        assert_eq!(ids.len(), 1);
        let (_, other) = generate();
        let enc = wrap(&[1u8; 32], &other.parse().unwrap()).unwrap();
        let err = unwrap(&enc, &ids).unwrap_err();
        assert!(
            matches!(&err, KeyError::PluginNotFound { binary_name, .. } if binary_name == "age-plugin-enseal-missing"),
            "{err}"
        );
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
        // The command's key comes when a master key is opened (it gets the recipient).
        assert_eq!(ids.len(), 3);
        assert_eq!(ids.run_commands("age1whatever").len(), 1);
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

    /// Opens `enc` as the master key of `recipient` does: key commands included. The error as
    /// a failed decryption shows it.
    fn open_stanza(recipient: &str, enc: &str, ids: &AgeIdentities) -> Result<Vec<u8>, String> {
        let stanza = AgeStanza {
            recipient: recipient.to_owned(),
            enc: enc.to_owned(),
        };
        unwrap_stanza(&stanza, ids)
            .map(|k| k.to_vec())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_failing_key_command_is_named_when_nothing_opens() {
        let (_, r) = generate();
        let enc = wrap(&[1u8; 32], &r.parse().unwrap()).unwrap();
        for variable in [SOPS_AGE_KEY_CMD, SOPS_AGE_SSH_PRIVATE_KEY_CMD] {
            for cmd in ["false", "  "] {
                let ids = AgeIdentities::from_sources(&env_of(&[(variable, cmd)])).unwrap();
                let msg = open_stanza(&r, &enc, &ids).unwrap_err();
                assert!(msg.contains(&format!("{variable} (unusable:")), "{msg}");
            }
        }
    }

    /// sops runs the key commands for each age master key it tries, with that key's recipient
    /// in SOPS_AGE_RECIPIENT (3.10+), so a command can hand out only the key asked for.
    #[test]
    fn key_commands_run_per_master_key_with_its_recipient() {
        let dir = temp_dir("keycmd");
        let (k1, r1) = generate();
        let (k2, r2) = generate();
        for (k, r) in [(&k1, &r1), (&k2, &r2)] {
            std::fs::write(dir.join(r), k.as_bytes()).unwrap();
        }
        let log = dir.join("log");
        // Prints only the key of the recipient asked for, and notes each run.
        let script = format!(
            "echo \"$SOPS_AGE_RECIPIENT\" >> '{log}'; cat \"{dir}/$SOPS_AGE_RECIPIENT\"",
            log = log.display(),
            dir = dir.display()
        );
        let ids = AgeIdentities::from_sources(&env_of(&[(
            SOPS_AGE_KEY_CMD,
            &format!("sh -c '{}'", script.replace('\'', "'\\''")),
        )]))
        .unwrap();
        assert!(
            !log.exists(),
            "the command runs when a key is opened, not when loading"
        );
        let e1 = wrap(&[1u8; 32], &r1.parse().unwrap()).unwrap();
        let e2 = wrap(&[2u8; 32], &r2.parse().unwrap()).unwrap();
        assert_eq!(open_stanza(&r1, &e1, &ids).unwrap(), vec![1u8; 32]);
        assert_eq!(open_stanza(&r2, &e2, &ids).unwrap(), vec![2u8; 32]);
        // Asked for r1's key, the command gives only r1's: r2's stanza stays closed.
        let msg = open_stanza(&r1, &e2, &ids).unwrap_err();
        assert!(msg.contains("no age identity matches"), "{msg}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("{r1}\n{r2}\n{r1}\n")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// SOPS_AGE_SSH_PRIVATE_KEY_CMD (sops 3.12+) prints an SSH private key; a
    /// passphrase-protected one is refused, as sops refuses it.
    #[test]
    fn ssh_key_command_prints_the_private_key() {
        let dir = temp_dir("sshcmd");
        let (key, line) = ssh_keygen(&dir, "id_ed25519", "ed25519", "");
        let enc = wrap(&[9u8; 32], &line.parse().unwrap()).unwrap();
        let cmd = format!("cat '{}'", key.display());
        let ids =
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_SSH_PRIVATE_KEY_CMD, &cmd)])).unwrap();
        assert_eq!(open_stanza(&line, &enc, &ids).unwrap(), vec![9u8; 32]);

        let (locked, locked_line) = ssh_keygen(&dir, "id_locked", "ed25519", "secret");
        let enc = wrap(&[9u8; 32], &locked_line.parse().unwrap()).unwrap();
        let cmd = format!("cat '{}'", locked.display());
        let ids =
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_SSH_PRIVATE_KEY_CMD, &cmd)])).unwrap();
        let msg = open_stanza(&locked_line, &enc, &ids).unwrap_err();
        assert!(
            msg.contains("SOPS_AGE_SSH_PRIVATE_KEY_CMD (unusable:"),
            "{msg}"
        );
        assert!(msg.contains("passphrase-protected"), "{msg}");

        let cmd = "echo not-a-key".to_owned();
        let ids =
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_SSH_PRIVATE_KEY_CMD, &cmd)])).unwrap();
        let msg = open_stanza(&line, &enc, &ids).unwrap_err();
        assert!(msg.contains("not an SSH private key"), "{msg}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A prompt for tests: gives `answer` and counts how often it was asked.
    struct FixedPrompt {
        answer: Result<&'static str, &'static str>,
        asked: std::sync::Mutex<Vec<String>>,
    }

    impl PassphrasePrompt for FixedPrompt {
        fn passphrase(&self, what: Locked<'_>) -> Result<Zeroizing<String>, String> {
            let (Locked::IdentityFile(name) | Locked::SshKey(name)) = what;
            self.asked.lock().unwrap().push(name.to_owned());
            self.answer
                .map(|a| Zeroizing::new(a.to_owned()))
                .map_err(str::to_owned)
        }
    }

    fn prompt(answer: Result<&'static str, &'static str>) -> Arc<FixedPrompt> {
        Arc::new(FixedPrompt {
            answer,
            asked: Default::default(),
        })
    }

    /// What `age -p` makes of `text`: an scrypt-encrypted age file (a low work factor, to keep
    /// the test quick), armored with `-a`.
    fn passphrase_file(text: &str, passphrase: &str, armored: bool) -> Vec<u8> {
        let mut recipient =
            age::scrypt::Recipient::new(age::secrecy::SecretString::from(passphrase.to_owned()));
        recipient.set_work_factor(10);
        let encryptor =
            Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient)).unwrap();
        let format = if armored {
            Format::AsciiArmor
        } else {
            Format::Binary
        };
        let armor = ArmoredWriter::wrap_output(Vec::new(), format).unwrap();
        let mut w = encryptor.wrap_output(armor).unwrap();
        w.write_all(text.as_bytes()).unwrap();
        w.finish().and_then(|a| a.finish()).unwrap()
    }

    /// A passphrase-protected identity file (binary or armored) opens with its passphrase,
    /// asked once per run and only when needed; the prompt names the file.
    #[test]
    fn passphrase_protected_identity_file_opens_with_its_passphrase() {
        let dir = temp_dir("pass");
        let (k, r) = generate();
        let (pq, pq_r) = generate_pq();
        let enc = wrap(&[4u8; 32], &r.parse().unwrap()).unwrap();
        let pq_enc = wrap(&[5u8; 32], &pq_r.parse().unwrap()).unwrap();
        for armored in [false, true] {
            let file = dir.join("keys.age");
            let text = format!("{}{}", k.as_str(), pq.as_str());
            std::fs::write(&file, passphrase_file(&text, "correct horse", armored)).unwrap();
            let asker = prompt(Ok("correct horse"));
            let ids = AgeIdentities::from_sources(&env_of(&[(
                SOPS_AGE_KEY_FILE,
                file.to_str().unwrap(),
            )]))
            .unwrap()
            .with_passphrase_prompt(asker.clone());
            assert!(
                asker.asked.lock().unwrap().is_empty(),
                "asked before needed"
            );
            assert_eq!(open_stanza(&r, &enc, &ids).unwrap(), vec![4u8; 32]);
            assert_eq!(open_stanza(&pq_r, &pq_enc, &ids).unwrap(), vec![5u8; 32]);
            let asked = asker.asked.lock().unwrap().clone();
            assert_eq!(
                asked,
                vec![format!("{SOPS_AGE_KEY_FILE} ({})", file.display())],
                "asked once, naming the file"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passphrase_protected_identity_file_is_asked_for_only_when_nothing_before_opens() {
        let dir = temp_dir("pass-order");
        let (k, r) = generate();
        let (locked, _) = generate();
        let file = dir.join("keys.age");
        std::fs::write(&file, passphrase_file(&locked, "pw", false)).unwrap();
        let asker = prompt(Ok("pw"));
        let ids = AgeIdentities::from_sources(&env_of(&[
            (SOPS_AGE_KEY_FILE, file.to_str().unwrap()),
            (SOPS_AGE_KEY, k.as_str()),
        ]))
        .unwrap()
        .with_passphrase_prompt(asker.clone());
        let enc = wrap(&[4u8; 32], &r.parse().unwrap()).unwrap();
        assert_eq!(open_stanza(&r, &enc, &ids).unwrap(), vec![4u8; 32]);
        assert!(asker.asked.lock().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A passphrase-protected SSH key is asked for (by path) only when it is the recipient,
    /// and opens with its passphrase, as sops does; a wrong one is named with the path.
    #[test]
    fn passphrase_protected_ssh_key_opens_with_its_passphrase() {
        let dir = temp_dir("ssh-pass");
        let (key, line) = ssh_keygen(&dir, "id_ed25519", "ed25519", "sekrit");
        let enc = wrap(&[8u8; 32], &line.parse().unwrap()).unwrap();
        let (_, other) = generate();
        let other_enc = wrap(&[8u8; 32], &other.parse().unwrap()).unwrap();
        let load = |asker: &Arc<FixedPrompt>| {
            AgeIdentities::from_sources(&env_of(&[(
                SOPS_AGE_SSH_PRIVATE_KEY_FILE,
                key.to_str().unwrap(),
            )]))
            .unwrap()
            .with_passphrase_prompt(asker.clone())
        };
        let asker = prompt(Ok("sekrit"));
        let ids = load(&asker);
        assert!(open_stanza(&other, &other_enc, &ids).is_err());
        assert!(
            asker.asked.lock().unwrap().is_empty(),
            "not its stanza: not asked"
        );
        assert_eq!(open_stanza(&line, &enc, &ids).unwrap(), vec![8u8; 32]);
        assert_eq!(open_stanza(&line, &enc, &ids).unwrap(), vec![8u8; 32]);
        assert_eq!(
            *asker.asked.lock().unwrap(),
            vec![key.display().to_string()]
        );

        let asker = prompt(Ok("wrong"));
        let msg = open_stanza(&line, &enc, &load(&asker)).unwrap_err();
        assert!(
            msg.contains(&format!(
                "cannot open the passphrase-protected SSH key {}: incorrect passphrase",
                key.display()
            )),
            "{msg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Without a prompt, with a prompt that cannot ask (no terminal), or with the wrong
    /// passphrase, the error names the file and says why; never key text.
    #[test]
    fn passphrase_protected_identity_file_failures_name_the_file() {
        let dir = temp_dir("pass-fail");
        let (k, r) = generate();
        let file = dir.join("keys.age");
        std::fs::write(&file, passphrase_file(&k, "right", true)).unwrap();
        let enc = wrap(&[4u8; 32], &r.parse().unwrap()).unwrap();
        let load = || {
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY_FILE, file.to_str().unwrap())]))
                .unwrap()
        };
        let cases: [(Option<Arc<FixedPrompt>>, &str); 3] = [
            (None, "nothing here can ask for its passphrase"),
            (
                Some(prompt(Err("no terminal"))),
                "could not read its passphrase: no terminal",
            ),
            (Some(prompt(Ok("wrong"))), "incorrect passphrase"),
        ];
        for (asker, why) in cases {
            let ids = match &asker {
                Some(a) => load().with_passphrase_prompt(a.clone()),
                None => load(),
            };
            let msg = open_stanza(&r, &enc, &ids).unwrap_err();
            assert!(
                msg.contains(&format!(
                    "cannot open the passphrase-protected age identity file {SOPS_AGE_KEY_FILE} ({})",
                    file.display()
                )),
                "{msg}"
            );
            assert!(msg.contains(why), "{msg}");
            assert!(!msg.contains("AGE-SECRET-KEY"), "{msg}");
            // Asked once, even when a second key is tried.
            let _ = open_stanza(&r, &enc, &ids);
            if let Some(a) = asker {
                assert_eq!(a.asked.lock().unwrap().len(), 1);
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
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

    /// A fresh SSH key pair from the real ssh-keygen: (private key path, public key line).
    fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (PathBuf, String) {
        let path = dir.join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args([
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            "tester@enseal",
            "-f",
        ])
        .arg(&path);
        if kind == "rsa" {
            cmd.args(["-b", "2048"]);
        }
        let status = cmd
            .status()
            .expect("ssh-keygen is needed for the SSH key tests: apt-get install openssh-client");
        assert!(status.success());
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (path, public.trim().to_owned())
    }

    #[test]
    fn ssh_recipients_keep_their_line_and_open_with_the_private_key() {
        let dir = temp_dir("ssh");
        for kind in ["ed25519", "rsa"] {
            let (key, line) = ssh_keygen(&dir, &format!("id_{kind}"), kind, "");
            let r: AgeRecipient = format!(" {line}\n").parse().unwrap();
            assert!(r.is_ssh());
            // sops writes the trimmed line, comment included, as `recipient:`.
            assert_eq!(r.to_string(), line);
            let enc = wrap(&[7u8; 32], &r).unwrap();
            assert_sops_armor(&enc);
            let from_var = AgeIdentities::from_sources(&env_of(&[(
                SOPS_AGE_SSH_PRIVATE_KEY_FILE,
                key.to_str().unwrap(),
            )]))
            .unwrap();
            assert_eq!(from_var.len(), 1);
            assert_eq!(&unwrap(&enc, &from_var).unwrap()[..], &[7u8; 32]);

            // The default place: $HOME/.ssh/id_ed25519 or id_rsa.
            let home = dir.join(format!("home-{kind}"));
            std::fs::create_dir_all(home.join(".ssh")).unwrap();
            std::fs::copy(&key, home.join(".ssh").join(format!("id_{kind}"))).unwrap();
            let from_home =
                AgeIdentities::from_sources(&env_of(&[("HOME", home.to_str().unwrap())])).unwrap();
            assert_eq!(from_home.len(), 1);
            assert_eq!(&unwrap(&enc, &from_home).unwrap()[..], &[7u8; 32]);

            // An X25519 identity alone does not open it.
            let (k, _) = generate();
            let other = AgeIdentities::parse("k", &k).unwrap();
            assert!(matches!(
                unwrap(&enc, &other),
                Err(KeyError::NoMatchingIdentity { .. })
            ));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wrong_ssh_key_is_no_matching_identity() {
        let dir = temp_dir("ssh-wrong");
        let (_, line) = ssh_keygen(&dir, "a", "ed25519", "");
        let (other, _) = ssh_keygen(&dir, "b", "ed25519", "");
        let enc = wrap(&[1u8; 32], &line.parse().unwrap()).unwrap();
        let ids = AgeIdentities::from_sources(&env_of(&[(
            SOPS_AGE_SSH_PRIVATE_KEY_FILE,
            other.to_str().unwrap(),
        )]))
        .unwrap();
        let err = unwrap(&enc, &ids).unwrap_err();
        assert!(matches!(err, KeyError::NoMatchingIdentity { .. }), "{err}");
        assert!(err.to_string().contains(other.to_str().unwrap()), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passphrase_protected_ssh_key_is_named_only_when_it_is_the_recipient() {
        let dir = temp_dir("ssh-pass");
        for kind in ["ed25519", "rsa"] {
            let (key, line) = ssh_keygen(&dir, &format!("locked_{kind}"), kind, "s3cret pass");
            let ids = AgeIdentities::from_sources(&env_of(&[(
                SOPS_AGE_SSH_PRIVATE_KEY_FILE,
                key.to_str().unwrap(),
            )]))
            .unwrap();
            assert_eq!(ids.len(), 1);
            let enc = wrap(&[2u8; 32], &line.parse().unwrap()).unwrap();
            let err = unwrap(&enc, &ids).unwrap_err();
            assert!(
                matches!(&err, KeyError::SshKeyNeedsPassphrase { path } if path == key.to_str().unwrap()),
                "{err}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
            // Not its recipient: no prompt in sops, so just "no matching identity" here.
            let (_, r) = generate();
            let enc = wrap(&[2u8; 32], &r.parse().unwrap()).unwrap();
            assert!(matches!(
                unwrap(&enc, &ids),
                Err(KeyError::NoMatchingIdentity { .. })
            ));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_ssh_key_files_are_named_or_skipped_at_the_default_path() {
        let dir = temp_dir("ssh-bad");
        let bad = dir.join("not_a_key");
        let secret_looking = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETSTUFF\n";
        std::fs::write(&bad, secret_looking).unwrap();
        let msg = failure_with(&[(SOPS_AGE_SSH_PRIVATE_KEY_FILE, bad.to_str().unwrap())]);
        assert!(
            msg.contains(SOPS_AGE_SSH_PRIVATE_KEY_FILE) && msg.contains("not_a_key"),
            "{msg}"
        );
        assert!(!msg.contains("SECRETSTUFF"), "{msg}");
        let missing = dir.join("missing");
        let msg = failure_with(&[(SOPS_AGE_SSH_PRIVATE_KEY_FILE, missing.to_str().unwrap())]);
        assert!(msg.contains("missing"), "{msg}");

        // At the default path a broken or unsupported file is skipped (sops only mentions it if
        // decryption then fails), so age keys elsewhere still work.
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), secret_looking).unwrap();
        ssh_keygen(&home.join(".ssh"), "id_rsa", "ecdsa", "");
        let (k, r) = generate();
        let ids = AgeIdentities::from_sources(&env_of(&[
            ("HOME", home.to_str().unwrap()),
            (SOPS_AGE_KEY, k.as_str()),
        ]))
        .unwrap();
        assert_eq!(ids.len(), 1);
        let enc = wrap(&[4u8; 32], &r.parse().unwrap()).unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[4u8; 32]);
        let (_, ssh_line) = ssh_keygen(&dir, "elsewhere", "ed25519", "");
        let enc = wrap(&[4u8; 32], &ssh_line.parse().unwrap()).unwrap();
        let msg = unwrap(&enc, &ids).unwrap_err().to_string();
        assert!(msg.contains("id_ed25519 (skipped:"), "{msg}");
        assert!(msg.contains("id_rsa (skipped: SSH key type ecdsa"), "{msg}");
        assert!(!msg.contains("SECRETSTUFF"), "{msg}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ssh_recipient_kinds_sops_refuses_are_refused() {
        let dir = temp_dir("ssh-kinds");
        let (_, ecdsa) = ssh_keygen(&dir, "e", "ecdsa", "");
        // Not `ssh-` at all: sops says "unknown recipient type" too.
        let err = ecdsa.parse::<AgeRecipient>().unwrap_err();
        assert!(err.to_string().contains("unknown recipient type"), "{err}");
        let path = dir.join("small");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen is needed: apt-get install openssh-client");
        assert!(status.success());
        // agessh refuses RSA keys under 2048 bits; so does age's parser.
        let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let err = line.parse::<AgeRecipient>().unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
    /// The identity in `pq.txt` and the file `pq-go-age.age` were made by the real Go age
    /// v1.3.2 (`age-keygen -pq`, `age -a -r age1pq1...`): the Go `mlkem768x25519` stanza opens.
    #[test]
    fn a_file_go_age_encrypted_to_a_pq_recipient_opens_with_its_pq_identity() {
        let key = fixture("pq.txt");
        let ids = AgeIdentities::parse("pq.txt", &key).unwrap();
        assert_eq!(ids.len(), 1);
        let plain = unwrap(&fixture("pq-go-age.age"), &ids).unwrap();
        assert_eq!(&plain[..], b"0123456789abcdef0123456789abcdef");
        // A classic identity alone does not open it, and says so as for any other key.
        let (other, _) = generate();
        let other = AgeIdentities::parse("k", &other).unwrap();
        assert!(matches!(
            unwrap(&fixture("pq-go-age.age"), &other),
            Err(KeyError::NoMatchingIdentity { .. })
        ));
    }

    #[test]
    fn pq_recipient_is_parsed_as_post_quantum_not_as_a_plugin() {
        let key = fixture("pq.txt");
        let public = key
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap();
        let r: AgeRecipient = format!(" {public}\n").parse().unwrap();
        assert!(r.is_post_quantum());
        assert_eq!(r.to_string(), public);
        // One damaged character: the Bech32 checksum fails, and the error says which recipient.
        let mut damaged = public.to_owned();
        let last = damaged.pop().unwrap();
        damaged.push(if last == 'q' { 'p' } else { 'q' });
        let err = damaged.parse::<AgeRecipient>().unwrap_err();
        assert!(matches!(err, KeyError::InvalidRecipient { .. }), "{err}");
    }

    #[test]
    fn pq_wrap_then_unwrap_round_trips_with_sops_armor() {
        let (key_text, recipient) = generate_pq();
        let r: AgeRecipient = recipient.parse().unwrap();
        let enc = wrap(&[9u8; 32], &r).unwrap();
        assert_sops_armor(&enc);
        let ids = AgeIdentities::parse("test", &key_text).unwrap();
        assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[9u8; 32]);
    }

    /// One keys.txt may hold classic and post-quantum identities, and `SOPS_AGE_KEY` may hold
    /// both on one line (sops 3.13); each opens what was encrypted to it.
    #[test]
    fn classic_and_pq_identities_mix_in_one_source() {
        let (classic, classic_r) = generate();
        let (pq, pq_r) = generate_pq();
        let file = format!("{}\n{}", classic.as_str(), pq.as_str());
        let secret = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .unwrap()
                .to_owned()
        };
        let line = format!("{} {}", secret(&pq), secret(&classic));
        for ids in [
            AgeIdentities::parse("keys.txt", &file).unwrap(),
            AgeIdentities::from_sources(&env_of(&[(SOPS_AGE_KEY, &line)])).unwrap(),
        ] {
            assert_eq!(ids.len(), 2);
            for (r, byte) in [(&classic_r, 1u8), (&pq_r, 2u8)] {
                let enc = wrap(&[byte; 32], &r.parse().unwrap()).unwrap();
                assert_eq!(&unwrap(&enc, &ids).unwrap()[..], &[byte; 32]);
            }
        }
    }

    #[test]
    fn malformed_pq_identity_is_named_by_line_without_key_text() {
        let key = fixture("pq.txt");
        let secret = key.lines().find(|l| l.starts_with("AGE-SECRET")).unwrap();
        let damaged = format!("{}Q", &secret[..secret.len() - 1]);
        let err = AgeIdentities::parse("keys.txt", &format!("# c\n{damaged}\n")).unwrap_err();
        assert!(
            matches!(err, KeyError::MalformedIdentity { line: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(&secret[20..40]), "{err}");
    }
}

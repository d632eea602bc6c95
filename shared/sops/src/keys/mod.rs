//! Key sources: the master keys that wrap a file's data key (or its Shamir shares).
//!
//! Each source turns a data key into the `enc` text stored in the `sops` metadata and back.
//! Errors never carry key material, only where it came from.

pub mod age;
pub mod aws_kms;
pub mod groups;
pub mod shamir;

use zeroize::Zeroizing;

use crate::format::metadata::KmsStanza;

/// A KMS implementation (AWS KMS in enseal), behind a trait so that the key groups do not
/// depend on a cloud SDK and tests can stand in for it.
pub trait KmsService {
    /// Wraps `data_key` for `key`, returning the stanza with `enc` and `created_at` filled in.
    fn encrypt(&self, key: &KmsStanza, data_key: &[u8]) -> Result<KmsStanza, String>;
    fn decrypt(&self, stanza: &KmsStanza) -> Result<Zeroizing<Vec<u8>>, String>;
}

/// Why a key source could not wrap or unwrap a data key.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid age recipient {recipient:?}: {reason}")]
    InvalidRecipient { recipient: String, reason: String },
    #[error("{kind} recipients are not supported: {recipient:?}")]
    UnsupportedRecipient {
        kind: &'static str,
        recipient: String,
    },
    #[error("failed to encrypt the data key with age: {0}")]
    Encrypt(String),
    #[error("no age identity matches any recipient of this data key{}", locations_suffix(.searched))]
    NoMatchingIdentity {
        /// Where identities were looked for (variable names and file paths, never key text).
        searched: Vec<String>,
    },
    #[error("no age identities found{}", locations_suffix(.searched))]
    NoIdentities { searched: Vec<String> },
    #[error("the age-encrypted data key is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot read age identities from {source_name}: {reason}")]
    IdentitySourceUnreadable { source_name: String, reason: String },
    #[error("malformed age identity in {source_name}, line {line}: {reason}")]
    MalformedIdentity {
        source_name: String,
        line: usize,
        reason: String,
    },
    #[error("{source_name} holds a passphrase-protected age identity file, which enseal does not support yet")]
    EncryptedIdentityFile { source_name: String },
    #[error("the SSH key {path} is passphrase-protected and is the recipient of this data key: sops asks for the passphrase on a terminal, enseal cannot; use an unencrypted copy (SOPS_AGE_SSH_PRIVATE_KEY_FILE) or an age key")]
    SshKeyNeedsPassphrase { path: String },
    #[error("cannot run SOPS_AGE_KEY_CMD {command:?}: {reason}")]
    KeyCommand { command: String, reason: String },
}

fn locations_suffix(searched: &[String]) -> String {
    if searched.is_empty() {
        String::new()
    } else {
        format!(" (looked in: {})", searched.join(", "))
    }
}

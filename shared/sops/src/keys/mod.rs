//! Key sources: the master keys that wrap a file's data key (or its Shamir shares).
//!
//! Each source turns a data key into the `enc` text stored in the `sops` metadata and back,
//! behind the two halves of sops' `keys.MasterKey` (keys/keys.go): a [`Recipient`] wraps a
//! secret into its source's metadata [`Stanza`], and a stanza read back is a [`MasterKey`] that
//! unwraps it with what the keyring holds ([`KeyAccess`]). The sources are age, pgp (gpg, or
//! [`openpgp`] where there is no gpg), aws_kms, gcp_kms, azure_kv and hc_vault; the REST ones
//! share one blocking HTTP client (http.rs). A new source is one module implementing both
//! halves, a [`Stanza`] variant, and, when it needs credentials, a field of [`KeyAccess`];
//! [`groups`] then tries it like the others. Errors never carry key material, only where it
//! came from.

pub mod age;
pub mod aws_kms;
pub mod azure_kv;
mod blocking;
pub mod gcp_kms;
pub mod groups;
pub mod hc_vault;
mod http;
pub mod openpgp;
pub mod order;
pub mod pgp;
pub mod shamir;

use zeroize::Zeroizing;

use crate::format::metadata::{
    AgeStanza, AzureKvStanza, GcpKmsStanza, KeyGroup, KmsStanza, PgpStanza, VaultStanza,
};
use crate::keys::age::AgeIdentities;
use crate::keys::azure_kv::AzureKeyVault;
use crate::keys::gcp_kms::GcpKms;
use crate::keys::hc_vault::VaultTransit;
use crate::keys::openpgp::PgpSecretKeys;
use crate::keys::order::DecryptionOrder;
use crate::keys::pgp::GnuPg;

/// What the keyring holds, loaded, for master keys to use.
#[derive(Clone, Copy)]
pub struct KeyAccess<'k> {
    pub age: &'k AgeIdentities,
    /// `None` when no KMS access is configured.
    pub kms: Option<&'k dyn KmsService>,
    /// The gpg binary PGP keys go through (it finds the keys itself: keyring, agent, card);
    /// `None` where PGP is not to be used (the controller: no gpg, and no keyring of its own).
    pub gpg: Option<&'k GnuPg>,
    /// Armored secret keys that open PGP stanzas in-process ([`openpgp`]), used instead of gpg
    /// when given (the controller's `*.asc` key entries); `None` where none are held.
    pub pgp_keys: Option<&'k PgpSecretKeys>,
    /// Vault / OpenBao transit access; `None` when not configured.
    pub vault: Option<&'k VaultTransit>,
    /// GCP Cloud KMS access; `None` when not configured.
    pub gcp_kms: Option<&'k GcpKms>,
    /// Azure Key Vault access; `None` when not configured.
    pub azure_kv: Option<&'k AzureKeyVault>,
}

/// A master key to wrap a data key for, as named on the command line or in a creation rule.
pub trait Recipient {
    /// The key as named in messages (a recipient, an ARN), never key material.
    fn name(&self) -> String;
    /// Wraps `secret` (a data key or a Shamir share) for this key.
    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError>;
}

/// Why a [`Recipient`] could not wrap a secret.
#[derive(Debug)]
pub enum WrapError {
    /// The key source needs access that the keyring does not hold (KMS, Vault).
    NoAccess,
    Failed(String),
}

/// A master key of a file's metadata, able to give back what it wraps.
pub trait MasterKey {
    /// The key as messages name it: its source and its name (`age age1...`, `kms arn:...`).
    fn describe(&self) -> String;
    /// The data key or share wrapped in this stanza, or why it cannot be had, never key material.
    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String>;
}

/// A wrapped secret in the metadata form of its key source.
pub enum Stanza {
    Age(AgeStanza),
    Kms(KmsStanza),
    Pgp(PgpStanza),
    Vault(VaultStanza),
    GcpKms(GcpKmsStanza),
    AzureKv(AzureKvStanza),
}

impl Stanza {
    /// Records the stanza in `group`, under its source's key (field order is the metadata's).
    pub fn add_to(self, group: &mut KeyGroup) {
        match self {
            Stanza::Age(s) => group.age.push(s),
            Stanza::Kms(s) => group.kms.push(s),
            Stanza::Pgp(s) => group.pgp.push(s),
            Stanza::Vault(s) => group.hc_vault.push(s),
            Stanza::GcpKms(s) => group.gcp_kms.push(s),
            Stanza::AzureKv(s) => group.azure_kv.push(s),
        }
    }
}

/// The master keys of `group`, in the order they are tried: by `order` (sops'
/// `--decryption-order`, by default age then PGP), the other types after them in the order
/// sops reads a group from a file: kms, gcp_kms, azure_kv, hc_vault, pgp, age
/// (stores/stores.go `internalGroupFrom`; see [`order`]).
pub fn master_keys<'g>(group: &'g KeyGroup, order: &DecryptionOrder) -> Vec<&'g dyn MasterKey> {
    fn typed<'g, K: MasterKey>(
        kind: &'static str,
        keys: &'g [K],
    ) -> impl Iterator<Item = (&'static str, &'g dyn MasterKey)> {
        keys.iter().map(move |k| (kind, k as &dyn MasterKey))
    }
    order.arrange(
        typed(order::KMS, &group.kms)
            .chain(typed(order::GCP_KMS, &group.gcp_kms))
            .chain(typed(order::AZURE_KV, &group.azure_kv))
            .chain(typed(order::HC_VAULT, &group.hc_vault))
            .chain(typed(order::PGP, &group.pgp))
            .chain(typed(order::AGE, &group.age)),
    )
}

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
    #[error("{source_name} holds a passphrase-protected age identity file, which can only be opened where enseal can ask for its passphrase (the command line, on a terminal)")]
    EncryptedIdentityFile { source_name: String },
    #[error("cannot open the passphrase-protected age identity file {source_name}: {reason}")]
    IdentityPassphrase { source_name: String, reason: String },
    #[error("the SSH key {path} is passphrase-protected and is the recipient of this data key, and nothing here can ask for its passphrase (only the enseal command line does, on a terminal); use an unencrypted copy (SOPS_AGE_SSH_PRIVATE_KEY_FILE) or an age key")]
    SshKeyNeedsPassphrase { path: String },
    #[error("cannot open the passphrase-protected SSH key {path}: {reason}")]
    SshKeyPassphrase { path: String, reason: String },
    #[error("no age identity matches any recipient of this data key, and {binary_name}, the plugin of some identities, is not on PATH{}", locations_suffix(.searched))]
    PluginNotFound {
        binary_name: String,
        searched: Vec<String>,
    },
    #[error("age plugin failed: {0}")]
    Plugin(String),
    /// `variable` is the variable that named the command (`SOPS_AGE_KEY_CMD`, ...).
    #[error("cannot run {variable} {command:?}: {reason}")]
    KeyCommand {
        variable: String,
        command: String,
        reason: String,
    },
}

fn locations_suffix(searched: &[String]) -> String {
    if searched.is_empty() {
        String::new()
    } else {
        format!(" (looked in: {})", searched.join(", "))
    }
}

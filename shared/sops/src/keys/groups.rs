//! Wrapping a file's data key for its key groups, and getting it back.
//!
//! One group: every master key in it wraps the whole data key. Several groups: the data key is
//! split with Shamir's scheme, one share per group, and any `shamir_threshold` groups rebuild it
//! (sops' behaviour; the threshold defaults to the number of groups).

use std::sync::{Mutex, OnceLock};

use zeroize::Zeroizing;

use crate::crypto::data_key::DataKey;
use crate::format::metadata::{
    AzureKvStanza, GcpKmsStanza, KeyGroup, KmsStanza, Metadata, VaultStanza,
};
use crate::keys::age::{AgeIdentities, AgeRecipient};
use crate::keys::azure_kv::AzureKeyVault;
use crate::keys::gcp_kms::GcpKms;
use crate::keys::hc_vault::VaultTransit;
use crate::keys::openpgp::PgpSecretKeys;
use crate::keys::order::DecryptionOrder;
use crate::keys::pgp::{GnuPg, PgpFingerprint};
use crate::keys::shamir::{self, ShamirError};
use crate::keys::{master_keys, KeyAccess, KeyError, KmsService, Recipient, WrapError};

/// The master keys of one group, as named on the command line or in a creation rule.
#[derive(Clone, Debug, Default)]
pub struct GroupRecipients {
    pub age: Vec<AgeRecipient>,
    /// KMS keys to wrap for (`arn`, `role`, `context`, `aws_profile` set; `enc` empty).
    pub kms: Vec<KmsStanza>,
    pub pgp: Vec<PgpFingerprint>,
    /// Vault transit keys to wrap for (address, engine and key name set; `enc` empty).
    pub hc_vault: Vec<VaultStanza>,
    /// GCP KMS keys to wrap for (`resource_id` set; `enc` empty).
    pub gcp_kms: Vec<GcpKmsStanza>,
    /// Azure Key Vault keys to wrap for (vault URL and name set, version maybe; `enc` empty).
    pub azure_kv: Vec<AzureKvStanza>,
}

impl GroupRecipients {
    pub fn is_empty(&self) -> bool {
        self.age.is_empty()
            && self.kms.is_empty()
            && self.pgp.is_empty()
            && self.hc_vault.is_empty()
            && self.gcp_kms.is_empty()
            && self.azure_kv.is_empty()
    }

    /// The group's master keys in the order they are wrapped for: age, AWS KMS, GCP KMS,
    /// Azure Key Vault, Vault, then PGP.
    fn recipients(&self) -> impl Iterator<Item = &dyn Recipient> {
        let age = self.age.iter().map(|r| r as &dyn Recipient);
        let kms = self.kms.iter().map(|k| k as &dyn Recipient);
        let gcp = self.gcp_kms.iter().map(|k| k as &dyn Recipient);
        let azure = self.azure_kv.iter().map(|k| k as &dyn Recipient);
        let vault = self.hc_vault.iter().map(|k| k as &dyn Recipient);
        let pgp = self.pgp.iter().map(|k| k as &dyn Recipient);
        age.chain(kms)
            .chain(gcp)
            .chain(azure)
            .chain(vault)
            .chain(pgp)
    }
}

/// What the user holds to open files: age identities and, optionally, KMS access. Each may be
/// given ready, or as a loader that runs only when a file is opened: the age identities then
/// (as sops reads them at decrypt time), KMS access only when the file names KMS keys, so that
/// age-only files never pay for an AWS client. `'a` is how long a loader may borrow from its
/// caller (`'static` for a keyring that owns everything).
pub struct Keyring<'a> {
    age: Deferred<'a, AgeIdentities, KeyError>,
    kms: Option<Deferred<'a, Box<dyn KmsService>, String>>,
    gpg: Option<GnuPg>,
    pgp_keys: Option<PgpSecretKeys>,
    vault: Option<Deferred<'a, VaultTransit, String>>,
    gcp_kms: Option<Deferred<'a, GcpKms, String>>,
    azure_kv: Option<Deferred<'a, AzureKeyVault, String>>,
    /// The order a group's keys are tried in (sops' `--decryption-order`).
    order: DecryptionOrder,
}

impl<'a> Keyring<'a> {
    /// A keyring holding `age`, no KMS access and no PGP.
    pub fn new(age: AgeIdentities) -> Keyring<'a> {
        Keyring::with_age(Deferred::ready(age))
    }

    /// A keyring whose age identities are loaded by `load` when a file is opened; a failure
    /// to load is [`KeyGroupError::AgeIdentities`].
    pub fn loading_age(
        load: impl FnOnce() -> Result<AgeIdentities, KeyError> + Send + 'a,
    ) -> Keyring<'a> {
        Keyring::with_age(Deferred::later(load))
    }

    fn with_age(age: Deferred<'a, AgeIdentities, KeyError>) -> Keyring<'a> {
        Keyring {
            age,
            kms: None,
            gpg: None,
            pgp_keys: None,
            vault: None,
            gcp_kms: None,
            azure_kv: None,
            order: DecryptionOrder::default(),
        }
    }

    /// Tries each group's keys in `order` rather than sops' default (age, then PGP).
    pub fn with_decryption_order(mut self, order: DecryptionOrder) -> Keyring<'a> {
        self.order = order;
        self
    }

    /// PGP keys go through `gpg` (`SOPS_GPG_EXEC`, else `gpg`, in the CLI). Without it a
    /// keyring does not run gpg: a library user (the controller) opts in, rather than having
    /// whatever gpg and keyring its host has used on its behalf.
    pub fn with_gpg(mut self, gpg: GnuPg) -> Keyring<'a> {
        self.gpg = Some(gpg);
        self
    }

    /// PGP keys are opened in-process with these armored secret keys, and not through gpg
    /// (the controller: its image has no gpg; keys/openpgp.rs).
    pub fn with_pgp_keys(mut self, keys: PgpSecretKeys) -> Keyring<'a> {
        self.pgp_keys = Some(keys);
        self
    }

    pub fn with_kms(mut self, kms: Box<dyn KmsService>) -> Keyring<'a> {
        self.kms = Some(Deferred::ready(kms));
        self
    }

    /// KMS access set up by `connect` the first time a file with KMS keys is opened; a failure
    /// is [`KeyGroupError::KmsAccess`].
    pub fn with_kms_from(
        mut self,
        connect: impl FnOnce() -> Result<Box<dyn KmsService>, String> + Send + 'a,
    ) -> Keyring<'a> {
        self.kms = Some(Deferred::later(connect));
        self
    }

    /// Vault transit access set up by `connect` the first time a file with `hc_vault` keys is
    /// opened; a failure is [`KeyGroupError::KmsAccess`].
    pub fn with_vault_from(
        mut self,
        connect: impl FnOnce() -> Result<VaultTransit, String> + Send + 'a,
    ) -> Keyring<'a> {
        self.vault = Some(Deferred::later(connect));
        self
    }

    /// GCP KMS access set up by `connect` the first time a file with `gcp_kms` keys is
    /// opened; a failure is [`KeyGroupError::KmsAccess`].
    pub fn with_gcp_kms_from(
        mut self,
        connect: impl FnOnce() -> Result<GcpKms, String> + Send + 'a,
    ) -> Keyring<'a> {
        self.gcp_kms = Some(Deferred::later(connect));
        self
    }

    /// `None` when no GCP KMS access is configured.
    fn gcp_kms(&self) -> Result<Option<&GcpKms>, KeyGroupError> {
        service(&self.gcp_kms)
    }

    /// Azure Key Vault access set up by `connect` the first time a file with `azure_kv` keys
    /// is opened; a failure is [`KeyGroupError::KmsAccess`].
    pub fn with_azure_kv_from(
        mut self,
        connect: impl FnOnce() -> Result<AzureKeyVault, String> + Send + 'a,
    ) -> Keyring<'a> {
        self.azure_kv = Some(Deferred::later(connect));
        self
    }

    /// `None` when no Azure Key Vault access is configured.
    fn azure_kv(&self) -> Result<Option<&AzureKeyVault>, KeyGroupError> {
        service(&self.azure_kv)
    }

    /// `None` when no Vault access is configured.
    fn vault(&self) -> Result<Option<&VaultTransit>, KeyGroupError> {
        service(&self.vault)
    }

    fn age(&self) -> Result<&AgeIdentities, KeyGroupError> {
        self.age
            .get()
            .as_ref()
            .map_err(|e| KeyGroupError::AgeIdentities(e.clone()))
    }

    /// `None` when no KMS access is configured.
    fn kms(&self) -> Result<Option<&dyn KmsService>, KeyGroupError> {
        Ok(service(&self.kms)?.map(|k| k.as_ref()))
    }
}

/// A key service's access: `None` when none is configured, set up on first use; a failure to
/// set it up is [`KeyGroupError::KmsAccess`].
fn service<'s, T>(
    access: &'s Option<Deferred<'_, T, String>>,
) -> Result<Option<&'s T>, KeyGroupError> {
    match access.as_ref().map(Deferred::get) {
        None => Ok(None),
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(reason)) => Err(KeyGroupError::KmsAccess(reason.clone())),
    }
}

/// A value given ready or made by a loader on first use (and then kept, with its error).
struct Deferred<'a, T, E> {
    value: OnceLock<Result<T, E>>,
    load: Mutex<Option<Loader<'a, T, E>>>,
}

type Loader<'a, T, E> = Box<dyn FnOnce() -> Result<T, E> + Send + 'a>;

impl<'a, T, E> Deferred<'a, T, E> {
    fn ready(value: T) -> Self {
        Deferred {
            value: OnceLock::from(Ok(value)),
            load: Mutex::new(None),
        }
    }

    fn later(load: impl FnOnce() -> Result<T, E> + Send + 'a) -> Self {
        Deferred {
            value: OnceLock::new(),
            load: Mutex::new(Some(Box::new(load))),
        }
    }

    fn get(&self) -> &Result<T, E> {
        self.value.get_or_init(|| {
            let load = self
                .load
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("a deferred value without a value has its loader");
            load()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyGroupError {
    #[error("no master keys: the creation rule names none (and none were given with --age, SOPS_AGE_RECIPIENTS, --pgp, SOPS_PGP_FP or --kms)")]
    NoKeys,
    #[error("key group {group} has no master keys")]
    EmptyGroup { group: usize },
    #[error("KMS keys are named but no KMS access is configured")]
    NoKms,
    #[error("Vault transit keys are named but no Vault access is configured")]
    NoVault,
    #[error("GCP KMS keys are named but no GCP KMS access is configured")]
    NoGcpKms,
    #[error("Azure Key Vault keys are named but no Azure Key Vault access is configured")]
    NoAzureKv,
    /// The keyring's age identities could not be loaded.
    #[error(transparent)]
    AgeIdentities(KeyError),
    /// The keyring's KMS access could not be set up.
    #[error("{0}")]
    KmsAccess(String),
    #[error("cannot wrap the data key for {key}: {reason}")]
    Wrap { key: String, reason: String },
    #[error("Shamir secret sharing: {0}")]
    Shamir(#[from] ShamirError),
    /// Every master key was tried; lists each key and why it failed, never key material.
    #[error("could not retrieve the data key: {}", describe_attempts(.attempts, *.needed, *.found))]
    Unavailable {
        attempts: Vec<(String, String)>,
        needed: usize,
        found: usize,
    },
}

fn describe_attempts(attempts: &[(String, String)], needed: usize, found: usize) -> String {
    let mut s = if needed > 1 {
        format!("needed {needed} key groups, could open {found}")
    } else {
        "no master key could open it".to_string()
    };
    for (key, why) in attempts {
        s.push_str(&format!("\n  - {key}: {why}"));
    }
    s
}

/// Wraps `key` for `groups`; returns the metadata key groups and the threshold to record. PGP
/// keys need [`wrap_with_gpg`].
pub fn wrap(
    key: &DataKey,
    groups: &[GroupRecipients],
    threshold: Option<usize>,
    kms: Option<&dyn KmsService>,
) -> Result<(Vec<KeyGroup>, Option<usize>), KeyGroupError> {
    let no_identities = AgeIdentities::default();
    let services = KeyAccess {
        age: &no_identities,
        kms,
        gpg: None,
        pgp_keys: None,
        vault: None,
        gcp_kms: None,
        azure_kv: None,
    };
    wrap_for(key, groups, threshold, &services)
}

/// [`wrap`], with PGP keys going through `gpg`, Vault transit keys through `vault` and GCP
/// KMS keys through `gcp_kms`.
pub fn wrap_with_gpg(
    key: &DataKey,
    groups: &[GroupRecipients],
    threshold: Option<usize>,
    kms: Option<&dyn KmsService>,
    gpg: &GnuPg,
    vault: Option<&VaultTransit>,
    gcp_kms: Option<&GcpKms>,
) -> Result<(Vec<KeyGroup>, Option<usize>), KeyGroupError> {
    let no_identities = AgeIdentities::default();
    let services = KeyAccess {
        age: &no_identities,
        kms,
        gpg: Some(gpg),
        pgp_keys: None,
        vault,
        gcp_kms,
        azure_kv: None,
    };
    wrap_for(key, groups, threshold, &services)
}

/// [`wrap`], with every key source `services` holds (its age identities are not used: wrapping
/// needs only recipients). One struct rather than one argument per source, which grow with
/// every source.
pub fn wrap_for(
    key: &DataKey,
    groups: &[GroupRecipients],
    threshold: Option<usize>,
    services: &KeyAccess<'_>,
) -> Result<(Vec<KeyGroup>, Option<usize>), KeyGroupError> {
    if groups.is_empty() || groups.iter().all(GroupRecipients::is_empty) {
        return Err(KeyGroupError::NoKeys);
    }
    if let Some(i) = groups.iter().position(GroupRecipients::is_empty) {
        return Err(KeyGroupError::EmptyGroup { group: i + 1 });
    }
    if groups.len() == 1 {
        let group = wrap_group(key.as_bytes(), &groups[0], services)?;
        return Ok((vec![group], threshold));
    }
    let threshold = threshold.unwrap_or(groups.len());
    let shares = shamir::split(key.as_bytes(), groups.len(), threshold)?;
    let wrapped = groups
        .iter()
        .zip(shares.iter())
        .map(|(g, share)| wrap_group(share, g, services))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((wrapped, Some(threshold)))
}

fn wrap_group(
    secret: &[u8],
    group: &GroupRecipients,
    access: &KeyAccess<'_>,
) -> Result<KeyGroup, KeyGroupError> {
    let mut out = KeyGroup::default();
    for r in group.recipients() {
        let stanza = r.wrap(secret, access).map_err(|e| match e {
            WrapError::NoAccess if group.hc_vault.iter().any(|k| k.uri() == r.name()) => {
                KeyGroupError::NoVault
            }
            WrapError::NoAccess if group.gcp_kms.iter().any(|k| k.resource_id == r.name()) => {
                KeyGroupError::NoGcpKms
            }
            WrapError::NoAccess if group.azure_kv.iter().any(|k| k.uri() == r.name()) => {
                KeyGroupError::NoAzureKv
            }
            WrapError::NoAccess => KeyGroupError::NoKms,
            WrapError::Failed(reason) => KeyGroupError::Wrap {
                key: r.name(),
                reason,
            },
        })?;
        stanza.add_to(&mut out);
    }
    Ok(out)
}

/// Gets the data key back from the metadata with what the keyring holds. Each group's keys are
/// tried in the keyring's decryption order: by default age keys before PGP keys and those
/// before KMS keys, as sops does.
pub fn unwrap(metadata: &Metadata, keyring: &Keyring) -> Result<DataKey, KeyGroupError> {
    let groups = &metadata.key_groups;
    // The keys are loaded before any is tried, so that a broken key source is reported as
    // such rather than as one failed attempt among others.
    let age = keyring.age()?;
    let kms = if groups.iter().any(|g| !g.kms.is_empty()) {
        keyring.kms()?
    } else {
        None
    };
    let vault = if groups.iter().any(|g| !g.hc_vault.is_empty()) {
        keyring.vault()?
    } else {
        None
    };
    let gcp_kms = if groups.iter().any(|g| !g.gcp_kms.is_empty()) {
        keyring.gcp_kms()?
    } else {
        None
    };
    let azure_kv = if groups.iter().any(|g| !g.azure_kv.is_empty()) {
        keyring.azure_kv()?
    } else {
        None
    };
    let needed = if groups.len() > 1 {
        metadata.shamir_threshold.unwrap_or(groups.len())
    } else {
        1
    };
    let mut attempts = Vec::new();
    let mut parts: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for group in groups {
        let access = KeyAccess {
            age,
            kms,
            gpg: keyring.gpg.as_ref(),
            pgp_keys: keyring.pgp_keys.as_ref(),
            vault,
            gcp_kms,
            azure_kv,
        };
        if let Some(part) = open_group(group, &access, &keyring.order, &mut attempts) {
            parts.push(part);
            if parts.len() >= needed {
                break;
            }
        }
    }
    if parts.len() < needed || parts.is_empty() {
        return Err(KeyGroupError::Unavailable {
            attempts,
            needed,
            found: parts.len(),
        });
    }
    let secret = if groups.len() > 1 {
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        shamir::combine(&refs)?
    } else {
        parts.swap_remove(0)
    };
    DataKey::from_slice(&secret).ok_or_else(|| KeyGroupError::Unavailable {
        attempts: vec![(
            "data key".into(),
            format!("recovered {} bytes, expected 32", secret.len()),
        )],
        needed,
        found: 0,
    })
}

fn open_group(
    group: &KeyGroup,
    access: &KeyAccess<'_>,
    order: &DecryptionOrder,
    attempts: &mut Vec<(String, String)>,
) -> Option<Zeroizing<Vec<u8>>> {
    for key in master_keys(group, order) {
        match key.unwrap(access) {
            Ok(secret) => return Some(secret),
            Err(why) => attempts.push((key.describe(), why)),
        }
    }
    // Keys kept from the file that enseal cannot open (hckms): named, one by one, so that a
    // file only they open says why rather than failing without a word about them.
    for key in group.unsupported_keys() {
        attempts.push((key.describe(), key.reason()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypt_rule::CryptRule;
    use crate::keys::age as agekeys;

    fn identity() -> (String, AgeRecipient) {
        let (secret, recipient) = agekeys::generate();
        (secret.to_string(), recipient.parse().unwrap())
    }

    fn keyring(secrets: &[&String]) -> Keyring<'static> {
        let text: String = secrets
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Keyring::new(AgeIdentities::parse("test", &text).unwrap())
    }

    #[test]
    fn one_group_wraps_the_whole_key_for_every_recipient() {
        let (s1, r1) = identity();
        let (_, r2) = identity();
        let key = DataKey::generate();
        let group = GroupRecipients {
            age: vec![r1, r2],
            ..Default::default()
        };
        let (groups, threshold) = wrap(&key, &[group], None, None).unwrap();
        assert_eq!((groups.len(), groups[0].age.len(), threshold), (1, 2, None));
        let meta = Metadata::new(groups, CryptRule::default());
        assert_eq!(
            unwrap(&meta, &keyring(&[&s1])).unwrap().as_bytes(),
            key.as_bytes()
        );
    }

    #[test]
    fn shamir_groups_need_the_threshold() {
        let people: Vec<_> = (0..3).map(|_| identity()).collect();
        let groups: Vec<_> = people
            .iter()
            .map(|(_, r)| GroupRecipients {
                age: vec![r.clone()],
                ..Default::default()
            })
            .collect();
        let key = DataKey::generate();
        let (wrapped, threshold) = wrap(&key, &groups, Some(2), None).unwrap();
        assert_eq!(threshold, Some(2));
        let mut meta = Metadata::new(wrapped, CryptRule::default());
        meta.shamir_threshold = threshold;
        let two = keyring(&[&people[0].0, &people[2].0]);
        assert_eq!(unwrap(&meta, &two).unwrap().as_bytes(), key.as_bytes());
        let err = unwrap(&meta, &keyring(&[&people[1].0])).unwrap_err();
        assert!(matches!(
            err,
            KeyGroupError::Unavailable {
                needed: 2,
                found: 1,
                ..
            }
        ));
    }

    /// The controller's keyring has no gpg: a PGP key is reported by fingerprint, and no gpg
    /// from the host is run on a tenant's file.
    #[test]
    fn a_keyring_without_gpg_names_the_pgp_key_it_cannot_use() {
        let group = KeyGroup {
            pgp: vec![crate::format::metadata::PgpStanza {
                fp: "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4".into(),
                created_at: String::new(),
                enc: "-----BEGIN PGP MESSAGE-----".into(),
            }],
            ..Default::default()
        };
        let meta = Metadata::new(vec![group], CryptRule::default());
        let err = unwrap(&meta, &Keyring::new(AgeIdentities::default())).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(
                "pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4: PGP keys are not supported here"
            ),
            "{message}"
        );
        let recipients = GroupRecipients {
            pgp: vec!["FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4".parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(
            wrap(&DataKey::generate(), &[recipients], None, None),
            Err(KeyGroupError::Wrap { .. })
        ));
    }

    /// The keyring's decryption order decides which key of a group is tried first: the
    /// attempts, listed in the order made, show it.
    #[test]
    fn keys_are_tried_in_the_keyring_decryption_order() {
        let (_, someone) = identity();
        let key = DataKey::generate();
        let recipients = GroupRecipients {
            age: vec![someone],
            ..Default::default()
        };
        let (mut groups, _) = wrap(&key, &[recipients], None, None).unwrap();
        groups[0].pgp.push(crate::format::metadata::PgpStanza {
            fp: "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4".into(),
            created_at: String::new(),
            enc: "-----BEGIN PGP MESSAGE-----".into(),
        });
        let meta = Metadata::new(groups, CryptRule::default());
        let tried = |keyring: Keyring| match unwrap(&meta, &keyring).unwrap_err() {
            KeyGroupError::Unavailable { attempts, .. } => attempts
                .into_iter()
                .map(|(key, _)| key.split(' ').next().unwrap().to_owned())
                .collect::<Vec<_>>(),
            other => panic!("{other}"),
        };
        assert_eq!(tried(keyring(&[])), ["age", "pgp"], "sops' default");
        let pgp_first = "pgp,age".parse().unwrap();
        assert_eq!(
            tried(keyring(&[]).with_decryption_order(pgp_first)),
            ["pgp", "age"]
        );
    }
}

//! The keys SopsSecrets are decrypted with: age identities and armored PGP secret keys from one
//! Secret in the controller's namespace (every entry named `*.agekey` is identity text and every
//! `*.asc` entry an armored secret key, Flux's layout), watched so that a key added later is used
//! without a restart; and AWS KMS from the standard credential chain, set up on first need and
//! reused. PGP keys are opened in-process (enseal_sops::keys::openpgp): the image has no gpg.
//! GCP KMS uses the `sops.gcp-kms` entry's credentials JSON when there is one (Flux's layout),
//! else the controller's environment (ADC, workload identity through the metadata server).

use std::sync::{Arc, Mutex, RwLock};

use enseal_sops::format::metadata::KmsStanza;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::AwsKms;
use enseal_sops::keys::gcp_kms::GcpKms;
use enseal_sops::keys::openpgp::PgpSecretKeys;
use enseal_sops::keys::KmsService;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;
use zeroize::Zeroizing;

#[derive(Default)]
pub struct SopsKeys {
    /// The valid `*.agekey` entries, joined; parsed again for each decryption (cheap), so no
    /// identity object has to be shared between threads.
    age_text: RwLock<Zeroizing<String>>,
    /// The `*.asc` entries read, kept to tell whether they changed, and their keys, parsed once
    /// (an RSA key costs more to read than an age identity) and shared by every decryption.
    pgp: RwLock<(Zeroizing<Vec<u8>>, PgpSecretKeys)>,
    kms: Mutex<Option<Arc<AwsKms>>>,
    /// The `sops.gcp-kms` entry (a service account's or user's credentials JSON), if any.
    gcp_credentials: RwLock<Option<Zeroizing<Vec<u8>>>>,
}

/// The key Secret entry holding GCP credentials, as Flux names it.
pub const GCP_KMS_ENTRY: &str = "sops.gcp-kms";

impl SopsKeys {
    pub fn age(&self) -> AgeIdentities {
        let text = match self.age_text.read() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if text.is_empty() {
            return AgeIdentities::default();
        }
        // Every entry was checked when it was loaded.
        AgeIdentities::parse("the age key Secret", &text).unwrap_or_default()
    }

    /// The PGP secret keys of the `*.asc` entries (none when there are none).
    pub fn pgp(&self) -> PgpSecretKeys {
        match self.pgp.read() {
            Ok(p) => p.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    /// GCP KMS access for one decryption, with the `sops.gcp-kms` credentials when the key
    /// Secret has them. `from_env` builds a runtime: call it off the async reactor.
    pub fn gcp_kms(&self) -> Result<GcpKms, String> {
        let gcp = GcpKms::from_env().map_err(|e| e.to_string())?;
        let credentials = match self.gcp_credentials.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        Ok(match credentials {
            Some(json) => gcp.with_credentials_json(json),
            None => gcp,
        })
    }

    /// Replaces the `sops.gcp-kms` credentials; true when they changed.
    pub(crate) fn set_gcp_credentials(&self, json: Option<Zeroizing<Vec<u8>>>) -> bool {
        let mut slot = match self.gcp_credentials.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if *slot == json {
            return false;
        }
        *slot = json;
        true
    }

    /// Replaces the PGP keys read from `entries`; true when they changed.
    pub(crate) fn set_pgp(&self, entries: Zeroizing<Vec<u8>>, keys: PgpSecretKeys) -> bool {
        let mut slot = match self.pgp.write() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        if *slot.0 == *entries {
            return false;
        }
        *slot = (entries, keys);
        true
    }

    /// The one KMS client, made on first use. `from_env` builds a runtime: call it off the
    /// async reactor.
    pub fn kms(&self) -> Result<Box<dyn KmsService>, String> {
        let mut slot = self.kms.lock().map_err(|_| "KMS client lock poisoned")?;
        let kms = match &*slot {
            Some(k) => k.clone(),
            None => {
                let k = Arc::new(AwsKms::from_env().map_err(|e| e.to_string())?);
                *slot = Some(k.clone());
                k
            }
        };
        Ok(Box::new(SharedKms(kms)))
    }

    /// Replaces the age keys; true when they changed.
    pub(crate) fn set_age_text(&self, text: Zeroizing<String>) -> bool {
        let mut slot = match self.age_text.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if **slot == *text {
            return false;
        }
        *slot = text;
        true
    }
}

struct SharedKms(Arc<AwsKms>);

impl KmsService for SharedKms {
    fn encrypt(&self, key: &KmsStanza, data_key: &[u8]) -> Result<KmsStanza, String> {
        KmsService::encrypt(&*self.0, key, data_key)
    }
    fn decrypt(&self, stanza: &KmsStanza) -> Result<Zeroizing<Vec<u8>>, String> {
        KmsService::decrypt(&*self.0, stanza)
    }
}

/// The identity text of a key Secret's `*.agekey` entries; unusable entries are skipped with a
/// warning that names the entry only.
pub fn age_text_of(secret: &Secret) -> (Zeroizing<String>, usize) {
    let mut text = Zeroizing::new(String::new());
    let mut count = 0;
    for (key, value) in secret.data.iter().flatten() {
        if !key.ends_with(".agekey") {
            continue;
        }
        let Ok(entry) = std::str::from_utf8(&value.0) else {
            tracing::warn!(entry = %key, "ignoring a key entry that is not text");
            continue;
        };
        match AgeIdentities::parse(key, entry) {
            Ok(ids) if !ids.is_empty() => {
                count += ids.len();
                text.push_str(entry);
                text.push('\n');
            }
            Ok(_) => tracing::warn!(entry = %key, "key entry holds no age identity"),
            Err(_) => {
                tracing::warn!(entry = %key, "ignoring a key entry that is not age identity text")
            }
        }
    }
    (text, count)
}

/// The PGP secret keys of a key Secret's `*.asc` entries (one armored key or more each, as
/// `gpg --armor --export-secret-keys` writes them), and the entries' bytes, to tell a change.
/// Unusable entries are skipped with a warning that names the entry and why (never key text);
/// passphrase-protected keys are kept, so that a file encrypted for one says so.
pub fn pgp_keys_of(secret: &Secret) -> (Zeroizing<Vec<u8>>, PgpSecretKeys) {
    let mut seen = Zeroizing::new(Vec::new());
    let mut keys = PgpSecretKeys::default();
    for (key, value) in secret.data.iter().flatten() {
        if !key.ends_with(".asc") {
            continue;
        }
        match keys.add(key, &value.0) {
            Ok(_) => {
                seen.extend_from_slice(key.as_bytes());
                seen.push(0);
                seen.extend_from_slice(&value.0);
                seen.push(0);
            }
            Err(e) => tracing::warn!(entry = %key, error = %e, "ignoring a key entry"),
        }
    }
    (seen, keys)
}

/// The `sops.gcp-kms` entry of a key Secret, if it has one.
pub fn gcp_credentials_of(secret: &Secret) -> Option<Zeroizing<Vec<u8>>> {
    secret
        .data
        .as_ref()?
        .get(GCP_KMS_ENTRY)
        .map(|v| Zeroizing::new(v.0.clone()))
}

/// Follows the key Secret `name`; bumps `changed` whenever the usable keys change.
pub async fn watch_key_secret(
    keys: Arc<SopsKeys>,
    api: Api<Secret>,
    name: String,
    changed: watch::Sender<u64>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut seen_in_init = false;
    let update = |secret: Option<&Secret>| {
        let (text, count) = secret.map(age_text_of).unwrap_or_default();
        let (entries, pgp) = secret.map(pgp_keys_of).unwrap_or_default();
        let pgp_count = pgp.len();
        let gcp = secret.and_then(gcp_credentials_of);
        let has_gcp = gcp.is_some();
        let age_changed = keys.set_age_text(text);
        let gcp_changed = keys.set_gcp_credentials(gcp);
        if keys.set_pgp(entries, pgp) | age_changed | gcp_changed {
            tracing::info!(
                secret = %name,
                identities = count,
                pgp_keys = pgp_count,
                gcp_credentials = has_gcp,
                "SopsSecret keys loaded"
            );
            changed.send_modify(|v| *v += 1);
        }
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => seen_in_init = false,
            Ok(watcher::Event::InitApply(s)) => {
                seen_in_init = true;
                update(Some(&s));
            }
            Ok(watcher::Event::InitDone) => {
                if !seen_in_init {
                    update(None);
                }
            }
            Ok(watcher::Event::Apply(s)) => update(Some(&s)),
            Ok(watcher::Event::Delete(_)) => update(None),
            Err(e) => tracing::warn!(secret = %name, error = %e, "watching the age key Secret"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn only_agekey_entries_with_identities_are_used() {
        let (good, _) = enseal_sops::keys::age::generate();
        let (other, _) = enseal_sops::keys::age::generate();
        let secret = Secret {
            data: Some(
                [
                    ("a.agekey".to_owned(), ByteString(good.as_bytes().to_vec())),
                    ("b.agekey".to_owned(), ByteString(b"garbage".to_vec())),
                    ("c.txt".to_owned(), ByteString(other.as_bytes().to_vec())),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        let (text, count) = age_text_of(&secret);
        assert_eq!(count, 1);
        assert!(!text.contains("garbage"));
        let keys = SopsKeys::default();
        assert!(keys.age().is_empty());
        assert!(keys.set_age_text(text.clone()));
        assert!(!keys.set_age_text(text));
        assert_eq!(keys.age().len(), 1);
    }

    /// `*.asc` entries that hold no armored secret key are skipped (with a warning naming the
    /// entry): they neither count as PGP keys nor break the entries beside them.
    #[test]
    fn asc_entries_without_a_secret_key_are_skipped() {
        let (good, _) = enseal_sops::keys::age::generate();
        let secret = Secret {
            data: Some(
                [
                    ("a.agekey".to_owned(), ByteString(good.as_bytes().to_vec())),
                    ("b.asc".to_owned(), ByteString(b"garbage".to_vec())),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        let (entries, pgp) = pgp_keys_of(&secret);
        assert!(pgp.is_empty());
        assert!(entries.is_empty());
        assert_eq!(age_text_of(&secret).1, 1);
        let keys = SopsKeys::default();
        assert!(!keys.set_pgp(entries, pgp), "nothing held, nothing changed");
        assert!(keys.pgp().is_empty());
    }
}

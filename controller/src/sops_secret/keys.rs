//! The keys SopsSecrets are decrypted with: age identities from one Secret in the controller's
//! namespace (every entry named `*.agekey` is identity text, as Flux reads them), watched so
//! that a key added later is used without a restart; and AWS KMS from the standard credential
//! chain, set up on first need and reused.

use std::sync::{Arc, Mutex, RwLock};

use enseal_sops::format::metadata::KmsStanza;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::AwsKms;
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
    kms: Mutex<Option<Arc<AwsKms>>>,
}

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
        if keys.set_age_text(text) {
            tracing::info!(secret = %name, identities = count, "SopsSecret age keys loaded");
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
}

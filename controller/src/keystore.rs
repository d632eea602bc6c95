//! The sealing keys: Secrets in the controller's namespace in Sealed Secrets'
//! layout, so keys made by Sealed Secrets are used as they are and keys made
//! here are usable by Sealed Secrets.
//!
//! Every replica watches the key Secrets and keeps the parsed keys in memory
//! (new or relabelled keys are used without a restart); only the leader
//! creates new ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;

use enseal_sealing::keys::{self as sealing_keys, KeyError as PemError};
use enseal_sealing::{KeyPair, PrivateKey, PublicKey};

use crate::flags::KeyOrder;

/// The label (with value `active`) that makes a Secret a sealing key.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
pub const KEY_LABEL_SELECTOR: &str = "sealedsecrets.bitnami.com/sealed-secrets-key=active";

/// One key pair and the Secret it came from.
pub struct Key {
    pub secret_name: String,
    /// What "newest" is decided by, and what the renewal period counts from: the
    /// certificate's NotBefore or the Secret's creation time (`--key-order-priority`).
    pub created: Timestamp,
    pub private: PrivateKey,
    pub public: PublicKey,
    pub cert_pem: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("secret_name", &self.secret_name)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// All known keys, newest first.
pub type Keys = Arc<Vec<Arc<Key>>>;

pub struct KeyStore {
    keys: RwLock<Keys>,
    loaded: AtomicBool,
    changed: Option<watch::Sender<u64>>,
    order: KeyOrder,
}

impl KeyStore {
    pub fn new(order: KeyOrder) -> (Arc<Self>, watch::Receiver<u64>) {
        let (tx, rx) = watch::channel(0);
        (
            Arc::new(Self {
                keys: RwLock::default(),
                loaded: AtomicBool::new(false),
                changed: Some(tx),
                order,
            }),
            rx,
        )
    }

    /// How this store orders keys (`--key-order-priority`).
    pub fn order(&self) -> KeyOrder {
        self.order
    }

    pub fn keys(&self) -> Keys {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    pub fn newest(&self) -> Option<Arc<Key>> {
        self.keys().first().cloned()
    }

    /// True once the first full list of key Secrets has been read.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn replace(&self, by_name: &HashMap<String, (String, Arc<Key>)>) {
        let mut keys: Vec<Arc<Key>> = by_name.values().map(|(_, k)| k.clone()).collect();
        sort_newest_first(&mut keys);
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(keys);
        }
        self.loaded.store(true, Ordering::Release);
        if let Some(tx) = &self.changed {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Puts a key in at once (the leader's freshly made one), ahead of the
    /// watch event that will confirm it.
    pub fn insert(&self, key: Arc<Key>) {
        let mut keys: Vec<Arc<Key>> = self.keys().iter().cloned().collect();
        keys.retain(|k| k.secret_name != key.secret_name);
        keys.push(key);
        sort_newest_first(&mut keys);
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(keys);
        }
        if let Some(tx) = &self.changed {
            tx.send_modify(|n| *n += 1);
        }
    }
}

fn sort_newest_first(keys: &mut [Arc<Key>]) {
    keys.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| b.secret_name.cmp(&a.secret_name))
    });
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key Secret {0} has no tls.key")]
    MissingKey(String),
    #[error("key Secret {0} has no tls.crt")]
    MissingCert(String),
    #[error("key Secret {name}: {source}")]
    Parse { name: String, source: PemError },
}

/// Reads one key Secret; never logs or returns its contents. `order` decides the time it is
/// ordered by: the certificate's NotBefore (a Secret restored from a backup keeps its key's
/// age) or the Secret's creation time.
pub fn key_from_secret(secret: &Secret, order: KeyOrder) -> Result<Key, KeyError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.as_ref();
    let key_pem = data
        .and_then(|d| d.get("tls.key"))
        .ok_or_else(|| KeyError::MissingKey(name.clone()))?;
    let cert = data
        .and_then(|d| d.get("tls.crt"))
        .ok_or_else(|| KeyError::MissingCert(name.clone()))?;
    // The first RSA private key in the PEM (PKCS#1 as Sealed Secrets writes it, or PKCS#8);
    // parse_private_keys_pem never returns an empty list.
    let private = sealing_keys::parse_private_keys_pem(&key_pem.0)
        .map(|mut keys| keys.swap_remove(0))
        .map_err(|source| KeyError::Parse {
            name: name.clone(),
            source,
        })?;
    let created_at = secret
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let created = match order {
        KeyOrder::SecretCreationTimestamp => created_at,
        // As Sealed Secrets: a certificate it cannot read makes the key unusable there; here
        // the key is kept, ordered by its Secret, since opening values needs only the key.
        KeyOrder::CertNotBefore => sealing_keys::parse_certificate_pem(&cert.0)
            .ok()
            .and_then(|c| c.not_before)
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or(created_at),
    };
    Ok(Key {
        secret_name: name,
        created,
        public: private.as_public_key().clone(),
        private,
        cert_pem: String::from_utf8_lossy(&cert.0).into_owned(),
    })
}

/// Keeps `store` in step with the key Secrets in `api`'s namespace until the
/// process ends. Parsed keys are cached by resourceVersion so a relist does
/// not re-parse every RSA key.
pub async fn watch_keys(store: Arc<KeyStore>, api: Api<Secret>) {
    let order = store.order;
    let config = watcher::Config::default().labels(KEY_LABEL_SELECTOR);
    let mut current: HashMap<String, (String, Arc<Key>)> = HashMap::new();
    let mut next: Option<HashMap<String, (String, Arc<Key>)>> = None;
    let mut stream = watcher(api, config).default_backoff().boxed();

    let parse = |known: &HashMap<String, (String, Arc<Key>)>,
                 s: &Secret|
     -> Option<(String, (String, Arc<Key>))> {
        let name = s.metadata.name.clone()?;
        let rv = s.metadata.resource_version.clone().unwrap_or_default();
        if let Some((known_rv, key)) = known.get(&name) {
            if *known_rv == rv {
                return Some((name, (rv, key.clone())));
            }
        }
        match key_from_secret(s, order) {
            Ok(key) => {
                if !key.private.decrypts_with_aws_lc() {
                    // Still usable (Sealed Secrets allows `--key-size 1024`), but every
                    // value it opens costs several times the CPU (issue 16).
                    tracing::warn!(
                        secret = %name,
                        bits = key.private.size() * 8,
                        "sealing key outside AWS-LC's 2048-8192 bits: unsealing with it \
                         uses the slower rsa crate"
                    );
                }
                Some((name, (rv, Arc::new(key))))
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unusable key Secret");
                None
            }
        }
    };

    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => next = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(s)) => {
                if let Some((name, entry)) = parse(&current, &s) {
                    next.get_or_insert_with(HashMap::new).insert(name, entry);
                }
            }
            Ok(watcher::Event::InitDone) => {
                current = next.take().unwrap_or_default();
                tracing::info!(keys = current.len(), "sealing keys loaded");
                store.replace(&current);
            }
            Ok(watcher::Event::Apply(s)) => {
                match parse(&current, &s) {
                    Some((name, entry)) => {
                        current.insert(name, entry);
                    }
                    None => {
                        if let Some(name) = &s.metadata.name {
                            current.remove(name);
                        }
                    }
                }
                tracing::info!(keys = current.len(), "sealing keys changed");
                store.replace(&current);
            }
            Ok(watcher::Event::Delete(s)) => {
                if let Some(name) = &s.metadata.name {
                    current.remove(name);
                }
                tracing::info!(keys = current.len(), "a sealing key Secret was removed");
                store.replace(&current);
            }
            Err(e) => tracing::warn!(error = %e, "watching key Secrets failed; retrying"),
        }
    }
}

/// Settings for making new keys.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub prefix: String,
    pub bits: usize,
    /// `None`: never renew (a key is still made when there is none).
    pub renew_period: Option<Duration>,
    pub cert_validity: Duration,
    pub common_name: String,
    /// `--key-cutoff-time`: once it has come, a newest key older than it is renewed.
    pub cutoff: Option<Timestamp>,
    /// `--privatekey-labels` and `--privatekey-annotations`, put on new key Secrets.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub order: KeyOrder,
}

impl KeyPolicy {
    /// Whether a new key is due now, and otherwise how long until it is.
    /// `newest` is the newest key's time (Key::created), `None` when there is no key.
    pub fn due(&self, newest: Option<Timestamp>, now: Timestamp) -> Result<(), Duration> {
        let Some(newest) = newest else { return Ok(()) };
        // Sealed Secrets checks the cutoff once, at start, and so makes a new key at every
        // restart while the cutoff is in the future; here it applies when it comes, once.
        let until_cutoff = match self.cutoff {
            Some(cutoff) if newest < cutoff => {
                if now >= cutoff {
                    return Ok(());
                }
                Some(
                    cutoff
                        .duration_since(now)
                        .try_into()
                        .unwrap_or(Duration::ZERO),
                )
            }
            _ => None,
        };
        let Some(period) = self.renew_period else {
            return Err(until_cutoff.unwrap_or(Duration::from_secs(3600)));
        };
        let age = now
            .duration_since(newest)
            .try_into()
            .unwrap_or(Duration::ZERO);
        if age >= period {
            Ok(())
        } else {
            let until = period - age;
            Err(until_cutoff.map_or(until, |c| c.min(until)))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("storing the new key Secret: {0}")]
    Store(#[from] kube::Error),
    #[error(transparent)]
    Read(#[from] KeyError),
}

/// Makes a key pair and stores it as a new key Secret; returns the key.
pub async fn create_key(api: &Api<Secret>, policy: &KeyPolicy) -> Result<Arc<Key>, CreateKeyError> {
    let bits = policy.bits;
    let cn = match policy.common_name.as_str() {
        "" => sealing_keys::DEFAULT_COMMON_NAME.to_owned(),
        cn => cn.to_owned(),
    };
    let validity = policy.cert_validity;
    let (private_key_pem, cert_pem) = tokio::task::spawn_blocking(move || {
        let pair = KeyPair::generate(bits, &cn, validity)?;
        Ok::<_, PemError>((pair.private_key_pem()?, pair.certificate_pem))
    })
    .await
    .map_err(|e| CreateKeyError::Generate(e.to_string()))?
    .map_err(|e| CreateKeyError::Generate(e.to_string()))?;
    let secret = Secret {
        metadata: ObjectMeta {
            generate_name: Some(policy.prefix.clone()),
            // As Sealed Secrets: extra labels never replace the key label itself.
            labels: Some(
                policy
                    .labels
                    .iter()
                    .filter(|(k, _)| k != KEY_LABEL)
                    .cloned()
                    .chain([(KEY_LABEL.to_owned(), "active".to_owned())])
                    .collect(),
            ),
            annotations: (!policy.annotations.is_empty())
                .then(|| policy.annotations.iter().cloned().collect()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.key".to_owned(),
                ByteString(private_key_pem.as_bytes().to_vec()),
            ),
            (
                "tls.crt".to_owned(),
                ByteString(cert_pem.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    let created = api.create(&PostParams::default(), &secret).await?;
    let key = key_from_secret(&created, policy.order)?;
    tracing::info!(secret = %key.secret_name, "created a new sealing key");
    Ok(Arc::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(period: Option<Duration>) -> KeyPolicy {
        KeyPolicy {
            prefix: "sealed-secrets-key".into(),
            bits: 2048,
            renew_period: period,
            cert_validity: Duration::from_secs(3600),
            common_name: "x".into(),
            cutoff: None,
            labels: Vec::new(),
            annotations: Vec::new(),
            order: KeyOrder::CertNotBefore,
        }
    }

    #[test]
    fn a_key_is_due_when_there_is_none_even_with_renewal_off() {
        assert!(policy(None).due(None, Timestamp::now()).is_ok());
    }

    #[test]
    fn the_cutoff_renews_a_key_older_than_it_once_it_has_come() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let cutoff: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let mut p = policy(None);
        p.cutoff = Some(cutoff);
        // Before the cutoff: not yet, and the wait ends at the cutoff.
        let day_before: Timestamp = "2026-01-31T00:00:00Z".parse().unwrap();
        assert_eq!(p.due(Some(t0), day_before), Err(Duration::from_secs(86400)));
        let after: Timestamp = "2026-02-01T00:00:01Z".parse().unwrap();
        assert!(p.due(Some(t0), after).is_ok());
        // The key made then is newer than the cutoff: no second renewal.
        assert!(p.due(Some(after), after).is_err());
        // With a renewal period, the nearer of the two decides the wait.
        p.renew_period = Some(Duration::from_secs(40 * 86400));
        assert_eq!(p.due(Some(t0), day_before), Err(Duration::from_secs(86400)));
    }
}

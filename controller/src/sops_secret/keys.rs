//! The keys SopsSecrets are decrypted with: age identities and armored PGP secret keys from one
//! Secret in the controller's namespace (every entry named `*.agekey` is identity text and every
//! `*.asc` entry an armored secret key, Flux's layout), watched so that a key added later is used
//! without a restart; and the key services (AWS KMS, GCP KMS, Azure Key Vault, Vault/OpenBao
//! transit), each set up on first need. PGP keys are opened in-process
//! (enseal_sops::keys::openpgp): the image has no gpg.
//!
//! Flux's credential entries ([`CloudEntries`]): `sops.aws-kms` (static AWS keys),
//! `sops.gcp-kms` (a credentials JSON), `sops.azure-kv` (a service principal) and
//! `sops.vault-token`. In the controller's key Secret each replaces the controller's own
//! environment for its service (AWS' chain, ADC, DefaultAzureCredential's sources,
//! `VAULT_TOKEN`); a service without an entry uses that environment, and for Vault first the
//! controller's Kubernetes login when `--vault-kubernetes-role` is set ([`super::vault_auth`]). In a namespace's key Secret
//! (`spec.decryption.secretRef`) an entry is the only way to its service: nothing of the
//! controller's identity is ever offered there (see [`CloudEntries::namespace_access`]), and
//! the servers a tenant's file names are reached over https only.
//!
//! Key service clients are kept ([`ServiceClients`]): one per service for the controller's key
//! Secret and one per service for each namespace key Secret ([`NamespaceKeys`]), so that
//! connections and tokens are reused across decryptions; they go when the entries they were
//! made from change. A namespace key Secret is read (its `*.asc` keys and certificates parsed)
//! once per content, off the async workers ([`SopsKeys::namespace_keys`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use enseal_sops::format::metadata::KmsStanza;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::{AwsKms, FluxAwsCredentials};
use enseal_sops::keys::azure_kv::{AzureKeyVault, FluxAzureConfig};
use enseal_sops::keys::gcp_kms::{check_credentials_json, GcpKms};
use enseal_sops::keys::hc_vault::VaultTransit;
use enseal_sops::keys::openpgp::PgpSecretKeys;
use enseal_sops::keys::KmsService;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::render::CloudAccess;
use super::vault_auth::KubernetesAuth;

#[derive(Default)]
pub struct SopsKeys {
    /// The valid `*.agekey` entries, joined; parsed again for each decryption (cheap), so no
    /// identity object has to be shared between threads.
    age_text: RwLock<Zeroizing<String>>,
    /// The SHA-256 of the `*.asc` entries read, to tell whether they changed, and their keys,
    /// parsed once (an RSA key costs more to read than an age identity) and shared by every
    /// decryption.
    pgp: RwLock<(Digest, PgpSecretKeys)>,
    /// The AWS KMS client, made on first use and kept (its credentials are cached); dropped
    /// when the `sops.aws-kms` entry changes.
    kms: Mutex<Option<Arc<AwsKms>>>,
    /// The credential entries of the key Secret and the clients made from them, replaced
    /// together when the entries change.
    cloud: RwLock<Arc<Services>>,
    /// The controller's Vault login (`--vault-kubernetes-role`), shared by every decryption
    /// so that its client tokens are kept.
    vault_auth: Option<Arc<KubernetesAuth>>,
    /// Namespace key Secrets as last read, by namespace and name (see
    /// [`SopsKeys::namespace_keys`]).
    namespaces: Mutex<NamespaceCache>,
}

/// A SHA-256 of key entries: what is kept to tell a change (never the entries themselves).
pub type Digest = [u8; 32];

/// The SHA-256 of `(name, value)` entries, each length-prefixed so that no two lists of
/// entries give the same input.
fn digest_of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Digest {
    let mut hash = Sha256::new();
    for (name, value) in entries {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value);
    }
    hash.finalize().into()
}

/// Key service clients, each made on first need and then kept: a clone shares its
/// connections and tokens, so a decryption costs no new TLS handshake, token or metadata probe
/// (GCP's 1 s probe off GCE, among them).
#[derive(Default)]
struct ServiceClients {
    aws: Mutex<Option<Arc<AwsKms>>>,
    gcp: Mutex<Option<GcpKms>>,
    azure: Mutex<Option<AzureKeyVault>>,
    vault: Mutex<Option<VaultTransit>>,
}

/// The client in `slot`, else the one `make` gives, kept there. An error is not kept: it is
/// said again at the next decryption.
fn kept<T: Clone>(
    slot: &Mutex<Option<T>>,
    make: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = &*slot {
        return Ok(client.clone());
    }
    let client = make()?;
    *slot = Some(client.clone());
    Ok(client)
}

/// One key Secret's credential entries and the clients made from them.
#[derive(Default)]
pub struct Services {
    entries: CloudEntries,
    clients: ServiceClients,
}

impl Services {
    fn new(entries: CloudEntries) -> Services {
        Services {
            entries,
            clients: ServiceClients::default(),
        }
    }
}

/// How many namespace key Secrets are kept read (with their clients); the least recently
/// used goes first. A client holds a small runtime and its connections.
const NAMESPACE_KEYS_KEPT: usize = 128;

#[derive(Default)]
struct NamespaceCache {
    /// Bumped at each use, to find the least recently used.
    clock: u64,
    /// By namespace and Secret name: when last used, and the keys.
    held: HashMap<(String, String), (u64, Arc<NamespaceKeys>)>,
}

/// The keys of one namespace key Secret (`spec.decryption.secretRef`), read once per content:
/// its age identity text, its PGP secret keys (parsed), its credential entries (checked, an
/// Azure certificate parsed) and the key service clients made from them.
pub struct NamespaceKeys {
    /// The SHA-256 of every entry of the Secret: the same content is not read again.
    digest: Digest,
    age_text: Zeroizing<String>,
    age_count: usize,
    pgp: PgpSecretKeys,
    services: Arc<Services>,
}

impl NamespaceKeys {
    /// Reads `secret`'s keys. Parsing armored RSA keys and certificates takes milliseconds:
    /// call it off the async workers ([`SopsKeys::namespace_keys`] does).
    pub fn of(secret: &Secret) -> NamespaceKeys {
        let (age_text, age_count) = age_text_of(secret);
        let (_, pgp) = pgp_keys_of(secret);
        NamespaceKeys {
            digest: content_digest(secret),
            age_text,
            age_count,
            pgp,
            services: Arc::new(Services::new(CloudEntries::of(secret))),
        }
    }

    /// The age identities (parsed for each decryption, as they are cheap to read, so that no
    /// identity object is shared between threads); `source` names the Secret in messages.
    pub fn age(&self, source: &str) -> AgeIdentities {
        if self.age_count == 0 {
            return AgeIdentities::default();
        }
        // Every entry was checked when it was read.
        AgeIdentities::parse(source, &self.age_text).unwrap_or_default()
    }

    pub fn pgp(&self) -> PgpSecretKeys {
        self.pgp.clone()
    }

    pub fn cloud(&self) -> &CloudEntries {
        &self.services.entries
    }

    /// The tenant's access to the key services its entries reach (see
    /// [`CloudEntries::namespace_access`]), through clients kept with these keys.
    pub fn access(&self) -> CloudAccess {
        namespace_access(&self.services)
    }
}

/// The SHA-256 of all of `secret`'s entries.
fn content_digest(secret: &Secret) -> Digest {
    digest_of(
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice())),
    )
}

/// The key Secret entry holding GCP credentials, as Flux names it.
pub const GCP_KMS_ENTRY: &str = "sops.gcp-kms";
/// The entry holding static AWS credentials (YAML), as Flux names it.
pub const AWS_KMS_ENTRY: &str = "sops.aws-kms";
/// The entry holding an Azure service principal (YAML or JSON), as Flux names it.
pub const AZURE_KV_ENTRY: &str = "sops.azure-kv";
/// The entry holding a Vault/OpenBao token, as Flux names it.
pub const VAULT_TOKEN_ENTRY: &str = "sops.vault-token";

/// An entry as read: usable, or why not (never quoting it).
type Entry<T> = Option<Result<T, String>>;

/// Flux's credential entries of one key Secret, read once per change of the Secret.
#[derive(Clone, Default)]
pub struct CloudEntries {
    /// The SHA-256 of the entries' names and bytes, to tell a change.
    seen: Digest,
    gcp: Entry<Zeroizing<Vec<u8>>>,
    aws: Entry<Arc<FluxAwsCredentials>>,
    azure: Entry<Arc<FluxAzureConfig>>,
    vault_token: Entry<Zeroizing<String>>,
}

impl CloudEntries {
    /// The credential entries of `secret`; an unusable one is kept as its reason (said when a
    /// file needs that service) and logged with its name only.
    pub fn of(secret: &Secret) -> CloudEntries {
        let mut entries = CloudEntries::default();
        let Some(data) = secret.data.as_ref() else {
            return entries;
        };
        let present: Vec<(&str, &[u8])> = [
            AWS_KMS_ENTRY,
            AZURE_KV_ENTRY,
            GCP_KMS_ENTRY,
            VAULT_TOKEN_ENTRY,
        ]
        .into_iter()
        .filter_map(|name| data.get(name).map(|v| (name, v.0.as_slice())))
        .collect();
        if present.is_empty() {
            return entries;
        }
        entries.seen = digest_of(present);
        let unusable = |name: &str, e: String| {
            tracing::warn!(entry = %name, error = %e, "a key entry cannot be used");
            format!("the key Secret's {name} entry cannot be used: {e}")
        };
        // Checked now, as the others are parsed now: a broken entry is said by name when a
        // file needs GCP, not as a credentials error of the client.
        entries.gcp = data.get(GCP_KMS_ENTRY).map(|v| {
            check_credentials_json(&v.0)
                .map(|()| Zeroizing::new(v.0.clone()))
                .map_err(|e| unusable(GCP_KMS_ENTRY, e.to_string()))
        });
        entries.aws = data.get(AWS_KMS_ENTRY).map(|v| {
            FluxAwsCredentials::parse(&v.0)
                .map(Arc::new)
                .map_err(|e| unusable(AWS_KMS_ENTRY, e.to_string()))
        });
        entries.azure = data.get(AZURE_KV_ENTRY).map(|v| {
            FluxAzureConfig::parse(&v.0)
                .map(Arc::new)
                .map_err(|e| unusable(AZURE_KV_ENTRY, e.to_string()))
        });
        entries.vault_token = data.get(VAULT_TOKEN_ENTRY).map(|v| {
            // As Flux: the text with surrounding white space (a final newline) trimmed.
            let token = std::str::from_utf8(&v.0)
                .map(|t| Zeroizing::new(t.trim().to_string()))
                .map_err(|_| unusable(VAULT_TOKEN_ENTRY, "not text".into()))?;
            if token.is_empty() {
                return Err(unusable(VAULT_TOKEN_ENTRY, "it is empty".into()));
            }
            Ok(token)
        });
        entries
    }

    /// The names of the entries present, for logs and messages.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.aws.is_some(), AWS_KMS_ENTRY),
            (self.azure.is_some(), AZURE_KV_ENTRY),
            (self.gcp.is_some(), GCP_KMS_ENTRY),
            (self.vault_token.is_some(), VAULT_TOKEN_ENTRY),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// Access for a namespace key Secret: a service with an entry, through that entry only;
    /// a service without one, not at all. Each source is built so that it cannot fall back to
    /// the controller's identity: AWS signs with the static keys alone (no chain, not even for
    /// a key's `aws_profile`), GCP uses the JSON alone, Azure the service principal alone
    /// (a `clientId` alone, a managed identity, which would be the controller's, is refused by
    /// the parser), Vault the token alone (never `VAULT_TOKEN` or `~/.vault-token`). The
    /// credentials are the tenant's, so a file opened with them is one the tenant could open
    /// anyway, whichever server or key its metadata names; but the file's metadata (a Vault
    /// address) and the entries (a GCP `token_uri`) choose where the controller sends
    /// requests, from inside the cluster, so those are reached over https only (plain http
    /// only to a loopback address): no plain-http service of the cluster can be reached that
    /// way. Azure's client is https-only for everyone. The clients are made for this call;
    /// [`NamespaceKeys::access`] keeps them.
    pub fn namespace_access(&self) -> CloudAccess {
        namespace_access(&Arc::new(Services::new(self.clone())))
    }
}

/// [`CloudEntries::namespace_access`] through the clients kept in `services`.
fn namespace_access(services: &Arc<Services>) -> CloudAccess {
    let entries = &services.entries;
    let mut access = CloudAccess::default();
    if entries.aws.is_some() {
        let s = services.clone();
        access.aws_kms = Some(Box::new(move || {
            let kms = kept(&s.clients.aws, || {
                let credentials = s.entries.aws.clone().transpose()?;
                let kms = AwsKms::from_env().map_err(|e| e.to_string())?;
                Ok(Arc::new(match credentials {
                    Some(c) => kms.with_static_credentials(&c),
                    None => kms,
                }))
            })?;
            Ok(Box::new(SharedKms(kms)) as Box<dyn KmsService>)
        }));
    }
    if entries.gcp.is_some() {
        let s = services.clone();
        access.gcp_kms = Some(Box::new(move || {
            kept(&s.clients.gcp, || {
                let json = s.entries.gcp.clone().transpose()?.unwrap_or_default();
                let gcp = GcpKms::from_env().map_err(|e| e.to_string())?;
                Ok(gcp.with_credentials_json(json).requiring_https())
            })
        }));
    }
    if entries.azure.is_some() {
        let s = services.clone();
        access.azure_kv = Some(Box::new(move || {
            kept(&s.clients.azure, || {
                azure_with(s.entries.azure.clone().transpose()?)
            })
        }));
    }
    if entries.vault_token.is_some() {
        let s = services.clone();
        access.hc_vault = Some(Box::new(move || {
            kept(&s.clients.vault, || {
                let token = s
                    .entries
                    .vault_token
                    .clone()
                    .transpose()?
                    .unwrap_or_default();
                let vault = VaultTransit::from_env().map_err(|e| e.to_string())?;
                Ok(vault.with_token(token).requiring_https())
            })
        }));
    }
    access
}

/// Azure Key Vault access with `entry`'s service principal and authority host, else the
/// environment's (DefaultAzureCredential's sources, `AZURE_AUTHORITY_HOST`).
fn azure_with(entry: Option<Arc<FluxAzureConfig>>) -> Result<AzureKeyVault, String> {
    let mut azure = AzureKeyVault::from_env().map_err(|e| e.to_string())?;
    if let Some(config) = entry {
        azure = azure.with_credential(config.credential.clone());
        if let Some(host) = &config.authority_host {
            azure = azure.with_authority_host(host.clone());
        }
    }
    Ok(azure)
}

impl SopsKeys {
    /// Opens Vault keys with the controller's Kubernetes login where the key Secret has no
    /// `sops.vault-token` entry.
    pub fn with_vault_auth(mut self, auth: KubernetesAuth) -> SopsKeys {
        self.vault_auth = Some(Arc::new(auth));
        self
    }

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

    fn services(&self) -> Arc<Services> {
        match self.cloud.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The controller's access to every key service: through its key Secret's entry where
    /// there is one, else its own environment, with clients kept until the entries change.
    /// `shared` is this same value, for the AWS client kept between decryptions.
    pub fn cluster_access(shared: &Arc<SopsKeys>) -> CloudAccess {
        let services = shared.services();
        let kms = shared.clone();
        let (gcp, azure, vault) = (services.clone(), services.clone(), services);
        let vault_auth = shared.vault_auth.clone();
        CloudAccess {
            aws_kms: Some(Box::new(move || kms.kms())),
            gcp_kms: Some(Box::new(move || {
                let client = kept(&gcp.clients.gcp, || {
                    let kms = GcpKms::from_env().map_err(|e| e.to_string())?;
                    Ok(match gcp.entries.gcp.clone().transpose()? {
                        Some(json) => kms.with_credentials_json(json),
                        None => kms,
                    })
                })?;
                // The controller's own credentials (a mounted file, the metadata server) are
                // looked for again after a failure, as a new client would.
                client.retry_credentials();
                Ok(client)
            })),
            azure_kv: Some(Box::new(move || {
                kept(&azure.clients.azure, || {
                    azure_with(azure.entries.azure.clone().transpose()?)
                })
            })),
            hc_vault: Some(Box::new(move || {
                kept(&vault.clients.vault, || {
                    let mut client = VaultTransit::from_env().map_err(|e| e.to_string())?;
                    // The admin's entry first (it names this cluster's choice), then the
                    // controller's own login, then VAULT_TOKEN and ~/.vault-token.
                    if let Some(token) = vault.entries.vault_token.clone().transpose()? {
                        client = client.with_token(token);
                    } else if let Some(auth) = vault_auth {
                        client = client.with_token_source(auth);
                    }
                    // The file names the server, and any tenant may write a file: the
                    // controller's token (or ServiceAccount JWT) goes only where the admin
                    // listed (SOPS_HC_VAULT_ALLOWLIST).
                    Ok(client.requiring_allowlist())
                })
            })),
        }
    }

    /// The keys of the namespace key Secret `secret` (as just read) of `namespace`: kept from
    /// the last call when its content is the same, else read anew on a blocking thread
    /// (parsing armored RSA keys and certificates takes milliseconds), replacing what was kept
    /// for it, clients included. `None`: reading it panicked.
    pub async fn namespace_keys(
        &self,
        namespace: &str,
        secret: Secret,
    ) -> Option<Arc<NamespaceKeys>> {
        let key = (
            namespace.to_owned(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        let digest = content_digest(&secret);
        let now = {
            let mut cache = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
            cache.clock += 1;
            let now = cache.clock;
            if let Some((used, keys)) = cache.held.get_mut(&key) {
                if keys.digest == digest {
                    *used = now;
                    return Some(keys.clone());
                }
            }
            now
        };
        // Other reconciles do not wait for this one: two reading the same new content at once
        // both read it, and the last one is kept.
        let keys = tokio::task::spawn_blocking(move || Arc::new(NamespaceKeys::of(&secret)))
            .await
            .ok()?;
        let mut cache = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        cache.held.insert(key, (now, keys.clone()));
        if cache.held.len() > NAMESPACE_KEYS_KEPT {
            let oldest = cache
                .held
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.held.remove(&oldest);
            }
        }
        Some(keys)
    }

    /// Replaces the credential entries; true when they changed.
    pub(crate) fn set_cloud(&self, entries: CloudEntries) -> bool {
        let mut slot = match self.cloud.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if slot.entries.seen == entries.seen {
            return false;
        }
        // The clients made from the old entries go with them (a decryption still holding one
        // finishes with it); the next decryption makes new ones. Their runtimes may be
        // dropped here, on the watcher's async worker: they shut down without blocking.
        *slot = Arc::new(Services::new(entries));
        drop(slot);
        self.kms.lock().unwrap_or_else(|p| p.into_inner()).take();
        true
    }

    /// Replaces the PGP keys read from the entries whose SHA-256 is `entries`; true when they
    /// changed.
    pub(crate) fn set_pgp(&self, entries: Digest, keys: PgpSecretKeys) -> bool {
        let mut slot = match self.pgp.write() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        if slot.0 == entries {
            return false;
        }
        *slot = (entries, keys);
        true
    }

    /// The one KMS client, made on first use, with the `sops.aws-kms` credentials when the key
    /// Secret has them. `from_env` builds a runtime: call it off the async reactor.
    pub fn kms(&self) -> Result<Box<dyn KmsService>, String> {
        let aws = self.services().entries.aws.clone();
        let mut slot = self.kms.lock().unwrap_or_else(|p| p.into_inner());
        let kms = match &*slot {
            Some(k) => k.clone(),
            None => {
                let k = AwsKms::from_env().map_err(|e| e.to_string())?;
                let k = Arc::new(match aws.transpose()? {
                    Some(credentials) => k.with_static_credentials(&credentials),
                    None => k,
                });
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
/// `gpg --armor --export-secret-keys` writes them), and the SHA-256 of the usable entries, to
/// tell a change. Unusable entries are skipped with a warning that names the entry and why
/// (never key text); passphrase-protected keys are kept, so that a file encrypted for one says
/// so. Parsing an RSA key takes milliseconds: call it off the async workers.
pub fn pgp_keys_of(secret: &Secret) -> (Digest, PgpSecretKeys) {
    let mut used = Vec::new();
    let mut keys = PgpSecretKeys::default();
    for (key, value) in secret.data.iter().flatten() {
        if !key.ends_with(".asc") {
            continue;
        }
        match keys.add(key, &value.0) {
            Ok(_) => used.push((key.as_str(), value.0.as_slice())),
            Err(e) => tracing::warn!(entry = %key, error = %e, "ignoring a key entry"),
        }
    }
    // No usable entry is no entry at all.
    let seen = if used.is_empty() {
        Digest::default()
    } else {
        digest_of(used)
    };
    (seen, keys)
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
    let update = |secret: Option<Secret>| {
        let keys = keys.clone();
        let changed = &changed;
        let name = &name;
        async move {
            // Armored RSA keys and certificates take milliseconds to parse: not on a worker.
            let read = tokio::task::spawn_blocking(move || {
                let secret = secret.as_ref();
                (
                    secret.map(age_text_of).unwrap_or_default(),
                    secret.map(pgp_keys_of).unwrap_or_default(),
                    secret.map(CloudEntries::of).unwrap_or_default(),
                )
            })
            .await;
            // A panic while reading leaves the keys as they were.
            let Ok(((text, count), (entries, pgp), cloud)) = read else {
                tracing::warn!(secret = %name, "reading the key Secret failed");
                return;
            };
            let pgp_count = pgp.len();
            let credentials = cloud.names().join(",");
            let age_changed = keys.set_age_text(text);
            let cloud_changed = keys.set_cloud(cloud);
            if keys.set_pgp(entries, pgp) | age_changed | cloud_changed {
                tracing::info!(
                    secret = %name,
                    identities = count,
                    pgp_keys = pgp_count,
                    credentials = %credentials,
                    "SopsSecret keys loaded"
                );
                changed.send_modify(|v| *v += 1);
            }
        }
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => seen_in_init = false,
            Ok(watcher::Event::InitApply(s)) => {
                seen_in_init = true;
                update(Some(s)).await;
            }
            Ok(watcher::Event::InitDone) => {
                if !seen_in_init {
                    update(None).await;
                }
            }
            Ok(watcher::Event::Apply(s)) => update(Some(s)).await,
            Ok(watcher::Event::Delete(_)) => update(None).await,
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

    fn secret(entries: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    /// Flux's four credential entries are read by their exact names; an unusable one is kept
    /// as its reason, which names the entry and never quotes it, and is said only when a file
    /// needs that service; a namespace key Secret offers exactly the services it has entries
    /// for.
    #[test]
    fn flux_credential_entries_are_read_and_offered_by_name() {
        let s = secret(&[
            (
                AWS_KMS_ENTRY,
                b"aws_access_key_id: AKIA1\naws_secret_access_key: AWS-S3CRET\n",
            ),
            (AZURE_KV_ENTRY, b"clientId: only-a-managed-identity\n"),
            (VAULT_TOKEN_ENTRY, b"  hvs.VAULT-S3CRET\n"),
            ("x.sops.gcp-kms", b"{}"),
        ]);
        let cloud = CloudEntries::of(&s);
        assert_eq!(
            cloud.names(),
            [AWS_KMS_ENTRY, AZURE_KV_ENTRY, VAULT_TOKEN_ENTRY]
        );
        assert_eq!(
            cloud.vault_token.clone().unwrap().unwrap().as_str(),
            "hvs.VAULT-S3CRET"
        );
        let azure = cloud.azure.clone().unwrap().unwrap_err();
        assert!(azure.contains(AZURE_KV_ENTRY) && azure.contains("managed identity"));
        assert!(!azure.contains("only-a-managed"), "{azure}");

        let access = cloud.namespace_access();
        assert!(access.aws_kms.is_some() && access.azure_kv.is_some());
        assert!(access.hc_vault.is_some() && access.gcp_kms.is_none());
        let e = (access.azure_kv.unwrap())().unwrap_err();
        assert!(e.contains(AZURE_KV_ENTRY), "{e}");

        let empty = CloudEntries::of(&secret(&[(VAULT_TOKEN_ENTRY, b"\n")]));
        let e = empty.vault_token.unwrap().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let none = CloudEntries::of(&secret(&[("a.agekey", b"x")]));
        assert!(none.is_empty());
        let access = none.namespace_access();
        assert!(access.aws_kms.is_none() && access.gcp_kms.is_none());
        assert!(access.azure_kv.is_none() && access.hc_vault.is_none());

        let keys = SopsKeys::default();
        assert!(keys.set_cloud(CloudEntries::of(&s)));
        assert!(!keys.set_cloud(CloudEntries::of(&s)), "unchanged");
        assert!(keys.set_cloud(CloudEntries::default()), "removed");
    }

    /// A server on loopback answering every request with `status` and `body`, over kept-alive
    /// connections: plain http, or with `tls` https with a certificate of [`test_ca`]'s; its
    /// address and the number of connections made to it.
    fn server(
        tls: bool,
        status: u16,
        body: &'static [u8],
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let config = tls.then(|| test_ca().1.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls { "https" } else { "http" };
        let address = format!("{scheme}://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                std::thread::spawn(move || match config {
                    Some(config) => {
                        let Ok(tls) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        answer(rustls::StreamOwned::new(tls, stream), status, body)
                    }
                    None => answer(stream, status, body),
                });
            }
        });
        (address, connections)
    }

    /// Answers each request on `stream` with `status` and `body` until the client closes it.
    fn answer<S: std::io::Read + std::io::Write>(stream: S, status: u16, body: &[u8]) {
        use std::io::{BufRead, BufReader, Read};
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut request = vec![0; length];
            if reader.read_exact(&mut request).is_err() {
                return;
            }
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let out = reader.get_mut();
            if out
                .write_all(head.as_bytes())
                .and_then(|()| out.write_all(body))
                .is_err()
            {
                return;
            }
        }
    }

    /// A test CA and a certificate for 127.0.0.1 it signed (tests/src/certs.rs, once per test
    /// process), with `VAULT_CACERT` naming the CA: the Vault clients made after it trust
    /// these servers alone, as an operator's VAULT_CACERT makes them.
    fn test_ca() -> &'static (tempfile::TempDir, Arc<rustls::ServerConfig>) {
        static CA: std::sync::OnceLock<(tempfile::TempDir, Arc<rustls::ServerConfig>)> =
            std::sync::OnceLock::new();
        CA.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let ca = enseal_tests::certs::ca_and_server(
                dir.path(),
                &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "/CN=enseal controller test CA",
                "/CN=tenant vault",
                "IP:127.0.0.1",
            );
            std::env::set_var("VAULT_CACERT", ca);
            let config = enseal_tests::certs::tls_server_config(dir.path());
            (dir, config)
        })
    }

    fn vault_stanza(address: &str) -> enseal_sops::format::metadata::VaultStanza {
        enseal_sops::format::metadata::VaultStanza {
            vault_address: address.into(),
            engine_path: "transit".into(),
            key_name: "k".into(),
            enc: "vault:v1:abc".into(),
            ..Default::default()
        }
    }

    /// The Vault client a namespace key Secret's token makes is kept with the keys read from
    /// that Secret: two decryptions go over one connection (one TLS handshake, in a cluster),
    /// where a client made per decryption would connect twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn namespace_key_service_clients_are_kept_between_decryptions() {
        use std::sync::atomic::Ordering;
        let (address, connections) = server(true, 200, br#"{"data":{"plaintext":"AAEC"}}"#);
        let keys = SopsKeys::default();
        let tenant = secret(&[(VAULT_TOKEN_ENTRY, b"hvs.tenant")]);
        let mut named = tenant.clone();
        named.metadata.name = Some("team-keys".into());
        let first = keys.namespace_keys("team-a", named.clone()).await.unwrap();
        let again = keys.namespace_keys("team-a", named.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same content is read once");
        let stanza = vault_stanza(&address);
        let decrypted = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for keys in [first, again] {
                let vault = (keys.access().hc_vault.unwrap())().unwrap();
                out.push(vault.decrypt_key(&stanza).map(|k| k.to_vec()));
            }
            out
        })
        .await
        .unwrap();
        for d in decrypted {
            assert_eq!(d.unwrap(), [0, 1, 2]);
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // A changed Secret is read again, with new clients.
        let mut changed = named.clone();
        changed
            .data
            .as_mut()
            .unwrap()
            .insert("a.agekey".into(), ByteString(b"x".to_vec()));
        let third = keys.namespace_keys("team-a", changed).await.unwrap();
        let fourth = keys.namespace_keys("team-a", named).await.unwrap();
        assert!(!Arc::ptr_eq(&third, &fourth));
    }

    /// The controller's own clients are kept too, until its key Secret's entries change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_key_service_clients_are_kept_until_the_entries_change() {
        use std::sync::atomic::Ordering;
        let (address, connections) = server(false, 200, br#"{"data":{"plaintext":"AAEC"}}"#);
        // The controller's token goes only to listed servers. `all` (rather than this test's
        // address) leaves the other tests of this process, which run at the same time, as
        // they are.
        std::env::set_var(enseal_sops::keys::hc_vault::ALLOWLIST_VAR, "all");
        let keys = Arc::new(SopsKeys::default());
        keys.set_cloud(CloudEntries::of(&secret(&[(VAULT_TOKEN_ENTRY, b"hvs.a")])));
        let stanza = vault_stanza(&address);
        let decrypt = |keys: Arc<SopsKeys>| {
            let stanza = stanza.clone();
            tokio::task::spawn_blocking(move || {
                let vault = (SopsKeys::cluster_access(&keys).hc_vault.unwrap())().unwrap();
                vault.decrypt_key(&stanza).map(|k| k.to_vec())
            })
        };
        for _ in 0..2 {
            assert_eq!(decrypt(keys.clone()).await.unwrap().unwrap(), [0, 1, 2]);
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        keys.set_cloud(CloudEntries::of(&secret(&[(VAULT_TOKEN_ENTRY, b"hvs.b")])));
        assert_eq!(decrypt(keys.clone()).await.unwrap().unwrap(), [0, 1, 2]);
        assert_eq!(connections.load(Ordering::SeqCst), 2, "a new client");
    }

    /// Issue #17 review: a tenant's file names its Vault server, so the controller would send
    /// requests wherever it says, from inside the cluster. Tenants' servers are reached over
    /// https only, and what an error reply says is summarised, never quoted: a reply cannot put
    /// text of its choosing into the object's status, Events or the controller's log. Not even
    /// plain http on loopback: that is the controller's own pod, whose sidecars serve plain-http
    /// admin endpoints (Envoy's `/quitquitquit`); the loopback server here is never connected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_key_services_are_https_only_and_their_replies_are_not_quoted() {
        use std::sync::atomic::Ordering;
        let tenant = CloudEntries::of(&secret(&[(VAULT_TOKEN_ENTRY, b"hvs.tenant")]));
        let (address, _) = server(
            true,
            500,
            b"\x1b]0;owned\x07<html>admin console\r\nlevel=INFO msg=forged</html>",
        );
        let (loopback, loopback_connections) = server(false, 200, b"{}");
        let result = tokio::task::spawn_blocking(move || {
            let vault = (tenant.namespace_access().hc_vault.unwrap())().unwrap();
            let internal = vault.decrypt_key(&vault_stanza("http://10.96.0.10:8080"));
            let on_loopback =
                vault.decrypt_key(&vault_stanza(&format!("{loopback}/quitquitquit?")));
            let hostile = vault.decrypt_key(&vault_stanza(&address));
            (
                internal.unwrap_err(),
                on_loopback.unwrap_err(),
                hostile.unwrap_err(),
                address,
            )
        })
        .await
        .unwrap();
        let (internal, on_loopback, hostile, address) = result;
        for refused in [&internal, &on_loopback] {
            assert!(
                matches!(
                    refused,
                    enseal_sops::keys::hc_vault::VaultError::PlainHttp(_)
                ),
                "{refused}"
            );
        }
        assert_eq!(loopback_connections.load(Ordering::SeqCst), 0);
        assert!(
            internal.to_string().contains("http://10.96.0.10:8080"),
            "{internal}"
        );
        let shown = hostile.to_string();
        assert!(shown.contains(&address) && shown.contains("500"), "{shown}");
        for quoted in ["owned", "admin console", "forged", "\x1b", "\n"] {
            assert!(!shown.contains(quoted), "{shown:?}");
        }

        // A tenant's GCP credentials name their own token endpoint: https only as well.
        let json = br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","token_uri":"http://metadata.google.internal/token"}"#;
        let tenant = CloudEntries::of(&secret(&[(GCP_KMS_ENTRY, json)]));
        let e = tokio::task::spawn_blocking(move || {
            let gcp = (tenant.namespace_access().gcp_kms.unwrap())().unwrap();
            let stanza = enseal_sops::format::metadata::GcpKmsStanza {
                resource_id: "projects/p/locations/l/keyRings/r/cryptoKeys/k".into(),
                enc: "AAEC".into(),
                ..Default::default()
            };
            gcp.decrypt_key(&stanza).unwrap_err()
        })
        .await
        .unwrap();
        assert!(
            matches!(e, enseal_sops::keys::gcp_kms::GcpKmsError::PlainHttp(_)),
            "{e}"
        );
    }

    /// Issue #17 review: a broken `sops.gcp-kms` entry is found when the key Secret is read,
    /// as the other entries are, and said by name (never quoting it) when a file needs GCP.
    #[test]
    fn a_broken_gcp_kms_entry_is_reported_by_name_when_read() {
        let cloud = CloudEntries::of(&secret(&[(
            GCP_KMS_ENTRY,
            br#"{"type":"service_account","client_email":"e@x","private_key":"k-S3CRET-0123456789"}"#,
        )]));
        assert_eq!(cloud.names(), [GCP_KMS_ENTRY]);
        let reason = cloud.gcp.clone().unwrap().unwrap_err();
        assert!(
            reason.contains(GCP_KMS_ENTRY) && reason.contains("not a usable RSA key"),
            "{reason}"
        );
        assert!(!reason.contains("S3CRET"), "{reason}");
        let Err(e) = (cloud.namespace_access().gcp_kms.unwrap())() else {
            panic!("a broken entry gave GCP access");
        };
        assert_eq!(e, reason);
        let keys = Arc::new(SopsKeys::default());
        keys.set_cloud(cloud);
        let Err(e) = (SopsKeys::cluster_access(&keys).gcp_kms.unwrap())() else {
            panic!("a broken entry gave GCP access");
        };
        assert_eq!(e, reason);
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
        assert_eq!(entries, Digest::default());
        assert_eq!(age_text_of(&secret).1, 1);
        let keys = SopsKeys::default();
        assert!(!keys.set_pgp(entries, pgp), "nothing held, nothing changed");
        assert!(keys.pgp().is_empty());
    }
}

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
//! controller's identity is ever offered there (see [`CloudEntries::namespace_access`]).

use std::sync::{Arc, Mutex, RwLock};

use enseal_sops::format::metadata::KmsStanza;
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::aws_kms::{AwsKms, FluxAwsCredentials};
use enseal_sops::keys::azure_kv::{AzureKeyVault, FluxAzureConfig};
use enseal_sops::keys::gcp_kms::GcpKms;
use enseal_sops::keys::hc_vault::VaultTransit;
use enseal_sops::keys::openpgp::PgpSecretKeys;
use enseal_sops::keys::KmsService;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::render::CloudAccess;
use super::vault_auth::KubernetesAuth;

#[derive(Default)]
pub struct SopsKeys {
    /// The valid `*.agekey` entries, joined; parsed again for each decryption (cheap), so no
    /// identity object has to be shared between threads.
    age_text: RwLock<Zeroizing<String>>,
    /// The `*.asc` entries read, kept to tell whether they changed, and their keys, parsed once
    /// (an RSA key costs more to read than an age identity) and shared by every decryption.
    pgp: RwLock<(Zeroizing<Vec<u8>>, PgpSecretKeys)>,
    /// The AWS KMS client, made on first use and kept (its credentials are cached); dropped
    /// when the `sops.aws-kms` entry changes.
    kms: Mutex<Option<Arc<AwsKms>>>,
    /// The credential entries of the key Secret.
    cloud: RwLock<CloudEntries>,
    /// The controller's Vault login (`--vault-kubernetes-role`), shared by every decryption
    /// so that its client tokens are kept.
    vault_auth: Option<Arc<KubernetesAuth>>,
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
    /// The entries' names and bytes, to tell a change.
    seen: Zeroizing<Vec<u8>>,
    gcp: Option<Zeroizing<Vec<u8>>>,
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
        for name in [
            AWS_KMS_ENTRY,
            AZURE_KV_ENTRY,
            GCP_KMS_ENTRY,
            VAULT_TOKEN_ENTRY,
        ] {
            if let Some(value) = data.get(name) {
                entries.seen.extend_from_slice(name.as_bytes());
                entries.seen.push(0);
                entries.seen.extend_from_slice(&value.0);
                entries.seen.push(0);
            }
        }
        let unusable = |name: &str, e: String| {
            tracing::warn!(entry = %name, error = %e, "a key entry cannot be used");
            format!("the key Secret's {name} entry cannot be used: {e}")
        };
        entries.gcp = data.get(GCP_KMS_ENTRY).map(|v| Zeroizing::new(v.0.clone()));
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
    /// anyway, whichever server or key its metadata names.
    pub fn namespace_access(&self) -> CloudAccess {
        let mut access = CloudAccess::default();
        if let Some(aws) = self.aws.clone() {
            access.aws_kms = Some(Box::new(move || {
                let credentials = aws?;
                let kms = AwsKms::from_env().map_err(|e| e.to_string())?;
                Ok(Box::new(kms.with_static_credentials(&credentials)) as Box<dyn KmsService>)
            }));
        }
        if let Some(json) = self.gcp.clone() {
            access.gcp_kms = Some(Box::new(move || {
                let gcp = GcpKms::from_env().map_err(|e| e.to_string())?;
                Ok(gcp.with_credentials_json(json))
            }));
        }
        if let Some(azure) = self.azure.clone() {
            access.azure_kv = Some(Box::new(move || azure_with(Some(azure?))));
        }
        if let Some(token) = self.vault_token.clone() {
            access.hc_vault = Some(Box::new(move || {
                let vault = VaultTransit::from_env().map_err(|e| e.to_string())?;
                Ok(vault.with_token(token?))
            }));
        }
        access
    }
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

    fn cloud(&self) -> CloudEntries {
        match self.cloud.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The controller's access to every key service: through its key Secret's entry where
    /// there is one, else its own environment. `shared` is this same value, for the AWS
    /// client kept between decryptions.
    pub fn cluster_access(shared: &Arc<SopsKeys>) -> CloudAccess {
        let cloud = shared.cloud();
        let kms = shared.clone();
        let gcp = cloud.gcp.clone();
        let azure = cloud.azure.clone();
        let vault_token = cloud.vault_token.clone();
        let vault_auth = shared.vault_auth.clone();
        CloudAccess {
            aws_kms: Some(Box::new(move || kms.kms())),
            gcp_kms: Some(Box::new(move || {
                let kms = GcpKms::from_env().map_err(|e| e.to_string())?;
                Ok(match gcp {
                    Some(json) => kms.with_credentials_json(json),
                    None => kms,
                })
            })),
            azure_kv: Some(Box::new(move || azure_with(azure.transpose()?))),
            hc_vault: Some(Box::new(move || {
                let mut vault = VaultTransit::from_env().map_err(|e| e.to_string())?;
                // The admin's entry first (it names this cluster's choice), then the
                // controller's own login, then VAULT_TOKEN and ~/.vault-token.
                if let Some(token) = vault_token.transpose()? {
                    vault = vault.with_token(token);
                } else if let Some(auth) = vault_auth {
                    vault = vault.with_token_source(auth);
                }
                // The file names the server, and any tenant may write a file: the controller's
                // token (or ServiceAccount JWT) goes only where the admin listed
                // (SOPS_HC_VAULT_ALLOWLIST).
                Ok(vault.requiring_allowlist())
            })),
        }
    }

    /// Replaces the credential entries; true when they changed.
    pub(crate) fn set_cloud(&self, entries: CloudEntries) -> bool {
        let mut slot = match self.cloud.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if *slot.seen == *entries.seen {
            return false;
        }
        *slot = entries;
        drop(slot);
        // The next decryption with AWS keys makes a client with the new credentials. The old
        // one owns a tokio runtime, which must not be dropped on the reactor (this runs in the
        // key Secret's watcher): it goes on a thread of its own, unless a decryption still
        // holds it.
        let old = self.kms.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            let _ = std::thread::Builder::new()
                .name("aws-kms-drop".into())
                .spawn(move || drop(old));
        }
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

    /// The one KMS client, made on first use, with the `sops.aws-kms` credentials when the key
    /// Secret has them. `from_env` builds a runtime: call it off the async reactor.
    pub fn kms(&self) -> Result<Box<dyn KmsService>, String> {
        let aws = self.cloud().aws;
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
        let cloud = secret.map(CloudEntries::of).unwrap_or_default();
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

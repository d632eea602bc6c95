//! From an enseal/sops-encrypted file to the Secrets it stands for: decrypt with the keys the
//! SopsSecret may use, check what the file says about its namespace ([`super::tenancy`]), then
//! read the plaintext tree as Secret manifests or as one flat Secret.
//!
//! Errors name keys, documents and master keys, never values.

use std::collections::BTreeMap;

use base64::Engine;
use enseal_sops::crypto::values::EncryptionError;
use enseal_sops::file::{self, FileError, Mac};
use enseal_sops::format::tree::{Item, Node, Tree};
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::azure_kv::AzureKeyVault;
use enseal_sops::keys::gcp_kms::GcpKms;
use enseal_sops::keys::groups::{KeyGroupError, Keyring};
use enseal_sops::keys::hc_vault::VaultTransit;
use enseal_sops::keys::openpgp::PgpSecretKeys;
use enseal_sops::keys::KmsService;
use enseal_sops::stores::{self, Format, WriteOptions};
use k8s_openapi::ByteString;

use enseal_sops_secret::{SopsFormat, SopsSecretSpec};

use super::tenancy::{self, Opener};

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "spec.encrypted is not an enseal/sops-encrypted file (no sops metadata): encrypt it first"
    )]
    NotEncrypted,
    #[error("spec.encrypted is not a valid encrypted {format} file: {message}")]
    Invalid { format: String, message: String },
    #[error("the controller holds no keys for this file (it is encrypted for: {needs}); add an age identity (an entry named *.agekey) or an armored PGP secret key (*.asc) to the key Secret (--sops-age-key-secret), or configure KMS access")]
    NoKeys { needs: String },
    #[error("{0}")]
    DecryptFailed(String),
    #[error(
        "MAC mismatch: the file was changed after it was encrypted (a value, key or order differs)"
    )]
    MacMismatch,
    #[error("{0}")]
    Content(String),
    /// The file names another namespace: refused, never relocated.
    #[error("document {document} of the file is a Secret for another namespace (its metadata.namespace is not {namespace:?}, the namespace of this SopsSecret): a file is only decrypted into the namespace it names, so nothing from it was written")]
    NamespaceMismatch { document: usize, namespace: String },
    /// Cluster keys, an untrusted namespace, a file that does not name it.
    #[error("the file is opened with the controller's keys, which decrypt into namespace {namespace:?} only a file bound to it, and {why}. Add `metadata.namespace: {namespace}` to every Secret manifest in the file and encrypt it again, or set spec.decryption.secretRef to a key Secret of this namespace, or ask the cluster admin to list {namespace:?} in --sops-trusted-namespaces")]
    NamespaceNotBound { namespace: String, why: String },
    #[error("the key Secret {secret:?} named in spec.decryption.secretRef does not exist in this namespace: create it with the age identities the file is encrypted for, in entries named *.agekey, its armored PGP secret keys, in entries named *.asc, or credentials for its key service ({NAMESPACE_ENTRIES})")]
    KeySecretMissing { secret: String },
    #[error("the key Secret {secret:?} named in spec.decryption.secretRef holds no age identity (in an entry named *.agekey), no PGP secret key (in an entry named *.asc) and no key service credentials ({NAMESPACE_ENTRIES})")]
    NoNamespaceKeys { secret: String },
    #[error("the key Secret {secret:?} named in spec.decryption.secretRef holds only key service credentials ({NAMESPACE_ENTRIES}), and this controller does not use them from a namespace key Secret: they would let a file's metadata choose where the controller sends requests. Use age identities (*.agekey) or PGP secret keys (*.asc), or ask the cluster admin for --sops-namespace-key-services")]
    NamespaceKeyServicesOff { secret: String },
    /// The namespace key Secret's keys do not open the file; the controller's own keys were
    /// not tried, by design.
    #[error("the key Secret {secret:?} named in spec.decryption.secretRef holds no key for this file; with a key Secret only its age identities, PGP secret keys and key service credentials are used, never the controller's keys or its own cloud or Vault identity: {detail}")]
    NotForNamespaceKey { secret: String, detail: String },
}

/// The credential entries a namespace key Secret may hold, for messages.
const NAMESPACE_ENTRIES: &str = "sops.aws-kms, sops.azure-kv, sops.gcp-kms, sops.vault-token";

impl SopsError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SopsError::NotEncrypted => "NotEncrypted",
            SopsError::Invalid { .. } => "InvalidFile",
            SopsError::NoKeys { .. }
            | SopsError::NoNamespaceKeys { .. }
            | SopsError::NamespaceKeyServicesOff { .. }
            | SopsError::NotForNamespaceKey { .. } => "NoKeys",
            SopsError::DecryptFailed(_) => "DecryptFailed",
            SopsError::MacMismatch => "MacMismatch",
            SopsError::Content(_) => "InvalidContent",
            SopsError::NamespaceMismatch { .. } => "NamespaceMismatch",
            SopsError::NamespaceNotBound { .. } => "NamespaceNotBound",
            SopsError::KeySecretMissing { .. } => "KeySecretMissing",
        }
    }

    /// Whether a new key could change the outcome.
    pub fn is_key_failure(&self) -> bool {
        matches!(
            self,
            SopsError::NoKeys { .. }
                | SopsError::DecryptFailed(_)
                | SopsError::KeySecretMissing { .. }
                | SopsError::NoNamespaceKeys { .. }
                | SopsError::NamespaceKeyServicesOff { .. }
                | SopsError::NotForNamespaceKey { .. }
        )
    }
}

/// Access to one key service, set up on first need (only when a file names its keys).
pub type Access<T> = Box<dyn FnOnce() -> Result<T, String> + Send>;

/// The key services a file may be opened through; `None`: not offered at all.
#[derive(Default)]
pub struct CloudAccess {
    pub aws_kms: Option<Access<Box<dyn KmsService>>>,
    pub gcp_kms: Option<Access<GcpKms>>,
    pub azure_kv: Option<Access<AzureKeyVault>>,
    pub hc_vault: Option<Access<VaultTransit>>,
}

impl CloudAccess {
    fn onto(self, mut keyring: Keyring<'static>) -> Keyring<'static> {
        if let Some(kms) = self.aws_kms {
            keyring = keyring.with_kms_from(kms);
        }
        if let Some(gcp) = self.gcp_kms {
            keyring = keyring.with_gcp_kms_from(gcp);
        }
        if let Some(azure) = self.azure_kv {
            keyring = keyring.with_azure_kv_from(azure);
        }
        if let Some(vault) = self.hc_vault {
            keyring = keyring.with_vault_from(vault);
        }
        keyring
    }
}

/// The keys a SopsSecret's file is opened with.
pub enum Keys {
    /// The controller's: the age key Secret's identities and its access to the key services
    /// (set up only when the file names their keys). `trusted`: the SopsSecret's namespace is
    /// in --sops-trusted-namespaces.
    Cluster {
        age: AgeIdentities,
        /// The `*.asc` entries' keys; PGP stanzas are opened with them, never through a gpg.
        pgp: PgpSecretKeys,
        cloud: CloudAccess,
        trusted: bool,
    },
    /// The keys of the key Secret `secret` in the SopsSecret's own namespace, and nothing
    /// else: its identities, and the key services its credential entries reach, as the
    /// tenant (never the controller's own identity: the file's metadata, which anyone can
    /// copy, would choose the key).
    Namespace {
        secret: String,
        age: AgeIdentities,
        pgp: PgpSecretKeys,
        cloud: CloudAccess,
    },
}

/// One Secret to apply.
#[derive(Debug, Default, PartialEq)]
pub struct DesiredSecret {
    pub name: String,
    pub type_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub data: BTreeMap<String, ByteString>,
}

/// Decrypts `spec.encrypted` with `keys`, checks that the file may be decrypted into
/// `namespace` (after the MAC is verified) and returns the Secrets it describes.
pub fn decrypt(
    spec: &SopsSecretSpec,
    own_name: &str,
    namespace: &str,
    keys: Keys,
) -> Result<Vec<DesiredSecret>, SopsError> {
    let format = spec.format.store_format();
    let (keyring, opener, key_secret) = keyring(keys);
    let rendered = file::decrypt_with(
        spec.encrypted.as_bytes(),
        format,
        &keyring,
        Mac::Verify,
        |decrypted| {
            // Its result counts only once the MAC is verified (for a large file it runs while
            // the MAC is hashed on another core, and a mismatch wins), so a refusal or a
            // binding is always decided on the author's content. It has no side effects.
            tenancy::check(
                spec,
                decrypted.tree(),
                namespace,
                opener,
                decrypted.metadata.mac_only_encrypted,
                || {
                    stores::store_for(format)
                        .parse(spec.encrypted.as_bytes())
                        .ok()
                        .map(|p| p.tree)
                },
            )?;
            render(spec, decrypted.tree(), own_name)
        },
    );
    match rendered {
        Ok(secrets) => secrets,
        Err(e) => Err(open_failed(
            e,
            &format!("{:?}", spec.format).to_lowercase(),
            key_secret,
            |no_age| no_keys(spec, no_age),
        )),
    }
}

/// The keyring `keys` open a file with, who opened it (for [`tenancy`]) and, for the message of
/// a failure, the namespace key Secret (`Ok`) or whether the controller holds no age or PGP key
/// (`Err`).
pub(super) fn keyring(keys: Keys) -> (Keyring<'static>, Opener, Result<String, bool>) {
    match keys {
        Keys::Cluster {
            age,
            pgp,
            cloud,
            trusted,
        } => {
            let no_age = age.is_empty() && pgp.is_empty();
            // Each service is set up by the library only when the file names its keys.
            (
                cloud.onto(Keyring::new(age).with_pgp_keys(pgp)),
                Opener::Cluster { trusted },
                Err(no_age),
            )
        }
        Keys::Namespace {
            secret,
            age,
            pgp,
            cloud,
        } => (
            cloud.onto(Keyring::new(age).with_pgp_keys(pgp)),
            Opener::NamespaceKey,
            Ok(secret),
        ),
    }
}

/// A file that could not be opened or verified, as the condition says it. `key_secret` is
/// [`keyring`]'s; `needs` lists the master keys of the file when the controller has none.
pub(super) fn open_failed(
    e: FileError,
    format: &str,
    key_secret: Result<String, bool>,
    needs: impl FnOnce(bool) -> Option<String>,
) -> SopsError {
    match e {
        FileError::NotEncrypted => SopsError::NotEncrypted,
        e @ (FileError::Store(_) | FileError::Metadata(_)) => SopsError::Invalid {
            format: format.to_owned(),
            message: e.to_string(),
        },
        FileError::KeyGroup(KeyGroupError::KmsAccess(e)) => {
            SopsError::DecryptFailed(format!("KMS access: {e}"))
        }
        FileError::KeyGroup(e @ KeyGroupError::Unavailable { .. }) => match key_secret {
            Ok(secret) => SopsError::NotForNamespaceKey {
                secret,
                detail: e.to_string(),
            },
            Err(no_age) => match needs(no_age) {
                Some(needs) => SopsError::NoKeys { needs },
                None => SopsError::DecryptFailed(e.to_string()),
            },
        },
        FileError::Encryption(EncryptionError::MacMismatch) => SopsError::MacMismatch,
        other => SopsError::DecryptFailed(other.to_string()),
    }
}

/// When the controller holds no key that could open the file (no age identity or PGP key, and
/// the file names no key of a key service), the master keys the file is encrypted for. Only on this failure path is
/// the metadata read a second time.
fn no_keys(spec: &SopsSecretSpec, no_age: bool) -> Option<String> {
    if !no_age {
        return None;
    }
    let parsed = stores::store_for(spec.format.store_format())
        .parse(spec.encrypted.as_bytes())
        .ok()?;
    needs_of(&file::read_metadata(&parsed).ok()?)
}

/// The master keys a file is encrypted for, when none of them is a key service's (whose own
/// error says better what failed).
pub(super) fn needs_of(metadata: &enseal_sops::format::metadata::Metadata) -> Option<String> {
    // A key service was offered (and failed, which its own error says better).
    if metadata
        .key_groups
        .iter()
        .any(|g| g.kms.len() + g.gcp_kms.len() + g.azure_kv.len() + g.hc_vault.len() > 0)
    {
        return None;
    }
    let needs: Vec<String> = metadata
        .key_groups
        .iter()
        .flat_map(|g| {
            let age = g.age.iter().map(|a| format!("age {}", a.recipient));
            age.chain(g.pgp.iter().map(|p| format!("pgp {}", p.fp)))
        })
        .collect();
    Some(needs.join(", "))
}

/// Reads the plaintext tree: a stream of Secret manifests gives those Secrets; anything else
/// (one non-Secret document, dotenv, ini) gives one Secret named `own_name` whose keys are the
/// top-level keys; binary gives one key.
pub fn render(
    spec: &SopsSecretSpec,
    tree: &Tree,
    own_name: &str,
) -> Result<Vec<DesiredSecret>, SopsError> {
    if spec.format == SopsFormat::Binary {
        let value = tree
            .documents
            .first()
            .and_then(|d| d.get("data"))
            .and_then(Node::as_scalar)
            .ok_or_else(|| SopsError::Content("the binary file has no data".into()))?;
        let key = spec.key.clone().unwrap_or_else(|| "data".into());
        return Ok(vec![DesiredSecret {
            name: own_name.into(),
            type_: Some("Opaque".into()),
            data: [(key, ByteString(value.value.clone()))].into(),
            ..DesiredSecret::default()
        }]);
    }
    if let Some(manifests) = secret_manifests(spec, tree) {
        return manifests
            .iter()
            .enumerate()
            .map(|(i, d)| secret_document(i + 1, d))
            .collect();
    }
    let docs: Vec<&Node> = tree.documents.iter().collect();
    let secrets = docs.iter().filter(|d| is_secret(d)).count();
    match docs.as_slice() {
        [doc] => Ok(vec![flat(doc, own_name)?]),
        [] => Err(SopsError::Content("the file holds no document".into())),
        _ => Err(SopsError::Content(format!(
            "the YAML stream holds {} documents of which {secrets} are Secrets: a stream must hold only Secret manifests",
            docs.len()
        ))),
    }
}

/// The documents when the file is a stream of Secret manifests (every document one), which
/// become one Secret each; `None` for anything else (a flat file becomes one Secret).
pub fn secret_manifests<'t>(spec: &SopsSecretSpec, tree: &'t Tree) -> Option<Vec<&'t Node>> {
    if spec.format == SopsFormat::Binary {
        return None;
    }
    let docs: Vec<&Node> = tree.documents.iter().collect();
    (!docs.is_empty() && docs.iter().all(|d| is_secret(d))).then_some(docs)
}

fn text(node: Option<&Node>) -> Option<String> {
    node.and_then(Node::as_scalar)
        .and_then(|s| s.text())
        .map(str::to_owned)
}

fn is_secret(doc: &Node) -> bool {
    text(doc.get("kind")).as_deref() == Some("Secret")
        && matches!(text(doc.get("apiVersion")).as_deref(), Some("v1") | None)
}

/// The key-value pairs of a mapping (none for anything else).
pub fn pairs(node: &Node) -> impl Iterator<Item = (&String, &Node)> {
    let items: &[Item] = match node {
        Node::Map(items) => items,
        _ => &[],
    };
    items.iter().filter_map(|i| match i {
        Item::Pair(k, v) => Some((k, v)),
        Item::Comment(_) => None,
    })
}

fn string_map(
    node: Option<&Node>,
    what: &str,
    doc: usize,
) -> Result<BTreeMap<String, String>, SopsError> {
    let Some(node) = node else {
        return Ok(BTreeMap::new());
    };
    pairs(node)
        .map(|(k, v)| {
            text(Some(v)).map(|t| (k.clone(), t)).ok_or_else(|| {
                SopsError::Content(format!("document {doc}: {what}.{k} is not a string"))
            })
        })
        .collect()
}

fn secret_document(doc: usize, node: &Node) -> Result<DesiredSecret, SopsError> {
    let meta = node.get("metadata");
    let name = text(meta.and_then(|m| m.get("name"))).ok_or_else(|| {
        SopsError::Content(format!("document {doc}: the Secret has no metadata.name"))
    })?;
    let mut data = BTreeMap::new();
    for (k, v) in node.get("data").map(pairs).into_iter().flatten() {
        let decoded = text(Some(v))
            .and_then(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t.trim())
                    .ok()
            })
            .ok_or_else(|| {
                SopsError::Content(format!(
                    "document {doc} (Secret {name:?}): data.{k} is not base64"
                ))
            })?;
        data.insert(k.clone(), ByteString(decoded));
    }
    // As the API server does: stringData wins over data for the same key.
    for (k, v) in node.get("stringData").map(pairs).into_iter().flatten() {
        data.insert(k.clone(), ByteString(scalar_or_json(k, v)?));
    }
    Ok(DesiredSecret {
        name,
        type_: Some(text(node.get("type")).unwrap_or_else(|| "Opaque".into())),
        labels: string_map(meta.and_then(|m| m.get("labels")), "metadata.labels", doc)?,
        annotations: string_map(
            meta.and_then(|m| m.get("annotations")),
            "metadata.annotations",
            doc,
        )?,
        data,
    })
}

/// A scalar's bytes; a nested value (an INI section, a YAML mapping) as compact JSON.
fn scalar_or_json(key: &str, node: &Node) -> Result<Vec<u8>, SopsError> {
    match node {
        Node::Scalar(s) => Ok(s.value.clone()),
        other => {
            let tree = Tree {
                documents: vec![other.clone()],
            };
            stores::store_for(Format::Json)
                .write(&tree, None, None, &WriteOptions::default())
                .map_err(|_| {
                    SopsError::Content(format!("the value of {key} cannot be written as JSON"))
                })
        }
    }
}

fn flat(doc: &Node, own_name: &str) -> Result<DesiredSecret, SopsError> {
    if !matches!(doc, Node::Map(_)) {
        return Err(SopsError::Content(
            "the file is not a mapping: its top-level keys become the Secret's keys".into(),
        ));
    }
    let mut data = BTreeMap::new();
    for (k, v) in pairs(doc) {
        data.insert(k.clone(), ByteString(scalar_or_json(k, v)?));
    }
    Ok(DesiredSecret {
        name: own_name.into(),
        type_: Some("Opaque".into()),
        data,
        ..DesiredSecret::default()
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use enseal_sops::format::crypt_rule::CryptRule;

    fn spec(format: SopsFormat) -> SopsSecretSpec {
        SopsSecretSpec {
            format,
            encrypted: String::new(),
            key: None,
            decryption: None,
        }
    }

    fn plain(format: Format, text: &str) -> Tree {
        stores::store_for(format)
            .parse(text.as_bytes())
            .unwrap()
            .tree
    }

    fn value(s: &DesiredSecret, k: &str) -> String {
        String::from_utf8(s.data[k].0.clone()).unwrap()
    }

    /// render() reads no namespace: a Secret manifest naming another one was refused before
    /// (tenancy::check), and the Secrets always go into the SopsSecret's namespace.
    #[test]
    fn a_stream_of_secret_manifests_gives_one_secret_each() {
        let tree = plain(
            Format::Yaml,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: one\n  namespace: elsewhere\n  labels: {a: b}\ntype: kubernetes.io/basic-auth\ndata:\n  username: dXNlcg==\nstringData:\n  password: pw\n---\nkind: Secret\nmetadata: {name: two}\nstringData: {x: \"1\"}\n",
        );
        let out = render(&spec(SopsFormat::Yaml), &tree, "own").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].name, "one");
        assert_eq!(out[0].type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(out[0].labels["a"], "b");
        assert_eq!(value(&out[0], "username"), "user");
        assert_eq!(value(&out[0], "password"), "pw");
        assert_eq!(out[1].name, "two");
        assert_eq!(value(&out[1], "x"), "1");
    }

    #[test]
    fn a_plain_mapping_or_dotenv_gives_one_secret_named_like_the_resource() {
        let tree = plain(Format::Yaml, "db: pw\nport: 5432\nnested: {a: 1}\n");
        let out = render(&spec(SopsFormat::Yaml), &tree, "own").unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "own");
        assert_eq!(value(&out[0], "port"), "5432");
        assert!(value(&out[0], "nested").contains("\"a\""));
        let tree = plain(Format::Dotenv, "A=1\nB=two\n");
        let out = render(&spec(SopsFormat::Dotenv), &tree, "own").unwrap();
        assert_eq!(value(&out[0], "B"), "two");
    }

    #[test]
    fn binary_content_goes_under_the_named_key() {
        let tree = plain(Format::Binary, "raw\nbytes");
        let mut s = spec(SopsFormat::Binary);
        assert_eq!(
            value(&render(&s, &tree, "own").unwrap()[0], "data"),
            "raw\nbytes"
        );
        s.key = Some("cert.pem".into());
        assert_eq!(
            value(&render(&s, &tree, "own").unwrap()[0], "cert.pem"),
            "raw\nbytes"
        );
    }

    #[test]
    fn bad_documents_are_refused_without_quoting_values() {
        let tree = plain(
            Format::Yaml,
            "kind: Secret\nmetadata: {name: a}\ndata: {k: \"not base64 SECRETVALUE!\"}\n",
        );
        let e = render(&spec(SopsFormat::Yaml), &tree, "own").unwrap_err();
        assert_eq!(e.reason(), "InvalidContent");
        assert!(!e.to_string().contains("SECRETVALUE"));
        let tree = plain(
            Format::Yaml,
            "kind: Secret\nmetadata: {name: a}\n---\nx: 1\n",
        );
        assert!(render(&spec(SopsFormat::Yaml), &tree, "own").is_err());
        let tree = plain(Format::Yaml, "kind: Secret\nmetadata: {}\n");
        assert!(render(&spec(SopsFormat::Yaml), &tree, "own").is_err());
    }

    fn cluster(age: AgeIdentities, trusted: bool) -> Keys {
        Keys::Cluster {
            age,
            pgp: PgpSecretKeys::default(),
            cloud: CloudAccess {
                aws_kms: Some(Box::new(|| Err("no KMS in this test".into()))),
                gcp_kms: Some(Box::new(|| Err("no GCP KMS in this test".into()))),
                ..CloudAccess::default()
            },
            trusted,
        }
    }

    #[test]
    fn a_plain_file_is_not_encrypted() {
        let mut s = spec(SopsFormat::Yaml);
        s.encrypted = "a: 1\n".into();
        let e = decrypt(&s, "own", "ns", cluster(AgeIdentities::default(), true)).unwrap_err();
        assert_eq!(e.reason(), "NotEncrypted");
    }

    /// `plain` encrypted for a new age key; the file and the identity text that opens it.
    fn encrypted(plain: &str) -> (SopsSecretSpec, String) {
        let (identity, recipient) = enseal_sops::keys::age::generate();
        (encrypted_for(plain, &recipient), identity.to_string())
    }

    fn ids(identity: &str) -> AgeIdentities {
        AgeIdentities::parse("test", identity).unwrap()
    }

    /// `plain` encrypted (YAML) for the age `recipient`.
    pub(in crate::sops_secret) fn encrypted_for(plain: &str, recipient: &str) -> SopsSecretSpec {
        let bytes = encrypted_yaml(plain, recipient, CryptRule::default());
        let mut s = spec(SopsFormat::Yaml);
        s.encrypted = String::from_utf8(bytes).unwrap();
        s
    }

    /// `plain` (YAML) encrypted by enseal for the age `recipient` under `rule`, as `sops -e`.
    pub(in crate::sops_secret) fn encrypted_yaml(
        plain: &str,
        recipient: &str,
        rule: CryptRule,
    ) -> Vec<u8> {
        use enseal_sops::crypto::data_key::DataKey;
        use enseal_sops::file::{EncryptOptions, Layout};
        use enseal_sops::format::metadata::Metadata;
        use enseal_sops::keys::groups::{self, GroupRecipients};

        let key = DataKey::generate();
        let group = GroupRecipients {
            age: vec![recipient.parse().unwrap()],
            ..Default::default()
        };
        let (key_groups, _) = groups::wrap(&key, &[group], None, None).unwrap();
        let mut metadata = Metadata::new(key_groups, rule);
        let store = stores::store_for(Format::Yaml);
        let options = EncryptOptions {
            layout: Layout::Keep,
            unchanged: None,
            write: &WriteOptions::default(),
        };
        let parsed = store.parse(plain.as_bytes()).unwrap();
        file::encrypt(store.as_ref(), parsed, &key, &mut metadata, &options).unwrap()
    }

    const TEAM_A_FILE: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: team-a-S3CRET\n";

    /// Issue #13 item 8: team A's file, copied into a SopsSecret in team-b, used to become a
    /// Secret in team-b (metadata.namespace was ignored). Whatever key opens it, it is refused.
    #[test]
    fn a_file_naming_another_namespace_is_refused_whatever_key_opens_it() {
        let (s, age) = encrypted(TEAM_A_FILE);
        let ok = decrypt(&s, "own", "team-a", cluster(ids(&age), false)).unwrap();
        assert_eq!(ok[0].name, "db");
        for keys in [
            cluster(ids(&age), false),
            cluster(ids(&age), true),
            Keys::Namespace {
                secret: "team-b-keys".into(),
                age: ids(&age),
                pgp: PgpSecretKeys::default(),
                cloud: CloudAccess::default(),
            },
        ] {
            let e = decrypt(&s, "own", "team-b", keys).unwrap_err();
            assert_eq!(e.reason(), "NamespaceMismatch");
            assert!(!e.to_string().contains("S3CRET"), "{e}");
        }
    }

    /// The binding is decided on verified content only: a changed file is a MAC mismatch, not
    /// a namespace refusal (nor, were it bound, a Secret).
    #[test]
    fn a_changed_file_is_a_mac_mismatch_before_any_namespace_rule() {
        let (mut s, age) = encrypted(TEAM_A_FILE);
        s.encrypted = s
            .encrypted
            .lines()
            .filter(|l| !l.trim_start().starts_with("password:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = decrypt(&s, "own", "team-b", cluster(ids(&age), false)).unwrap_err();
        assert_eq!(e.reason(), "MacMismatch", "{e}");
    }

    /// A flat file opened by the controller's keys is decrypted only in a trusted namespace.
    #[test]
    fn cluster_keys_open_a_flat_file_only_in_a_trusted_namespace() {
        let (s, age) = encrypted("password: flat-S3CRET\n");
        let e = decrypt(&s, "own", "team-b", cluster(ids(&age), false)).unwrap_err();
        assert_eq!(e.reason(), "NamespaceNotBound");
        assert!(!e.to_string().contains("S3CRET"), "{e}");
        let out = decrypt(&s, "own", "team-b", cluster(ids(&age), true)).unwrap();
        assert_eq!(value(&out[0], "password"), "flat-S3CRET");
        let by_tenant = Keys::Namespace {
            secret: "keys".into(),
            age: ids(&age),
            pgp: PgpSecretKeys::default(),
            cloud: CloudAccess::default(),
        };
        assert_eq!(decrypt(&s, "own", "team-b", by_tenant).unwrap().len(), 1);
    }

    /// With a namespace key Secret, a file only the controller's key (or KMS) opens is not
    /// opened: the KMS access of the cluster is not even offered.
    #[test]
    fn namespace_keys_do_not_open_a_file_for_the_cluster_key() {
        let (s, _cluster_age) = encrypted("password: flat-S3CRET\n");
        let (_, tenant_age) = encrypted("x: y\n");
        let e = decrypt(
            &s,
            "own",
            "team-b",
            Keys::Namespace {
                secret: "team-b-keys".into(),
                age: ids(&tenant_age),
                pgp: PgpSecretKeys::default(),
                cloud: CloudAccess::default(),
            },
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NoKeys");
        let msg = e.to_string();
        assert!(
            msg.contains("\"team-b-keys\"") && msg.contains("age1"),
            "{msg}"
        );
        assert!(!msg.contains("S3CRET"), "{msg}");
    }
}

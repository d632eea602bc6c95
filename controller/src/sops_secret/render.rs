//! From an enseal/sops-encrypted file to the Secrets it stands for: decrypt with the
//! controller's keys, then read the plaintext tree as Secret manifests or as one flat Secret.
//!
//! Errors name keys, documents and master keys, never values.

use std::collections::BTreeMap;

use base64::Engine;
use enseal_sops::crypto::values::EncryptionError;
use enseal_sops::file::{self, FileError, Mac};
use enseal_sops::format::tree::{Item, Node, Tree};
use enseal_sops::keys::age::AgeIdentities;
use enseal_sops::keys::groups::{KeyGroupError, Keyring};
use enseal_sops::keys::KmsService;
use enseal_sops::stores::{self, Format, WriteOptions};
use k8s_openapi::ByteString;

use enseal_sops_secret::{SopsFormat, SopsSecretSpec};

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "spec.encrypted is not an enseal/sops-encrypted file (no sops metadata): encrypt it first"
    )]
    NotEncrypted,
    #[error("spec.encrypted is not a valid encrypted {format} file: {message}")]
    Invalid { format: String, message: String },
    #[error("the controller holds no keys for this file (it is encrypted for: {needs}); add an age identity to the key Secret (--sops-age-key-secret) or configure KMS access")]
    NoKeys { needs: String },
    #[error("{0}")]
    DecryptFailed(String),
    #[error(
        "MAC mismatch: the file was changed after it was encrypted (a value, key or order differs)"
    )]
    MacMismatch,
    #[error("{0}")]
    Content(String),
}

impl SopsError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SopsError::NotEncrypted => "NotEncrypted",
            SopsError::Invalid { .. } => "InvalidFile",
            SopsError::NoKeys { .. } => "NoKeys",
            SopsError::DecryptFailed(_) => "DecryptFailed",
            SopsError::MacMismatch => "MacMismatch",
            SopsError::Content(_) => "InvalidContent",
        }
    }

    /// Whether a new key could change the outcome.
    pub fn is_key_failure(&self) -> bool {
        matches!(self, SopsError::NoKeys { .. } | SopsError::DecryptFailed(_))
    }
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

/// Decrypts `spec.encrypted` and returns the Secrets it describes. `kms` is only called when the
/// file names KMS keys, so KMS access is set up only where it is needed.
pub fn decrypt(
    spec: &SopsSecretSpec,
    own_name: &str,
    age: AgeIdentities,
    kms: impl FnOnce() -> Result<Box<dyn KmsService>, String> + Send,
) -> Result<Vec<DesiredSecret>, SopsError> {
    let format = spec.format.store_format();
    let invalid = |message: String| SopsError::Invalid {
        format: format!("{:?}", spec.format).to_lowercase(),
        message,
    };
    let no_age = age.is_empty();
    // KMS access is set up by the library only when the file names KMS keys.
    let keyring = Keyring::new(age).with_kms_from(kms);
    let rendered = file::decrypt_with(
        spec.encrypted.as_bytes(),
        format,
        &keyring,
        Mac::Verify,
        |decrypted| render(spec, decrypted.tree(), own_name),
    );
    match rendered {
        Ok(secrets) => secrets,
        Err(FileError::NotEncrypted) => Err(SopsError::NotEncrypted),
        Err(e @ (FileError::Store(_) | FileError::Metadata(_))) => Err(invalid(e.to_string())),
        Err(FileError::KeyGroup(KeyGroupError::KmsAccess(e))) => {
            Err(SopsError::DecryptFailed(format!("KMS access: {e}")))
        }
        Err(FileError::KeyGroup(e @ KeyGroupError::Unavailable { .. })) => {
            match no_keys(spec, no_age) {
                Some(needs) => Err(SopsError::NoKeys { needs }),
                None => Err(SopsError::DecryptFailed(e.to_string())),
            }
        }
        Err(FileError::Encryption(EncryptionError::MacMismatch)) => Err(SopsError::MacMismatch),
        Err(other) => Err(SopsError::DecryptFailed(other.to_string())),
    }
}

/// When the controller holds no key that could open the file (no age identity, and the file
/// names no KMS key), the master keys the file is encrypted for. Only on this failure path is
/// the metadata read a second time.
fn no_keys(spec: &SopsSecretSpec, no_age: bool) -> Option<String> {
    if !no_age {
        return None;
    }
    let parsed = stores::store_for(spec.format.store_format())
        .parse(spec.encrypted.as_bytes())
        .ok()?;
    let metadata = file::read_metadata(&parsed).ok()?;
    if metadata.key_groups.iter().any(|g| !g.kms.is_empty()) {
        return None;
    }
    let needs: Vec<String> = metadata
        .key_groups
        .iter()
        .flat_map(|g| g.age.iter().map(|a| format!("age {}", a.recipient)))
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
    let docs: Vec<&Node> = tree.documents.iter().collect();
    let secrets = docs.iter().filter(|d| is_secret(d)).count();
    if secrets > 0 && secrets == docs.len() {
        return docs
            .iter()
            .enumerate()
            .map(|(i, d)| secret_document(i + 1, d))
            .collect();
    }
    match docs.as_slice() {
        [doc] => Ok(vec![flat(doc, own_name)?]),
        [] => Err(SopsError::Content("the file holds no document".into())),
        _ => Err(SopsError::Content(format!(
            "the YAML stream holds {} documents of which {secrets} are Secrets: a stream must hold only Secret manifests",
            docs.len()
        ))),
    }
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

fn pairs(node: &Node) -> impl Iterator<Item = (&String, &Node)> {
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
mod tests {
    use super::*;

    fn spec(format: SopsFormat) -> SopsSecretSpec {
        SopsSecretSpec {
            format,
            encrypted: String::new(),
            key: None,
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

    #[test]
    fn a_plain_file_is_not_encrypted() {
        let mut s = spec(SopsFormat::Yaml);
        s.encrypted = "a: 1\n".into();
        let e = decrypt(&s, "own", AgeIdentities::default(), || Err("none".into())).unwrap_err();
        assert_eq!(e.reason(), "NotEncrypted");
    }
}

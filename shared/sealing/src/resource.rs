//! The objects: `bitnami.com/v1alpha1` SealedSecret and a minimal core/v1 Secret, as serde
//! types that read and write the API's JSON (and YAML), and the conversions between them.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use rsa::{PrivateKey, PublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::scope::Scope;
use crate::sealed_value::{self, SealError};
use crate::template::{self, TemplateError};

pub const SEALED_SECRET_API_VERSION: &str = "bitnami.com/v1alpha1";
pub const SEALED_SECRET_KIND: &str = "SealedSecret";

/// Annotations tools put a full copy of an applied object in; sealing them would leak the
/// Secret in the clear (Sealed Secrets strips the same two).
const LAST_APPLIED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
];

/// Server-set metadata that must not be copied into a template.
const SERVER_METADATA: [&str; 9] = [
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
];

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("the Secret has no metadata.name")]
    NoName,
    #[error("the Secret must declare a namespace (or be sealed cluster-wide)")]
    NoNamespace,
    #[error("the Secret has no data (pass --allow-empty-data if that is intended)")]
    EmptyData,
    #[error("sealing {key:?}: {source}")]
    Seal { key: String, source: SealError },
    #[error("{}", join_value_errors(.0))]
    Open(Vec<(String, SealError)>),
    #[error("spec.data (deprecated single-blob form): {0}")]
    LegacyData(String),
    #[error("spec.template.data[{key:?}]: {source}")]
    Template { key: String, source: TemplateError },
}

fn join_value_errors(errors: &[(String, SealError)]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|(k, e)| format!("encryptedData[{k:?}]: {e}"))
        .collect();
    parts.join("; ")
}

/// `null` reads as the type's default, as Go's decoder treats a null map or list.
fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Everything else (uid, ownerReferences, finalizers, ...), kept as it came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ObjectMeta {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// Bytes of a Secret value: base64 in the API, redacted in `Debug`, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(pub Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<SecretBytes, D::Error> {
        // Through `Value` so that a wrong type is reported without quoting the value; the
        // base64 text is wiped once decoded.
        match Value::deserialize(de)? {
            Value::String(mut s) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(s.trim());
                s.zeroize();
                decoded
                    .map(SecretBytes::new)
                    .map_err(|_| serde::de::Error::custom("a data value is not valid base64"))
            }
            Value::Null => Ok(SecretBytes::default()),
            _ => Err(serde::de::Error::custom(
                "a data value must be a base64 string",
            )),
        }
    }
}

/// A `stringData` value: text in the API. Numbers and booleans are taken as their text (YAML
/// users write `port: 5432`); the API server would refuse them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretText(pub Zeroizing<String>);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText(<{} bytes>)", self.0.len())
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<SecretText, D::Error> {
        let text = match Value::deserialize(de)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => {
                return Err(serde::de::Error::custom(
                    "a stringData value must be a string",
                ))
            }
        };
        Ok(SecretText(Zeroizing::new(text)))
    }
}

fn secret_api_version() -> String {
    "v1".into()
}

fn secret_kind() -> String {
    "Secret".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default = "secret_api_version")]
    pub api_version: String,
    #[serde(default = "secret_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, SecretBytes>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub string_data: BTreeMap<String, SecretText>,
}

impl Default for Secret {
    fn default() -> Secret {
        Secret {
            api_version: secret_api_version(),
            kind: secret_kind(),
            metadata: ObjectMeta::default(),
            type_: None,
            immutable: None,
            data: BTreeMap::new(),
            string_data: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Go templates over the decrypted values; `null` removes a key from the Secret.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    #[serde(default)]
    pub template: SecretTemplate,
    #[serde(default, deserialize_with = "null_default")]
    pub encrypted_data: BTreeMap<String, String>,
    /// Deprecated single-blob form: the whole Secret's JSON sealed as one value (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<SealedSecretCondition>,
}

fn sealed_secret_kind() -> String {
    SEALED_SECRET_KIND.into()
}

fn sealed_secret_api_version() -> String {
    SEALED_SECRET_API_VERSION.into()
}

/// Field order as kubeseal prints it (kind first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    #[serde(default = "sealed_secret_kind")]
    pub kind: String,
    #[serde(default = "sealed_secret_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SealedSecretSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SealedSecretStatus>,
}

impl SealedSecret {
    /// The scope the controller unseals with: from the SealedSecret's own annotations.
    pub fn scope(&self) -> Scope {
        Scope::from_annotations(&self.metadata.annotations)
    }

    /// The OAEP label every value of this SealedSecret is sealed under.
    pub fn label(&self) -> Vec<u8> {
        self.scope()
            .label(self.metadata.namespace(), self.metadata.name())
    }

    /// Seals a Secret as kubeseal does: `scope` (the `--scope` flag) overrides the scope
    /// annotations of the Secret, which otherwise choose it. Each `data` value is sealed as its
    /// decoded bytes, each `stringData` value as UTF-8 (winning over a `data` key of the same
    /// name); the template keeps the Secret's metadata (without server fields, owner references
    /// and last-applied copies), type and immutability.
    pub fn seal(
        secret: &Secret,
        public_key: &PublicKey,
        scope: Option<Scope>,
    ) -> Result<SealedSecret, ResourceError> {
        let mut meta = secret.metadata.clone();
        for key in SERVER_METADATA {
            meta.other.remove(key);
        }
        for key in LAST_APPLIED_ANNOTATIONS {
            meta.annotations.remove(key);
        }
        if let Some(scope) = scope {
            scope.write_annotations(&mut meta.annotations);
        }
        let scope = Scope::from_annotations(&meta.annotations);
        if meta.name().is_empty() {
            return Err(ResourceError::NoName);
        }
        if scope != Scope::ClusterWide && meta.namespace().is_empty() {
            return Err(ResourceError::NoNamespace);
        }
        let label = scope.label(meta.namespace(), meta.name());
        let mut encrypted_data = BTreeMap::new();
        let values = secret
            .data
            .iter()
            .map(|(k, v)| (k, v.as_bytes()))
            .chain(secret.string_data.iter().map(|(k, v)| (k, v.0.as_bytes())));
        for (key, plain) in values {
            let sealed =
                sealed_value::seal_base64(public_key, &label, plain).map_err(|source| {
                    ResourceError::Seal {
                        key: key.clone(),
                        source,
                    }
                })?;
            encrypted_data.insert(key.clone(), sealed);
        }
        let mut annotations = BTreeMap::new();
        scope.write_annotations(&mut annotations);
        Ok(SealedSecret {
            kind: sealed_secret_kind(),
            api_version: sealed_secret_api_version(),
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                annotations,
                ..ObjectMeta::default()
            },
            spec: SealedSecretSpec {
                template: SecretTemplate {
                    metadata: meta,
                    type_: secret.type_.clone(),
                    immutable: secret.immutable,
                    data: BTreeMap::new(),
                },
                encrypted_data,
                data: None,
            },
            status: None,
        })
    }

    /// Opens every `encryptedData` value; all failures are reported, by key.
    pub fn open_values(
        &self,
        keys: &[PrivateKey],
    ) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, ResourceError> {
        let label = self.label();
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        // Try the key that opened the previous value first: with several controller keys this
        // saves a failing RSA decryption per key per value.
        let mut order: Vec<&PrivateKey> = keys.iter().collect();
        for (key, sealed) in &self.spec.encrypted_data {
            let opened = base64::engine::general_purpose::STANDARD
                .decode(sealed.trim())
                .map_err(|_| SealError::Base64)
                .and_then(|blob| sealed_value::open_indexed(order.iter().copied(), &label, &blob));
            match opened {
                Ok((index, plain)) => {
                    order[..=index].rotate_right(1);
                    values.insert(key.clone(), plain);
                }
                Err(e) => errors.push((key.clone(), e)),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(ResourceError::Open(errors))
        }
    }

    /// The Secret this SealedSecret stands for, as the controller would create it (without the
    /// owner reference, which needs the object's uid): template metadata, type and
    /// immutability, the opened values, then `template.data` rendered over them. Name and
    /// namespace are always the SealedSecret's.
    pub fn unseal(&self, keys: &[PrivateKey]) -> Result<Secret, ResourceError> {
        if self.spec.encrypted_data.is_empty() {
            if let Some(blob) = &self.spec.data {
                return self.unseal_legacy(keys, blob);
            }
        }
        let values = self.open_values(keys)?;
        let mut data: BTreeMap<String, SecretBytes> = values
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes(v.clone())))
            .collect();
        for (key, tmpl) in &self.spec.template.data {
            match tmpl {
                None => {
                    data.remove(key);
                }
                Some(t) => {
                    let rendered =
                        template::render(t, &values).map_err(|source| ResourceError::Template {
                            key: key.clone(),
                            source,
                        })?;
                    data.insert(key.clone(), SecretBytes(rendered));
                }
            }
        }
        let mut metadata = self.spec.template.metadata.clone();
        metadata.name = self.metadata.name.clone();
        metadata.namespace = self.metadata.namespace.clone();
        Ok(Secret {
            metadata,
            type_: self.spec.template.type_.clone(),
            immutable: self.spec.template.immutable,
            data,
            ..Secret::default()
        })
    }

    fn unseal_legacy(&self, keys: &[PrivateKey], blob: &str) -> Result<Secret, ResourceError> {
        let plain = sealed_value::open_base64(keys, &self.label(), blob)
            .map_err(|e| ResourceError::LegacyData(e.to_string()))?;
        let mut secret: Secret = serde_json::from_slice(&plain).map_err(|_| {
            ResourceError::LegacyData("the opened blob is not a Secret in JSON".into())
        })?;
        secret.metadata.name = self.metadata.name.clone();
        secret.metadata.namespace = self.metadata.namespace.clone();
        Ok(secret)
    }

    /// Seals `plain` under this SealedSecret's scope and adds it to `encryptedData` (replacing
    /// a value of the same key).
    pub fn insert_value(
        &mut self,
        public_key: &PublicKey,
        key: &str,
        plain: &[u8],
    ) -> Result<(), ResourceError> {
        let sealed =
            sealed_value::seal_base64(public_key, &self.label(), plain).map_err(|source| {
                ResourceError::Seal {
                    key: key.to_string(),
                    source,
                }
            })?;
        self.spec.encrypted_data.insert(key.to_string(), sealed);
        Ok(())
    }

    /// Seals every value again for `public_key` (a newer certificate), keeping everything
    /// else: what the controller's `/v1/rotate` does.
    pub fn reseal(
        &mut self,
        keys: &[PrivateKey],
        public_key: &PublicKey,
    ) -> Result<(), ResourceError> {
        let values = self.open_values(keys)?;
        let label = self.label();
        for (key, plain) in values.iter() {
            let sealed =
                sealed_value::seal_base64(public_key, &label, plain).map_err(|source| {
                    ResourceError::Seal {
                        key: key.clone(),
                        source,
                    }
                })?;
            self.spec.encrypted_data.insert(key.clone(), sealed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};
    use crate::test_keys;

    fn secret(yaml: &str) -> Secret {
        let doc = crate::manifest::parse_documents(yaml.as_bytes())
            .unwrap()
            .remove(0);
        crate::manifest::decode(0, doc, "Secret").unwrap()
    }

    fn keys() -> Vec<PrivateKey> {
        vec![test_keys::rsa_1024().clone()]
    }

    const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  uid: 1234
  resourceVersion: '9'
  labels: {app: db}
  annotations:
    team: core
    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"password\":\"leak\"}}'
  ownerReferences: [{kind: X}]
  finalizers: [keep]
type: kubernetes.io/basic-auth
immutable: true
data:
  binary: AP8B
  password: b2xk
stringData:
  password: new
  port: 5432
";

    #[test]
    fn seal_then_unseal_gives_the_secret_back() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        assert_eq!(sealed.metadata.name.as_deref(), Some("db"));
        assert_eq!(sealed.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(sealed.scope(), Scope::Strict);
        assert_eq!(
            sealed.spec.encrypted_data.keys().collect::<Vec<_>>(),
            ["binary", "password", "port"]
        );
        let tm = &sealed.spec.template.metadata;
        assert_eq!(tm.labels.get("app").map(String::as_str), Some("db"));
        assert_eq!(
            tm.annotations.len(),
            1,
            "last-applied stripped: {:?}",
            tm.annotations
        );
        assert!(!tm.other.contains_key("uid") && !tm.other.contains_key("ownerReferences"));
        assert!(tm.other.contains_key("finalizers"));
        assert_eq!(
            sealed.spec.template.type_.as_deref(),
            Some("kubernetes.io/basic-auth")
        );
        assert_eq!(sealed.spec.template.immutable, Some(true));

        let back = sealed.unseal(&keys()).unwrap();
        assert_eq!(
            back.data["binary"].as_bytes(),
            [0x00, 0xff, 0x01],
            "raw bytes, not base64"
        );
        assert_eq!(back.data["password"].as_bytes(), b"new", "stringData wins");
        assert_eq!(back.data["port"].as_bytes(), b"5432");
        assert_eq!(back.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(back.metadata.name.as_deref(), Some("db"));
    }

    #[test]
    fn scope_flag_overrides_annotations_and_is_written_on_both_objects() {
        let mut s = secret(SECRET);
        s.metadata
            .annotations
            .insert(NAMESPACE_WIDE_ANNOTATION.into(), "true".into());
        let pk = test_keys::rsa_1024().to_public_key();
        let by_annotation = SealedSecret::seal(&s, &pk, None).unwrap();
        assert_eq!(by_annotation.scope(), Scope::NamespaceWide);
        let by_flag = SealedSecret::seal(&s, &pk, Some(Scope::ClusterWide)).unwrap();
        assert_eq!(by_flag.scope(), Scope::ClusterWide);
        let tm = &by_flag.spec.template.metadata.annotations;
        assert_eq!(
            tm.get(CLUSTER_WIDE_ANNOTATION).map(String::as_str),
            Some("true")
        );
        assert!(!tm.contains_key(NAMESPACE_WIDE_ANNOTATION));
    }

    #[test]
    fn unseal_tries_every_key_for_every_value() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        let keys = [
            test_keys::rsa_1024_other().clone(),
            test_keys::rsa_1024().clone(),
        ];
        assert_eq!(sealed.unseal(&keys).unwrap().data.len(), 3);
        let wrong = [test_keys::rsa_1024_other().clone()];
        assert!(matches!(sealed.unseal(&wrong), Err(ResourceError::Open(e)) if e.len() == 3));
    }

    #[test]
    fn strict_value_does_not_open_under_another_name() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let mut sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        sealed.metadata.name = Some("other".into());
        let err = sealed.unseal(&keys()).unwrap_err();
        assert!(
            matches!(&err, ResourceError::Open(e) if e.len() == 3),
            "{err}"
        );
        assert!(!err.to_string().contains("new"), "no plaintext in errors");
    }

    #[test]
    fn namespace_is_required_unless_cluster_wide() {
        let mut s = secret(SECRET);
        s.metadata.namespace = None;
        let pk = test_keys::rsa_1024().to_public_key();
        assert!(matches!(
            SealedSecret::seal(&s, &pk, None),
            Err(ResourceError::NoNamespace)
        ));
        let cw = SealedSecret::seal(&s, &pk, Some(Scope::ClusterWide)).unwrap();
        assert_eq!(cw.unseal(&keys()).unwrap().data.len(), 3);
    }

    #[test]
    fn template_data_renders_and_null_removes() {
        let s = secret(SECRET);
        let pk = test_keys::rsa_1024().to_public_key();
        let mut sealed = SealedSecret::seal(&s, &pk, None).unwrap();
        sealed.spec.template.data.insert(
            "dsn".into(),
            Some("pg://{{ .password }}@db:{{ .port }}".into()),
        );
        sealed.spec.template.data.insert("binary".into(), None);
        let back = sealed.unseal(&keys()).unwrap();
        assert_eq!(back.data["dsn"].as_bytes(), b"pg://new@db:5432");
        assert!(!back.data.contains_key("binary"));
    }

    #[test]
    fn reads_kubeseal_json_and_writes_kind_first() {
        let json = r#"{"kind":"SealedSecret","apiVersion":"bitnami.com/v1alpha1",
            "metadata":{"name":"a","namespace":"b","creationTimestamp":null},
            "spec":{"template":{"metadata":{"name":"a","namespace":"b","creationTimestamp":null}},
                    "encryptedData":{"k":"AAAA"}},
            "status":{"observedGeneration":3,"conditions":[{"type":"Synced","status":"True"}]}}"#;
        let ss: SealedSecret = serde_json::from_str(json).unwrap();
        assert_eq!(ss.status.as_ref().unwrap().observed_generation, Some(3));
        let out = serde_json::to_string(&ss).unwrap();
        assert!(out.starts_with(r#"{"kind":"SealedSecret","apiVersion":"bitnami.com/v1alpha1""#));
    }

    #[test]
    fn bad_data_is_reported_without_the_value() {
        let doc = serde_json::json!({"kind": "Secret", "data": {"k": "not base64 hunter2"}});
        let err = crate::manifest::decode::<Secret>(0, doc, "Secret").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let doc = serde_json::json!({"kind": "Secret", "data": {"k": 12345}});
        let err = crate::manifest::decode::<Secret>(0, doc, "Secret").unwrap_err();
        assert!(!err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn debug_output_redacts_values() {
        let s = secret(SECRET);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("5432"),
            "stringData value in Debug: {debug}"
        );
        assert!(debug.contains("SecretText(<4 bytes>)"), "{debug}");
    }
}

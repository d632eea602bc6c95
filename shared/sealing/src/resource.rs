//! The core/v1 Secret (a minimal one) and the object metadata both resources carry, as serde
//! types that read and write the API's JSON (and YAML). The SealedSecret is in
//! [`crate::sealed_secret`].

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// `null` reads as the type's default, as Go's decoder treats a null map or list.
pub(crate) fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
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

/// What sealing reads from an object's metadata: name, namespace and annotations (the scope).
/// Implemented by this crate's [`ObjectMeta`] (files: keeps every field as it came) and, with
/// the `kube` feature, by k8s-openapi's (objects the controller watches), so that one
/// [`crate::SealedSecret`] type and one unseal serve both.
pub trait Metadata: Clone + Default + Serialize {
    fn object_name(&self) -> &str;
    fn object_namespace(&self) -> &str;
    fn object_annotations(&self) -> Option<&BTreeMap<String, String>>;
}

impl Metadata for ObjectMeta {
    fn object_name(&self) -> &str {
        self.name()
    }
    fn object_namespace(&self) -> &str {
        self.namespace()
    }
    fn object_annotations(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.annotations)
    }
}

#[cfg(feature = "kube")]
impl Metadata for k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    fn object_name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    fn object_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
    fn object_annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.annotations.as_ref()
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

impl Secret {
    /// Every value as bytes: `data` (decoded), then `stringData` (UTF-8), so that inserting
    /// them in order lets `stringData` win over a `data` key of the same name, as the API
    /// server merges them.
    pub fn values(&self) -> impl Iterator<Item = (&String, &[u8])> {
        self.data
            .iter()
            .map(|(k, v)| (k, v.as_bytes()))
            .chain(self.string_data.iter().map(|(k, v)| (k, v.0.as_bytes())))
    }
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

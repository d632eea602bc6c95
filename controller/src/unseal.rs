//! Turns a SealedSecret into the Secret it stands for. Pure: no I/O, so the
//! rules (scopes, templates, the deprecated single-blob form) are pinned by
//! unit tests. Errors name keys and reasons, never values.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use serde::Deserialize;

use crate::crd::{Scope, SealedSecret};
use crate::keystore::Key;
use crate::sealing;
use enseal_sealing::template;
use zeroize::Zeroizing;

/// What the Secret should hold. The values are secret: never log this.
#[derive(Default)]
pub struct DesiredSecret {
    pub data: BTreeMap<String, ByteString>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub type_: Option<String>,
    pub immutable: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error("no sealing keys are loaded yet")]
    NoKeys,
    #[error("encryptedData[{key}] is not a string")]
    NotAString { key: String },
    #[error("encryptedData[{key}] is malformed: {reason}")]
    Malformed { key: String, reason: String },
    #[error(
        "encryptedData[{key}] could not be decrypted with any of the {keys} sealing key(s): \
         it was sealed with another controller's key, or for another name, namespace or scope \
         (this object's scope is {scope})"
    )]
    NoKeyOpens {
        key: String,
        keys: usize,
        scope: &'static str,
    },
    #[error("spec.data (deprecated single-blob form) does not hold a Secret: {0}")]
    BadLegacyData(String),
    #[error("template data[{key}]: {reason}")]
    Template { key: String, reason: String },
}

impl UnsealError {
    /// Short machine-readable reason for the status condition and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            UnsealError::NoKeys => "NoKeys",
            UnsealError::NotAString { .. } | UnsealError::Malformed { .. } => "MalformedValue",
            UnsealError::NoKeyOpens { .. } => "DecryptFailed",
            UnsealError::BadLegacyData(_) => "MalformedValue",
            UnsealError::Template { .. } => "TemplateFailed",
        }
    }
}

fn open(
    keys: &[std::sync::Arc<Key>],
    label: &[u8],
    name: &str,
    value: &str,
    scope: Scope,
) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    let privs: Vec<&sealing::PrivateKey> = keys.iter().map(|k| &k.private).collect();
    sealing::open_value(&privs, label, value).map_err(|e| match e {
        sealing::OpenFailure::Malformed(reason) => UnsealError::Malformed {
            key: name.to_owned(),
            reason,
        },
        sealing::OpenFailure::NoKeyOpens => UnsealError::NoKeyOpens {
            key: name.to_owned(),
            keys: keys.len(),
            scope: scope.name(),
        },
    })
}

/// Decrypts every value of `ss` with `keys` (newest first) under the scope
/// its annotations give, and renders the template.
pub fn unseal(
    ss: &SealedSecret,
    keys: &[std::sync::Arc<Key>],
) -> Result<DesiredSecret, UnsealError> {
    if keys.is_empty() {
        return Err(UnsealError::NoKeys);
    }
    let namespace = ss.metadata.namespace.as_deref().unwrap_or_default();
    let name = ss.metadata.name.as_deref().unwrap_or_default();
    let scope = ss.scope();
    let label = scope.label(namespace, name);

    let mut out = DesiredSecret::default();
    if let Some(blob) = ss.spec.data.as_deref().filter(|b| !b.is_empty()) {
        let plain = open(keys, &label, "(spec.data)", blob, scope)?;
        let legacy: LegacySecret = serde_json::from_slice(&plain).map_err(|e| {
            UnsealError::BadLegacyData(format!("line {} column {}", e.line(), e.column()))
        })?;
        out.data.extend(legacy.data.unwrap_or_default());
        for (k, v) in legacy.string_data.unwrap_or_default() {
            out.data.insert(k, ByteString(v.into_bytes()));
        }
        if legacy.type_.is_some() {
            out.type_ = legacy.type_;
        }
    }
    for (key, value) in &ss.spec.encrypted_data {
        let value = value
            .as_str()
            .ok_or_else(|| UnsealError::NotAString { key: key.clone() })?;
        let plain = open(keys, &label, key, value, scope)?;
        out.data.insert(key.clone(), ByteString(plain.to_vec()));
    }

    if let Some(template) = &ss.spec.template {
        if let Some(meta) = &template.metadata {
            out.labels = meta.labels.clone().unwrap_or_default();
            out.annotations = meta.annotations.clone().unwrap_or_default();
        }
        if template.type_.is_some() {
            out.type_ = template.type_.clone();
        }
        out.immutable = template.immutable;
        if let Some(tdata) = &template.data {
            let values: BTreeMap<String, Zeroizing<Vec<u8>>> = out
                .data
                .iter()
                .map(|(k, v)| (k.clone(), Zeroizing::new(v.0.clone())))
                .collect();
            for (key, text) in tdata {
                let value = template::render(text, &values).map_err(|e| UnsealError::Template {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                out.data.insert(key.clone(), ByteString(value.to_vec()));
            }
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacySecret {
    data: Option<BTreeMap<String, ByteString>>,
    string_data: Option<BTreeMap<String, String>>,
    #[serde(rename = "type")]
    type_: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_is_its_own_error() {
        let ss = SealedSecret::default();
        assert!(matches!(unseal(&ss, &[]), Err(UnsealError::NoKeys)));
    }
}

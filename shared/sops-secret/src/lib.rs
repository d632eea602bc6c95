//! The `enseal.dev/v1alpha1` SopsSecret resource: an enseal/sops-encrypted file that the
//! controller decrypts into one or more native Secrets.
//!
//! Integrity: the file is kept in `spec.encrypted` as one opaque string, byte for byte as
//! enseal/sops wrote it. The sops MAC covers the values (and their order and types) of the file;
//! were the file spread out as structured YAML under `spec`, the API server would re-encode it
//! on the way to storage (key order, number formatting like `1.0` -> `1`, defaults, dropped
//! comments) and the MAC computed over the returned object would no longer match. A string is
//! stored and returned exactly, so the MAC verifies what the author encrypted and any change to a
//! value, key or order is refused. The CRD at deploy/crds/enseal.dev_sopssecrets.yaml is
//! generated from this type (see the test at the bottom; `ENSEAL_UPDATE_CRDS=1` rewrites it).
//!
//! The controller reconciles these objects; `enseal sops-secret` writes them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "enseal.dev/v1alpha1";
pub const KIND: &str = "SopsSecret";
#[cfg(test)]
pub const CRD_PATH: &str = "deploy/crds/enseal.dev_sopssecrets.yaml";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "enseal.dev",
    version = "v1alpha1",
    kind = "SopsSecret",
    plural = "sopssecrets",
    shortname = "sops",
    namespaced,
    status = "SopsSecretStatus",
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretSpec {
    /// The format of the encrypted file, which decides how it is parsed and which Secrets it
    /// becomes: yaml (a stream of Secret manifests, or one mapping), json, dotenv, ini, binary.
    #[serde(default)]
    pub format: SopsFormat,
    /// The enseal/sops-encrypted file, verbatim. Kept as one string so that the API server cannot
    /// change a byte of it and the sops MAC still verifies.
    pub encrypted: String,
    /// For `binary`: the Secret key the decrypted content is stored under (default `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which keys open the file. Without it the controller's own keys are used, and only for a
    /// file bound to this namespace (every Secret manifest in it names this namespace in
    /// `metadata.namespace`) unless the cluster admin trusts the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,
}

/// How a SopsSecret's file is decrypted (the shape of Flux's `spec.decryption`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// A Secret in the SopsSecret's own namespace whose `*.agekey` entries are the age
    /// identities the file is decrypted with. When set, only these are used: never the
    /// controller's age keys or its KMS access. There is deliberately no namespace field: a
    /// SopsSecret can only use keys its own namespace holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretRef>,
}

/// A Secret in the referring object's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalSecretRef {
    /// The Secret's name.
    pub name: String,
}

impl SopsSecretSpec {
    /// The name of the namespace key Secret, when the file is to be opened with one.
    pub fn key_secret(&self) -> Option<&str> {
        self.decryption
            .as_ref()
            .and_then(|d| d.secret_ref.as_ref())
            .map(|r| r.name.as_str())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SopsFormat {
    #[default]
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl From<enseal_sops::stores::Format> for SopsFormat {
    fn from(format: enseal_sops::stores::Format) -> SopsFormat {
        use enseal_sops::stores::Format;
        match format {
            Format::Yaml => SopsFormat::Yaml,
            Format::Json => SopsFormat::Json,
            Format::Dotenv => SopsFormat::Dotenv,
            Format::Ini => SopsFormat::Ini,
            Format::Binary => SopsFormat::Binary,
        }
    }
}

impl SopsFormat {
    pub fn store_format(self) -> enseal_sops::stores::Format {
        use enseal_sops::stores::Format;
        match self {
            SopsFormat::Yaml => Format::Yaml,
            SopsFormat::Json => Format::Json,
            SopsFormat::Dotenv => Format::Dotenv,
            SopsFormat::Ini => Format::Ini,
            SopsFormat::Binary => Format::Binary,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Secrets made from the last successful decryption (pruned when they disappear from
    /// the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The CRD as YAML, as checked in under deploy/crds.
#[cfg(test)]
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(SopsSecret::crd()).unwrap_or_default();
    let yaml = serde_norway::to_string(&crd).unwrap_or_default();
    format!(
        "# Generated from shared/sops-secret/src/lib.rs (SopsSecret); do not edit by hand.\n\
         # Rewrite with: ENSEAL_UPDATE_CRDS=1 cargo test -p enseal-sops-secret crd_file\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(CRD_PATH)
    }

    #[test]
    fn crd_file_is_generated_from_the_rust_type() {
        let want = crd_yaml();
        let path = repo_file();
        if std::env::var_os("ENSEAL_UPDATE_CRDS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{CRD_PATH} is stale: run ENSEAL_UPDATE_CRDS=1 cargo test -p enseal-sops-secret crd_file"
        );
    }

    #[test]
    fn crd_schema_names_every_spec_and_status_field() {
        let crd: serde_json::Value = serde_json::from_str(
            &serde_json::to_string(&{
                use kube::CustomResourceExt;
                SopsSecret::crd()
            })
            .unwrap(),
        )
        .unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        for f in ["format", "encrypted", "key", "decryption"] {
            assert!(schema["spec"]["properties"][f].is_object(), "spec.{f}");
        }
        let secret_ref = &schema["spec"]["properties"]["decryption"]["properties"]["secretRef"];
        assert_eq!(
            secret_ref["required"],
            serde_json::json!(["name"]),
            "{secret_ref}"
        );
        assert!(
            secret_ref["properties"].get("namespace").is_none(),
            "a key Secret is always in the SopsSecret's own namespace"
        );
        assert_eq!(schema["spec"]["required"], serde_json::json!(["encrypted"]));
        for f in ["conditions", "observedGeneration", "secrets"] {
            assert!(schema["status"]["properties"][f].is_object(), "status.{f}");
        }
        assert_eq!(
            crd["spec"]["versions"][0]["subresources"]["status"],
            serde_json::json!({})
        );
        assert_eq!(crd["spec"]["scope"], "Namespaced");
    }

    #[test]
    fn the_encrypted_text_survives_a_json_round_trip_byte_for_byte() {
        let text = "a: ENC[AES256_GCM,data:x,iv:y,tag:z,type:float]\n# c\nsops:\n    mac: m\n";
        let ss = SopsSecret::new(
            "n",
            SopsSecretSpec {
                format: SopsFormat::Yaml,
                encrypted: text.into(),
                key: None,
                decryption: None,
            },
        );
        let back: SopsSecret = serde_json::from_str(&serde_json::to_string(&ss).unwrap()).unwrap();
        assert_eq!(back.spec.encrypted, text);
    }
}

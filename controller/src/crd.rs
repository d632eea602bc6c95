//! The `bitnami.com/v1alpha1` SealedSecret resource as the API server stores it
//! (deploy/crds/bitnami.com_sealedsecrets.yaml). Kept field-for-field with
//! Sealed Secrets' Go types so objects written by either controller read back
//! unchanged; unknown fields are carried along rather than dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use enseal_shared::sealing::Scope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "bitnami.com";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "SealedSecret";
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
pub const PLURAL: &str = "sealedsecrets";

pub const ANN_MANAGED: &str = "sealedsecrets.bitnami.com/managed";
pub const ANN_PATCH: &str = "sealedsecrets.bitnami.com/patch";
pub const ANN_SKIP_OWNER_REFS: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SealedSecretSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SealedSecretStatus>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
    /// Sealed values by key. A map of strings in practice; the CRD
    /// preserves unknown fields here, so anything else is reported as
    /// malformed rather than failing the whole list decode.
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, serde_json::Value>,
    /// Deprecated single-blob form: the whole Secret, JSON, sealed as one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl kube::Resource for SealedSecret {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SealedSecret {
    /// The scope this object was sealed for, from its own annotations.
    pub fn scope(&self) -> Scope {
        self.metadata
            .annotations
            .as_ref()
            .map(Scope::from_annotations)
            .unwrap_or_default()
    }

    /// Annotations of the Secret template, where the Secret-side flags live.
    pub fn template_annotation_is_true(&self, key: &str) -> bool {
        self.spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_comes_from_the_objects_own_annotations() {
        let mut ss = SealedSecret::default();
        assert_eq!(ss.scope(), Scope::Strict);
        ss.metadata.annotations = Some(
            [
                (
                    "sealedsecrets.bitnami.com/namespace-wide".to_owned(),
                    "true".to_owned(),
                ),
                (
                    "sealedsecrets.bitnami.com/cluster-wide".to_owned(),
                    "true".to_owned(),
                ),
            ]
            .into(),
        );
        assert_eq!(ss.scope(), Scope::ClusterWide);
    }

    #[test]
    fn a_kubeseal_object_parses_and_keeps_template_extras() {
        let json = r#"{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret",
          "metadata":{"name":"s","namespace":"n","creationTimestamp":null},
          "spec":{"encryptedData":{"a":"AgB="},
                  "template":{"metadata":{"name":"s","namespace":"n","creationTimestamp":null,
                                          "labels":{"x":"y"}},"type":"Opaque"}}}"#;
        let ss: SealedSecret = serde_json::from_str(json).unwrap();
        assert_eq!(ss.spec.encrypted_data.len(), 1);
        let t = ss.spec.template.unwrap();
        assert_eq!(t.type_.as_deref(), Some("Opaque"));
        let m = t.metadata.unwrap();
        assert_eq!(m.labels.unwrap()["x"], "y");
        assert!(m.other.contains_key("name"));
    }
}

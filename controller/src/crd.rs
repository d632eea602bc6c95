//! The `bitnami.com/v1alpha1` SealedSecret resource as the API server stores it
//! (deploy/crds/bitnami.com_sealedsecrets.yaml). Kept field-for-field with
//! Sealed Secrets' Go types so objects written by either controller read back
//! unchanged; unknown fields are carried along rather than dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use enseal_sealing::Scope;
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

    use serde_json::{json, Value};

    /// The hand-written CRD: checked against the Rust types below, since it cannot be generated
    /// from them (it must stay Sealed Secrets' schema).
    const CRD_PATH: &str = "deploy/crds/bitnami.com_sealedsecrets.yaml";

    fn crd_schema() -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(CRD_PATH);
        let text = std::fs::read_to_string(&path).unwrap();
        let crd: Value = serde_norway::from_str(&text).unwrap();
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["names"]["kind"], KIND);
        assert_eq!(crd["spec"]["names"]["plural"], PLURAL);
        let v = versions.iter().find(|v| v["name"] == VERSION).unwrap();
        assert_eq!(v["served"], true);
        // The controller patches status through the subresource.
        assert!(v["subresources"]["status"].is_object(), "{v}");
        v["schema"]["openAPIV3Schema"].clone()
    }

    /// Every value the Rust types can write, filled in. Struct literals without `..Default` so
    /// that a field added to a type fails to compile here until it is added to the sample.
    fn everything() -> SealedSecret {
        let time: Time = serde_json::from_value(json!("2026-01-02T03:04:05Z")).unwrap();
        let map = |k: &str, v: &str| Some(BTreeMap::from([(k.to_owned(), v.to_owned())]));
        SealedSecret {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some(KIND.to_owned()),
            metadata: ObjectMeta {
                name: Some("s".to_owned()),
                ..ObjectMeta::default()
            },
            spec: SealedSecretSpec {
                template: Some(SecretTemplate {
                    metadata: Some(TemplateMetadata {
                        labels: map("l", "v"),
                        annotations: map("a", "v"),
                        finalizers: Some(vec!["f".to_owned()]),
                        // What kubeseal writes into the template besides the three above.
                        other: BTreeMap::from([
                            ("name".to_owned(), json!("s")),
                            ("namespace".to_owned(), json!("n")),
                        ]),
                    }),
                    type_: Some("Opaque".to_owned()),
                    immutable: Some(true),
                    data: map("k", "{{ .k }}"),
                }),
                encrypted_data: BTreeMap::from([("k".to_owned(), json!("AgB="))]),
                data: Some("AgB=".to_owned()),
            },
            status: Some(SealedSecretStatus {
                conditions: Some(vec![Condition {
                    type_: "Synced".to_owned(),
                    status: "True".to_owned(),
                    reason: Some("Unsealed".to_owned()),
                    message: Some("ok".to_owned()),
                    last_update_time: Some(time.clone()),
                    last_transition_time: Some(time),
                }]),
                observed_generation: Some(1),
            }),
        }
    }

    /// Problems with `value` under `schema` at `path`: a field the schema does not declare
    /// (the API server would prune it), a type the schema does not allow, a required field
    /// missing. `seen` collects every schema property path the value visits.
    fn check(
        path: &str,
        value: &Value,
        schema: &Value,
        seen: &mut Vec<String>,
        bad: &mut Vec<String>,
    ) {
        if value.is_null() {
            if schema["nullable"] != true {
                bad.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        let ty = schema["type"].as_str().unwrap_or("");
        let ok = match value {
            Value::Object(_) => ty == "object",
            Value::Array(_) => ty == "array",
            Value::String(_) => ty == "string",
            Value::Bool(_) => ty == "boolean",
            Value::Number(n) => ty == "number" || (ty == "integer" && n.is_i64()),
            Value::Null => unreachable!(),
        };
        if !ok {
            bad.push(format!("{path}: {value} is not of schema type {ty:?}"));
            return;
        }
        match value {
            Value::Object(fields) => {
                for r in schema["required"].as_array().into_iter().flatten() {
                    if !fields.contains_key(r.as_str().unwrap_or_default()) {
                        bad.push(format!("{path}: required {r} is not written"));
                    }
                }
                let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
                for (k, v) in fields {
                    let at = format!("{path}.{k}");
                    if let Some(p) = schema["properties"].get(k) {
                        seen.push(at.clone());
                        check(&at, v, p, seen, bad);
                    } else if schema["additionalProperties"].is_object() {
                        check(&at, v, &schema["additionalProperties"], seen, bad);
                    } else if !preserve {
                        bad.push(format!("{at}: not in the CRD schema (would be pruned)"));
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    check(&format!("{path}[{i}]"), v, &schema["items"], seen, bad);
                }
            }
            _ => {}
        }
    }

    fn schema_properties(path: &str, schema: &Value, out: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (k, p) in props {
                let at = format!("{path}.{k}");
                out.push(at.clone());
                schema_properties(&at, p, out);
            }
        }
        if schema["items"].is_object() {
            schema_properties(&format!("{path}[0]"), &schema["items"], out);
        }
    }

    fn validate(ss: &SealedSecret, schema: &Value) -> (Vec<String>, Vec<String>) {
        let mut value = serde_json::to_value(ss).unwrap();
        // ObjectMeta is the API server's own, not part of the CRD's schema.
        value["metadata"] = json!({});
        let (mut seen, mut bad) = (Vec::new(), Vec::new());
        check("", &value, schema, &mut seen, &mut bad);
        (seen, bad)
    }

    #[test]
    fn crd_file_declares_every_field_the_rust_types_write() {
        let schema = crd_schema();
        let (seen, bad) = validate(&everything(), &schema);
        assert!(
            bad.is_empty(),
            "{CRD_PATH} disagrees with crd.rs:\n{}",
            bad.join("\n")
        );
        // A default object (what the controller reads when fields are absent) still carries
        // every field the schema requires.
        let (_, bad) = validate(&SealedSecret::default(), &schema);
        assert!(bad.is_empty(), "{CRD_PATH}: {}", bad.join("\n"));

        // The other way: a schema field the Rust types do not know would be dropped when the
        // controller writes an object back, losing what Sealed Secrets' controller put there.
        let mut declared = Vec::new();
        schema_properties("", &schema, &mut declared);
        let unknown: Vec<&String> = declared
            .iter()
            .filter(|p| p.as_str() != ".metadata" && !seen.contains(p))
            .collect();
        assert!(
            unknown.is_empty(),
            "{CRD_PATH} declares fields crd.rs neither reads nor writes: {unknown:?}"
        );
    }

    #[test]
    fn the_schema_check_catches_an_undeclared_field_and_a_wrong_type() {
        let schema = crd_schema();
        let mut v = serde_json::to_value(everything()).unwrap();
        v["metadata"] = json!({});
        v["spec"]["template"]["shape"] = json!("x");
        v["status"]["observedGeneration"] = json!("1");
        let (mut seen, mut bad) = (Vec::new(), Vec::new());
        check("", &v, &schema, &mut seen, &mut bad);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with(".spec.template.shape"), "{bad:?}");
        assert!(bad[1].starts_with(".status.observedGeneration"), "{bad:?}");
    }
}

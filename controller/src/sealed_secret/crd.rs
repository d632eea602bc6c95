//! The `bitnami.com/v1alpha1` SealedSecret's CRD (deploy/crds/bitnami.com_sealedsecrets.yaml) is
//! Sealed Secrets' own schema, written by hand, so it cannot be generated from the Rust type
//! (enseal_sealing's `SealedSecret`). The tests here check the two agree: every field the type
//! writes is declared (the API server would prune anything else), and every declared field is
//! known to the type (or the controller would drop it when writing an object back).

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use enseal_sealing::sealed_secret::*;
    use enseal_sealing::{ObjectMeta, Scope, SealedSecretObject as SealedSecret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta as ApiObjectMeta;

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
        let t = ss.spec.template;
        assert_eq!(t.type_.as_deref(), Some("Opaque"));
        assert_eq!(t.metadata.labels["x"], "y");
        assert_eq!(t.metadata.name(), "s");
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
        assert_eq!(crd["spec"]["group"], SEALED_SECRET_GROUP);
        assert_eq!(crd["spec"]["names"]["kind"], SEALED_SECRET_KIND);
        assert_eq!(crd["spec"]["names"]["plural"], SEALED_SECRET_PLURAL);
        let v = versions
            .iter()
            .find(|v| v["name"] == SEALED_SECRET_VERSION)
            .unwrap();
        assert_eq!(v["served"], true);
        // The controller patches status through the subresource.
        assert!(v["subresources"]["status"].is_object(), "{v}");
        v["schema"]["openAPIV3Schema"].clone()
    }

    /// Every value the Rust types can write, filled in. Struct literals without `..Default` so
    /// that a field added to a type fails to compile here until it is added to the sample.
    fn everything() -> SealedSecret {
        let time = "2026-01-02T03:04:05Z".to_owned();
        let map = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        SealedSecret {
            api_version: SEALED_SECRET_API_VERSION.to_owned(),
            kind: SEALED_SECRET_KIND.to_owned(),
            metadata: ApiObjectMeta {
                name: Some("s".to_owned()),
                ..ApiObjectMeta::default()
            },
            spec: SealedSecretSpec {
                template: SecretTemplate {
                    metadata: ObjectMeta {
                        // What kubeseal writes into the template besides labels and
                        // annotations.
                        name: Some("s".to_owned()),
                        generate_name: None,
                        namespace: Some("n".to_owned()),
                        labels: map("l", "v"),
                        annotations: map("a", "v"),
                        other: serde_json::Map::from_iter([(
                            "finalizers".to_owned(),
                            json!(["f"]),
                        )]),
                    },
                    type_: Some("Opaque".to_owned()),
                    immutable: Some(true),
                    data: BTreeMap::from([("k".to_owned(), Some("{{ .k }}".to_owned()))]),
                },
                encrypted_data: map("k", "AgB="),
                data: Some("AgB=".to_owned()),
            },
            status: Some(SealedSecretStatus {
                conditions: vec![SealedSecretCondition {
                    type_: "Synced".to_owned(),
                    status: "True".to_owned(),
                    reason: Some("Unsealed".to_owned()),
                    message: Some("ok".to_owned()),
                    last_update_time: Some(time.clone()),
                    last_transition_time: Some(time),
                }],
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

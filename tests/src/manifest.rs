//! Kubernetes manifests written in YAML, read as JSON values so that tests can index them the
//! way the API server returns objects.

use serde_json::Value;

/// Every document of a YAML stream as a JSON value. Panics on YAML the tests do not expect
/// (it is always a manifest the project itself renders or checks in).
pub fn yaml_docs(text: &str) -> Vec<Value> {
    use saphyr::{LoadableYamlNode, Yaml};
    fn conv(y: &Yaml) -> Value {
        match y {
            Yaml::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), conv(v)))
                    .collect(),
            ),
            Yaml::Sequence(s) => Value::Array(s.iter().map(conv).collect()),
            other => {
                if let Some(b) = other.as_bool() {
                    Value::Bool(b)
                } else if let Some(i) = other.as_integer() {
                    Value::from(i)
                } else if let Some(s) = other.as_str() {
                    Value::String(s.to_owned())
                } else if other.is_null() {
                    Value::Null
                } else {
                    panic!("unsupported YAML node: {other:?}")
                }
            }
        }
    }
    Yaml::load_from_str(text)
        .expect("manifest YAML parses")
        .iter()
        .map(conv)
        .collect()
}

/// The first document of a YAML stream as a JSON value.
pub fn yaml_to_json(text: &str) -> Value {
    yaml_docs(text)
        .into_iter()
        .next()
        .expect("the manifest has a document")
}

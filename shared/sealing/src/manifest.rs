//! Kubernetes manifests in and out: YAML streams (several `---` documents), JSON (one or several
//! concatenated objects) and `List` objects, read into `serde_json::Value`s first so that typed
//! decoding never sees YAML-only constructs, and so that errors come from our own checks (serde's
//! "invalid type" messages quote scalar values, which could be secrets).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// kubeseal's default output.
    #[default]
    Json,
    Yaml,
}

impl ManifestFormat {
    pub fn from_name(name: &str) -> Option<ManifestFormat> {
        match name {
            "json" => Some(ManifestFormat::Json),
            "yaml" | "yml" => Some(ManifestFormat::Yaml),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("line {line}, column {column}: invalid YAML: {message}")]
    Yaml {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}, column {column}: invalid JSON: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("document {index}: {message}")]
    Document { index: usize, message: String },
    #[error("cannot encode the output: {0}")]
    Encode(String),
}

/// The objects in `bytes`: each YAML document or JSON value, with the `items` of a `List`
/// spliced in its place; empty documents are skipped.
pub fn parse_documents(bytes: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let docs = if matches!(first, Some(b'{') | Some(b'[')) {
        parse_json_stream(bytes)?
    } else {
        parse_yaml_stream(bytes)?
    };
    objects(docs)
}

/// The objects of documents already parsed (by [`parse_documents`], or built from a decrypted
/// tree): the `items` of a `List` spliced in its place, empty documents skipped.
pub fn objects(docs: Vec<Value>) -> Result<Vec<Value>, ManifestError> {
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                match map.get("items") {
                    Some(Value::Array(items)) => {
                        out.extend(items.iter().filter(|v| !v.is_null()).cloned())
                    }
                    None | Some(Value::Null) => {}
                    Some(_) => {
                        return Err(ManifestError::Document {
                            index: out.len(),
                            message: "a List's items must be a sequence".into(),
                        })
                    }
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn parse_json_stream(bytes: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let mut docs = Vec::new();
    for doc in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        docs.push(doc.map_err(|e| ManifestError::Json {
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?);
    }
    Ok(docs)
}

/// serde_json's message without its own " at line L column C" suffix (we print ours).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

fn parse_yaml_stream(bytes: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_slice(bytes) {
        let doc = <Value as serde::Deserialize>::deserialize(de).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            ManifestError::Yaml {
                line,
                column,
                message,
            }
        })?;
        docs.push(doc);
    }
    Ok(docs)
}

/// The `kind` of a parsed object, for messages ("" when absent).
pub fn kind_of(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// Decodes one object as `T`, after checking its `kind`. Errors name the document, never a
/// value: callers' types decode their secret fields through value-free checks.
pub fn decode<T: DeserializeOwned>(
    index: usize,
    doc: Value,
    expected_kind: &str,
) -> Result<T, ManifestError> {
    let kind = kind_of(&doc);
    if kind != expected_kind {
        return Err(ManifestError::Document {
            index,
            message: if kind.is_empty() {
                format!("expected a {expected_kind}, found an object without kind")
            } else {
                format!("expected a {expected_kind}, found a {kind}")
            },
        });
    }
    serde_json::from_value(doc).map_err(|e| ManifestError::Document {
        index,
        message: format!("{expected_kind}: {}", json_message(&e)),
    })
}

/// [`decode`] for every document, in order.
pub fn decode_all<T: DeserializeOwned>(
    docs: Vec<Value>,
    expected_kind: &str,
) -> Result<Vec<T>, ManifestError> {
    docs.into_iter()
        .enumerate()
        .map(|(index, doc)| decode(index, doc, expected_kind))
        .collect()
}

/// Writes objects as kubeseal does: pretty JSON (several objects one after the other), or YAML
/// documents each opened by `---`. Zeroized on drop, since the objects may be plain Secrets.
pub fn write_documents<T: Serialize>(
    objects: &[T],
    format: ManifestFormat,
) -> Result<Zeroizing<String>, ManifestError> {
    let mut out = Zeroizing::new(String::new());
    for object in objects {
        match format {
            ManifestFormat::Json => {
                let text = Zeroizing::new(
                    serde_json::to_string_pretty(object)
                        .map_err(|e| ManifestError::Encode(e.to_string()))?,
                );
                out.push_str(&text);
                out.push('\n');
            }
            ManifestFormat::Yaml => {
                let json = serde_json::to_value(object)
                    .map_err(|e| ManifestError::Encode(e.to_string()))?;
                let text = Zeroizing::new(
                    serde_norway::to_string(&json_to_yaml(json))
                        .map_err(|e| ManifestError::Encode(e.to_string()))?,
                );
                out.push_str("---\n");
                out.push_str(&text);
            }
        }
    }
    Ok(out)
}

/// serde_json's arbitrary-precision numbers serialize as a private map outside serde_json;
/// YAML gets them as plain YAML numbers instead.
fn json_to_yaml(value: Value) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(b),
        Value::Number(n) => {
            let text = n.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Y::Number(i.into())
            } else if let Ok(u) = text.parse::<u64>() {
                Y::Number(u.into())
            } else if let Ok(f) = text.parse::<f64>() {
                Y::Number(f.into())
            } else {
                Y::String(text)
            }
        }
        Value::String(s) => Y::String(s),
        Value::Array(items) => Y::Sequence(items.into_iter().map(json_to_yaml).collect()),
        Value::Object(map) => Y::Mapping(
            map.into_iter()
                .map(|(k, v)| (Y::String(k), json_to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_skips_empty_documents_and_expands_lists() {
        let docs = parse_documents(
            b"---\nkind: Secret\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n- kind: Secret\n  metadata: {name: b}\n- kind: Secret\n  metadata: {name: c}\n",
        )
        .unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn json_stream_of_several_objects() {
        let docs = parse_documents(b" {\"kind\":\"Secret\"}\n{\"kind\":\"Secret\"}").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let err = parse_documents(b"kind: Secret\nmetadata: [unclosed\n").unwrap_err();
        match err {
            ManifestError::Yaml { line, .. } => assert!(line >= 2, "line {line}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let err = parse_documents(b"{\n  \"kind\": \"Secret\",\n  oops\n}").unwrap_err();
        match err {
            ManifestError::Json { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decode_checks_the_kind() {
        let doc = serde_json::json!({"kind": "ConfigMap"});
        let err = decode::<Value>(0, doc, "Secret").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 0: expected a Secret, found a ConfigMap"
        );
    }

    #[test]
    fn yaml_output_opens_each_document() {
        let out = write_documents(
            &[
                serde_json::json!({"a": 1}),
                serde_json::json!({"b": "true"}),
            ],
            ManifestFormat::Yaml,
        )
        .unwrap();
        assert_eq!(out.as_str(), "---\na: 1\n---\nb: 'true'\n");
    }
}

//! Binary files: the whole file is the one value `data`.
//!
//! A plain binary file (any bytes) becomes `{data: <bytes>}`; its encrypted form is a JSON
//! document `{"data": "ENC[...]", "sops": {...}}`, as sops writes it. Parsing therefore reads a
//! JSON object carrying both `data` and `sops` as the encrypted form, and anything else as raw
//! bytes.

use super::json::{self, parse_json, write_json};
use super::{Format, Layout, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Kind, Node, Scalar, Tree};

pub struct BinaryStore;

const DATA_KEY: &str = "data";

/// Which reading [`BinaryStore::parse`] chose.
pub(crate) enum Source {
    Raw,
    Json(json::Source),
}

impl Store for BinaryStore {
    fn format(&self) -> Format {
        Format::Binary
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        if let Ok((tree, Some(metadata), source)) = parse_json(bytes) {
            if tree
                .documents
                .first()
                .and_then(|d| d.get(DATA_KEY))
                .is_some()
            {
                return Ok(Parsed {
                    tree,
                    metadata: Some(metadata),
                    source: Layout::binary(Source::Json(source)),
                });
            }
        }
        Ok(Parsed {
            tree: Tree {
                documents: vec![Node::Map(vec![Item::Pair(
                    DATA_KEY.to_string(),
                    Node::Scalar(Scalar::from_bytes(Kind::Str, bytes.to_vec())),
                )])],
            },
            metadata: None,
            source: Layout::binary(Source::Raw),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        let layout = Layout::of_binary(original)?;
        if metadata.is_some() {
            // A raw file being encrypted has no JSON layout to keep: sops' canonical one it is.
            let source = layout.and_then(|s| match s {
                Source::Json(j) => Some(j),
                Source::Raw => None,
            });
            return write_json(tree, metadata, source, options);
        }
        let data = tree
            .documents
            .first()
            .and_then(|d| d.get(DATA_KEY))
            .and_then(Node::as_scalar)
            .filter(|s| matches!(s.kind, Kind::Str | Kind::Bytes))
            .ok_or_else(|| StoreError::Unrepresentable {
                format: "binary",
                message: "the tree has no string value `data` to write as the file".into(),
            })?;
        Ok(data.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_encrypt(tree: &Tree) -> Tree {
        assert!(tree.documents[0].get("data").is_some());
        Tree {
            documents: vec![Node::Map(vec![Item::Pair(
                "data".into(),
                Node::str("ENC[AES256_GCM,data:x,type:str]"),
            )])],
        }
    }

    fn metadata() -> Node {
        Node::Map(vec![Item::Pair("version".into(), Node::str("3.11.0"))])
    }

    #[test]
    fn any_bytes_become_the_data_value_and_come_back_exactly() {
        let bytes = b"\x00\x01binary\xff\n".to_vec();
        let plain = BinaryStore.parse(&bytes).unwrap();
        assert_eq!(
            plain.tree.documents[0].get("data"),
            Some(&Node::Scalar(Scalar::from_bytes(Kind::Str, bytes.clone())))
        );
        assert!(plain.metadata.is_none());
        let sealed = fake_encrypt(&plain.tree);
        let md = metadata();
        let encrypted = BinaryStore
            .write(&sealed, Some(&md), Some(&plain), &WriteOptions::default())
            .unwrap();
        // Like sops: the encrypted form is canonical JSON.
        assert_eq!(
            String::from_utf8(encrypted.clone()).unwrap(),
            "{\n\t\"data\": \"ENC[AES256_GCM,data:x,type:str]\",\n\t\"sops\": {\n\t\t\"version\": \"3.11.0\"\n\t}\n}\n"
        );
        let enc_parsed = BinaryStore.parse(&encrypted).unwrap();
        assert_eq!(enc_parsed.metadata, Some(md));
        assert_eq!(enc_parsed.tree, sealed);
        let back = BinaryStore
            .write(
                &plain.tree,
                None,
                Some(&enc_parsed),
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(back, bytes);
    }

    #[test]
    fn plain_json_without_sops_is_just_bytes() {
        let text = b"{\"data\": \"x\"}";
        let p = BinaryStore.parse(text).unwrap();
        assert!(p.metadata.is_none());
        assert_eq!(
            p.tree.documents[0].get("data"),
            Some(&Node::Scalar(Scalar::from_bytes(Kind::Str, text.to_vec())))
        );
    }

    #[test]
    fn writing_plain_without_data_is_an_error() {
        let tree = Tree {
            documents: vec![Node::Map(vec![])],
        };
        let err = BinaryStore.write(&tree, None, None, &WriteOptions::default());
        assert!(matches!(err, Err(StoreError::Unrepresentable { .. })));
    }

    /// A binary file sops 3.11 encrypted reads as its JSON form and is written back exactly.
    #[test]
    fn sops_made_file_parses_and_is_reproduced_exactly() {
        let bytes = include_bytes!("../../tests/fixtures/stores/sops.bin");
        let p = BinaryStore.parse(bytes).unwrap();
        let md = p.metadata.as_ref().unwrap();
        assert_eq!(md.get("version"), Some(&Node::str("3.11.0")));
        let data = p.tree.documents[0].get("data").and_then(Node::as_scalar);
        assert!(data.unwrap().text().unwrap().starts_with("ENC[AES256_GCM,"));
        let out = BinaryStore
            .write(&p.tree, Some(md), None, &WriteOptions::default())
            .unwrap();
        assert_eq!(out, bytes);
    }
}

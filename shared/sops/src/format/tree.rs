//! The document tree that every store parses into and every store writes from.
//!
//! It mirrors the tree sops builds (mappings whose items may be comments, sequences whose items
//! may be comments, typed scalars), because the AAD of a value and the bytes hashed into the MAC
//! are defined over that tree. Layout (indentation, quoting, blank lines) is not part of the tree:
//! a store that writes losslessly keeps its own view of the original bytes (the stores' typed
//! `Layout`) and consults it when it writes the tree back. This module names no store: the
//! stores build on it, not the other way round.

/// A file: one or more documents (only YAML streams have more than one).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tree {
    pub documents: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A mapping, in file order. Comments are items of the mapping, as in sops.
    Map(Vec<Item>),
    /// A sequence, in file order. A comment inside a sequence is a `Node::Comment` item.
    Seq(Vec<Node>),
    Scalar(Scalar),
    /// A comment's text without its marker (`#` in YAML/dotenv, `;`/`#` in INI); for YAML and
    /// dotenv that text keeps its leading space (`# note` -> `" note"`), as sops encrypts it.
    Comment(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Pair(String, Node),
    Comment(String),
}

/// A scalar keeps the text it was written with, and its kind as sops types it.
///
/// Keeping the text (rather than a parsed number) is what lets enseal give back `1.0`, `0.50` or
/// `9007199254740993` exactly as written; what sops hashes and expects is derived from it on
/// demand ([`Scalar::mac_bytes`], [`Scalar::sealed_text`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar {
    pub kind: Kind,
    /// For `Str` and `Bytes` the value itself; otherwise the value as written in the source
    /// (already validated by the store to be of that kind). Bytes rather than `String` because a
    /// binary file, or a value decrypted from one, need not be UTF-8.
    pub value: Vec<u8>,
    /// The scalar's exact source text, set by a store when it could not write the value back
    /// the way it was written (a folded block scalar loses its line breaks, an escape may be
    /// spelled several ways). The value cipher encrypts it next to the value, so that
    /// decrypting gives the original bytes back.
    pub layout: Option<String>,
}

/// The `type:` of an encrypted value in sops' format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Null,
    Str,
    Int,
    Float,
    Bool,
    /// A YAML timestamp (unquoted `2024-01-02T03:04:05Z`).
    Time,
    /// Only ever produced when decrypting `type:bytes` values.
    Bytes,
}

impl Kind {
    /// The name used in `ENC[...,type:NAME]`.
    pub fn sops_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Time => "time",
            Kind::Bytes => "bytes",
        }
    }

    pub fn from_sops_name(name: &str) -> Option<Kind> {
        Some(match name {
            "str" => Kind::Str,
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "time" => Kind::Time,
            "bytes" => Kind::Bytes,
            "comment" => return None,
            _ => return None,
        })
    }
}

impl Scalar {
    pub fn new(kind: Kind, text: impl Into<String>) -> Scalar {
        Scalar {
            kind,
            value: text.into().into_bytes(),
            layout: None,
        }
    }

    pub fn from_bytes(kind: Kind, value: Vec<u8>) -> Scalar {
        Scalar {
            kind,
            value,
            layout: None,
        }
    }

    /// The value as text, or `None` when it is not UTF-8 (only possible for binary data).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    pub fn str(text: impl Into<String>) -> Scalar {
        Scalar::new(Kind::Str, text)
    }

    pub fn null() -> Scalar {
        Scalar::new(Kind::Null, "null")
    }
}

impl Node {
    pub fn str(text: impl Into<String>) -> Node {
        Node::Scalar(Scalar::str(text))
    }

    /// The value of key `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find_map(|item| match item {
                Item::Pair(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(items) => items.iter_mut().find_map(|item| match item {
                Item::Pair(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Removes key `key` from a mapping node and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        match self {
            Node::Map(items) => {
                let pos = items
                    .iter()
                    .position(|item| matches!(item, Item::Pair(k, _) if k == key))?;
                match items.remove(pos) {
                    Item::Pair(_, v) => Some(v),
                    Item::Comment(_) => unreachable!("position matched a pair"),
                }
            }
            _ => None,
        }
    }

    /// After an edit of a decrypted file: every scalar whose text did not change takes back the
    /// kind and layout it had before. Without this, a float that sops wrote as `1` would come
    /// back from the editor as an int and be re-encrypted for no visible change.
    pub fn keep_unchanged_kinds(&mut self, before: &Node) {
        match (self, before) {
            (Node::Scalar(now), Node::Scalar(was)) if now.value == was.value => {
                now.kind = was.kind;
                if now.layout.is_none() {
                    now.layout = was.layout.clone();
                }
            }
            (Node::Map(now), Node::Map(was)) => {
                for item in now.iter_mut() {
                    if let Item::Pair(k, v) = item {
                        let old = was.iter().find_map(|i| match i {
                            Item::Pair(ok, ov) if ok == k => Some(ov),
                            _ => None,
                        });
                        if let Some(old) = old {
                            v.keep_unchanged_kinds(old);
                        }
                    }
                }
            }
            (Node::Seq(now), Node::Seq(was)) => {
                let values = |items: &[Node]| -> Vec<usize> {
                    (0..items.len())
                        .filter(|i| !matches!(items[*i], Node::Comment(_)))
                        .collect()
                };
                let (now_at, was_at) = (values(now), values(was));
                for (n, w) in now_at.into_iter().zip(was_at) {
                    now[n].keep_unchanged_kinds(&was[w]);
                }
            }
            _ => {}
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

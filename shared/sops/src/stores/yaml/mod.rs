//! The YAML store, lossless: a file written back from what it parsed changes only where values
//! (or comments) changed, so `decrypt(encrypt(file))` gives the file back byte for byte.
//!
//! - [`parse`] reads the stream with saphyr-parser and keeps the layout of every value;
//! - [`budget`] limits nesting and alias expansion, so that a hostile file is an error;
//! - [`mask`] hides encrypted values from saphyr-parser, which reads them slowly;
//! - [`fast`] reads the simple leading lines of a masked text itself, faster than saphyr-parser;
//! - unquoted scalars are typed by [`crate::format::resolve`] as sops 3.11 (go-yaml v3) does,
//!   the same resolver `.sops.yaml` is decoded with;
//! - [`splice`] writes a tree back over the original text;
//! - [`emit`] writes canonically (new files, re-shaped nodes, the `sops:` block).

pub(crate) mod budget;
mod emit;
mod fast;
mod mask;
mod parse;
mod runs;
mod splice;
#[cfg(test)]
mod tests;

use crate::format::tree::{Item, Node, Tree};
use crate::stores::{Format, Layout, Parsed, Store, StoreError, WriteOptions};

use emit::Emitter;
pub(crate) use parse::Source;

/// Whether a YAML text has nothing but comments and blank lines: go-yaml finds no document in
/// it, and sops refuses to encrypt it. (With a `---` it has an empty document, whose comments
/// sops encrypts.) enseal reads such a text as an empty mapping, which decrypting and editing
/// need; encrypting asks this first.
pub fn holds_only_comments(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).lines().all(|line| {
        let t = line.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// sops' default indentation for YAML.
const DEFAULT_INDENT: usize = 4;

pub struct YamlStore;

impl Store for YamlStore {
    fn format(&self) -> Format {
        Format::Yaml
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        self.parse_owned(bytes.to_vec())
    }

    fn parse_owned(&self, bytes: Vec<u8>) -> Result<Parsed, StoreError> {
        let src = parse::parse(bytes)?;
        let mut documents = Vec::with_capacity(src.docs.len());
        let mut metadata = None;
        for (i, doc) in src.docs.iter().enumerate() {
            let Node::Map(mut items) = doc.root.to_node(&src.text) else {
                unreachable!("document roots are mappings");
            };
            if doc.sops_item.is_some() {
                let pos = items
                    .iter()
                    .position(|it| matches!(it, Item::Pair(k, _) if k == "sops"));
                if let Some(Item::Pair(_, meta)) = pos.map(|p| items.remove(p)) {
                    if i == 0 || metadata.is_none() {
                        metadata.get_or_insert(meta);
                    }
                }
            }
            documents.push(Node::Map(items));
        }
        Ok(Parsed {
            tree: Tree { documents },
            metadata,
            source: Layout::yaml(src),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        let step = options.indent.unwrap_or(DEFAULT_INDENT);
        let layout = Layout::of_yaml(original)?;
        let maps: Option<Vec<&[Item]>> = tree
            .documents
            .iter()
            .map(|doc| match doc {
                Node::Map(items) => Some(items.as_slice()),
                _ => None,
            })
            .collect();
        let Some(docs) = maps else {
            return lone_values(&tree.documents, metadata, step);
        };
        if let Some(src) = layout {
            if src.docs.len() == docs.len() && !docs.is_empty() {
                return Ok(splice::write(src, &docs, metadata, options.indent).into_bytes());
            }
        }
        Ok(canonical(&docs, metadata, step, "\n").into_bytes())
    }
}

/// A stream some of whose documents are a sequence or a scalar, as go-yaml marshals a lone value
/// (what `decrypt --extract` prints). Such a document was never a sops file (sops refuses to
/// read one), so there is no layout to keep and nowhere to put metadata.
fn lone_values(docs: &[Node], metadata: Option<&Node>, step: usize) -> Result<Vec<u8>, StoreError> {
    let refuse = |message: &str| {
        Err(StoreError::Unrepresentable {
            format: "yaml",
            message: message.to_string(),
        })
    };
    if metadata.is_some() {
        return refuse("a YAML document with sops metadata must be a mapping");
    }
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if matches!(doc, Node::Comment(_)) {
            return refuse("a YAML document cannot be a lone comment");
        }
        if i > 0 {
            out.push_str("---\n");
        }
        Emitter {
            out: &mut out,
            step,
            nl: "\n",
        }
        .lone_value(doc);
    }
    Ok(out.into_bytes())
}

/// A stream written from scratch: documents separated by `---`, each with the `sops` block last.
fn canonical(docs: &[&[Item]], metadata: Option<&Node>, step: usize, nl: &str) -> String {
    let mut out = String::new();
    for (i, items) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---");
            out.push_str(nl);
        }
        let mut em = Emitter {
            out: &mut out,
            step,
            nl,
        };
        match metadata {
            Some(m) => {
                let mut all = items.to_vec();
                all.push(Item::Pair("sops".to_string(), m.clone()));
                em.document(&all);
            }
            None => em.document(items),
        }
    }
    out
}

//! JSON files, read losslessly.
//!
//! A small parser of its own keeps the byte span of every value, so that a write with the
//! original only splices the values that changed: indentation, key order, number spelling
//! (`9007199254740993`, `1.50`) and escapes of untouched strings stay as they were. sops 3.11
//! types every JSON number as `float`; the number's text is kept in the scalar and the core
//! derives what sops hashes from it. The canonical layout (no original) is sops': tab
//! indentation, `": "`, Go's string escaping (`<` as `\u003c`) and a final newline.
//!
//! - [`parse`] reads the document and keeps the span of every key and value;
//! - [`splice`] writes a tree back over the original bytes;
//! - [`emit`] writes canonically (new files, new or re-shaped values, the `sops` object).

use super::{Format, Layout, Parsed, Store, StoreError, WriteOptions};
use crate::format::tree::{Item, Node, Tree};
use emit::{render_map, Style};
pub(crate) use parse::Source;
use parse::{parse_document, syntax_at, to_metadata_node, to_node, JValue};
use splice::Lossless;

pub struct JsonStore;

const FORMAT: &str = "json";
/// Deeper nesting is refused rather than risking the stack on hostile input.
pub const MAX_DEPTH: usize = 512;
const METADATA_KEY: &str = "sops";

mod emit;
mod parse;
mod splice;
#[cfg(test)]
mod tests;

/// Parses JSON bytes into a tree and the metadata; also used by the binary store.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<(Tree, Option<Node>, Source), StoreError> {
    let (tree, metadata, root) = read(bytes)?;
    let text = bytes.to_vec();
    Ok((tree, metadata, Source { text, root }))
}

/// [`parse_json`] for bytes the caller no longer needs: the layout keeps them as its text
/// rather than a copy (one whole-file copy less on a large file).
fn parse_json_owned(bytes: Vec<u8>) -> Result<(Tree, Option<Node>, Source), StoreError> {
    let (tree, metadata, root) = read(&bytes)?;
    Ok((tree, metadata, Source { text: bytes, root }))
}

/// The tree, the metadata and the spans of the document.
fn read(bytes: &[u8]) -> Result<(Tree, Option<Node>, parse::JObject), StoreError> {
    let root = parse_document(bytes)?;
    let mut items = Vec::new();
    let mut metadata = None;
    for m in &root.members {
        if m.key == METADATA_KEY {
            if !matches!(m.value, JValue::Object(_)) {
                return Err(syntax_at(
                    bytes,
                    m.start,
                    "the top-level key \"sops\" is reserved for sops metadata and must be an object",
                ));
            }
            metadata = Some(to_metadata_node(&m.value));
        } else {
            items.push(Item::Pair(m.key.clone(), to_node(&m.value)));
        }
    }
    let tree = Tree {
        documents: vec![Node::Map(items)],
    };
    Ok((tree, metadata, root))
}

impl Store for JsonStore {
    fn format(&self) -> Format {
        Format::Json
    }

    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError> {
        let (tree, metadata, source) = parse_json(bytes)?;
        Ok(Parsed {
            tree,
            metadata,
            source: Layout::json(source),
        })
    }

    fn parse_owned(&self, bytes: Vec<u8>) -> Result<Parsed, StoreError> {
        let (tree, metadata, source) = parse_json_owned(bytes)?;
        Ok(Parsed {
            tree,
            metadata,
            source: Layout::json(source),
        })
    }

    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        write_json(tree, metadata, Layout::of_json(original)?, options)
    }
}

fn unrepresentable(message: impl Into<String>) -> StoreError {
    StoreError::Unrepresentable {
        format: FORMAT,
        message: message.into(),
    }
}

pub(crate) fn write_json(
    tree: &Tree,
    metadata: Option<&Node>,
    source: Option<&Source>,
    options: &WriteOptions,
) -> Result<Vec<u8>, StoreError> {
    let items: &[Item] = match tree.documents.as_slice() {
        [] => &[],
        [Node::Map(items)] => items,
        [_] => {
            return Err(unrepresentable(
                "the document is not a mapping (sops JSON files are objects)",
            ))
        }
        _ => return Err(unrepresentable("a JSON file holds exactly one document")),
    };
    let extra = metadata.map(|md| (METADATA_KEY, md));
    match source {
        Some(src) => {
            let style = Style::infer(src, options);
            let w = Lossless {
                src: &src.text,
                style: &style,
            };
            let mut out = Vec::new();
            let root = &src.root;
            out.extend_from_slice(&src.text[..root.open]);
            w.object(items, root, "", extra, "", &mut out)?;
            out.extend_from_slice(&src.text[root.close + 1..]);
            Ok(out)
        }
        None => {
            let style = Style::canonical(options);
            let mut out = String::new();
            render_map(items, extra, "", &style, "", &mut out)?;
            out.push('\n');
            Ok(out.into_bytes())
        }
    }
}

//! Stores turn file bytes into a [`Tree`] and back, one per file format.
//!
//! A store also finds the `sops` metadata in a file (a top-level `sops` key in YAML/JSON, the
//! `sops_*` keys in dotenv, the `[sops]` section in INI), takes it out of the tree, and writes it
//! back in its format's layout. The metadata travels as a generic [`Node`] (a mapping whose
//! leaves are strings, booleans and integers); [`crate::format::metadata`] gives it meaning.

use std::path::Path;

use crate::format::tree::{Node, Tree};

pub mod binary;
pub mod dotenv;
pub mod flat;
pub mod ini;
pub mod json;
pub mod yaml;

/// The file formats enseal reads and writes, named as sops names them on its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// The format sops would pick for a file name: by extension, binary when unknown.
    pub fn from_path(path: &Path) -> Format {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "env" => Format::Dotenv,
            "ini" => Format::Ini,
            _ => Format::Binary,
        }
    }

    /// Parses `--input-type`/`--output-type` values.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "dotenv" | "env" => Format::Dotenv,
            "ini" => Format::Ini,
            "binary" => Format::Binary,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// The store for a format.
pub fn store_for(format: Format) -> Box<dyn Store> {
    match format {
        Format::Yaml => Box::new(yaml::YamlStore),
        Format::Json => Box::new(json::JsonStore),
        Format::Dotenv => Box::new(dotenv::DotenvStore),
        Format::Ini => Box::new(ini::IniStore),
        Format::Binary => Box::new(binary::BinaryStore),
    }
}

/// What a store read from a file.
pub struct Parsed {
    /// The data, without the `sops` metadata.
    pub tree: Tree,
    /// The `sops` metadata as a generic mapping, when the file has one. In a YAML stream every
    /// document carries the same block; this is the first document's.
    pub metadata: Option<Node>,
    /// The store's own memory of the original bytes (spans, quoting, indentation...), used by
    /// [`Store::write`] to give back the file's layout. Opaque outside the store that made it.
    pub source: Layout,
}

/// What a store remembers of the bytes it parsed, to write them back in their own layout.
///
/// Opaque outside this module's stores, and typed per store: a layout can only be read back by
/// the store that made it. Given to another store, it is refused ([`StoreError::ForeignLayout`])
/// rather than quietly replaced by the canonical layout, which would break the byte-for-byte
/// promise with no error.
pub struct Layout(PerStore);

/// One variant per store, holding that store's own record of the source bytes.
enum PerStore {
    Yaml(yaml::Source),
    Json(json::Source),
    Dotenv(dotenv::Source),
    Ini(ini::Source),
    Binary(binary::Source),
}

impl Layout {
    /// The format of the store that made this layout (and the only one that can write it).
    pub fn format(&self) -> Format {
        match self.0 {
            PerStore::Yaml(_) => Format::Yaml,
            PerStore::Json(_) => Format::Json,
            PerStore::Dotenv(_) => Format::Dotenv,
            PerStore::Ini(_) => Format::Ini,
            PerStore::Binary(_) => Format::Binary,
        }
    }
}

macro_rules! store_layout {
    ($variant:ident, $source:ty, $into:ident, $of:ident) => {
        impl Layout {
            fn $into(source: $source) -> Layout {
                Layout(PerStore::$variant(source))
            }

            /// The layout `original` remembers, for the store of this format: `None` without an
            /// original, an error when another store made it.
            fn $of(original: Option<&Parsed>) -> Result<Option<&$source>, StoreError> {
                let Some(parsed) = original else {
                    return Ok(None);
                };
                match &parsed.source.0 {
                    PerStore::$variant(source) => Ok(Some(source)),
                    _ => Err(StoreError::ForeignLayout {
                        store: Format::$variant.name(),
                        layout: parsed.source.format().name(),
                    }),
                }
            }
        }
    };
}

store_layout!(Yaml, yaml::Source, yaml, of_yaml);
store_layout!(Json, json::Source, json, of_json);
store_layout!(Dotenv, dotenv::Source, dotenv, of_dotenv);
store_layout!(Ini, ini::Source, ini, of_ini);
store_layout!(Binary, binary::Source, binary, of_binary);

/// Layout choices for writing, from `.sops.yaml` `stores:` or the command line.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Indentation for new YAML/JSON structure (`stores: {yaml: {indent: N}}`). `None` keeps the
    /// original file's indentation, or the store's default for a new file.
    pub indent: Option<usize>,
}

/// An error in the input, located where possible. The CLI prefixes it with the file name.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}invalid {format}: {message}", location(*.line, *.column))]
    Syntax {
        format: &'static str,
        /// 1-based line and column of the problem, where the parser knows them.
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A write was given the layout of a file that another store parsed: a caller's mistake,
    /// refused so that the output never silently loses the original's layout.
    #[error("cannot write as {store} keeping the layout of a {layout} file")]
    ForeignLayout {
        store: &'static str,
        layout: &'static str,
    },
    /// The tree cannot be written in this format (e.g. nested values in dotenv).
    #[error("cannot write as {format}: {message}")]
    Unrepresentable {
        format: &'static str,
        message: String,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

pub trait Store: Send + Sync {
    fn format(&self) -> Format;

    /// Parses a file (plain or encrypted). The `sops` metadata is taken out of the tree and
    /// returned apart in [`Parsed::metadata`].
    fn parse(&self, bytes: &[u8]) -> Result<Parsed, StoreError>;

    /// [`Store::parse`] for a caller that has no further use for the bytes: a store that keeps
    /// the file's text for writing it back takes them rather than copying a large file.
    fn parse_owned(&self, bytes: Vec<u8>) -> Result<Parsed, StoreError> {
        self.parse(&bytes)
    }

    /// Writes `tree` and, when given, the `sops` metadata (appended in the format's layout).
    ///
    /// With `original` (a [`Parsed`] this same store produced), everything the tree did not
    /// change is written exactly as it was in the original bytes: comments, blank lines,
    /// indentation, quoting, key order. Without it, the store's canonical layout is used.
    /// An `original` that another store produced is refused with [`StoreError::ForeignLayout`].
    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_given_to_another_store_is_refused_not_replaced_by_the_canonical_one() {
        let yaml = store_for(Format::Yaml).parse(b"# kept\na: 1\n").unwrap();
        for format in [Format::Json, Format::Dotenv, Format::Ini, Format::Binary] {
            let err = store_for(format)
                .write(&yaml.tree, None, Some(&yaml), &WriteOptions::default())
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::ForeignLayout { store, layout: "yaml" } if store == format.name()
                ),
                "{format:?}: {err}"
            );
        }
        let json = store_for(Format::Json).parse(b"{\"a\": 1}").unwrap();
        let err = store_for(Format::Yaml)
            .write(&json.tree, None, Some(&json), &WriteOptions::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write as yaml keeping the layout of a json file"
        );
    }

    #[test]
    fn a_parse_can_be_sent_between_threads() {
        // The controller decrypts on its async runtime's worker threads.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Parsed>();
    }
}

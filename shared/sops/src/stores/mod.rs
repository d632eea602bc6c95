//! Stores turn file bytes into a [`Tree`] and back, one per file format.
//!
//! A store also finds the `sops` metadata in a file (a top-level `sops` key in YAML/JSON, the
//! `sops_*` keys in dotenv, the `[sops]` section in INI), takes it out of the tree, and writes it
//! back in its format's layout. The metadata travels as a generic [`Node`] (a mapping whose
//! leaves are strings, booleans and integers); [`crate::format::metadata`] gives it meaning.

use std::any::Any;
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
    pub source: Option<Box<dyn Any + Send + Sync>>,
}

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
    fn write(
        &self,
        tree: &Tree,
        metadata: Option<&Node>,
        original: Option<&Parsed>,
        options: &WriteOptions,
    ) -> Result<Vec<u8>, StoreError>;
}

//! `enseal set` and `enseal unset`: change one value in place; every other value keeps its
//! ciphertext, so the git diff shows only the change.

use std::io::Read;

use enseal_sops::file::{self, Decrypted, EncryptOptions, Layout};
use enseal_sops::format::tree::{Item, Kind, Node, Scalar};
use enseal_sops::stores::WriteOptions;

use crate::args::{GlobalOptions, SetOptions, UnsetOptions, ValueSource};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{read_input, write_atomic, Input};
use crate::tree_path;

pub fn set(g: &GlobalOptions, a: &SetOptions) -> Result<()> {
    let steps = &a.path;
    let raw = match &a.value {
        ValueSource::Argument(v) => v.clone(),
        ValueSource::Stdin => {
            let mut s = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                Failure::new(exit::CANNOT_READ_INPUT, format!("standard input: {e}"))
            })?;
            s
        }
        ValueSource::File(f) => {
            zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                Failure::new(exit::CANNOT_READ_INPUT, format!("{}: {e}", f.display()))
            })?)
        }
    };
    let value = json_to_node(&raw)?;
    let input = read_input(Some(&a.file), None)?;
    let (format, mut opened) = open(g, &input)?;
    let doc = first_document(&mut opened, &input)?;
    if a.idempotent && tree_path::get(doc, steps).is_ok_and(|n| *n == value) {
        return Ok(());
    }
    tree_path::set(doc, steps, value).map_err(|f| f.in_file(&input.name))?;
    write_back(g, format, opened, &input)
}

pub fn unset(g: &GlobalOptions, a: &UnsetOptions) -> Result<()> {
    let steps = &a.path;
    let input = read_input(Some(&a.file), None)?;
    let (format, mut opened) = open(g, &input)?;
    let doc = first_document(&mut opened, &input)?;
    if !tree_path::unset(doc, steps)? {
        if a.idempotent {
            return Ok(());
        }
        return Err(
            Failure::new(exit::GENERIC, format!("path {} not found", a.path_text))
                .in_file(&input.name),
        );
    }
    write_back(g, format, opened, &input)
}

fn open(g: &GlobalOptions, input: &Input) -> Result<(enseal_sops::stores::Format, Decrypted)> {
    let format = g.input_format(&input.name);
    let opened = context::open_for_edit(input, format, context::mac(g))?;
    Ok((format, opened))
}

fn first_document<'a>(opened: &'a mut Decrypted, input: &Input) -> Result<&'a mut Node> {
    opened
        .parsed
        .tree
        .documents
        .first_mut()
        .ok_or_else(|| Failure::new(exit::GENERIC, "the file has no document").in_file(&input.name))
}

/// Writes the file back in place, in `--output-type` when given (sops' `set --output-type yaml
/// f.json` rewrites f.json as YAML); only a file kept in its own format keeps its layout.
fn write_back(
    g: &GlobalOptions,
    format: enseal_sops::stores::Format,
    opened: Decrypted,
    input: &Input,
) -> Result<()> {
    let output = g.output_format(format);
    let store = context::store(output);
    let Decrypted {
        parsed,
        mut metadata,
        key,
        memory,
    } = opened;
    let options = EncryptOptions {
        layout: if output == format {
            Layout::Keep
        } else {
            Layout::Canonical
        },
        unchanged: Some(&memory),
        write: &WriteOptions::default(),
    };
    let bytes = file::encrypt(store.as_ref(), parsed, &key, &mut metadata, &options)
        .map_err(|e| context::file_error(&input.name, e))?;
    let path = input.path.as_deref().unwrap_or(&input.name);
    write_atomic(path, &bytes)
}

/// sops takes the value of `set` as JSON.
pub fn json_to_node(text: &str) -> Result<Node> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            exit::INVALID_SET_FORMAT,
            format!("the value must be JSON (a string needs quotes: '\"text\"'): {e}"),
        )
    })?;
    Ok(convert(&value))
}

fn convert(v: &serde_json::Value) -> Node {
    use serde_json::Value;
    match v {
        Value::Null => Node::Scalar(Scalar::null()),
        Value::Bool(b) => Node::Scalar(Scalar::new(Kind::Bool, b.to_string())),
        Value::Number(n) => {
            let text = n.to_string();
            let kind = if text.contains(['.', 'e', 'E']) {
                Kind::Float
            } else {
                Kind::Int
            };
            Node::Scalar(Scalar::new(kind, text))
        }
        Value::String(s) => Node::str(s.clone()),
        Value::Array(items) => Node::Seq(items.iter().map(convert).collect()),
        Value::Object(map) => Node::Map(
            map.iter()
                .map(|(k, v)| Item::Pair(k.clone(), convert(v)))
                .collect(),
        ),
    }
}

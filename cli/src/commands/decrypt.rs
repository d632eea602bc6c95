//! `enseal decrypt` and `enseal filestatus`.

use std::path::Path;

use enseal_sops::file::{self, DecryptOptions};
use enseal_sops::format::tree::{Node, Tree};
use enseal_sops::stores::{Format, WriteOptions};
use zeroize::Zeroizing;

use crate::args::GlobalOptions;
use crate::context;
use crate::exit::{self, Result};
use crate::file_io::{read_input, Destination};
use crate::tree_path;

pub fn run(g: &GlobalOptions, file: Option<&Path>, extract: Option<&str>) -> Result<()> {
    let mut input = read_input(file, g.filename_override.as_deref())?;
    let in_format = g.input_format(&input.name);
    let out_format = g.output_format(in_format);
    let dest = Destination::choose(&input, g.in_place, g.output.as_deref())?;
    // The store takes the bytes rather than copying them: a large file is then held once less.
    let bytes = std::mem::take(&mut *input.bytes);
    let keyring = context::keyring();
    let mac = context::mac(g);
    let name = &input.name;
    // The library makes the output in memory while the MAC is checked (on another core for a
    // large file), and gives it back only once the MAC is right.
    let bytes = match extract {
        None => {
            let options = DecryptOptions {
                mac,
                output: Some(out_format),
            };
            file::decrypt_bytes(bytes, in_format, &keyring, &options)
                .map_err(|e| context::file_error(name, e))?
        }
        Some(path) => file::decrypt_with(bytes, in_format, &keyring, mac, |decrypted| {
            let steps = tree_path::parse(path)?;
            let doc = decrypted.tree().documents.first().ok_or_else(|| {
                exit::Failure::new(exit::GENERIC, "the file has no document").in_file(name)
            })?;
            let node = tree_path::get(doc, &steps).map_err(|f| f.in_file(name))?;
            let out_store = context::store(out_format);
            render_extract(
                node,
                out_format,
                out_store.as_ref(),
                &WriteOptions::default(),
                name,
            )
        })
        .map_err(|e| context::file_error(name, e))??,
    };
    dest.write(&bytes)
}

/// As sops: a string is printed raw (no quotes, no newline); a mapping as a plain file of the
/// output format; any other value as that format encodes a lone value (`5432\n` in YAML).
fn render_extract(
    node: &Node,
    format: Format,
    store: &dyn enseal_sops::stores::Store,
    options: &WriteOptions,
    name: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    use enseal_sops::format::tree::Kind;
    let value_only = || {
        exit::Failure::new(
            exit::GENERIC,
            format!("a single value cannot be extracted as {}", format.name()),
        )
    };
    match node {
        Node::Scalar(s) if matches!(s.kind, Kind::Str | Kind::Bytes) => {
            Ok(Zeroizing::new(s.value.clone()))
        }
        Node::Comment(c) => Ok(Zeroizing::new(c.clone().into_bytes())),
        Node::Scalar(s) => {
            let mut out = s.value.clone();
            match format {
                Format::Yaml => out.push(b'\n'),
                Format::Json | Format::Binary => {}
                Format::Dotenv | Format::Ini => return Err(value_only()),
            }
            Ok(Zeroizing::new(out))
        }
        tree @ (Node::Map(_) | Node::Seq(_)) => {
            if matches!(tree, Node::Seq(_)) && !matches!(format, Format::Yaml | Format::Json) {
                return Err(value_only());
            }
            let t = Tree {
                documents: vec![tree.clone()],
            };
            store
                .write(&t, None, None, options)
                .map(Zeroizing::new)
                .map_err(|e| exit::store_error(name, e))
        }
    }
}

pub fn filestatus(g: &GlobalOptions, file: Option<&Path>) -> Result<()> {
    let input = read_input(file, g.filename_override.as_deref())?;
    let format = g.input_format(&input.name);
    let store = context::store(format);
    // A file that does not parse is not an encrypted file; sops says so rather than failing.
    let encrypted = store
        .parse(&input.bytes)
        .map(|p| p.metadata.is_some())
        .unwrap_or(false);
    println!("{{\"encrypted\":{encrypted}}}");
    Ok(())
}

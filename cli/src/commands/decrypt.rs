//! `enseal decrypt` and `enseal filestatus`.

use std::path::Path;

use enseal_sops::file::Opened;
use enseal_sops::format::tree::{Node, Tree};
use enseal_sops::stores::{Format, Parsed, WriteOptions};
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
    let (opened, mac) = context::open_taking(&mut input, in_format, g.ignore_mac)?;
    let out_store = context::store(out_format);
    let options = WriteOptions::default();
    let name = &input.name;
    // The output is made in memory while the MAC is checked, and written only once it is.
    let bytes = context::check_mac(name, mac, || match extract {
        Some(path) => {
            let steps = tree_path::parse(path)?;
            let doc = opened.parsed.tree.documents.first().ok_or_else(|| {
                exit::Failure::new(exit::GENERIC, "the file has no document").in_file(name)
            })?;
            let node = tree_path::get(doc, &steps).map_err(|f| f.in_file(name))?;
            render_extract(node, out_format, out_store.as_ref(), &options, name)
        }
        None => plaintext(&opened, in_format, out_format, name),
    })?;
    dest.write(&bytes)
}

/// The plaintext file `enseal decrypt` prints for an opened file: its tree written in
/// `out_format`, keeping the encrypted file's layout (comments, order, quoting) when the format
/// does not change. Shared with `enseal kustomize`, which must give what `decrypt` gives.
pub(crate) fn plaintext(
    opened: &Opened,
    in_format: Format,
    out_format: Format,
    name: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    let layout: Option<&Parsed> = (in_format == out_format).then_some(&opened.parsed);
    context::store(out_format)
        .write(&opened.parsed.tree, None, layout, &WriteOptions::default())
        .map(Zeroizing::new)
        .map_err(|e| exit::store_error(name, e))
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

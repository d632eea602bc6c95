//! `enseal encrypt`: a plain file in, the same file with its values encrypted out.

use std::path::Path;

use enseal_sops::crypto::data_key::DataKey;
use enseal_sops::file::{self, EncryptOptions, Layout};
use enseal_sops::format::metadata::Metadata;
use enseal_sops::stores::Format;

use crate::args::GlobalOptions;
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{read_input, Destination};
use crate::plan;

pub fn run(g: &GlobalOptions, file: Option<&Path>) -> Result<()> {
    let input = read_input(file, g.filename_override.as_deref())?;
    let in_format = g.input_format(&input.name);
    let out_format = g.output_format(in_format);
    let dest = Destination::choose(&input, g.in_place, g.output.as_deref())?;
    // As sops: an empty file has no document to encrypt (exit 92), and a YAML stream of
    // comments only is refused when read (go-yaml finds no document: exit 2), rather than
    // encrypted to a file that has lost its comments.
    if input.bytes.is_empty() {
        return Err(Failure::new(
            exit::NEED_AT_LEAST_ONE_DOCUMENT,
            "the file is empty: it must hold at least one document",
        )
        .in_file(&input.name));
    }
    if in_format == Format::Yaml && enseal_sops::stores::yaml::holds_only_comments(&input.bytes) {
        return Err(Failure::new(
            exit::CANNOT_READ_INPUT,
            "the file holds only comments: there is no YAML document to encrypt",
        )
        .in_file(&input.name));
    }
    let in_store = context::store(in_format);
    let parsed = in_store
        .parse(&input.bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    if parsed.metadata.is_some() {
        return Err(Failure::new(
            exit::ALREADY_ENCRYPTED,
            "the file already has sops metadata (a top-level `sops` entry, or `sops_` keys in \
             flat formats): it is already encrypted. Use `enseal edit`, `set` or `rotate` to \
             change it",
        )
        .in_file(&input.name));
    }
    let plan = plan::for_file(g, &input.name, in_format)?;
    let key = DataKey::generate();
    let (groups, threshold) = plan.wrap(&key, &input.name)?;
    let mut metadata = Metadata::new(groups, plan.crypt_rule);
    metadata.shamir_threshold = threshold;
    metadata.mac_only_encrypted = plan.mac_only_encrypted;
    let out_store = context::store(out_format);
    let options = EncryptOptions {
        layout: if in_format == out_format {
            Layout::Keep
        } else {
            Layout::Canonical
        },
        unchanged: None,
        write: &plan.write,
    };
    let bytes = file::encrypt(out_store.as_ref(), parsed, &key, &mut metadata, &options)
        .map_err(|e| context::file_error(&input.name, e))?;
    dest.write(&bytes)
}

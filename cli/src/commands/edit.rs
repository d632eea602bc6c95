//! `enseal edit`: the plaintext exists only in a private temporary directory (0700, file 0600)
//! that is removed when the command ends, whatever happens.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use enseal_sops::crypto::data_key::DataKey;
use enseal_sops::file::{self, Decrypted, EncryptOptions, Layout};
use enseal_sops::format::metadata::Metadata;
use enseal_sops::stores::{Parsed, Store, WriteOptions};
use zeroize::Zeroizing;

use crate::args::GlobalOptions;
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{read_input, write_atomic};
use crate::plan;
use crate::private_dir::{run_guarded, PrivateDir};

/// `$SOPS_EDITOR`, then `$EDITOR`, then the first of vim, nano, vi on PATH (sops' order).
fn find_editor() -> Result<String> {
    for var in ["SOPS_EDITOR", "EDITOR"] {
        if let Ok(e) = std::env::var(var) {
            if !e.trim().is_empty() {
                return Ok(e);
            }
        }
    }
    for candidate in ["vim", "nano", "vi"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(candidate).is_file()))
            .unwrap_or(false);
        if found {
            return Ok(candidate.to_string());
        }
    }
    Err(Failure::new(
        exit::NO_EDITOR,
        "no editor found: set SOPS_EDITOR or EDITOR",
    ))
}

fn run_editor(editor: &str, path: &Path) -> Result<()> {
    // Through the shell so that EDITOR may carry arguments ("code --wait").
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path);
    // Ctrl-C, SIGTERM or SIGHUP while the editor runs: the editor gets it, and enseal returns
    // (removing the plaintext's directory) instead of dying with it left behind.
    let guarded = run_guarded(&mut cmd).map_err(|e| {
        Failure::new(
            exit::NO_EDITOR,
            format!("cannot run editor {editor:?}: {e}"),
        )
    })?;
    if let Some(signal) = guarded.signal {
        return Err(Failure::new(
            128 + signal,
            format!("interrupted by signal {signal}; nothing was changed"),
        ));
    }
    let status = guarded.status;
    if !status.success() {
        return Err(Failure::new(
            exit::GENERIC,
            format!("editor {editor:?} exited with {status}; nothing was changed"),
        ));
    }
    Ok(())
}

struct Scratch {
    _dir: PrivateDir,
    path: PathBuf,
}

fn scratch_file(name: &Path, contents: &[u8]) -> Result<Scratch> {
    let fail =
        |e: std::io::Error| Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("temporary file: {e}"));
    let dir = PrivateDir::new("enseal-edit-")?;
    let file_name = name
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "file".into());
    let path = dir.path().join(file_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(fail)?;
    f.write_all(contents).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    Ok(Scratch { _dir: dir, path })
}

/// Lets the user edit until the result parses; returns the new plaintext's parse.
fn edit_until_valid(
    editor: &str,
    scratch: &Scratch,
    before: &[u8],
    store: &dyn Store,
    name: &Path,
) -> Result<Parsed> {
    loop {
        run_editor(editor, &scratch.path)?;
        let after =
            Zeroizing::new(std::fs::read(&scratch.path).map_err(|e| {
                Failure::new(exit::CANNOT_READ_INPUT, format!("temporary file: {e}"))
            })?);
        if after.as_slice() == before {
            return Err(
                Failure::new(exit::FILE_NOT_MODIFIED, "file has not been modified").in_file(name),
            );
        }
        let problem = match store.parse(&after) {
            Ok(p) if p.metadata.is_some() => {
                "the edited file has a top-level `sops` entry; remove it".to_string()
            }
            Ok(p) => return Ok(p),
            Err(e) => e.to_string(),
        };
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(exit::CANNOT_READ_INPUT, problem).in_file(name));
        }
        eprintln!("enseal: {}: {problem}", name.display());
        eprint!("Press Enter to return to the editor, or Ctrl-C to give up the changes: ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Failure::new(exit::CANNOT_READ_INPUT, problem).in_file(name));
        }
    }
}

pub fn run(g: &GlobalOptions, file: &Path) -> Result<()> {
    let editor = find_editor()?;
    let format = g.input_format(file);
    let store = context::store(format);
    if !file.exists() {
        return create(g, file, &editor, store.as_ref());
    }
    let input = read_input(Some(file), None)?;
    let Decrypted {
        mut parsed,
        mut metadata,
        key,
        memory,
    } = context::open_for_edit(&input, format, context::mac(g))?;
    let plain = Zeroizing::new(
        store
            .write(&parsed.tree, None, Some(&parsed), &WriteOptions::default())
            .map_err(|e| exit::store_error(file, e))?,
    );
    let scratch = scratch_file(file, &plain)?;
    let edited = edit_until_valid(&editor, &scratch, &plain, store.as_ref(), file)?;
    // The edited tree is written in the encrypted file's own layout, so that what did not
    // change stays byte for byte (a sops-written file keeps sops' layout, for instance).
    let mut tree = edited.tree;
    for (now, was) in tree.documents.iter_mut().zip(&parsed.tree.documents) {
        now.keep_unchanged_kinds(was);
    }
    parsed.tree = tree;
    let options = EncryptOptions {
        layout: Layout::Keep,
        unchanged: Some(&memory),
        write: &WriteOptions::default(),
    };
    let bytes = file::encrypt(store.as_ref(), parsed, &key, &mut metadata, &options)
        .map_err(|e| context::file_error(file, e))?;
    write_atomic(file, &bytes)
}

fn create(g: &GlobalOptions, file: &Path, editor: &str, store: &dyn Store) -> Result<()> {
    let plan = plan::for_file(g, file, g.input_format(file))?;
    let scratch = scratch_file(file, b"")?;
    let edited = edit_until_valid(editor, &scratch, b"", store, file)?;
    let key = DataKey::generate();
    let (groups, threshold) = plan.wrap(&key, file)?;
    let mut metadata = Metadata::new(groups, plan.crypt_rule);
    metadata.shamir_threshold = threshold;
    metadata.mac_only_encrypted = plan.mac_only_encrypted;
    let options = EncryptOptions {
        layout: Layout::Keep,
        unchanged: None,
        write: &plan.write,
    };
    let bytes = file::encrypt(store, edited, &key, &mut metadata, &options)
        .map_err(|e| context::file_error(file, e))?;
    write_atomic(file, &bytes)
}

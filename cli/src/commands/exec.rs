//! `enseal exec-env` and `enseal exec-file`: hand the plaintext to a command without writing it
//! anywhere that outlives the command.

use std::io::Write;
use std::path::PathBuf;

use std::collections::HashSet;

use enseal_sops::file::Layout;
use enseal_sops::format::tree::{Item, Kind, Node};
use enseal_sops::stores::Format;
use zeroize::Zeroizing;

use crate::args::{ExecEnvArgs, ExecFileArgs, GlobalOptions};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{read_input, Input};
use crate::private_dir::{is_shell_safe, run_guarded, PrivateDir};

fn run_shell(command: &str, configure: impl FnOnce(&mut std::process::Command)) -> Result<i32> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(command);
    configure(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| Failure::new(exit::GENERIC, format!("cannot run {command:?}: {e}")))?;
    Ok(status.code().unwrap_or(exit::GENERIC))
}

/// Why `name` cannot be an environment variable name, if it cannot: `NAME=...` is how the
/// environment is spelled, so a key holding `=` would set another variable (a pull request
/// adding `"PATH=/evil:/usr/bin": ""`, an empty value outside the MAC, would choose the
/// program the command runs); NUL ends the entry; an empty name is no variable.
fn bad_env_name(name: &str) -> Option<String> {
    if name.contains('=') {
        // sops' words.
        Some(format!("cannot use keys with '=' in environment: {name}"))
    } else if name.contains('\0') {
        Some(format!(
            "cannot use keys with a NUL byte in environment: {name:?}"
        ))
    } else if name.is_empty() {
        Some("cannot use an empty key in environment".to_string())
    } else {
        None
    }
}

/// Whether the MAC vouches for this value: sops hashes neither nulls nor (in effect) empty
/// strings, and under `mac_only_encrypted` no value left in the clear. Anyone who can edit the
/// file can add such a value without breaking the MAC; exported, `PATH: ""` would make `sh`
/// look for the command in the working directory (the attacker's checkout).
fn covered_by_mac(value: &Node, encrypted_in_file: Option<bool>) -> bool {
    match value {
        Node::Scalar(s) => {
            s.kind != Kind::Null && !s.value.is_empty() && encrypted_in_file.unwrap_or(true)
        }
        _ => false,
    }
}

/// The top-level keys whose value is `ENC[...]` in the encrypted file (read again as it is).
fn encrypted_top_level_keys(input: &Input, format: Format) -> Result<HashSet<String>> {
    let parsed = context::store(format)
        .parse(&input.bytes)
        .map_err(|e| exit::store_error(&input.name, e))?;
    let mut keys = HashSet::new();
    for doc in &parsed.tree.documents {
        if let Node::Map(items) = doc {
            for item in items {
                if let Item::Pair(k, Node::Scalar(s)) = item {
                    if s.value.starts_with(b"ENC[") {
                        keys.insert(k.clone());
                    }
                }
            }
        }
    }
    Ok(keys)
}

pub fn exec_env(g: &GlobalOptions, a: &ExecEnvArgs) -> Result<i32> {
    let input = read_input(Some(&a.file), None)?;
    let format = g.input_format(&input.name);
    let opened = context::open(&input, format, context::mac(g))?;
    let encrypted = if opened.metadata.mac_only_encrypted {
        Some(encrypted_top_level_keys(&input, format)?)
    } else {
        None
    };
    let mut vars: Vec<(String, Zeroizing<String>)> = Vec::new();
    for doc in &opened.parsed.tree.documents {
        if let Node::Map(items) = doc {
            for item in items {
                let Item::Pair(k, v) = item else { continue };
                if let Some(why) = bad_env_name(k) {
                    return Err(Failure::new(exit::GENERIC, why).in_file(&input.name));
                }
                let Node::Scalar(s) = v else {
                    eprintln!(
                        "enseal: {}: skipping {k:?}: only top-level scalar values become environment variables",
                        input.name.display()
                    );
                    continue;
                };
                if !covered_by_mac(v, encrypted.as_ref().map(|e| e.contains(k))) {
                    eprintln!(
                        "enseal: warning: {}: not exporting {k:?}: its value (empty, null, or in \
                         the clear under mac_only_encrypted) is not covered by the MAC, so \
                         anyone who can edit the file could have set it",
                        input.name.display()
                    );
                    continue;
                }
                if s.value.contains(&0) {
                    return Err(Failure::new(
                        exit::GENERIC,
                        format!("the value of {k:?} holds a NUL byte, which an environment variable cannot"),
                    )
                    .in_file(&input.name));
                }
                vars.push((
                    k.clone(),
                    Zeroizing::new(String::from_utf8_lossy(&s.value).into_owned()),
                ));
            }
        }
    }
    drop(opened);
    run_shell(&a.command, |cmd| {
        if a.pristine {
            cmd.env_clear();
        }
        for (k, v) in &vars {
            cmd.env(k, v.as_str());
        }
    })
}

pub fn exec_file(g: &GlobalOptions, a: &ExecFileArgs) -> Result<i32> {
    let input = read_input(Some(&a.file), None)?;
    let in_format = g.input_format(&input.name);
    let out_format = g.output_format(in_format);
    let opened = context::open(&input, in_format, context::mac(g))?;
    let layout = if in_format == out_format {
        Layout::Keep
    } else {
        Layout::Canonical
    };
    let plain = opened
        .plaintext(out_format, layout)
        .map_err(|e| exit::store_error(&input.name, e))?;
    drop(opened);
    let fail =
        |e: std::io::Error| Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("temporary file: {e}"));
    let dir = PrivateDir::new("enseal-exec-")?;
    let name = match &a.filename {
        // sops refuses a --filename that is not a local path; enseal also keeps it to one
        // plain name whose characters need no quoting in the command.
        Some(name) => {
            if name.contains('/') || name == "." || name == ".." || !is_shell_safe(name) {
                return Err(Failure::new(
                    exit::GENERIC,
                    format!(
                        "--filename {name:?}: give a plain file name (letters, digits and . _ - + , @ % :), \
                         not a path"
                    ),
                ));
            }
            name.clone()
        }
        // The extension comes from the input's name, which whoever named the file chose: it is
        // kept only when it is plain (a file `x.$(touch PWNED)` must not run anything).
        None => {
            let ext = input
                .name
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .filter(|e| is_shell_safe(e) && !e.contains('/'))
                .map(|e| format!(".{e}"))
                .unwrap_or_default();
            format!("tmp-file{ext}")
        }
    };
    let path_text = dir.path().join(&name).to_string_lossy().into_owned();
    if !is_shell_safe(&path_text) {
        return Err(Failure::new(
            exit::GENERIC,
            format!(
                "the private file's path {path_text:?} would need quoting in the command: set \
                 TMPDIR (or XDG_RUNTIME_DIR) to a plain path"
            ),
        ));
    }
    let path = if a.no_fifo {
        let path: PathBuf = dir.path().join(&name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(fail)?;
        f.write_all(&plain).map_err(fail)?;
        path
    } else {
        // As sops does by default: the command reads the plaintext from a FIFO, so it never
        // reaches a disk. The writer waits for the reader; if the command never opens the
        // FIFO, the thread ends with the process.
        let path = dir.fifo(&name)?;
        let fifo = path.clone();
        std::thread::spawn(move || {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                let _ = f.write_all(&plain);
            }
        });
        path
    };
    let command = a.command.replace("{}", &path.to_string_lossy());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(&command);
    let guarded = run_guarded(&mut cmd)
        .map_err(|e| Failure::new(exit::GENERIC, format!("cannot run {command:?}: {e}")));
    drop(dir);
    Ok(guarded?.code())
}

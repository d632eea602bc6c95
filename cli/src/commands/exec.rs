//! `enseal exec-env` and `enseal exec-file`: hand the plaintext to a command without writing it
//! anywhere that outlives the command.

use std::io::Write;
use std::path::PathBuf;

use enseal_sops::file::Layout;
use enseal_sops::format::tree::{Item, Node};
use zeroize::Zeroizing;

use crate::args::{ExecEnvArgs, ExecFileArgs, GlobalOptions};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::read_input;

fn run_shell(command: &str, configure: impl FnOnce(&mut std::process::Command)) -> Result<i32> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(command);
    configure(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| Failure::new(exit::GENERIC, format!("cannot run {command:?}: {e}")))?;
    Ok(status.code().unwrap_or(exit::GENERIC))
}

fn scalar_env_value(node: &Node) -> Option<Zeroizing<String>> {
    match node {
        Node::Scalar(s) => Some(Zeroizing::new(
            String::from_utf8_lossy(&s.value).into_owned(),
        )),
        _ => None,
    }
}

pub fn exec_env(g: &GlobalOptions, a: &ExecEnvArgs) -> Result<i32> {
    let input = read_input(Some(&a.file), None)?;
    let format = g.input_format(&input.name);
    let opened = context::open(&input, format, context::mac(g))?;
    let mut vars: Vec<(String, Zeroizing<String>)> = Vec::new();
    for doc in &opened.parsed.tree.documents {
        if let Node::Map(items) = doc {
            for item in items {
                if let Item::Pair(k, v) = item {
                    match scalar_env_value(v) {
                        Some(value) => vars.push((k.clone(), value)),
                        None => eprintln!(
                            "enseal: {}: skipping {k:?}: only top-level scalar values become environment variables",
                            input.name.display()
                        ),
                    }
                }
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
    // The directory is 0700 and removed (with the file) when `dir` drops, after the command.
    let dir = tempfile::Builder::new()
        .prefix("enseal-exec-")
        .tempdir()
        .map_err(fail)?;
    let name = a.filename.clone().unwrap_or_else(|| {
        let ext = input
            .name
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        format!("tmp-file{ext}")
    });
    let path: PathBuf = dir.path().join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(fail)?;
    f.write_all(&plain).map_err(fail)?;
    drop(f);
    let command = a.command.replace("{}", &path.to_string_lossy());
    let code = run_shell(&command, |_| {});
    drop(dir);
    code
}

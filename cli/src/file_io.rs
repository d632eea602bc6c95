//! Reading inputs and writing outputs without ever losing a file: in-place writes go to a temp
//! file in the same directory (same filesystem), keep the original's permissions, and replace
//! it with one rename, so a failure at any point leaves the original untouched.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::exit::{self, Failure, Result};

pub struct Input {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
    /// The name used in messages, format detection and creation rules.
    pub name: PathBuf,
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Reads FILE, or standard input when it is absent or `-`. `name_override` stands in for the
/// name (`--filename-override`).
pub fn read_input(file: Option<&Path>, name_override: Option<&Path>) -> Result<Input> {
    let path = file.filter(|p| p.as_os_str() != "-").map(Path::to_path_buf);
    let mut bytes = Zeroizing::new(Vec::new());
    match &path {
        Some(p) => {
            if !p.exists() {
                return Err(Failure::new(
                    exit::NO_FILE,
                    format!("{}: no such file", p.display()),
                ));
            }
            let mut f = std::fs::File::open(p).map_err(|e| {
                Failure::new(
                    exit::CANNOT_READ_INPUT,
                    format!("{}: cannot read: {e}", p.display()),
                )
            })?;
            f.read_to_end(&mut bytes).map_err(|e| {
                Failure::new(
                    exit::CANNOT_READ_INPUT,
                    format!("{}: cannot read: {e}", p.display()),
                )
            })?;
        }
        None => {
            std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
                Failure::new(
                    exit::CANNOT_READ_INPUT,
                    format!("standard input: cannot read: {e}"),
                )
            })?;
        }
    }
    let name = name_override
        .map(Path::to_path_buf)
        .or_else(|| path.clone())
        .unwrap_or_else(|| PathBuf::from("(stdin)"));
    Ok(Input { path, name, bytes })
}

/// Where a command's result goes.
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// `--output`, or the input itself with `-i`, else standard output.
    pub fn choose(input: &Input, in_place: bool, output: Option<&Path>) -> Result<Destination> {
        match (in_place, output) {
            (true, Some(_)) => Err(Failure::new(
                exit::CONFLICTING_PARAMETERS,
                "--in-place and --output cannot be used together",
            )),
            (true, None) => match &input.path {
                Some(p) => Ok(Destination::File(p.clone())),
                None => Err(Failure::new(
                    exit::CONFLICTING_PARAMETERS,
                    "--in-place needs a file, not standard input",
                )),
            },
            (false, Some(o)) => Ok(Destination::File(o.to_path_buf())),
            (false, None) => Ok(Destination::Stdout),
        }
    }

    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Destination::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|_| out.flush()).map_err(|e| {
                    Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("standard output: {e}"))
                })
            }
            Destination::File(p) => write_atomic(p, bytes),
        }
    }
}

/// Replaces `path` with `bytes` atomically, keeping its permissions; a new file gets the mode a
/// shell redirect would give it (the output is encrypted, or the user asked for plaintext).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

/// Like [`write_atomic`], but a new file is created 0600: for plaintext and private keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

fn replace(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let fail = |e: std::io::Error| {
        Failure::new(
            exit::CANNOT_WRITE_OUTPUT,
            format!("{}: cannot write: {e}", path.display()),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".enseal-")
        .tempfile_in(&dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    match std::fs::metadata(path) {
        Ok(meta) => {
            std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(fail)?;
        }
        Err(_) if private => {} // tempfile created it 0600; persisting keeps that mode.
        Err(_) => {
            // A new file: tempfile created it 0600; make it as a plain `>` redirect would.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = 0o666 & !current_umask();
                std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
                    .map_err(fail)?;
            }
        }
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The process's umask: from /proc (Linux 4.7+), which reads it without changing it; else by
/// setting and restoring it (enseal has no other thread creating files at that point).
#[cfg(unix)]
fn current_umask() -> u32 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let found = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
        if let Some(mask) = found {
            return mask;
        }
    }
    // SAFETY: umask cannot fail; the old mask is put back at once.
    unsafe {
        let mask = libc::umask(0o077);
        libc::umask(mask);
        mask as u32
    }
}

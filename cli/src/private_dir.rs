//! Where `edit` and `exec-file` put plaintext for another program: a fresh directory only the
//! user can enter (0700), under `$XDG_RUNTIME_DIR` when it is a private directory of ours
//! (memory-backed, per user) and the temporary directory otherwise, removed when the command
//! ends: normally, on an error, and when SIGINT, SIGTERM or SIGHUP arrive while the program
//! runs (they are passed on to it; enseal cleans up when it exits, then exits as killed by the
//! signal would: 128 + the signal's number).
//!
//! A 0700 directory matters even though the file is 0600: an editor that saves by writing a
//! new file and renaming it over the old one creates the new file with the umask's mode.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::exit::{self, Failure, Result};

pub struct PrivateDir {
    dir: tempfile::TempDir,
}

impl PrivateDir {
    pub fn new(prefix: &str) -> Result<PrivateDir> {
        let fail = |e: io::Error| {
            Failure::new(
                exit::CANNOT_WRITE_OUTPUT,
                format!("private temporary directory: {e}"),
            )
        };
        let base = runtime_dir().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(fail)?;
        // Checked, not assumed: the mode is what keeps other local users out.
        let mode = std::fs::metadata(dir.path())
            .map_err(fail)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(io::Error::other(format!(
                "{} was created with mode {:o}, not 0700",
                dir.path().display(),
                mode & 0o777
            ))));
        }
        Ok(PrivateDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates `name` in the directory as a FIFO (mode 0600): the plaintext then never reaches
    /// a disk, as sops' exec-file does by default.
    pub fn fifo(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Failure::new(exit::CANNOT_WRITE_OUTPUT, "file name holds a NUL byte"))?;
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(Failure::new(
                exit::CANNOT_WRITE_OUTPUT,
                format!("cannot create a FIFO: {}", io::Error::last_os_error()),
            ));
        }
        Ok(path)
    }
}

/// `$XDG_RUNTIME_DIR` when it is a directory owned by this user that nobody else may enter.
fn runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    let meta = std::fs::metadata(&dir).ok()?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0).then_some(dir)
}

/// The signal that arrived while a guarded child ran (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signal, Ordering::SeqCst);
}

const GUARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// How a guarded child ended, and the signal enseal received meanwhile, if any.
pub struct Guarded {
    pub status: ExitStatus,
    pub signal: Option<i32>,
}

impl Guarded {
    /// The exit code for enseal: a received signal wins (128 + its number, as the shell
    /// reports a process killed by it), else the child's code.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        match self.signal {
            Some(s) => 128 + s,
            None => self
                .status
                .code()
                .or_else(|| self.status.signal().map(|s| 128 + s))
                .unwrap_or(exit::GENERIC),
        }
    }
}

/// Runs `cmd` to its end with SIGINT, SIGTERM and SIGHUP caught instead of killing enseal (so
/// that the caller's [`PrivateDir`] is removed) and passed on to the child. The child starts
/// with the default dispositions (a caught signal is reset by exec).
pub fn run_guarded(cmd: &mut Command) -> io::Result<Guarded> {
    RECEIVED.store(0, Ordering::SeqCst);
    let mut previous: [libc::sigaction; 3] = unsafe { std::mem::zeroed() };
    for (i, signal) in GUARDED.iter().enumerate() {
        // SAFETY: a zeroed sigaction with a handler of the right signature and an empty mask
        // is valid; `previous[i]` receives the old action.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = note_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            // No SA_RESTART: waitpid returns EINTR, so the signal is passed on at once.
            action.sa_flags = 0;
            libc::sigaction(*signal, &action, &mut previous[i]);
        }
    }
    let result = spawn_and_wait(cmd);
    for (i, signal) in GUARDED.iter().enumerate() {
        // SAFETY: restores the action saved above.
        unsafe {
            libc::sigaction(*signal, &previous[i], std::ptr::null_mut());
        }
    }
    result
}

fn spawn_and_wait(cmd: &mut Command) -> io::Result<Guarded> {
    use std::os::unix::process::ExitStatusExt;
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut forwarded = 0;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `pid` is our child, not yet reaped (std's Child never waited on it).
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        let received = RECEIVED.load(Ordering::SeqCst);
        if received != 0 && received != forwarded {
            // A terminal's Ctrl-C reached the child too; a `kill` of enseal alone did not.
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid, received);
            }
            forwarded = received;
        }
        if r == pid {
            let signal = RECEIVED.load(Ordering::SeqCst);
            return Ok(Guarded {
                status: ExitStatus::from_raw(status),
                signal: (signal != 0).then_some(signal),
            });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `text` can stand unquoted in a `sh -c` command as one word with no expansion.
pub fn is_shell_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,@%:".contains(c))
}

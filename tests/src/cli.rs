//! Running the built `enseal` binary (and the peers) in an isolated sandbox.
//!
//! Every command runs with a cleared environment, a scratch HOME and XDG_CONFIG_HOME and a
//! scratch working directory, so the developer's own `~/.config/sops/age/keys.txt`, AWS
//! credentials or a `.sops.yaml` up the tree can never make a test pass (or fail) by accident.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers;

/// The `enseal` binary built by `cargo build --workspace --bins` (or `ENSEAL_BIN`).
pub fn enseal_bin() -> PathBuf {
    built_bin("enseal", "ENSEAL_BIN")
}

/// The `enseal-controller` binary built by `cargo build --workspace --bins` (or
/// `ENSEAL_CONTROLLER_BIN`).
pub fn controller_bin() -> PathBuf {
    built_bin("enseal-controller", "ENSEAL_CONTROLLER_BIN")
}

/// A binary of this workspace: `$override_var` wins; otherwise the binary next to this test
/// executable's profile directory (`<target-dir>/<profile>/NAME`, which follows
/// CARGO_TARGET_DIR and `--release`), then `$CARGO_TARGET_DIR/debug/NAME`, then
/// `<repo>/target/debug/NAME`. Missing is a broken set-up: it panics, never skips.
fn built_bin(name: &str, override_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(override_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{override_var} points at {}, which does not exist",
            p.display()
        );
        return p;
    }
    let mut candidates = Vec::new();
    // Test executables live in <target-dir>/<profile>/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(name));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(dir).join("debug").join(name));
    }
    candidates.push(peers::repo_root().join("target/debug").join(name));
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the {name} binary was not found (looked at {candidates:?}): \
                 run cargo build --workspace --bins first"
            )
        })
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `None` when the process was killed by a signal (or by our timeout).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with both streams when the command did not exit 0.
    #[track_caller]
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.success(),
            "{what}: expected exit 0, got {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.code,
            self.stderr_str(),
            self.stdout_str()
        );
        self
    }

    /// Panics when stdout or stderr shows any of `values` (plaintexts that must never appear).
    #[track_caller]
    pub fn assert_shows_none(&self, values: &[&str], what: &str) -> &Self {
        for v in values {
            for (stream, text) in [("stdout", self.stdout_str()), ("stderr", self.stderr_str())] {
                assert!(
                    !text.contains(v),
                    "{what}: plaintext {v:?} on {stream}:\n{text}"
                );
            }
        }
        self
    }

    /// Panics with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: wrong exit code\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.stderr_str(),
            self.stdout_str()
        );
        self
    }
}

/// A scratch directory with its own HOME, in which commands run with a minimal environment.
pub struct Sandbox {
    dir: tempfile::TempDir,
    envs: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("enseal-test-")
            .tempdir()
            .expect("create sandbox directory");
        let home = dir.path().join("home");
        let config = home.join(".config");
        let tmp = dir.path().join("tmp");
        for d in [&config, &tmp, &dir.path().join("work")] {
            std::fs::create_dir_all(d).expect("create sandbox subdirectory");
        }
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        let envs = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.into_os_string()),
            ("XDG_CONFIG_HOME".into(), config.into_os_string()),
            ("TMPDIR".into(), tmp.into_os_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("SOPS_DISABLE_VERSION_CHECK".into(), "1".into()),
        ];
        Sandbox {
            dir,
            envs,
            timeout: Duration::from_secs(120),
        }
    }

    /// The working directory commands run in (`<sandbox>/work`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `<sandbox>/work/<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Writes `contents` to `<sandbox>/work/<name>` (creating parent directories).
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.file(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        let path = self.file(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Sets (or replaces) an environment variable for every later command.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref().to_os_string();
        self.envs.retain(|(k, _)| *k != key);
        self.envs.push((key, value.as_ref().to_os_string()));
        self
    }

    /// Removes an environment variable for every later command.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref();
        self.envs.retain(|(k, _)| k != key);
        self
    }

    /// Makes the named test keys (tests/keys/) the only age identities commands can use, via
    /// SOPS_AGE_KEY_FILE pointing at a file that holds exactly those.
    pub fn use_identities(&mut self, names: &[&str]) -> &mut Self {
        let file = self
            .dir
            .path()
            .join(format!("identities-{}.txt", names.join("-")));
        std::fs::write(&file, peers::identities(names)).expect("write identities file");
        self.env("SOPS_AGE_KEY_FILE", file)
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// A command for `program` with the sandbox environment and working directory.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(self.path());
        cmd
    }

    /// Runs `enseal ARGS` and waits for it.
    pub fn enseal<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(enseal_bin(), args)
    }

    /// Runs the real `kubeseal ARGS` (built from source by tests/cluster/build.sh) and waits
    /// for it.
    pub fn kubeseal<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(crate::cluster::kubeseal_bin(), args)
    }

    /// Runs the real `sops ARGS` and waits for it.
    pub fn sops<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(peers::sops(), args)
    }

    /// Runs `sops ARGS` of the given release and waits for it.
    pub fn sops_of<I, S>(&self, release: peers::SopsRelease, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(release.bin(), args)
    }

    /// Runs `program ARGS` with no standard input.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        self.output(cmd, None)
    }

    /// Runs `program ARGS` feeding `stdin` to it.
    pub fn run_with_stdin<I, S>(&self, program: impl AsRef<OsStr>, args: I, stdin: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        self.output(cmd, Some(stdin))
    }

    /// Runs a prepared command, killing it after the sandbox timeout so that a command that
    /// waits for a terminal fails the test instead of hanging the suite.
    pub fn output(&self, mut cmd: Command, stdin: Option<&[u8]>) -> Output {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let input = input.to_vec();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for child") {
                break Some(status);
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Output {
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        if status.is_none() {
            panic!(
                "{:?} {:?} did not finish within {:?}\n--- stderr ---\n{}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>(),
                self.timeout,
                out.stderr_str()
            );
        }
        out
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

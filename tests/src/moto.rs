//! A real moto server (PyPI `moto[server]`) standing in for AWS KMS and STS.
//!
//! One server per test process, on 127.0.0.1 and a free port, started on first use. It runs
//! under a small shell watchdog that kills it once this process is gone, so a panicking or
//! aborted test run never leaves a server behind (statics are never dropped in Rust).
//!
//! A missing `moto_server` is a broken set-up, not a reason to skip: [`moto`] panics with the
//! command that fixes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::peers;

/// The account moto puts every resource in.
pub const ACCOUNT: &str = "123456789012";
/// The region keys are created in unless a test names another.
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    addr: SocketAddr,
    log: PathBuf,
    _watchdog: Child,
    _dir: tempfile::TempDir,
}

/// The `moto_server` executable: `ENSEAL_MOTO_SERVER_BIN`, else `<repo>/.venv/bin/moto_server`,
/// else on PATH.
pub fn moto_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_MOTO_SERVER_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "ENSEAL_MOTO_SERVER_BIN points at {}, which does not exist",
            p.display()
        );
        return p;
    }
    let venv = peers::repo_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("moto_server"))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "moto_server not found (looked at {} and on PATH): install it with \
                 `.venv/bin/pip install 'moto[server]'` or set ENSEAL_MOTO_SERVER_BIN",
                venv.display()
            )
        })
}

/// The moto server of this test process, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let bin = moto_server_bin();
        let mut last_error = String::new();
        // The free port is found by binding port 0 and releasing it; another process can take
        // it in between, so a failed start is retried on a fresh port.
        for _ in 0..3 {
            match Moto::start(&bin) {
                Ok(m) => return m,
                Err(e) => last_error = e,
            }
        }
        panic!(
            "moto_server ({}) did not start: {last_error}",
            bin.display()
        )
    })
}

impl Moto {
    fn start(bin: &std::path::Path) -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let dir = tempfile::Builder::new()
            .prefix("enseal-moto-")
            .tempdir()
            .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        let log = dir.path().join("moto.log");
        // The watchdog polls this process (its parent) and kills moto when it is gone, or
        // exits when moto does.
        let script = r#"
"$1" -H 127.0.0.1 -p "$2" >"$3" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$4" 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 0.5; done
kill $moto 2>/dev/null
wait $moto 2>/dev/null
"#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("enseal-moto-watchdog")
            .arg(bin)
            .arg(port.to_string())
            .arg(&log)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _watchdog: watchdog,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // ListKeys answers once the server routes requests, not just accepts connections.
            if let Ok((200, _)) = moto.request_raw("TrentService.ListKeys", "{}", REGION) {
                return Ok(moto);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {} within 60 s; its log:\n{}",
                    moto.endpoint,
                    moto.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What moto has logged so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The environment that points an AWS SDK (enseal, sops) at this server, with dummy
    /// credentials and no other AWS configuration.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Creates a symmetric KMS key in `region` and returns its ARN.
    pub fn create_key(&self, region: &str) -> String {
        let out = self.call(
            "TrentService.CreateKey",
            r#"{"Description":"enseal test"}"#,
            region,
        );
        out["KeyMetadata"]["Arn"]
            .as_str()
            .unwrap_or_else(|| panic!("moto CreateKey answered without an ARN: {out}"))
            .to_string()
    }

    /// Gives `key_arn` the alias `alias/<name>` and returns the alias ARN.
    pub fn create_alias(&self, key_arn: &str, name: &str, region: &str) -> String {
        let body =
            serde_json::json!({ "AliasName": format!("alias/{name}"), "TargetKeyId": key_arn });
        self.call("TrentService.CreateAlias", &body.to_string(), region);
        format!("arn:aws:kms:{region}:{ACCOUNT}:alias/{name}")
    }

    /// (role ARN, session name) of every AssumeRole moto's STS has answered, from moto's
    /// state dump (`/moto-api/data.json`).
    pub fn assumed_roles(&self) -> Vec<(String, String)> {
        let (status, text) = self
            .http("GET", "/moto-api/data.json", &[], "")
            .unwrap_or_else(|e| panic!("moto state dump: {e}"));
        assert_eq!(status, 200, "moto state dump failed: {text}");
        let data: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("moto state dump is not JSON ({e})"));
        data["sts"]["AssumedRole"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .map(|r| {
                        let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                        (field("role_arn"), field("session_name"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A KMS JSON API call that must succeed; returns the parsed answer.
    pub fn call(&self, target: &str, body: &str, region: &str) -> serde_json::Value {
        let (status, text) = self
            .request_raw(target, body, region)
            .unwrap_or_else(|e| panic!("moto {target}: {e}\nmoto log:\n{}", self.log_text()));
        assert_eq!(status, 200, "moto {target} failed: {text}");
        if text.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("moto {target} answered non-JSON ({e}): {text}"))
    }

    /// One request of the KMS JSON protocol. moto does not check signatures; it takes the
    /// region from the credential scope of the Authorization header.
    fn request_raw(&self, target: &str, body: &str, region: &str) -> Result<(u16, String), String> {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/kms/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        self.http(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", target),
                ("Authorization", &auth),
            ],
            body,
        )
    }

    /// A plain HTTP/1.0 exchange (so the answer is never chunked); returns status and body.
    fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("malformed HTTP answer: {text}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed HTTP status line: {head}"))?;
        Ok((status, body.to_string()))
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released), for "KMS down".
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

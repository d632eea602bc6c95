//! Running `enseal-controller` (and the real Sealed Secrets controller and
//! kubeseal) against the shared test control plane. Each test gets its own
//! namespace, which is both the controller's own namespace (keys, Lease) and
//! the only one it reconciles, so tests running side by side never see each
//! other's objects.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{
    ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    crate::peers::repo_root()
}

pub use crate::cli::controller_bin;

pub use crate::cluster::kubeseal_bin;

pub fn sealed_secrets_controller_bin() -> PathBuf {
    cluster::sealed_secrets_bin("controller")
}

/// A port nothing listens on now, and that this process has not handed out before. All the
/// integration tests run in one process, in parallel: without the memory, two calls (the
/// same controller's HTTP and metrics ports, or two tests) can get the same port, which the
/// kernel offers again once the probe socket is closed.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Installs (server-side applies, so repeating is harmless) the SealedSecret
/// CRD from deploy/crds and waits until it is served.
pub async fn install_crd(client: &Client) {
    {
        let path = repo_root().join("deploy/crds/bitnami.com_sealedsecrets.yaml");
        let text = std::fs::read_to_string(&path).expect("reading the CRD");
        let doc = yaml_to_json(&text);
        let crd: CustomResourceDefinition = serde_json::from_value(doc).expect("CRD YAML is a CRD");
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(
            "sealedsecrets.bitnami.com",
            &PatchParams::apply("enseal-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the SealedSecret CRD");
        let established = cluster::eventually(WAIT, || async {
            let crd = api.get("sealedsecrets.bitnami.com").await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
        assert!(
            established.is_some(),
            "the SealedSecret CRD never became Established"
        );
        // Established can precede the discovery/handler update by a moment.
        let ss = ss_api(client, "default");
        let served = cluster::eventually(WAIT, || async {
            ss.list(&ListParams::default()).await.ok()
        })
        .await;
        assert!(served.is_some(), "sealedsecrets are not served");
    }
}

pub use crate::manifest::yaml_to_json;

pub fn ss_resource() -> ApiResource {
    ApiResource {
        group: "bitnami.com".into(),
        version: "v1alpha1".into(),
        api_version: "bitnami.com/v1alpha1".into(),
        kind: "SealedSecret".into(),
        plural: "sealedsecrets".into(),
    }
}

pub fn ss_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ss_resource())
}

/// A throw-away RSA key pair as Sealed Secrets stores it: PKCS#1 key and a
/// self-signed certificate, made with openssl (fast, and independent of the
/// code under test).
pub struct TestKey {
    pub dir: tempfile::TempDir,
    pub key_pem: String,
    pub cert_pem: String,
}

impl TestKey {
    pub fn generate(bits: u32) -> TestKey {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls.key");
        let cert = dir.path().join("tls.crt");
        let run = crate::certs::openssl;
        run(&[
            "genrsa",
            "-traditional",
            "-out",
            key.to_str().unwrap(),
            &bits.to_string(),
        ]);
        run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/O=sealed-secret",
            "-days",
            "3650",
            "-out",
            cert.to_str().unwrap(),
        ]);
        TestKey {
            key_pem: std::fs::read_to_string(&key).unwrap(),
            cert_pem: std::fs::read_to_string(&cert).unwrap(),
            dir,
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// Stores the pair as a key Secret in Sealed Secrets' layout.
    pub async fn store(&self, client: &Client, ns: &str, name: &str) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [(
                        "sealedsecrets.bitnami.com/sealed-secrets-key".into(),
                        "active".into(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(
                [
                    (
                        "tls.key".to_owned(),
                        ByteString(self.key_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.crt".to_owned(),
                        ByteString(self.cert_pem.clone().into_bytes()),
                    ),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("storing a key Secret");
    }
}

/// Seals `secret` (a v1 Secret as JSON) with the real kubeseal.
pub fn kubeseal(cert: &Path, scope: &str, secret: &Value) -> Value {
    let mut child = Command::new(kubeseal_bin())
        .args([
            "--cert",
            cert.to_str().unwrap(),
            "--scope",
            scope,
            "-o",
            "json",
        ])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubeseal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubeseal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubeseal prints JSON")
}

/// A plain Secret manifest with `stringData`.
/// What a test expects an unsealed Secret to hold: key -> value bytes.
pub type Plain = std::collections::BTreeMap<String, Vec<u8>>;

/// `count` variants of a Secret named `template` in `ns`, each of `values` values
/// (`k{i}`, zero-padded to `width` digits, = `variant {v} value {i}`), sealed cluster-wide by
/// the real kubeseal for `key`, each with the values it must unseal to: objects whose content
/// a test can switch between and check.
pub fn sealed_variants(
    key: &TestKey,
    ns: &str,
    count: usize,
    values: usize,
    width: usize,
) -> Vec<(Value, Plain)> {
    (0..count)
        .map(|v| {
            let values: Vec<(String, String)> = (0..values)
                .map(|k| (format!("k{k:0width$}"), format!("variant {v} value {k}")))
                .collect();
            let refs: Vec<(&str, &str)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let sealed = kubeseal(
                &key.cert_path(),
                "cluster-wide",
                &secret_json(ns, "template", &refs),
            );
            let plain = values
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            (sealed, plain)
        })
        .collect()
}

pub fn secret_json(ns: &str, name: &str, values: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data})
}

pub async fn create_ss(client: &Client, ns: &str, ss: &Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(ss.clone()).expect("a SealedSecret object");
    ss_api(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("creating a SealedSecret")
}

/// The Secret `name` once `check` accepts it.
pub async fn wait_secret(
    client: &Client,
    ns: &str,
    name: &str,
    check: impl Fn(&Secret) -> bool,
) -> Option<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    cluster::eventually(WAIT, || async {
        api.get_opt(name).await.ok().flatten().filter(|s| check(s))
    })
    .await
}

/// All of a Secret's `data`, as bytes by key (empty when it has none).
pub fn data_of(s: &Secret) -> Plain {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

pub fn value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// The `Synced` condition once it has `status` (True/False).
pub async fn wait_synced(client: &Client, ns: &str, name: &str, status: &str) -> Option<Value> {
    let api = ss_api(client, ns);
    cluster::eventually(WAIT, || async {
        let obj = api.get(name).await.ok()?;
        let conds = obj.data.pointer("/status/conditions")?.as_array()?.clone();
        conds
            .into_iter()
            .find(|c| c["type"] == "Synced" && c["status"] == status)
    })
    .await
}

/// Events about object `name` with `reason`.
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> Option<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    cluster::eventually(WAIT, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
    })
    .await
}

/// One running enseal-controller; killed when dropped.
pub struct Controller {
    child: Child,
    /// The address both ports listen on: 127.0.0.1, or the namespace's address when it runs
    /// in a network namespace of its own ([`Options::netns`]).
    pub host: IpAddr,
    pub http_port: u16,
    pub metrics_port: u16,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

pub struct Options<'a> {
    pub namespace: &'a str,
    pub lease_name: &'a str,
    pub extra: Vec<String>,
    /// Extra environment for the controller process (e.g. a local KMS endpoint).
    pub env: Vec<(String, String)>,
    pub wait_ready: bool,
    /// The control plane to run against (a private one's kubeconfig); the shared one when
    /// `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Run under `ip netns exec NAME`, listening on ADDRESS (the namespace's own) instead of
    /// 127.0.0.1, which the host cannot reach inside the namespace.
    pub netns: Option<(String, IpAddr)>,
}

impl<'a> Options<'a> {
    pub fn new(namespace: &'a str) -> Self {
        Options {
            namespace,
            lease_name: "enseal-controller",
            extra: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
            kubeconfig: None,
            netns: None,
        }
    }
}

impl Controller {
    /// Starts enseal-controller with `opts`, and waits until it is ready unless told not to.
    /// A free port can still be taken before the controller binds it (by the source port of
    /// some other test's connection): a controller that exits for that reason is started
    /// again on other ports, twice at most.
    pub async fn start(opts: Options<'_>) -> Controller {
        let mut attempt = 1;
        loop {
            let mut c = Controller::spawn(&opts);
            if !opts.wait_ready {
                return c;
            }
            match c.ready_or_exited().await {
                Ok(()) => return c,
                Err(log) if attempt < 3 && log.contains("Address already in use") => {
                    attempt += 1;
                }
                Err(log) => panic!("enseal-controller never became ready; its log:\n{log}"),
            }
        }
    }

    fn spawn(opts: &Options<'_>) -> Controller {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("controller.log");
        let http_port = free_port();
        let metrics_port = free_port();
        let kubeconfig = opts
            .kubeconfig
            .clone()
            .unwrap_or_else(|| cluster::control_plane().kubeconfig().to_path_buf());
        let host = opts
            .netns
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |(_, ip)| *ip);
        let mut command = match &opts.netns {
            // `ip netns exec` execs the controller in place, so the child is the controller.
            Some((netns, _)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(controller_bin());
                c
            }
            None => Command::new(controller_bin()),
        };
        let child = command
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--namespace",
                opts.namespace,
                "--watch-namespace",
                opts.namespace,
            ])
            .args(["--lease-name", opts.lease_name])
            .args(["--listen-addr", &format!("{host}:{http_port}")])
            .args(["--metrics-addr", &format!("{host}:{metrics_port}")])
            .args(["--key-size", "2048"])
            .args(&opts.extra)
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting enseal-controller");
        Controller {
            child,
            host,
            http_port,
            metrics_port,
            log,
            _logdir: logdir,
        }
    }

    /// Waits until /readyz answers 200 (within 120 s), or the process exits; then `Err` holds
    /// its log.
    async fn ready_or_exited(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = http_at(self.host, "GET", self.http_port, "/readyz", b"") {
                return Ok(());
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                return Err(self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs enseal-controller with exactly `args` (a Deployment's container args, say) and
    /// nothing added but `env`, the way it runs in a pod: the API server comes from
    /// KUBECONFIG (its in-cluster stand-in here), the own namespace from POD_NAMESPACE. The
    /// caller's args must make it listen on `http_port` and `metrics_port` (127.0.0.1 or all
    /// addresses); it is ready once /readyz answers 200 there.
    pub async fn start_exactly(
        args: &[String],
        env: &[(&str, &str)],
        http_port: u16,
        metrics_port: u16,
    ) -> Controller {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("controller.log");
        let kubeconfig = cluster::control_plane().kubeconfig().to_path_buf();
        let child = Command::new(controller_bin())
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting enseal-controller");
        let mut c = Controller {
            child,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port,
            metrics_port,
            log,
            _logdir: logdir,
        };
        c.wait_ready().await;
        c
    }

    pub async fn wait_ready(&mut self) {
        let (host, port) = (self.host, self.http_port);
        let ready = cluster::eventually(Duration::from_secs(120), || async move {
            http_at(host, "GET", port, "/readyz", b"")
                .ok()
                .filter(|(code, _)| *code == 200)
        })
        .await;
        if ready.is_none() {
            panic!(
                "enseal-controller never became ready; its log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_at(self.host, "GET", self.http_port, path, b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        http_at(self.host, "POST", self.http_port, path, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn metrics(&self) -> String {
        http_at(self.host, "GET", self.metrics_port, "/metrics", b"")
            .expect("GET /metrics")
            .1
    }

    /// SIGKILL: no chance to release the lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- enseal-controller log ---\n{}", self.log_text());
        }
    }
}

/// A minimal HTTP/1.0 request to 127.0.0.1:port: (status, body).
pub fn http(method: &str, port: u16, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    http_at(IpAddr::V4(Ipv4Addr::LOCALHOST), method, port, path, body)
}

/// [`http`] to `host:port`.
pub fn http_at(
    host: IpAddr,
    method: &str,
    port: u16,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect((host, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    Ok(status_and_body(&resp))
}

/// An HTTP/1.0 response's status code (0 when unreadable) and body.
fn status_and_body(resp: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// Like [`http`] with `POST`, but the body is written from another thread while the response
/// is read: a server that refuses a large body answers before reading all of it, and a client
/// that insisted on writing first would never see that answer.
pub fn post_while_writing(port: u16, path: &str, body: Vec<u8>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = s.try_clone()?;
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let writer = std::thread::spawn(move || {
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|()| w.write_all(&body));
    });
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            // The server may reset the connection after its answer (the rest of the body
            // unread); what arrived before counts.
            Err(_) if !resp.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let _ = writer.join();
    Ok(status_and_body(&resp))
}

/// Test namespace + CRD + admin client in one go.
pub async fn setup(prefix: &str) -> (cluster::TestNamespace, Client) {
    let ns = cluster::namespace(prefix).await;
    let client = ns.client();
    install_crd(&client).await;
    (ns, client)
}

/// The real Sealed Secrets controller, run out of cluster. It only knows
/// in-cluster configuration, so it runs in a private mount namespace where a
/// tmpfs over /run holds the service-account files (a token with
/// cluster-admin, the test CA, its namespace) at the path client-go reads.
pub struct RealController {
    child: Child,
    pub http_port: u16,
    pub metrics_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RealController {
    pub async fn start(client: &Client, ns: &str, extra: &[&str]) -> RealController {
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};

        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        if sas.get_opt("sealed-secrets").await.unwrap().is_none() {
            sas.create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some("sealed-secrets".into()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                },
            )
            .await
            .expect("creating the ServiceAccount");
            let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
            crbs.create(
                &PostParams::default(),
                &ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some(format!("enseal-test-sealed-secrets-{ns}")),
                        ..ObjectMeta::default()
                    },
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "ClusterRole".into(),
                        name: "cluster-admin".into(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "ServiceAccount".into(),
                        name: "sealed-secrets".into(),
                        namespace: Some(ns.into()),
                        ..Subject::default()
                    }]),
                },
            )
            .await
            .expect("binding cluster-admin");
        }
        let token = cluster::service_account_token(client, ns, "sealed-secrets").await;

        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("token"), token).unwrap();
        std::fs::write(sa.join("namespace"), ns).unwrap();
        let state = cluster::control_plane()
            .state_dir()
            .expect("the real controller needs a control plane started by the tests (its CA)");
        std::fs::copy(state.join("pki/ca.crt"), sa.join("ca.crt")).unwrap();
        let url = cluster::config().await.cluster_url;
        let host = url.host().expect("apiserver host").to_string();
        let port = url.port_u16().unwrap_or(443).to_string();

        let http_port = free_port();
        let metrics_port = free_port();
        let log = dir.path().join("controller.log");
        let script = "mount -t tmpfs tmpfs /run && \
            mkdir -p /run/secrets/kubernetes.io/serviceaccount && \
            cp \"$SA_DIR\"/* /run/secrets/kubernetes.io/serviceaccount/ && \
            exec \"$SS_BIN\" \"$@\"";
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg("--all-namespaces=false")
            .arg(format!("--listen-addr=127.0.0.1:{http_port}"))
            .arg(format!("--listen-metrics-addr=127.0.0.1:{metrics_port}"))
            .args(extra)
            .env("SA_DIR", &sa)
            .env("SS_BIN", sealed_secrets_controller_bin())
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .env("POD_NAMESPACE", ns)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the Sealed Secrets controller (needs unshare and root)");
        let rc = RealController {
            child,
            http_port,
            metrics_port,
            log,
            _dir: dir,
        };
        let ready = cluster::eventually(Duration::from_secs(120), || async move {
            http("GET", http_port, "/v1/cert.pem", b"")
                .ok()
                .filter(|(code, _)| *code == 200)
        })
        .await;
        if ready.is_none() {
            panic!(
                "the Sealed Secrets controller never served its certificate; its log:\n{}",
                rc.log_text()
            );
        }
        rc
    }

    pub fn cert_pem(&self) -> String {
        http("GET", self.http_port, "/v1/cert.pem", b"")
            .expect("GET /v1/cert.pem")
            .1
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> String {
        http("GET", self.metrics_port, "/metrics", b"")
            .expect("GET /metrics of the Sealed Secrets controller")
            .1
    }

    pub fn log_text(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(dir) = self.log.parent() {
            text += &std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
        }
        text
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- sealed-secrets controller log ---\n{}", self.log_text());
        }
    }
}

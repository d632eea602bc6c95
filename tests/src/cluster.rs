//! A real Kubernetes control plane for tests (etcd, kube-apiserver,
//! kube-controller-manager built from source by `tests/cluster/build.sh`).
//!
//! One control plane is shared by all tests of a test binary; each test gets
//! its own namespace:
//!
//! ```no_run
//! # async fn t() {
//! let ns = enseal_tests::cluster::namespace("configmap-roundtrip").await;
//! let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
//! # }
//! ```
//!
//! The control plane is started on first use and stopped when the test
//! process exits, however it exits: `start.sh --watch-pid` leaves a supervisor
//! that tears everything down once this process is gone, so neither a panic
//! nor an abort leaves etcd or an apiserver behind. Set
//! `KUBECONFIG_ENSEAL_TESTS` to run against an existing cluster instead. The
//! ambient `KUBECONFIG` is deliberately ignored: these tests create and
//! delete namespaces and RBAC objects, which must never happen by accident on
//! whatever cluster a developer's shell points at.
//!
//! Starting never degrades into skipping: when the control plane cannot be
//! started every test using it panics with the reason and the logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Names the kubeconfig of an existing cluster to test against.
pub const KUBECONFIG_ENV: &str = "KUBECONFIG_ENSEAL_TESTS";

/// The control plane the tests of this process talk to.
#[derive(Debug)]
pub struct ControlPlane {
    kubeconfig: PathBuf,
    /// `Some` when this process started it (then `start.sh`'s state dir).
    state_dir: Option<PathBuf>,
}

impl ControlPlane {
    /// Admin kubeconfig (client certificate in `system:masters`), for
    /// spawning binaries such as the controller or `kubeseal`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Certificates, logs (`logs/*.log`) and pids of a control plane this
    /// process started; `None` for one given by `KUBECONFIG_ENSEAL_TESTS`.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, started on first call. Panics (failing the
/// test) when it cannot be started.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start_or_reuse) {
        Ok(cp) => cp,
        Err(e) => panic!("the test control plane is not available:\n{e}"),
    }
}

/// A part of the control plane that [`PrivateControlPlane::stop_component`] can stop and start again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
}

impl Component {
    /// Its name in `start.sh`'s `pids/` and `hold/`.
    fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
        }
    }
}

/// A control plane of one test's own, for faults that tests sharing [`control_plane`] must
/// not see (an apiserver or etcd stopped and started again). Stopped when dropped. It costs
/// what the shared one does (~9 s to start, three processes), so only fault tests use it.
pub struct PrivateControlPlane(ControlPlane);

impl PrivateControlPlane {
    pub async fn start() -> PrivateControlPlane {
        let cp = tokio::task::spawn_blocking(run_start_sh)
            .await
            .expect("start.sh task");
        match cp {
            Ok(cp) => PrivateControlPlane(cp),
            Err(e) => panic!("a private control plane could not be started:\n{e}"),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        self.0.kubeconfig()
    }

    fn state(&self) -> &Path {
        self.0.state_dir().expect("start.sh gives a state dir")
    }

    /// An admin client of this control plane.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).expect("reading its kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("loading its kubeconfig");
        Client::try_from(config).expect("building a client")
    }

    /// Compacts etcd's history up to its current revision, as the API server does every five
    /// minutes (here at once, and physically): a watch from any older resourceVersion then
    /// fails with 410 Gone unless the API server's watch cache still holds its events. Returns
    /// the revision compacted to.
    pub fn compact_etcd(&self) -> i64 {
        let env = std::fs::read_to_string(self.state().join("env")).expect("start.sh's env");
        let port = env
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_PORT="))
            .expect("ETCD_PORT in start.sh's env")
            .trim()
            .to_owned();
        // etcd's JSON gateway (the v3 API over HTTP); curl, as start.sh uses.
        let post = |path: &str, body: &str| -> serde_json::Value {
            let out = Command::new("curl")
                .args(["-sf", "--max-time", "10", "-X", "POST", "-d", body])
                .arg(format!("http://127.0.0.1:{port}{path}"))
                .output()
                .expect("running curl");
            assert!(out.status.success(), "etcd {path}: curl {}", out.status);
            serde_json::from_slice(&out.stdout).expect("etcd answers JSON")
        };
        let revision: i64 = post("/v3/kv/range", r#"{"key":"AA==","count_only":true}"#)["header"]
            ["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .expect("etcd's revision");
        post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
        revision
    }

    /// Stops `component` with SIGTERM, or SIGKILL after `grace` (kube-apiserver waits up to
    /// 60 s for its watches on SIGTERM), and returns once `start.sh`'s supervisor has seen it
    /// down; it stays down until [`start_component`](Self::start_component).
    pub async fn stop_component(&self, component: Component, grace: Duration) {
        let name = component.name();
        let pid_file = self.state().join("pids").join(format!("{name}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
        let pid = pid.trim().to_owned();
        let hold = self.state().join("hold");
        std::fs::create_dir_all(&hold).expect("creating hold/");
        std::fs::write(hold.join(name), "").expect("writing the hold file");
        let signal = |sig: &str| {
            let _ = Command::new("kill").args([sig, &pid]).status();
        };
        let alive = || Path::new("/proc").join(&pid).exists();
        signal("-TERM");
        let deadline = Instant::now() + grace;
        while alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if alive() {
            signal("-KILL");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_file.exists() {
            assert!(
                Instant::now() < deadline,
                "start.sh's supervisor never saw {name} stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lifts the hold: the supervisor starts `component` again (same flags and data) within
    /// half a second. Does not wait for it to be ready.
    pub async fn start_component(&self, component: Component) {
        let name = component.name();
        std::fs::remove_file(self.state().join("hold").join(name)).expect("removing the hold");
        let pid_file = self.state().join("pids").join(format!("{name}.pid"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid_file.exists() {
            assert!(
                Instant::now() < deadline,
                "start.sh's supervisor never started {name} again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        if let Some(state) = self.0.state_dir() {
            let _ = Command::new("bash")
                .arg(cluster_dir().join("stop.sh"))
                .arg(state)
                .stdin(Stdio::null())
                .status();
        }
    }
}

fn cluster_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster")
}

fn start_or_reuse() -> Result<ControlPlane, String> {
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(ControlPlane {
            kubeconfig: PathBuf::from(path),
            state_dir: None,
        });
    }

    run_start_sh()
}

/// Starts a control plane with `start.sh`, torn down when this process exits (or by
/// `stop.sh`).
fn run_start_sh() -> Result<ControlPlane, String> {
    bin_dirs()?;
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(cluster_dir().join("start.sh"))
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tests/cluster/start.sh: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "tests/cluster/start.sh failed ({}):\n{stderr}",
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(PathBuf::from)
            .ok_or_else(|| format!("start.sh printed no {key}=:\n{stdout}\n{stderr}"))
    };
    let cp = ControlPlane {
        kubeconfig: field("KUBECONFIG")?,
        state_dir: Some(field("STATE_DIR")?),
    };
    eprintln!(
        "enseal-tests: control plane up in {:.1?}, state in {}",
        started.elapsed(),
        cp.state_dir.as_deref().unwrap_or(Path::new("?")).display()
    );
    Ok(cp)
}

/// Where `build.sh` put the binaries of the pinned versions.
struct BinDirs {
    sealed_secrets: PathBuf,
}

static BIN_DIRS: OnceLock<Result<BinDirs, String>> = OnceLock::new();

fn bin_dirs() -> Result<&'static BinDirs, String> {
    BIN_DIRS
        .get_or_init(|| {
            // Fast when the binaries are cached; on a cold cache this is the
            // full Go build, so its progress goes straight to the terminal.
            let out = Command::new("bash")
                .arg(cluster_dir().join("build.sh"))
                .arg("--print-dirs")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run tests/cluster/build.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!("tests/cluster/build.sh failed ({})", out.status));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let dir = stdout
                .lines()
                .find_map(|l| l.strip_prefix("SEALED_SECRETS_BIN_DIR="))
                .ok_or_else(|| format!("build.sh --print-dirs printed:\n{stdout}"))?;
            Ok(BinDirs {
                sealed_secrets: PathBuf::from(dir),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A Sealed Secrets binary built from source by `build.sh`: `"kubeseal"` or
/// `"controller"` (the sealed-secrets-controller), for interop tests.
/// Panics when it cannot be built.
pub fn sealed_secrets_bin(name: &str) -> PathBuf {
    match bin_dirs() {
        Ok(dirs) => dirs.sealed_secrets.join(name),
        Err(e) => panic!("the Sealed Secrets binaries are not available:\n{e}"),
    }
}

/// The real `kubeseal`, built from source with the Sealed Secrets controller.
pub fn kubeseal_bin() -> PathBuf {
    let path = sealed_secrets_bin("kubeseal");
    assert!(
        path.is_file(),
        "kubeseal is missing at {}: run bash tests/cluster/build.sh",
        path.display()
    );
    path
}

/// Client configuration for the admin user of the shared control plane.
pub async fn config() -> Config {
    let path = control_plane().kubeconfig();
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading kubeconfig {}: {e}", path.display()))
}

/// An admin client (RBAC does not apply to it).
///
/// A `Client` belongs to the tokio runtime it was created on (its request
/// buffer runs there), and every `#[tokio::test]` has its own runtime, so
/// clients are made per test rather than shared.
pub async fn client() -> Client {
    Client::try_from(config().await).expect("building the admin client")
}

/// enseal's SopsSecret kind, for dynamic clients.
pub fn sops_secret_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "enseal.dev".into(),
        version: "v1alpha1".into(),
        api_version: "enseal.dev/v1alpha1".into(),
        kind: "SopsSecret".into(),
        plural: "sopssecrets".into(),
    }
}

/// A one-hour token of ServiceAccount `service_account` in `ns`, from the TokenRequest API (what
/// a pod running as that account is given).
pub async fn service_account_token(client: &Client, ns: &str, service_account: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create_token_request(
        service_account,
        &PostParams::default(),
        &TokenRequest {
            metadata: ObjectMeta::default(),
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            status: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("requesting a token of ServiceAccount {service_account}: {e}"))
    .status
    .and_then(|s| s.token)
    .expect("a token")
}

/// A client that authenticates with a bearer `token` only (for example one
/// from the TokenRequest API), so RBAC applies to it.
pub async fn client_with_token(token: &str) -> Client {
    let mut config = config().await;
    config.auth_info = AuthInfo {
        token: Some(token.to_owned().into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("building a token client")
}

/// A namespace of its own for one test, deleted when dropped.
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin client this namespace was created with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An admin `Api` for namespaced resources in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Matters for a long-lived cluster given by KUBECONFIG_ENSEAL_TESTS;
        // one started here is thrown away whole anyway. Drop cannot await, and
        // the test's runtime may be single-threaded (blocked right here), so
        // the delete runs on a runtime of its own with a client of its own.
        let name = std::mem::take(&mut self.name);
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = Client::try_from(config().await).ok()?;
                let api: Api<Namespace> = Api::all(client);
                tokio::time::timeout(
                    Duration::from_secs(10),
                    api.delete(&name, &DeleteParams::background()),
                )
                .await
                .ok()?
                .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("enseal-tests: could not delete a test namespace (left behind)");
        }
    }
}

/// Creates a fresh namespace named `<prefix>-<unique suffix>` on the shared
/// control plane (starting it if needed).
pub async fn namespace(prefix: &str) -> TestNamespace {
    let name = unique_name(prefix);
    let client = client().await;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("enseal.dev/test".to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating test namespace {name}: {e}"));
    TestNamespace { name, client }
}

/// A DNS-1123 label (what namespace names must be): the sanitized prefix
/// plus a suffix unique across tests, processes and runs against a shared
/// external cluster.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut base: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(40)
        .collect();
    base = base.trim_matches('-').to_owned();
    if base.is_empty() {
        base.push_str("test");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{base}-{:x}{:x}{:04x}",
        std::process::id() & 0xffff,
        n,
        nanos & 0xffff
    )
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn namespace_names_are_valid_labels() {
        for prefix in ["GC Owner/Child", "", "---", &"x".repeat(100)] {
            let name = unique_name(prefix);
            assert!(name.len() <= 63, "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
        assert_ne!(unique_name("a"), unique_name("a"));
    }
}

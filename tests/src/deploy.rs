//! Rendering deploy/base with kubectl's built-in kustomize, for the deploy tests.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub mod rbac_run;

/// Every object `kubectl kustomize deploy/base` renders, as JSON.
pub fn kustomize_base() -> Vec<Value> {
    let base = crate::peers::repo_root().join("deploy/base");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&base)
        .output()
        .expect("running kubectl kustomize (kubectl must be installed)");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/base failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8_lossy(&out.stdout))
}

/// The one rendered object of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let first = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(found.next().is_none(), "more than one {kind}");
    first
}

pub use crate::manifest::yaml_docs;

pub use crate::cli::controller_bin;

/// The chart's directory, deploy/helm/enseal.
pub fn chart_dir() -> PathBuf {
    crate::peers::repo_root().join("deploy/helm/enseal")
}

/// The helm binary: `ENSEAL_HELM_BIN`, else the one tests/tools/helm.sh built (scripts/test.sh
/// runs it first). Never builds it here: a cold build takes minutes, which a test run should
/// not start silently.
pub fn helm_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_HELM_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ENSEAL_HELM_BIN={} is not a file", p.display());
        return p;
    }
    let script = crate::peers::repo_root().join("tests/tools/helm.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("running {} --check: {e}", script.display()));
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || path.is_empty() {
        panic!(
            "helm is not built: run `bash tests/tools/helm.sh` (builds the pinned helm from Go \
             source through the Go module proxy into ~/.cache/enseal/tools, a few minutes \
             once; scripts/test.sh does it) or set ENSEAL_HELM_BIN to a helm binary.\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    PathBuf::from(path)
}

/// A `helm` command whose config, cache and data live in a temporary directory (dropped with
/// the returned guard), so tests never read or write the user's Helm settings or repositories.
pub fn helm() -> (Command, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("a temporary HELM home");
    let mut cmd = Command::new(helm_bin());
    for (var, sub) in [
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.path().join(sub));
    }
    cmd.env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
    (cmd, home)
}

/// Runs helm with `args`, panicking with its output when it fails; returns stdout.
pub fn run_helm<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let (mut cmd, _home) = helm();
    cmd.args(args);
    let shown = format!("{cmd:?}");
    let out = cmd.output().expect("running helm");
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}

/// Every object `helm template RELEASE deploy/helm/enseal --namespace NS --include-crds
/// EXTRA...` renders, as JSON (empty documents, e.g. of a disabled template, dropped).
pub fn helm_template(release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "template".as_ref(),
        release.as_ref(),
        chart.as_os_str(),
        "--namespace".as_ref(),
        namespace.as_ref(),
        "--include-crds".as_ref(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    yaml_docs(&run_helm(args))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

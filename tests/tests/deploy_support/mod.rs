//! Rendering deploy/base with kubectl's built-in kustomize, for the deploy tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every object `kubectl kustomize deploy/base` renders, as JSON.
pub fn kustomize_base() -> Vec<Value> {
    let base = enseal_tests::peers::repo_root().join("deploy/base");
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

pub use enseal_tests::manifest::yaml_docs;

/// The `enseal-controller` binary next to this test executable's profile directory.
pub fn controller_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_CONTROLLER_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let from_profile = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("enseal-controller"));
    from_profile
        .filter(|p| p.is_file())
        .unwrap_or_else(|| enseal_tests::peers::repo_root().join("target/debug/enseal-controller"))
}

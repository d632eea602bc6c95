//! The two kustomize front ends the `enseal kustomize` tests drive: the real kustomize CLI
//! (v5.5.0, built once from Go source by `tests/tools/kustomize.sh` and cached), which runs KRM
//! exec functions with `--enable-alpha-plugins --enable-exec`, and kubectl's built-in kustomize
//! (also v5.5.0), which has no `--enable-exec` and so runs only legacy exec plugins.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::peers;

/// The real kustomize CLI: `ENSEAL_KUSTOMIZE_BIN`, else the one `tests/tools/kustomize.sh`
/// builds (once, about a minute cold through the Go module proxy; instant when cached).
pub fn kustomize() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ENSEAL_KUSTOMIZE_BIN").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "ENSEAL_KUSTOMIZE_BIN points at {}, which does not exist",
                p.display()
            );
            return p;
        }
        peers::built_by_script("tests/tools/kustomize.sh", "ENSEAL_KUSTOMIZE_BIN")
    })
    .clone()
}

/// `kubectl` (for its built-in kustomize): `ENSEAL_KUBECTL_BIN`, else on PATH.
pub fn kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("ENSEAL_KUBECTL_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|c| c.is_file())
        .unwrap_or_else(|| {
            panic!(
                "kubectl not found on PATH: install kubectl 1.32 (built-in kustomize v5.5.0), \
                 or set ENSEAL_KUBECTL_BIN"
            )
        })
}

//! deploy/base's RBAC on the real API server: enseal-controller runs with the base
//! Deployment's args and nothing but a token of the deployed ServiceAccount, makes its key,
//! unseals a SealedSecret into a Secret with status and Events, decrypts a SopsSecret with the
//! age key Secret the Deployment names, and is refused what the role does not grant (the
//! checks live in tests/src/deploy/rbac_run.rs, shared with the Helm chart's test).

use enseal_tests::cluster;
use enseal_tests::deploy::kustomize_base;
use enseal_tests::deploy::rbac_run::{
    apply, the_controller_works_with_only_the_deployed_role, RBAC_KINDS,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::DeleteParams;
use kube::Api;
use serde_json::{json, Value};

/// deploy/base's objects (without the Namespace and CRDs) retargeted at namespace `ns`;
/// cluster-scoped names get `ns` as a suffix so that runs side by side (or a shared cluster)
/// never collide.
fn base_for(ns: &str) -> Vec<Value> {
    let cluster_name = format!("enseal-controller-{ns}");
    kustomize_base()
        .into_iter()
        .filter(|d| {
            !matches!(
                d["kind"].as_str(),
                Some("Namespace" | "CustomResourceDefinition")
            )
        })
        .map(|mut d| {
            match d["kind"].as_str().unwrap_or_default() {
                "ClusterRole" => d["metadata"]["name"] = json!(cluster_name),
                "ClusterRoleBinding" => {
                    d["metadata"]["name"] = json!(cluster_name);
                    d["roleRef"]["name"] = json!(cluster_name);
                }
                _ => d["metadata"]["namespace"] = json!(ns),
            }
            if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    assert_eq!(s["namespace"], "enseal-system");
                    s["namespace"] = json!(ns);
                }
            }
            d
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_works_with_only_the_deployed_role_and_nothing_more() {
    let ns = cluster::namespace("deploy-rbac").await;
    let n = ns.name().to_owned();
    // The SealedSecret lives elsewhere than the controller, so that only the ClusterRole (not
    // the Role of the controller's own namespace) can let it work there.
    let apps = cluster::namespace("deploy-rbac-apps").await;
    let admin = ns.client();
    let deployed = base_for(&n);
    let rbac: Vec<&Value> = deployed
        .iter()
        .filter(|d| RBAC_KINDS.contains(&d["kind"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(rbac.len(), RBAC_KINDS.len());
    for obj in rbac {
        apply(&admin, obj).await;
    }

    the_controller_works_with_only_the_deployed_role(&deployed, &admin, &n, apps.name()).await;

    // Cluster-scoped objects outlive the namespace; remove them (matters on a shared cluster).
    let name = format!("enseal-controller-{n}");
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(&name, &DeleteParams::default())
        .await;
}

//! Smoke tests of the test control plane itself: the properties the
//! controller tests rely on (API round-trips, garbage collection of owned
//! objects, RBAC enforcement) hold on it. They fail, never skip, when the
//! control plane cannot be started.

use std::collections::BTreeMap;
use std::time::Duration;

use enseal_tests::cluster;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Resource};

/// Generous: on a loaded 2-core CI machine the garbage collector's informers
/// can take a while to catch up, and a bounded wait still fails loudly.
const GC_TIMEOUT: Duration = Duration::from_secs(60);

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_round_trips_through_the_api() {
    let ns = cluster::namespace("smoke-configmap").await;
    let cms: Api<ConfigMap> = ns.api();

    let data = BTreeMap::from([
        ("plain".to_owned(), "value".to_owned()),
        ("multi-line".to_owned(), "a: 1\nb: [x, y]\n".to_owned()),
        ("unicode".to_owned(), "grüße, 秘密 🔐".to_owned()),
    ]);
    let binary = BTreeMap::from([("raw".to_owned(), ByteString(vec![0, 159, 255, 10, 13]))]);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            labels: Some([("app".to_owned(), "smoke".to_owned())].into()),
            ..meta("round-trip")
        },
        data: Some(data.clone()),
        binary_data: Some(binary.clone()),
        ..ConfigMap::default()
    };
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some(), "server assigns a uid");

    let got = cms.get("round-trip").await.unwrap();
    assert_eq!(got.data.as_ref(), Some(&data));
    assert_eq!(got.binary_data.as_ref(), Some(&binary));
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.metadata.namespace.as_deref(), Some(ns.name()));

    let listed = cms
        .list(&ListParams::default().labels("app=smoke"))
        .await
        .unwrap();
    let names: Vec<_> = listed
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["round-trip"]);

    cms.delete("round-trip", &DeleteParams::default())
        .await
        .unwrap();
    let err = cms.get("round-trip").await.unwrap_err();
    assert_eq!(status_code(&err), Some(404), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_object_is_garbage_collected_after_its_owner_is_deleted() {
    let ns = cluster::namespace("smoke-gc").await;
    let cms: Api<ConfigMap> = ns.api();

    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("owner"),
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap();
    let owner_ref = OwnerReference {
        api_version: ConfigMap::api_version(&()).into_owned(),
        kind: ConfigMap::kind(&()).into_owned(),
        name: "owner".to_owned(),
        uid: owner.metadata.uid.clone().expect("owner has a uid"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let child = ConfigMap {
        metadata: ObjectMeta {
            owner_references: Some(vec![owner_ref]),
            ..meta("child")
        },
        ..ConfigMap::default()
    };
    cms.create(&PostParams::default(), &child).await.unwrap();
    // An unowned neighbour must survive: the collector removes dependents,
    // not everything in the namespace.
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: meta("bystander"),
            ..ConfigMap::default()
        },
    )
    .await
    .unwrap();

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();

    let gone = cluster::eventually(GC_TIMEOUT, || async {
        match cms.get("child").await {
            Err(e) if status_code(&e) == Some(404) => Some(()),
            Ok(_) => None,
            Err(e) => panic!("unexpected error polling the child: {e}"),
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "the child ConfigMap still exists {GC_TIMEOUT:?} after its owner was deleted: \
         is the garbage collector of kube-controller-manager running?"
    );
    cms.get("bystander")
        .await
        .expect("an unowned ConfigMap is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_with_a_narrow_role_is_refused_what_the_role_does_not_grant() {
    let ns = cluster::namespace("smoke-rbac").await;
    let other = cluster::namespace("smoke-rbac-other").await;
    let pp = PostParams::default();

    let sas: Api<ServiceAccount> = ns.api();
    sas.create(
        &pp,
        &ServiceAccount {
            metadata: meta("narrow"),
            ..ServiceAccount::default()
        },
    )
    .await
    .unwrap();
    ns.api::<Role>()
        .create(
            &pp,
            &Role {
                metadata: meta("read-one-configmap-kind"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".to_owned()]),
                    verbs: vec!["get".to_owned()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .unwrap();
    ns.api::<RoleBinding>()
        .create(
            &pp,
            &RoleBinding {
                metadata: meta("narrow-can-get-configmaps"),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "Role".to_owned(),
                    name: "read-one-configmap-kind".to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: "narrow".to_owned(),
                    namespace: Some(ns.name().to_owned()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
    for api in [ns.api::<ConfigMap>(), other.api::<ConfigMap>()] {
        api.create(
            &pp,
            &ConfigMap {
                metadata: meta("visible"),
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap();
    }
    ns.api::<Secret>()
        .create(
            &pp,
            &Secret {
                metadata: meta("hidden"),
                ..Secret::default()
            },
        )
        .await
        .unwrap();

    // A short-lived token from the TokenRequest API, as a projected volume
    // would give a pod of this ServiceAccount.
    let token = sas
        .create_token_request(
            "narrow",
            &pp,
            &TokenRequest {
                metadata: ObjectMeta::default(),
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                }),
                status: None,
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|status| status.token)
        .expect("TokenRequest returns a token");
    let narrow = cluster::client_with_token(&token).await;
    let own_cms: Api<ConfigMap> = Api::namespaced(narrow.clone(), ns.name());

    // The apiserver's RBAC authorizer reads bindings from an informer cache,
    // so a binding created a moment ago may not apply yet: wait for the one
    // thing it grants before checking what it must refuse.
    let granted = cluster::eventually(Duration::from_secs(10), || async {
        own_cms.get("visible").await.ok()
    })
    .await;
    assert!(
        granted.is_some(),
        "the Role's get on configmaps never took effect"
    );

    let refused: Vec<(&str, Result<(), kube::Error>)> = vec![
        (
            "list configmaps",
            own_cms.list(&ListParams::default()).await.map(drop),
        ),
        (
            "create a configmap",
            own_cms
                .create(
                    &pp,
                    &ConfigMap {
                        metadata: meta("new"),
                        ..ConfigMap::default()
                    },
                )
                .await
                .map(drop),
        ),
        (
            "delete a configmap",
            own_cms
                .delete("visible", &DeleteParams::default())
                .await
                .map(drop),
        ),
        (
            "get a secret",
            Api::<Secret>::namespaced(narrow.clone(), ns.name())
                .get("hidden")
                .await
                .map(drop),
        ),
        (
            "get a configmap in another namespace",
            Api::<ConfigMap>::namespaced(narrow.clone(), other.name())
                .get("visible")
                .await
                .map(drop),
        ),
    ];
    for (what, result) in refused {
        match result {
            Err(e) if status_code(&e) == Some(403) => {}
            Err(e) => panic!("{what}: expected 403 Forbidden, got {e}"),
            Ok(()) => panic!("{what}: allowed, but the Role does not grant it"),
        }
    }
}

/// Catches a build that lost its version stamp (`/version` would say
/// v0.0.0-master) or drifted from the k8s-openapi feature (v1_37).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_reports_the_release_k8s_openapi_is_built_for() {
    let info = cluster::client().await.apiserver_version().await.unwrap();
    assert_eq!(
        (info.major.as_str(), info.minor.as_str()),
        ("1", "37"),
        "{info:?}"
    );
    assert!(info.git_version.starts_with("v1.37."), "{info:?}");
}

#[test]
fn sealed_secrets_binaries_are_built_and_run() {
    for name in ["kubeseal", "controller"] {
        let bin = cluster::sealed_secrets_bin(name);
        let out = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --version: {out:?}");
        assert!(
            stdout.starts_with(&format!("{name} version: v")),
            "{stdout}"
        );
    }
}

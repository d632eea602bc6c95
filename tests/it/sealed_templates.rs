//! `spec.template.data` as the real Sealed Secrets controller (v0.40.0) renders it: every
//! template of tests/sealing-templates/templates.json (taken from public repositories and
//! Sealed Secrets' docs and tests) is sealed into a SealedSecret, run through the real
//! controller and through enseal-controller on the test API server, and the two Secrets
//! are compared byte for byte. Both controllers share one key and run side by side, each
//! watching its own namespace.

use std::collections::BTreeMap;

use enseal_tests::cluster;
use enseal_tests::controller::*;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::Value;

/// What a controller made of one SealedSecret: the Secret's type and data, or the
/// fact that it refused it (Synced=False).
#[derive(Debug, PartialEq)]
enum Outcome {
    Secret {
        type_: Option<String>,
        data: BTreeMap<String, Vec<u8>>,
    },
    Refused,
}

async fn outcome(client: &Client, ns: &str, name: &str) -> Option<Outcome> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let sealed = ss_api(client, ns);
    cluster::eventually(std::time::Duration::from_secs(90), || async {
        if let Some(s) = secrets.get_opt(name).await.ok().flatten() {
            return Some(Outcome::Secret {
                type_: s.type_.clone(),
                data: s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            });
        }
        let obj = sealed.get(name).await.ok()?;
        let conds = obj.data.pointer("/status/conditions")?.as_array()?.clone();
        conds
            .iter()
            .any(|c| c["type"] == "Synced" && c["status"] == "False")
            .then_some(Outcome::Refused)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_templates_render_as_the_sealed_secrets_controller_renders_them() {
    let table: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/sealing-templates/templates.json"))
            .unwrap(),
    )
    .unwrap();
    let (real_ns, client) = setup("tpl-real").await;
    let enseal_ns = cluster::namespace("tpl-enseal").await;
    let key = TestKey::generate(2048);
    key.store(&client, real_ns.name(), "sealed-secrets-key-shared")
        .await;
    key.store(&client, enseal_ns.name(), "sealed-secrets-key-shared")
        .await;
    let _real = RealController::start(&client, real_ns.name(), &[]).await;
    let _enseal = Controller::start(Options::new(enseal_ns.name())).await;

    for ns in [real_ns.name(), enseal_ns.name()] {
        for (i, entry) in table.iter().enumerate() {
            let values: Vec<(&str, &str)> = entry["encryptedData"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let mut ss = kubeseal(
                &key.cert_path(),
                "strict",
                &secret_json(ns, &format!("t{i}"), &values),
            );
            ss["spec"]["template"]["data"] = entry["template"].clone();
            create_ss(&client, ns, &ss).await;
        }
    }

    let mut identical = 0;
    let mut report = Vec::new();
    for (i, entry) in table.iter().enumerate() {
        let name = format!("t{i}");
        let real = outcome(&client, real_ns.name(), &name).await;
        let ours = outcome(&client, enseal_ns.name(), &name).await;
        assert!(
            real.is_some(),
            "{}: the real controller neither made a Secret nor refused",
            entry["name"]
        );
        if real == ours {
            identical += 1;
        } else {
            report.push(format!(
                "{}:\n  Sealed Secrets: {real:?}\n  enseal:         {ours:?}",
                entry["name"]
            ));
        }
    }
    eprintln!(
        "{identical} of {} real templates render identically to Sealed Secrets v0.40.0",
        table.len()
    );
    assert!(
        report.is_empty(),
        "{identical} of {} identical; differences:\n{}",
        table.len(),
        report.join("\n")
    );
}

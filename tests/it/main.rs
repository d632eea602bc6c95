//! enseal's integration tests, one binary: the built `enseal` and `enseal-controller` against
//! the real peers (sops, age, GnuPG, kubeseal and the Sealed Secrets controller, helm, kustomize,
//! pre-commit, moto) and a real API server. One binary links kube, tokio and the rest once
//! instead of once per file, and the tests of all modules share one control plane (each test
//! works in its own namespace). Helpers live in the `enseal_tests` library (tests/src).

mod age_key_sources;
mod age_plugin;
mod age_pq_interop;
mod argocd_cmp;
mod argocd_health;
mod azure_kv_interop;
mod cli_attacks;
mod cli_behaviour;
mod cli_yaml_limits;
mod cli_yaml_tags;
mod cluster_smoke;
mod controller_faults;
mod controller_interop;
mod controller_isindir;
mod controller_operations;
mod controller_replicas;
mod controller_sealed_secrets_flags;
mod controller_sealed_secrets_metrics;
mod controller_sealedsecret;
mod controller_sopssecret;
mod decryption_order;
mod deploy_manifests;
mod deploy_monitoring;
mod deploy_rbac;
mod gcp_kms_interop;
mod generated_yaml;
mod helm_chart;
mod kms_interop;
mod kubeseal_interop;
mod kubeseal_service_proxy;
mod kustomize_plugin;
mod pgp_errors;
mod pgp_interop;
mod pgp_native;
mod pre_commit_hook;
mod real_world_corpus;
mod seal_interop;
mod sealed_templates;
mod sops_functional_tests;
mod sops_interop;
mod ssh_keys;
mod unsupported_key_sources;
mod updatekeys_tree;
mod vault_interop;

//! Helpers shared by the cross-crate tests (locating peers, running the built binaries).

pub mod age_go;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod data;
pub mod deploy;
pub mod differential;
pub mod fake_azure_kv;
pub mod fake_gcp_kms;
pub mod fake_http;
pub mod fault_proxy;
pub mod generate;
pub mod gnupg;
pub mod kustomize;
pub mod manifest;
pub mod moto;
pub mod netns;
pub mod openbao;
pub mod peers;
pub mod tcp_forward;
pub mod terminal;

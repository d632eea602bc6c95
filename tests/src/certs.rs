//! Test certificates made with openssl, for the fakes and proxies that speak TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl args`, panicking with its stderr when it fails.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `ca_subject` and a server certificate (`server_subject`) it signs for `sans`
/// (openssl's subjectAltName syntax), valid two days, written to `dir` as ca.crt, server.key
/// and server.crt; `newkey` is openssl req's key choice (e.g. `["rsa:2048"]`, or
/// `["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]`, made in milliseconds). Returns the CA file.
pub fn ca_and_server(
    dir: &Path,
    newkey: &[&str],
    ca_subject: &str,
    server_subject: &str,
    sans: &str,
) -> PathBuf {
    let p = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_owned();
    let req = |extra: &'static [&'static str]| {
        let mut args: Vec<&str> = vec!["req"];
        args.extend(extra);
        args.push("-newkey");
        args.extend(newkey);
        args.push("-nodes");
        args
    };
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    let mut args = req(&["-x509"]);
    args.extend([
        "-keyout", &ca_key, "-subj", ca_subject, "-days", "2", "-out", &ca_crt,
    ]);
    openssl(&args);
    let (key, csr, crt, ext) = (
        p("server.key"),
        p("server.csr"),
        p("server.crt"),
        p("ext.cnf"),
    );
    let mut args = req(&[]);
    args.extend(["-keyout", &key, "-subj", server_subject, "-out", &csr]);
    openssl(&args);
    std::fs::write(
        &ext,
        format!("subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
    dir.join("ca.crt")
}

/// A rustls server configuration (ring, default protocol versions, no client auth) serving
/// the server.crt / server.key that [`ca_and_server`] wrote to `dir`.
pub fn tls_server_config(dir: &Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("server.crt"))
        .expect("read server.crt")
        .map(|c| c.expect("a PEM certificate"))
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key"))
        .expect("read server.key");
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server certificate and its key"),
    )
}

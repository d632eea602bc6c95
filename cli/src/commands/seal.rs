//! `enseal seal`, `enseal unseal` and `enseal cert`: kubeseal's command line on
//! `enseal_sealing` (sealing with a certificate from a file, a URL or the controller
//! through the API server; recovery with private keys).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use enseal_sealing::keys::{self, KeyPair, SealingCertificate};
use enseal_sealing::manifest::{self, ManifestFormat};
use enseal_sealing::{PrivateKey, Scope, SealedSecret, Secret};
use enseal_sops::file::{self, DecryptOptions};
use enseal_sops::stores::Format;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::args::{CertArgs, ControllerArgs, SealArgs, UnsealArgs};
use crate::context;
use crate::exit::{self, Failure, Result};
use crate::file_io::{self, read_input, Input};

fn fail(message: impl Into<String>) -> Failure {
    Failure::new(exit::GENERIC, message)
}

fn conflict(message: impl Into<String>) -> Failure {
    Failure::new(exit::CONFLICTING_PARAMETERS, message)
}

pub fn seal(a: &SealArgs) -> Result<()> {
    if a.recovery_unseal {
        return unseal(&UnsealArgs {
            file: a.secret_file.clone(),
            sealed_secret_file: None,
            private_key: a.private_key.clone(),
            secret_file: a.sealed_secret_file.clone(),
            format: a.format.clone().unwrap_or_else(|| "json".into()),
        });
    }
    if a.fetch_cert {
        let (_, pem) = cert_source(a.cert.as_deref(), &a.controller)?;
        return write_output(None, &pem, false);
    }
    let modes = [a.raw, a.merge_into.is_some(), a.re_encrypt, a.validate];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err(conflict(
            "--raw, --merge-into, --re-encrypt and --validate cannot be combined",
        ));
    }
    if !a.from_file.is_empty() && !a.raw {
        return Err(conflict("--from-file needs --raw"));
    }
    let scope = a
        .scope
        .as_deref()
        .map(|s| s.parse::<Scope>().map_err(|e| fail(e.to_string())))
        .transpose()?;
    let format = a
        .format
        .as_deref()
        .and_then(ManifestFormat::from_name)
        .unwrap_or_default();
    if a.validate {
        return validate(a);
    }
    if a.re_encrypt && a.private_key.is_empty() {
        // The controller re-seals with its newest key: no certificate needed.
        return re_encrypt_by_controller(a, format);
    }
    let cert = load_cert(a.cert.as_deref(), &a.controller)?;
    if a.raw {
        return raw(a, scope, &cert);
    }
    if a.re_encrypt {
        return re_encrypt(a, format, &cert);
    }
    let secrets = read_secrets(a.secret_file.as_deref())?;
    if let Some(target) = &a.merge_into {
        return merge_into(a, target, scope, secrets, &cert);
    }
    let mut sealed = Vec::with_capacity(secrets.len());
    for (index, mut secret) in secrets.into_iter().enumerate() {
        fill_identity(&mut secret, a.name.as_deref(), a.namespace.as_deref());
        if secret.data.is_empty() && secret.string_data.is_empty() && !a.allow_empty_data {
            return Err(fail(format!(
                "document {index}: the Secret has no data; pass --allow-empty-data if that is \
                 intended"
            )));
        }
        sealed.push(
            SealedSecret::seal(&secret, &cert.public_key, scope)
                .map_err(|e| fail(format!("document {index}: {e}")))?,
        );
    }
    let text = manifest::write_documents(&sealed, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), text.as_bytes(), false)
}

/// kubeseal fills a missing name or namespace from its flags; it never renames a Secret.
fn fill_identity(secret: &mut Secret, name: Option<&str>, namespace: Option<&str>) {
    if secret.metadata.name.as_deref().unwrap_or("").is_empty() {
        secret.metadata.name = name.map(str::to_string);
    }
    if secret
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        secret.metadata.namespace = namespace.map(str::to_string);
    }
}

fn load_cert(cert: Option<&str>, controller: &ControllerArgs) -> Result<SealingCertificate> {
    let (name, pem) = cert_source(cert, controller)?;
    parse_cert(&name, &pem)
}

/// The certificate's PEM bytes and a name for messages, as kubeseal finds them: `--cert` (or
/// SEALED_SECRETS_CERT) as a file or an http(s) URL, else the controller through the API
/// server.
fn cert_source(cert: Option<&str>, controller: &ControllerArgs) -> Result<(String, Vec<u8>)> {
    let pem = match cert {
        Some(url) if fetch::is_url(url) => {
            let pem = fetch::url(url).map_err(|e| fail(format!("--cert {url}: {e}")))?;
            (url.to_string(), pem)
        }
        Some(file) => {
            let file = file.strip_prefix("file://").unwrap_or(file);
            let input = read_input(Some(Path::new(file)), None)?;
            (file.to_string(), input.bytes.to_vec())
        }
        None => {
            let pem = fetch::from_controller(controller).map_err(fail)?;
            let name = format!(
                "the certificate of {}/{}",
                controller.controller_namespace, controller.controller_name
            );
            (name, pem)
        }
    };
    // A proxy or a wrong URL answers with an HTML page: say so rather than print it.
    parse_cert(&pem.0, &pem.1)?;
    Ok(pem)
}

fn parse_cert(name: &str, pem: &[u8]) -> Result<SealingCertificate> {
    let parsed = keys::parse_certificate_pem(pem).map_err(|e| fail(format!("{name}: {e}")))?;
    parsed
        .check_not_expired(SystemTime::now())
        .map_err(|e| fail(format!("{name}: {e}")))?;
    Ok(parsed)
}

fn read_private_keys(files: &[PathBuf]) -> Result<Vec<PrivateKey>> {
    let mut all = Vec::new();
    for file in files {
        let input = read_input(Some(file), None)?;
        let found = keys::read_private_keys(&input.bytes)
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
        all.extend(found);
    }
    Ok(all)
}

/// Reads Secrets, decrypting an enseal/sops-encrypted file in memory first.
fn read_secrets(file: Option<&Path>) -> Result<Vec<Secret>> {
    let input = read_input(file, None)?;
    let docs = parse(&input)?;
    let docs = if docs
        .iter()
        .any(|d| d.get("sops").is_some_and(Value::is_object))
    {
        let plain = decrypt_sops(&input)?;
        parse(&Input {
            path: input.path.clone(),
            name: input.name.clone(),
            bytes: plain,
        })?
    } else {
        docs
    };
    if docs.is_empty() {
        return Err(fail(format!("{}: no Secret found", input.name.display())));
    }
    manifest::decode_all(docs, "Secret").map_err(read_error(&input.name))
}

fn parse(input: &Input) -> Result<Vec<Value>> {
    manifest::parse_documents(&input.bytes)
        .map_err(|e| Failure::new(exit::CANNOT_READ_INPUT, e.to_string()).in_file(&input.name))
}

fn read_error(name: &Path) -> impl Fn(manifest::ManifestError) -> Failure + '_ {
    move |e| Failure::new(exit::CANNOT_READ_INPUT, e.to_string()).in_file(name)
}

fn decrypt_sops(input: &Input) -> Result<Zeroizing<Vec<u8>>> {
    let first = input.bytes.iter().find(|b| !b.is_ascii_whitespace());
    let format = if first == Some(&b'{') {
        Format::Json
    } else {
        Format::Yaml
    };
    file::decrypt_bytes(
        &input.bytes[..],
        format,
        &context::keyring(),
        &DecryptOptions::default(),
    )
    .map_err(|e| context::file_error(&input.name, e))
}

fn raw(a: &SealArgs, scope: Option<Scope>, cert: &SealingCertificate) -> Result<()> {
    let scope = scope.unwrap_or_default();
    let spec = match a.from_file.as_slice() {
        [] => return Err(fail("--raw needs --from-file")),
        [one] => one,
        _ => return Err(fail("--raw takes exactly one --from-file")),
    };
    let path = spec.split_once('=').map_or(spec.as_str(), |(_, p)| p);
    let namespace = a.namespace.as_deref().unwrap_or("");
    let name = a.name.as_deref().unwrap_or("");
    if namespace.is_empty() && scope != Scope::ClusterWide {
        return Err(fail(format!(
            "--raw with --scope {scope} needs --namespace"
        )));
    }
    if name.is_empty() && scope == Scope::Strict {
        return Err(fail("--raw with --scope strict needs --name"));
    }
    let input = read_input(Some(Path::new(path)), None)?;
    let sealed = enseal_sealing::seal_base64(
        &cert.public_key,
        &scope.label(namespace, name),
        &input.bytes,
    )
    .map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), sealed.as_bytes(), false)
}

fn read_sealed(file: Option<&Path>) -> Result<(Input, Vec<SealedSecret>)> {
    let input = read_input(file, None)?;
    let docs = parse(&input)?;
    if docs.is_empty() {
        return Err(fail(format!(
            "{}: no SealedSecret found",
            input.name.display()
        )));
    }
    let sealed = manifest::decode_all(docs, "SealedSecret").map_err(read_error(&input.name))?;
    Ok((input, sealed))
}

/// `--re-encrypt --private-key`: offline, for `--cert`.
fn re_encrypt(a: &SealArgs, format: ManifestFormat, cert: &SealingCertificate) -> Result<()> {
    let keys = read_private_keys(&a.private_key)?;
    let (input, mut sealed) = read_sealed(a.secret_file.as_deref())?;
    for (index, s) in sealed.iter_mut().enumerate() {
        *s = s.rotate(&keys, &cert.public_key).map_err(|e| {
            fail(format!("document {index} ({}): {e}", s.metadata.name())).in_file(&input.name)
        })?;
    }
    let text = manifest::write_documents(&sealed, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), text.as_bytes(), false)
}

/// `--re-encrypt` without private keys: the controller's `/v1/rotate` re-seals each object
/// with its newest key, as kubeseal does.
fn re_encrypt_by_controller(a: &SealArgs, format: ManifestFormat) -> Result<()> {
    let (input, sealed) = read_sealed(a.secret_file.as_deref())?;
    let answers = ask_controller(a, "/v1/rotate", &sealed).map_err(|(index, e)| match e {
        fetch::ControllerError::Conflict(m) => fail(format!(
            "unable to rotate document {index} ({}): {m}",
            sealed[index].metadata.name()
        ))
        .in_file(&input.name),
        fetch::ControllerError::Other(m) => fail(format!("cannot re-encrypt: {m}")),
    })?;
    let mut rotated = Vec::with_capacity(answers.len());
    for (index, answer) in answers.into_iter().enumerate() {
        let doc: Value = serde_json::from_slice(&answer).map_err(|_| {
            fail(format!(
                "the controller's /v1/rotate answer for document {index} is not JSON"
            ))
        })?;
        rotated.push(
            manifest::decode::<SealedSecret>(index, doc, "SealedSecret")
                .map_err(|e| fail(format!("the controller's /v1/rotate answer: {e}")))?,
        );
    }
    let text = manifest::write_documents(&rotated, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.sealed_secret_file.as_deref(), text.as_bytes(), false)
}

/// Posts every SealedSecret to the controller's `path`; on failure, the document's index.
fn ask_controller(
    a: &SealArgs,
    path: &'static str,
    sealed: &[SealedSecret],
) -> std::result::Result<Vec<Vec<u8>>, (usize, fetch::ControllerError)> {
    let mut bodies = Vec::with_capacity(sealed.len());
    for (index, s) in sealed.iter().enumerate() {
        let body = serde_json::to_vec(s)
            .map_err(|e| (index, fetch::ControllerError::Other(e.to_string())))?;
        bodies.push(body);
    }
    fetch::post_to_controller(&a.controller, path, bodies)
}

/// `--validate`: every value of every SealedSecret opens, checked with `--private-key`
/// offline, else by the controller's `/v1/verify` (200 opens, 409 does not), as kubeseal does.
fn validate(a: &SealArgs) -> Result<()> {
    let (input, sealed) = read_sealed(a.secret_file.as_deref())?;
    if a.private_key.is_empty() {
        return ask_controller(a, "/v1/verify", &sealed)
            .map(drop)
            .map_err(|(index, e)| match e {
                fetch::ControllerError::Conflict(m) => fail(format!(
                    "unable to decrypt sealed secret: document {index} ({}): {m}",
                    sealed[index].metadata.name()
                ))
                .in_file(&input.name),
                fetch::ControllerError::Other(m) => {
                    fail(format!("cannot validate sealed secret: {m}"))
                }
            });
    }
    let keys = read_private_keys(&a.private_key)?;
    for (index, s) in sealed.iter().enumerate() {
        s.verify(&keys).map_err(|e| {
            fail(format!(
                "unable to decrypt sealed secret: document {index} ({}): {e}",
                s.metadata.name()
            ))
            .in_file(&input.name)
        })?;
    }
    Ok(())
}

/// Adds the Secret's values to an existing SealedSecret file, under the SealedSecret's own
/// name, namespace and scope (values of one SealedSecret must share its label), keeping the
/// file's format unless -o says otherwise.
fn merge_into(
    a: &SealArgs,
    target: &Path,
    scope: Option<Scope>,
    secrets: Vec<Secret>,
    cert: &SealingCertificate,
) -> Result<()> {
    let [secret] = <[Secret; 1]>::try_from(secrets)
        .map_err(|_| fail("--merge-into takes exactly one input Secret"))?;
    let input = read_input(Some(target), None)?;
    let docs = parse(&input)?;
    let mut existing: Vec<SealedSecret> =
        manifest::decode_all(docs, "SealedSecret").map_err(read_error(&input.name))?;
    if existing.len() != 1 {
        return Err(
            fail("the --merge-into file must hold exactly one SealedSecret").in_file(target),
        );
    }
    let orig = &mut existing[0];
    if let Some(s) = scope {
        if s != orig.scope() {
            return Err(fail(format!(
                "--scope {s} differs from the SealedSecret's scope {}: its values could not \
                 all be opened",
                orig.scope()
            ))
            .in_file(target));
        }
    }
    for (key, plain) in secret.values() {
        orig.insert_value(&cert.public_key, key, plain)
            .map_err(|e| fail(e.to_string()))?;
    }
    let scope = orig.scope();
    let template = &mut orig.spec.template.metadata;
    for (k, v) in &secret.metadata.labels {
        template.labels.insert(k.clone(), v.clone());
    }
    for (k, v) in &secret.metadata.annotations {
        if !k.ends_with("/last-applied-configuration") {
            template.annotations.insert(k.clone(), v.clone());
        }
    }
    scope.write_annotations(&mut template.annotations);
    let format = match a.format.as_deref().and_then(ManifestFormat::from_name) {
        Some(f) => f,
        None if input.bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
            ManifestFormat::Json
        }
        None => ManifestFormat::Yaml,
    };
    let text = manifest::write_documents(&existing, format).map_err(|e| fail(e.to_string()))?;
    file_io::write_atomic(target, text.as_bytes())
}

pub fn unseal(a: &UnsealArgs) -> Result<()> {
    let keys = read_private_keys(&a.private_key)?;
    let file = a.file.as_deref().or(a.sealed_secret_file.as_deref());
    let (input, sealed) = read_sealed(file)?;
    let mut secrets = Vec::with_capacity(sealed.len());
    for (index, s) in sealed.iter().enumerate() {
        secrets.push(s.unseal(&keys).map_err(|e| {
            Failure::new(
                exit::ERROR_DECRYPTING_TREE,
                format!("document {index} ({}): {e}", s.metadata.name()),
            )
            .in_file(&input.name)
        })?);
    }
    let format = ManifestFormat::from_name(&a.format).unwrap_or_default();
    let text = manifest::write_documents(&secrets, format).map_err(|e| fail(e.to_string()))?;
    write_output(a.secret_file.as_deref(), text.as_bytes(), true)
}

pub fn cert(a: &CertArgs) -> Result<()> {
    if a.generate {
        return generate(a);
    }
    let (_, pem) = cert_source(a.cert.as_deref(), &a.controller)?;
    write_output(None, &pem, false)
}

fn generate(a: &CertArgs) -> Result<()> {
    let key_out = a
        .key_out
        .as_deref()
        .ok_or_else(|| fail("--generate needs --key-out FILE for the private key"))?;
    let validity = Duration::from_secs(a.validity_days.saturating_mul(24 * 3600));
    let pair =
        KeyPair::generate(a.key_size, &a.common_name, validity).map_err(|e| fail(e.to_string()))?;
    let key_pem = pair.private_key_pem().map_err(|e| fail(e.to_string()))?;
    write_output(Some(key_out), key_pem.as_bytes(), true)?;
    write_output(
        a.cert_out.as_deref(),
        pair.certificate_pem.as_bytes(),
        false,
    )
}

/// Standard output, or `path` replaced atomically; `private` files are created 0600.
fn write_output(path: Option<&Path>, bytes: &[u8], private: bool) -> Result<()> {
    match path {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush()).map_err(|e| {
                Failure::new(exit::CANNOT_WRITE_OUTPUT, format!("standard output: {e}"))
            })
        }
        Some(p) if private => file_io::write_private(p, bytes),
        Some(p) => file_io::write_atomic(p, bytes),
    }
}

/// The certificate over the network: from a URL (kubeseal's `--cert URL`), or from the
/// controller's `/v1/cert.pem` through the API server's service proxy (kubeseal's default), so
/// clusters that only expose the API server work unchanged.
mod fetch {
    use std::time::Duration;

    use kube::config::{KubeConfigOptions, Kubeconfig};
    use kube::{Client, Config};
    use serde_json::Value;

    use crate::args::ControllerArgs;

    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    const READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// A bound on the whole fetch (name resolution, TLS, redirects of the proxy included).
    const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
    /// Certificates are a few KiB and SealedSecrets at most the API's 1.5 MiB object limit;
    /// anything far larger is neither.
    const MAX_ANSWER_BYTES: usize = 4 << 20;
    const CERT_PATH: &str = "/v1/cert.pem";
    /// The controller rate-limits /v1/verify and /v1/rotate per client address, and through
    /// the service proxy every client has the API server's address: a 429 means "others were
    /// first", not "stop". kubeseal (client-go's rest.Request) waits the Retry-After and asks
    /// again, 10 times at most; so does enseal.
    const RATE_LIMIT_RETRIES: u32 = 10;
    /// The controller's (and Sealed Secrets') Retry-After; kube's error keeps the status of the
    /// answer, not its headers.
    const RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

    pub fn is_url(cert: &str) -> bool {
        let lower = cert.get(..8).unwrap_or(cert).to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    }

    /// GET `url` with bounded timeouts, without credentials.
    pub fn url(url: &str) -> Result<Vec<u8>, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err("not an absolute http(s) URL".into());
        };
        let origin = http::Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("not a URL: {e}"))?;
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let mut config = Config::new(origin);
        bound(&mut config);
        let pem = run(async move {
            let client = Client::try_from(config).map_err(|e| e.to_string())?;
            get(&client, &path).await.map_err(|e| match e {
                kube::Error::Api(s) => format!("the server answered {} {}", s.code, s.message),
                other => chain(&other),
            })
        })??;
        limit(pem)
    }

    /// `/v1/cert.pem` of the controller's Service through the API server, as kubeseal asks for
    /// it: the Service's first port by name, scheme http.
    pub fn from_controller(c: &ControllerArgs) -> Result<Vec<u8>, String> {
        let c = c.clone();
        let pem = run(async move {
            let proxy = ControllerProxy::connect(&c).await?;
            let request = http::Request::get(proxy.path(CERT_PATH))
                .header(http::header::ACCEPT, "application/x-pem-file, */*")
                .body(Vec::new());
            proxy.send(CERT_PATH, request).await.map_err(|e| match e {
                ControllerError::Conflict(m) | ControllerError::Other(m) => m,
            })
        })??;
        limit(pem)
    }

    /// The controller's answer to a POST that it refused with 409 Conflict (the object does
    /// not open), or any other failure.
    pub enum ControllerError {
        Conflict(String),
        Other(String),
    }

    /// POSTs each body (a SealedSecret in JSON) to the controller's `path` through the API
    /// server, as kubeseal's --validate (`/v1/verify`) and --re-encrypt (`/v1/rotate`) do;
    /// answers in order, stopping at the first failure (with the index of its body).
    pub fn post_to_controller(
        c: &ControllerArgs,
        path: &'static str,
        bodies: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, (usize, ControllerError)> {
        let c = c.clone();
        let answers = run(async move {
            let proxy = ControllerProxy::connect(&c)
                .await
                .map_err(|e| (0, ControllerError::Other(e)))?;
            let mut answers = Vec::with_capacity(bodies.len());
            for (index, body) in bodies.into_iter().enumerate() {
                let request = http::Request::post(proxy.path(path))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::ACCEPT, "application/json, */*")
                    .body(body);
                let answer = proxy.send(path, request).await.map_err(|e| (index, e))?;
                answers.push(limit(answer).map_err(|e| (index, ControllerError::Other(e)))?);
            }
            Ok(answers)
        });
        run_result(answers)
    }

    fn run_result<T>(
        r: Result<Result<T, (usize, ControllerError)>, String>,
    ) -> Result<T, (usize, ControllerError)> {
        r.map_err(|e| (0, ControllerError::Other(e)))?
    }

    /// The controller's Service, found through the API server.
    struct ControllerProxy {
        client: Client,
        service: String,
        namespace: String,
        name: String,
        port: String,
    }

    impl ControllerProxy {
        async fn connect(c: &ControllerArgs) -> Result<ControllerProxy, String> {
            let (ns, name) = (&c.controller_namespace, &c.controller_name);
            for (what, value) in [("--controller-namespace", ns), ("--controller-name", name)] {
                if !is_dns_label(value) {
                    return Err(format!("{what} {value:?} is not a valid Kubernetes name"));
                }
            }
            let service = format!("{ns}/{name}");
            let hint = "set --controller-name and --controller-namespace to where the sealing \
                        controller runs, or pass --cert FILE|URL";
            let config = cluster_config(c).await?;
            let client = Client::try_from(config)
                .map_err(|e| format!("cannot make a Kubernetes client: {e}"))?;
            let svc = get(&client, &service_path(ns_of(c), name_of(c)))
                .await
                .map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 404 => {
                        format!("the Service {service} was not found: {hint}")
                    }
                    kube::Error::Api(s) => {
                        format!("cannot get the Service {service}: {} {}", s.code, s.message)
                    }
                    other => format!("cannot reach the API server: {}", chain(&other)),
                })?;
            let port = first_port_name(&svc).map_err(|e| format!("the Service {service}: {e}"))?;
            Ok(ControllerProxy {
                client,
                service,
                namespace: ns.clone(),
                name: name.clone(),
                port,
            })
        }

        fn path(&self, path: &str) -> String {
            proxy_path(&self.namespace, &self.name, &self.port, path)
        }

        async fn send(
            &self,
            what: &str,
            request: Result<http::Request<Vec<u8>>, http::Error>,
        ) -> Result<Vec<u8>, ControllerError> {
            let service = &self.service;
            let request = request
                .map_err(|e| ControllerError::Other(format!("cannot build the request: {e}")))?;
            let mut retries = 0;
            let answer = loop {
                match self.client.request_text(copy(&request)).await {
                    Err(kube::Error::Api(s)) if s.code == 429 && retries < RATE_LIMIT_RETRIES => {
                        retries += 1;
                        tokio::time::sleep(RATE_LIMIT_WAIT).await;
                    }
                    answer => break answer,
                }
            };
            let text = answer.map_err(|e| match e {
                kube::Error::Api(s) if s.code == 409 => ControllerError::Conflict(s.message),
                kube::Error::Api(s) if s.code == 503 || s.message.contains("no endpoints") => {
                    ControllerError::Other(format!(
                        "the Service {service} has no ready endpoints (is the sealing \
                         controller running?): {}",
                        s.message
                    ))
                }
                kube::Error::Api(s) => ControllerError::Other(format!(
                    "{what} through the Service {service}: {} {}",
                    s.code, s.message
                )),
                other => ControllerError::Other(format!(
                    "{what} through the Service {service}: {}",
                    chain(&other)
                )),
            })?;
            Ok(text.into_bytes())
        }
    }

    /// `request` again, for a retry (an `http::Request` is not `Clone`).
    fn copy(request: &http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
        let mut copy = http::Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        copy
    }

    fn ns_of(c: &ControllerArgs) -> &str {
        &c.controller_namespace
    }

    fn name_of(c: &ControllerArgs) -> &str {
        &c.controller_name
    }

    fn service_path(namespace: &str, name: &str) -> String {
        format!("/api/v1/namespaces/{namespace}/services/{name}")
    }

    /// client-go's `ProxyGet("http", name, port, path)`: `scheme:name:port` as the
    /// resource name, the port left empty when the Service's port has no name.
    pub(super) fn proxy_path(namespace: &str, name: &str, port: &str, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        format!("/api/v1/namespaces/{namespace}/services/http:{name}:{port}/proxy/{path}")
    }

    pub(super) fn first_port_name(service: &[u8]) -> Result<String, String> {
        let svc: Value =
            serde_json::from_slice(service).map_err(|e| format!("unreadable answer: {e}"))?;
        let port = svc
            .pointer("/spec/ports/0")
            .ok_or("it has no ports to reach the controller on")?;
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        // The name goes into a URL path: accept what Kubernetes allows for port names only.
        if !name.is_empty() && !is_port_name(name) {
            return Err(format!("unexpected port name {name:?}"));
        }
        Ok(name.to_string())
    }

    /// A DNS-1123 label, what Kubernetes requires of namespace and Service names: 1 to 63
    /// lowercase letters, digits and `-`, starting and ending with a letter or digit. (Not the
    /// subdomain rule: a `.` has no place in either name.)
    pub(super) fn is_dns_label(s: &str) -> bool {
        (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    /// A Service port name (IANA_SVC_NAME in Kubernetes' validation): 1 to 15 lowercase
    /// letters, digits and `-`, at least one letter, no `-` at either end and no `--`.
    pub(super) fn is_port_name(s: &str) -> bool {
        (1..=15).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.bytes().any(|b| b.is_ascii_lowercase())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
    }

    /// The usual kubeconfig lookup: `--kubeconfig`, else KUBECONFIG and ~/.kube/config, else
    /// the in-cluster service account.
    async fn cluster_config(c: &ControllerArgs) -> Result<Config, String> {
        let options = KubeConfigOptions {
            context: c.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match (&c.kubeconfig, &c.context) {
            (Some(path), _) => {
                let kc = Kubeconfig::read_from(path)
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?,
            (None, None) => Config::infer().await.map_err(|e| {
                format!(
                    "no Kubernetes configuration (kubeconfig or in-cluster) to reach the \
                     sealing controller with: {e}; pass --kubeconfig or --cert FILE|URL"
                )
            })?,
        };
        bound(&mut config);
        Ok(config)
    }

    /// An error with its causes: hyper's own message ("client error (Connect)") hides the
    /// one a user can act on ("Connection refused", a certificate problem).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text = format!("{text}: {cause_text}");
            }
            source = cause.source();
        }
        text
    }

    fn bound(config: &mut Config) {
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        config.write_timeout = Some(READ_TIMEOUT);
        // kube retries 503 for long with backoff; a proxy's "no endpoints" is a 503 the user
        // should hear about at once.
        config.default_retry = false;
    }

    async fn get(client: &Client, path: &str) -> Result<Vec<u8>, kube::Error> {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "application/x-pem-file, */*")
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        let text = client.request_text(request).await?;
        Ok(text.into_bytes())
    }

    /// Runs `work` on a small runtime of its own, bounded by [`TOTAL_TIMEOUT`].
    fn run<F, T>(work: F) -> Result<T, String>
    where
        F: std::future::Future<Output = T>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the network runtime: {e}"))?;
        runtime.block_on(async {
            tokio::time::timeout(TOTAL_TIMEOUT, work)
                .await
                .map_err(|_| format!("no answer within {}s", TOTAL_TIMEOUT.as_secs()))
        })
    }

    fn limit(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer ({} bytes) is too large to be a certificate or a SealedSecret",
                bytes.len()
            ));
        }
        Ok(bytes)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn proxy_path_is_client_gos_service_proxy_with_the_port_name() {
            assert_eq!(
                proxy_path(
                    "kube-system",
                    "sealed-secrets-controller",
                    "http",
                    "/v1/cert.pem"
                ),
                "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http\
                 /proxy/v1/cert.pem"
            );
            // An unnamed port leaves the port segment empty, as JoinSchemeNamePort does.
            assert_eq!(
                proxy_path("ns", "svc", "", "/v1/cert.pem"),
                "/api/v1/namespaces/ns/services/http:svc:/proxy/v1/cert.pem"
            );
        }

        #[test]
        fn the_first_port_name_of_the_service_is_used() {
            let svc = br#"{"spec":{"ports":[{"name":"http","port":8080},{"name":"metrics"}]}}"#;
            assert_eq!(first_port_name(svc).unwrap(), "http");
            let unnamed = br#"{"spec":{"ports":[{"port":8080}]}}"#;
            assert_eq!(first_port_name(unnamed).unwrap(), "");
        }

        #[test]
        fn a_service_without_ports_or_with_a_strange_port_name_is_refused() {
            assert!(first_port_name(br#"{"spec":{"ports":[]}}"#)
                .unwrap_err()
                .contains("no ports"));
            assert!(first_port_name(br#"{"spec":{"ports":[{"name":"a/../b"}]}}"#).is_err());
            assert!(first_port_name(b"<html>").is_err());
        }

        #[test]
        fn names_that_could_escape_the_url_path_are_refused() {
            assert!(is_dns_label("sealed-secrets-controller"));
            assert!(is_dns_label("kube-system"));
            assert!(is_dns_label(&"a".repeat(63)));
            for bad in [
                "", "a/b", "..", "-a", "A", "a b", "a?x", "a%2f", "a.b", "a-",
            ] {
                assert!(!is_dns_label(bad), "{bad:?}");
            }
            assert!(!is_dns_label(&"a".repeat(64)), "64 characters");
        }

        #[test]
        fn port_names_follow_the_service_port_rule() {
            for good in ["http", "https", "a1", "web-2"] {
                assert!(is_port_name(good), "{good:?}");
            }
            for bad in [
                "",
                "8080",
                "a--b",
                "-a",
                "a-",
                "Http",
                "a.b",
                "a/b",
                "abcdefghijklmnop",
            ] {
                assert!(!is_port_name(bad), "{bad:?}");
            }
        }

        #[test]
        fn urls_are_told_from_file_names() {
            assert!(is_url("http://127.0.0.1:8080/v1/cert.pem"));
            assert!(is_url("HTTPS://example.com/cert.pem"));
            assert!(!is_url("cert.pem"));
            assert!(!is_url("/tmp/http://x"));
            assert!(!is_url("file:///tmp/cert.pem"));
        }

        #[test]
        fn a_url_that_does_not_answer_fails_with_a_message_not_a_hang() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            let err = url(&format!("http://127.0.0.1:{port}/v1/cert.pem")).unwrap_err();
            assert!(!err.is_empty());
        }
    }
}

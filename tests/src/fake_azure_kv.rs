//! A fake Azure Key Vault and Microsoft Entra token service, written to their documented REST
//! APIs, for the `azure_kv` key source: there is no Key Vault emulator. Its honesty is proven by
//! the real sops 3.13.3 (the Go SDK: azkeys, azidentity, MSAL) encrypting and decrypting through
//! it (tests/it/azure_kv_interop.rs).
//!
//! One plain TCP port serves as an HTTPS proxy (`HTTPS_PROXY`: a `CONNECT` opens a tunnel to the
//! fake itself), as the App Service managed identity endpoint (plain http on loopback, as App
//! Service serves it: `IDENTITY_ENDPOINT=http://127.0.0.1:PORT/msi/token`), and as the HTTPS
//! server behind the proxy (TLS with a certificate of a CA made by the
//! test, which clients trust through `SSL_CERT_FILE`). The proxy is what lets real Azure-shaped
//! names reach it without touching DNS: vaults `https://NAME.vault.azure.test` (the bearer
//! challenge's resource is `https://vault.azure.test`, a suffix of the vault's host, as the Go
//! SDK verifies), the authority `https://login.azure.test` (`AZURE_AUTHORITY_HOST`), and
//! `login.microsoftonline.com`, where MSAL asks for instance discovery of a custom authority.
//!
//! Served:
//! - `GET /common/discovery/instance`, `GET /{tenant}/v2.0/.well-known/openid-configuration`,
//!   `POST /{tenant}/oauth2/v2.0/token` (client-credentials grant with a client secret, a PS256
//!   client assertion signed by a registered certificate's key, or a federated token);
//! - on a vault host: a 401 with the `WWW-Authenticate` bearer challenge without a token,
//!   `GET /keys/{name}[/{version}]`, `POST /keys/{name}/{version}/encrypt|decrypt` with
//!   `RSA-OAEP-256` done for real with a per-key-version RSA key (AWS-LC), 403 for a client
//!   the key refuses, 404 for an unknown key;
//! - over plain http: `GET /msi/token?api-version=2019-08-01&resource=...[&client_id=...]`,
//!   the App Service managed identity endpoint (documented in "Managed identities for App
//!   Service": `X-IDENTITY-HEADER` must be `IDENTITY_HEADER`'s value; the answer has
//!   `access_token`, `expires_on` as a string of Unix seconds, `resource`, `token_type`). The
//!   refusal of a wrong header is the fake's own choice of shape (a 401 with OAuth's `error` and
//!   `error_description`), which never repeats the header.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use base64::Engine as _;

use crate::certs::openssl;
use crate::fake_http::{self, Answer, Request};

/// The tenant the fake's clients belong to.
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// The authority host (`AZURE_AUTHORITY_HOST`).
pub const AUTHORITY: &str = "https://login.azure.test";
/// The resource a vault's challenge names; vault hosts end with `.vault.azure.test`.
pub const RESOURCE: &str = "https://vault.azure.test";
/// The client ID the fake gives the managed identity host's system-assigned identity.
pub const SYSTEM_ASSIGNED: &str = "system-assigned-identity";

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How a registered client proves who it is.
enum Proof {
    Secret(String),
    /// PKCS#1 DER of the certificate's RSA public key.
    Certificate(Vec<u8>),
    Federated(String),
}

struct KeyVersion {
    version: String,
    private: OaepPrivateDecryptingKey,
    public: OaepPublicEncryptingKey,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, Proof>,
    /// (vault host, key name) -> versions, newest last.
    keys: HashMap<(String, String), Vec<KeyVersion>>,
    /// (vault host, key name, client id) pairs refused with a 403.
    refused: HashSet<(String, String, String)>,
    /// Issued access tokens -> (client id, scope).
    tokens: HashMap<String, (String, String)>,
    /// The managed identity endpoint's `X-IDENTITY-HEADER` value, once it is served.
    identity_header: Option<String>,
    /// User-assigned identities (client IDs) of the managed identity host.
    user_assigned: HashSet<String>,
    /// Every request, as `METHOD host path` plus ` (N bytes)` when it had a body.
    log: Vec<String>,
}

/// A running fake; stops serving when dropped.
pub struct FakeAzure {
    /// `http://127.0.0.1:PORT`, the `HTTPS_PROXY`.
    pub proxy: String,
    /// The test CA's certificate (`SSL_CERT_FILE`).
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl FakeAzure {
    /// Starts the fake on a free port with a CA and a server certificate made by openssl.
    pub fn start() -> FakeAzure {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = make_certificates(dir.path());
        let config = crate::certs::tls_server_config(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, config) = (state.clone(), config.clone());
                    std::thread::spawn(move || {
                        let _ = serve_connection(stream, &config, &state);
                    });
                }
            });
        }
        FakeAzure {
            proxy: format!("http://{addr}"),
            ca_file,
            dir,
            state,
            stop,
            addr,
        }
    }

    /// Stops accepting connections (a service that is down: the port refuses).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        std::thread::sleep(Duration::from_millis(100));
    }

    /// `https://{vault}.vault.azure.test`.
    pub fn vault_url(vault: &str) -> String {
        format!("https://{vault}.vault.azure.test")
    }

    /// Creates key `name` in `vault` (or a new version of it); returns the key URL with the
    /// version, `https://VAULT/keys/NAME/VERSION`.
    pub fn create_key(&self, vault: &str, name: &str) -> String {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
        let private = OaepPrivateDecryptingKey::new(private).unwrap();
        let mut raw = [0u8; 16];
        aws_lc_rs::rand::fill(&mut raw).unwrap();
        let version = hex(&raw);
        let host = format!("{vault}.vault.azure.test");
        self.state
            .lock()
            .unwrap()
            .keys
            .entry((host, name.to_string()))
            .or_default()
            .push(KeyVersion {
                version: version.clone(),
                private,
                public,
            });
        format!("{}/keys/{name}/{version}", Self::vault_url(vault))
    }

    /// Registers a client that authenticates with `secret`.
    pub fn add_secret_client(&self, client_id: &str, secret: &str) {
        self.state
            .lock()
            .unwrap()
            .clients
            .insert(client_id.into(), Proof::Secret(secret.into()));
    }

    /// Registers a client with a new certificate; returns the PEM file (certificate and
    /// PKCS#8 key) for `AZURE_CLIENT_CERTIFICATE_PATH`.
    pub fn add_certificate_client(&self, client_id: &str) -> PathBuf {
        let key = self.dir.path().join(format!("{client_id}.key"));
        let cert = self.dir.path().join(format!("{client_id}.crt"));
        openssl(&["genrsa", "-out", s(&key), "2048"]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            s(&key),
            "-subj",
            "/CN=client",
            "-days",
            "2",
            "-out",
            s(&cert),
        ]);
        let public = Command::new("openssl")
            .args([
                "rsa",
                "-in",
                s(&key),
                "-RSAPublicKey_out",
                "-outform",
                "DER",
            ])
            .output()
            .unwrap();
        assert!(public.status.success(), "openssl rsa -RSAPublicKey_out");
        let pem = self.dir.path().join(format!("{client_id}.pem"));
        let mut both = std::fs::read(&cert).unwrap();
        both.extend(std::fs::read(&key).unwrap());
        std::fs::write(&pem, both).unwrap();
        self.state
            .lock()
            .unwrap()
            .clients
            .insert(client_id.into(), Proof::Certificate(public.stdout));
        pem
    }

    /// Registers a workload-identity client whose federated token is `token`.
    pub fn add_federated_client(&self, client_id: &str, token: &str) {
        self.state
            .lock()
            .unwrap()
            .clients
            .insert(client_id.into(), Proof::Federated(token.into()));
    }

    /// Serves the App Service managed identity endpoint, which issues tokens to callers that
    /// send `header` as `X-IDENTITY-HEADER`: for the system-assigned identity
    /// ([`SYSTEM_ASSIGNED`]) or, with `client_id`, one of `user_assigned`. Returns
    /// `IDENTITY_ENDPOINT`.
    pub fn serve_managed_identity(&self, header: &str, user_assigned: &[&str]) -> String {
        let mut st = self.state.lock().unwrap();
        st.identity_header = Some(header.into());
        st.user_assigned
            .extend(user_assigned.iter().map(|c| c.to_string()));
        format!("http://{}/msi/token", self.addr)
    }

    /// Makes key `name` of `vault` refuse `client_id` (403 Forbidden).
    pub fn refuse(&self, vault: &str, name: &str, client_id: &str) {
        self.state.lock().unwrap().refused.insert((
            format!("{vault}.vault.azure.test"),
            name.into(),
            client_id.into(),
        ));
    }

    /// The requests served so far (`METHOD host path[ (N bytes)]`).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The environment a client of this fake runs with (proxy, CA, authority), credentials
    /// aside.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HTTPS_PROXY".into(), self.proxy.clone()),
            ("NO_PROXY".into(), String::new()),
            ("SSL_CERT_FILE".into(), self.ca_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST".into(), AUTHORITY.into()),
        ]
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        self.stop();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA and a server certificate for every name the fake answers to; returns the CA file.
fn make_certificates(dir: &Path) -> PathBuf {
    crate::certs::ca_and_server(
        dir,
        &["rsa:2048"],
        "/CN=enseal fake Azure CA",
        "/CN=fake azure",
        "DNS:*.vault.azure.test,DNS:login.azure.test,DNS:login.microsoftonline.com,\
         DNS:localhost,IP:127.0.0.1",
    )
}

/// A proxy `CONNECT` (then TLS inside the tunnel), TLS straight away (a handshake record), or
/// plain http, which serves the managed identity endpoint only.
fn serve_connection(
    stream: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 0 {
        return Ok(());
    }
    let mut stream = stream;
    if first[0] != b'C' && first[0] != 0x16 {
        return fake_http::serve(stream, "application/json; charset=utf-8", |request| {
            managed_identity(request, state)
        });
    }
    if first[0] == b'C' {
        let mut reader = BufReader::new(stream.try_clone()?);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    }
    let connection = rustls::ServerConnection::new(config.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tls = rustls::StreamOwned::new(connection, stream);
    serve_http(tls, state)
}

fn serve_http<S: Read + Write>(stream: S, state: &Mutex<State>) -> std::io::Result<()> {
    fake_http::serve(stream, "application/json; charset=utf-8", |request| {
        route(request, state)
    })
}

fn json(status: u16, value: serde_json::Value) -> Answer {
    (status, Vec::new(), value.to_string())
}

fn vault_error(status: u16, code: &str, message: &str) -> Answer {
    json(
        status,
        serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

fn route(request: &Request, state: &Mutex<State>) -> Answer {
    let host = request
        .headers
        .get("host")
        .map(|h| h.split(':').next().unwrap_or("").to_string())
        .unwrap_or_default();
    {
        let mut entry = format!("{} {host} {}", request.method, request.path);
        if !request.body.is_empty() {
            entry.push_str(&format!(" ({} bytes)", request.body.len()));
        }
        state.lock().unwrap().log.push(entry);
    }
    if host.ends_with(".vault.azure.test") {
        return vault(request, &host, state);
    }
    if host == "login.azure.test" || host == "login.microsoftonline.com" {
        return login(request, state);
    }
    vault_error(404, "NotFound", &format!("no such host {host}"))
}

fn login(request: &Request, state: &Mutex<State>) -> Answer {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["common", "discovery", "instance"]) => json(
            200,
            serde_json::json!({
                "tenant_discovery_endpoint":
                    format!("{AUTHORITY}/{TENANT}/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{
                    "preferred_network": "login.azure.test",
                    "preferred_cache": "login.azure.test",
                    "aliases": ["login.azure.test"]
                }]
            }),
        ),
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => json(
            200,
            serde_json::json!({
                "token_endpoint": format!("{AUTHORITY}/{tenant}/oauth2/v2.0/token"),
                "authorization_endpoint": format!("{AUTHORITY}/{tenant}/oauth2/v2.0/authorize"),
                "issuer": format!("{AUTHORITY}/{tenant}/v2.0"),
            }),
        ),
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(request, tenant, state),
        _ => json(404, serde_json::json!({"error": "not_found"})),
    }
}

fn aad_error(status: u16, error: &str, description: &str) -> Answer {
    json(
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

/// The client-credentials grant, as Entra ID answers it (AADSTS codes in the descriptions).
fn token(request: &Request, tenant: &str, state: &Mutex<State>) -> Answer {
    if tenant != TENANT {
        return aad_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let f = fake_http::form(&request.body);
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: unsupported grant",
        );
    }
    let Some(client_id) = f.get("client_id") else {
        return aad_error(400, "invalid_request", "AADSTS900144: no client_id");
    };
    let Some(scope) = f.get("scope") else {
        return aad_error(400, "invalid_request", "AADSTS900144: no scope");
    };
    // MSAL adds the OpenID scopes to every request; Entra accepts them beside a `.default`.
    let resource_scope = format!("{RESOURCE}/.default");
    let mut scopes = scope.split(' ').filter(|s| !s.is_empty());
    if !scopes.all(|s| s == resource_scope || ["openid", "offline_access", "profile"].contains(&s))
        || !scope.split(' ').any(|s| s == resource_scope)
    {
        return aad_error(
            400,
            "invalid_scope",
            &format!("AADSTS70011: The provided value for scope {scope} is not valid."),
        );
    }
    let st = state.lock().unwrap();
    let Some(proof) = st.clients.get(client_id) else {
        return aad_error(
            400,
            "unauthorized_client",
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    let ok = match proof {
        Proof::Secret(secret) => f.get("client_secret") == Some(secret),
        Proof::Federated(token) => {
            f.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && f.get("client_assertion") == Some(token)
        }
        Proof::Certificate(public) => f
            .get("client_assertion")
            .is_some_and(|a| assertion_is_valid(a, public, client_id, tenant)),
    };
    if !ok {
        return aad_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    drop(st);
    let mut raw = [0u8; 24];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let access_token = B64URL.encode(raw);
    state
        .lock()
        .unwrap()
        .tokens
        .insert(access_token.clone(), (client_id.clone(), resource_scope));
    json(
        200,
        serde_json::json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
        }),
    )
}

/// A client assertion: a PS256 (or RS256) JWT signed by the registered key, for this client,
/// addressed to this tenant's token endpoint, not expired.
fn assertion_is_valid(jwt: &str, public_pkcs1: &[u8], client_id: &str, tenant: &str) -> bool {
    use aws_lc_rs::signature;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts.as_slice() else {
        return false;
    };
    let decode = |p: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&B64URL.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(sig)) =
        (decode(header), decode(claims), B64URL.decode(sig))
    else {
        return false;
    };
    let algorithm: &dyn signature::VerificationAlgorithm = match header["alg"].as_str() {
        Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
        _ => return false,
    };
    let signed = &jwt[..jwt.rfind('.').unwrap()];
    if signature::UnparsedPublicKey::new(algorithm, public_pkcs1)
        .verify(signed.as_bytes(), &sig)
        .is_err()
    {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["sub"] == client_id
        && claims["iss"] == client_id
        && claims["aud"] == format!("{AUTHORITY}/{tenant}/oauth2/v2.0/token")
        && claims["exp"].as_u64().is_some_and(|e| e > now)
}

/// The App Service managed identity endpoint (plain http).
fn managed_identity(request: &Request, state: &Mutex<State>) -> Answer {
    let mut st = state.lock().unwrap();
    st.log
        .push(format!("{} 127.0.0.1 {}", request.method, request.path));
    let Some(expected) = st.identity_header.clone() else {
        return aad_error(404, "not_found", "no managed identity here");
    };
    if request.method != "GET" || request.path != "/msi/token" {
        return aad_error(404, "not_found", "unknown path");
    }
    if request.headers.get("x-identity-header") != Some(&expected) {
        return aad_error(
            401,
            "unauthorized_client",
            "The X-IDENTITY-HEADER header is missing or not valid.",
        );
    }
    let q = fake_http::form(request.query.as_bytes());
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return aad_error(400, "invalid_request", "Unsupported api-version.");
    }
    if q.get("resource").map(String::as_str) != Some(RESOURCE) {
        return aad_error(400, "invalid_resource", "The resource is not valid.");
    }
    let client_id = match q.get("client_id") {
        None => SYSTEM_ASSIGNED.to_string(),
        Some(c) if st.user_assigned.contains(c) => c.clone(),
        Some(_) => {
            return aad_error(
                400,
                "invalid_request",
                "No user-assigned identity with this client ID is assigned to the resource.",
            )
        }
    };
    let mut raw = [0u8; 24];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let access_token = B64URL.encode(raw);
    st.tokens.insert(
        access_token.clone(),
        (client_id.clone(), format!("{RESOURCE}/.default")),
    );
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    json(
        200,
        serde_json::json!({
            "access_token": access_token,
            "expires_on": expires_on.to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    )
}

fn challenge() -> (String, String) {
    (
        "www-authenticate".into(),
        format!("Bearer authorization=\"{AUTHORITY}/{TENANT}\", resource=\"{RESOURCE}\""),
    )
}

fn vault(request: &Request, host: &str, state: &Mutex<State>) -> Answer {
    let token = request
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    let Some(token) = token else {
        // Key Vault answers any request without a token with the challenge.
        let (s, _, b) = vault_error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        return (s, vec![challenge()], b);
    };
    let st = state.lock().unwrap();
    let Some((client_id, scope)) = st.tokens.get(token).cloned() else {
        let (s, _, b) = vault_error(401, "Unauthorized", "AKV10032: Invalid issuer.");
        return (s, vec![challenge()], b);
    };
    if scope != format!("{RESOURCE}/.default") {
        return vault_error(401, "Unauthorized", "AKV10022: Invalid audience.");
    }
    if !request
        .query
        .split('&')
        .any(|q| q.starts_with("api-version="))
    {
        return vault_error(
            400,
            "BadParameter",
            "The api-version query parameter is required.",
        );
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (name, version, op) = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["keys", name]) | ("GET", ["keys", name, ""]) => (*name, "", None),
        ("GET", ["keys", name, version]) => (*name, *version, None),
        ("POST", ["keys", name, version, op @ ("encrypt" | "decrypt")]) => {
            (*name, *version, Some(*op))
        }
        _ => return vault_error(400, "BadParameter", "Unknown operation."),
    };
    let key_id = (host.to_string(), name.to_string());
    let Some(versions) = st.keys.get(&key_id) else {
        return vault_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"),
        );
    };
    let found = if version.is_empty() {
        versions.last()
    } else {
        versions.iter().find(|v| v.version == version)
    };
    let Some(key) = found else {
        return vault_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name}/{version} was not found in this key vault."),
        );
    };
    let kid = format!("https://{host}/keys/{name}/{}", key.version);
    if st
        .refused
        .contains(&(host.to_string(), name.to_string(), client_id.clone()))
    {
        let permission = op.unwrap_or("get");
        return json(
            403,
            serde_json::json!({"error": {
                "code": "Forbidden",
                "message": format!("The user, group or application 'appid={client_id}' does not have keys {permission} permission on key vault '{host}'."),
                "innererror": {"code": "ForbiddenByPolicy"}
            }}),
        );
    }
    let Some(op) = op else {
        return json(
            200,
            serde_json::json!({
                "key": {"kid": kid, "kty": "RSA", "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]},
                "attributes": {"enabled": true, "recoveryLevel": "Recoverable+Purgeable"}
            }),
        );
    };
    let params: serde_json::Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(_) => return vault_error(400, "BadParameter", "Property has invalid value"),
    };
    if params["alg"] != "RSA-OAEP-256" {
        return vault_error(400, "BadParameter", "Unsupported algorithm.");
    }
    let Some(value) = params["value"]
        .as_str()
        .and_then(|v| B64URL.decode(v.trim_end_matches('=')).ok())
    else {
        return vault_error(400, "BadParameter", "Property value has invalid value");
    };
    let result = if op == "encrypt" {
        let mut out = vec![0u8; key.public.ciphertext_size()];
        match key
            .public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &value, &mut out, None)
        {
            Ok(ct) => ct.to_vec(),
            Err(_) => return vault_error(400, "BadParameter", "Plaintext too long."),
        }
    } else {
        let mut out = vec![0u8; key.private.min_output_size()];
        match key
            .private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &value, &mut out, None)
        {
            Ok(pt) => pt.to_vec(),
            Err(_) => return vault_error(400, "BadParameter", "Bad Request"),
        }
    };
    json(
        200,
        serde_json::json!({"kid": kid, "value": B64URL.encode(result)}),
    )
}

//! A fake GCP Cloud KMS and Google OAuth 2.0 token service, written to the documented REST API,
//! for tests of the `gcp_kms` key source: no emulator of Cloud KMS exists. It is proven honest
//! by the real sops 3.13.3 (`SOPS_GCP_KMS_CLIENT_TYPE=rest`, `SOPS_GCP_KMS_ENDPOINT`), which
//! encrypts and decrypts through it with the same credentials enseal uses (tests/it/
//! gcp_kms_interop.rs).
//!
//! What it serves, on one port on 127.0.0.1, plain HTTP ([`FakeGcpKms::start`]) or HTTPS with
//! a CA of its own ([`FakeGcpKms::start_tls`], for the controller, which sends nothing a
//! tenant's credentials name over plain http):
//! - `POST /v1/{name}:encrypt` and `:decrypt` (cloudkms v1 `projects.locations.keyRings.
//!   cryptoKeys.encrypt/decrypt`): JSON `{"plaintext"}` / `{"ciphertext"}`, base64. Each key
//!   has its own random 256-bit secret; a ciphertext is `nonce || AES-256-GCM(plaintext)` with
//!   the key's resource name as associated data, so it opens only with the key that made it.
//!   A request needs `Authorization: Bearer` with a token this fake issued (401
//!   `UNAUTHENTICATED` otherwise); a key that does not exist or that the caller is refused is
//!   403 `PERMISSION_DENIED`, worded as Google words it; a ciphertext that does not open is
//!   400 `INVALID_ARGUMENT`.
//! - `POST /token` (the `token_uri` of the credentials it writes): the JWT bearer grant
//!   (RFC 7523) of a service account, whose assertion must be an RS256 JWT signed by the
//!   account's key, with the account as `iss`, this endpoint as `aud`, a Cloud KMS scope, and a
//!   valid `iat`/`exp`; and the `refresh_token` grant of an authorized user (client ID, secret
//!   and refresh token must match).
//! - `GET /computeMetadata/v1/instance/service-accounts/default/token` (the metadata server,
//!   `GCE_METADATA_HOST`), only with `Metadata-Flavor: Google`.
//!
//! TEST-ONLY: keys in memory.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;

use crate::fake_http::{self, Request};

/// The project every key of the fake lives in.
pub const PROJECT: &str = "enseal-test";
/// Who the metadata server's tokens are for.
pub const METADATA_PRINCIPAL: &str = "metadata-default";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Account {
    key_id: String,
    /// PKCS#1 DER of the account key's public half.
    public_pkcs1: Vec<u8>,
}

struct User {
    client_id: String,
    client_secret: String,
    principal: String,
}

#[derive(Default)]
struct State {
    /// Resource name -> the key's secret.
    keys: HashMap<String, [u8; 32]>,
    /// Service account email -> its key.
    accounts: HashMap<String, Account>,
    /// Refresh token -> the authorized user.
    users: HashMap<String, User>,
    /// Access token -> who it was issued to.
    tokens: HashMap<String, String>,
    /// (resource name, principal) pairs IAM refuses.
    refused: HashSet<(String, String)>,
    /// One line per request: method, path, principal or why it was refused.
    log: Vec<String>,
}

/// A running fake; stopped (connections refused from then on) when dropped.
pub struct FakeGcpKms {
    /// `http://127.0.0.1:PORT` (`https://` with [`FakeGcpKms::start_tls`]): the KMS endpoint
    /// and the token service.
    pub url: String,
    /// The CA that signed the server's certificate, with [`FakeGcpKms::start_tls`].
    pub ca_file: Option<PathBuf>,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
    dir: tempfile::TempDir,
}

impl FakeGcpKms {
    pub fn start() -> FakeGcpKms {
        Self::start_with(false)
    }

    /// Like [`FakeGcpKms::start`], serving https with a certificate for 127.0.0.1 from a CA of
    /// its own; [`FakeGcpKms::env`] then names the CA in `SSL_CERT_FILE`.
    pub fn start_tls() -> FakeGcpKms {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> FakeGcpKms {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| {
            let ca = crate::certs::ca_and_server(
                dir.path(),
                &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "/CN=enseal fake GCP CA",
                "/CN=fake gcp",
                "IP:127.0.0.1",
            );
            (ca, crate::certs::tls_server_config(dir.path()))
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        {
            let (state, stopped, url) = (state.clone(), stopped.clone(), url.clone());
            let config = tls.as_ref().map(|(_, config)| config.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, url, config) = (state.clone(), url.clone(), config.clone());
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                        let _ = match config {
                            Some(config) => rustls::ServerConnection::new(config)
                                .map_err(std::io::Error::other)
                                .and_then(|c| {
                                    serve(rustls::StreamOwned::new(c, stream), &state, &url)
                                }),
                            None => serve(stream, &state, &url),
                        };
                    });
                }
            });
        }
        FakeGcpKms {
            url,
            ca_file: tls.map(|(ca, _)| ca),
            addr,
            state,
            stopped,
            dir,
        }
    }

    /// Stops accepting connections: from now on the server is down.
    pub fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            // Wakes the accept loop, which then ends and closes the listener.
            let _ = TcpStream::connect(self.addr).map(|s| s.shutdown(Shutdown::Both));
        }
    }

    /// `host:port`, for `GCE_METADATA_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The token endpoint the credentials files name.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    /// Creates a symmetric key `name` in a key ring of the fake's project; its resource ID.
    pub fn create_key(&self, name: &str) -> String {
        let id = format!("projects/{PROJECT}/locations/global/keyRings/enseal/cryptoKeys/{name}");
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).unwrap();
        self.state.lock().unwrap().keys.insert(id.clone(), secret);
        id
    }

    /// Registers a service account `name@PROJECT.iam.gserviceaccount.com` with a new RSA key
    /// and writes its credentials JSON, as the console downloads it; the file's path.
    pub fn service_account(&self, name: &str) -> PathBuf {
        let email = format!("{name}@{PROJECT}.iam.gserviceaccount.com");
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
        let key_id = format!("{:x}", Self::random_u64());
        self.state.lock().unwrap().accounts.insert(
            email.clone(),
            Account {
                key_id: key_id.clone(),
                public_pkcs1: key.public_key().as_ref().to_vec(),
            },
        );
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": key_id,
            "private_key": pem("PRIVATE KEY", pkcs8.as_ref()),
            "client_email": email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{email}"),
            "universe_domain": "googleapis.com",
        });
        self.write(&format!("{name}.json"), &json)
    }

    /// The email of the service account `name`.
    pub fn email(name: &str) -> String {
        format!("{name}@{PROJECT}.iam.gserviceaccount.com")
    }

    /// Registers an authorized user `name` and writes its credentials JSON (gcloud's
    /// `application_default_credentials.json`, with this fake as `token_uri`); the file's path.
    pub fn authorized_user(&self, name: &str) -> PathBuf {
        let refresh_token = format!("1//refresh-{:x}", Self::random_u64());
        let client_id = format!("{name}.apps.googleusercontent.com");
        let client_secret = format!("secret-{:x}", Self::random_u64());
        self.state.lock().unwrap().users.insert(
            refresh_token.clone(),
            User {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                principal: format!("user:{name}"),
            },
        );
        let json = serde_json::json!({
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "token_uri": self.token_uri(),
            "universe_domain": "googleapis.com",
        });
        self.write(&format!("{name}-user.json"), &json)
    }

    /// An access token for `principal`, as `gcloud auth print-access-token` gives one.
    pub fn issue_token(&self, principal: &str) -> String {
        issue(&mut self.state.lock().unwrap(), principal)
    }

    /// IAM refuses `principal` (a service account email, `user:NAME`, the metadata principal,
    /// or the name given to [`FakeGcpKms::issue_token`]) the use of `resource_id`.
    pub fn refuse(&self, resource_id: &str, principal: &str) {
        self.state
            .lock()
            .unwrap()
            .refused
            .insert((resource_id.to_string(), principal.to_string()));
    }

    /// The requests served so far, one line each.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// What sops 3.13 needs to reach this fake over REST, which enseal reads too.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SOPS_GCP_KMS_ENDPOINT".into(), self.url.clone()),
            ("SOPS_GCP_KMS_CLIENT_TYPE".into(), "rest".into()),
        ];
        if let Some(ca) = &self.ca_file {
            env.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
        }
        env
    }

    fn write(&self, name: &str, json: &serde_json::Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(json).unwrap()).unwrap();
        path
    }

    fn random_u64() -> u64 {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).unwrap();
        u64::from_le_bytes(b)
    }
}

impl Drop for FakeGcpKms {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn issue(state: &mut State, principal: &str) -> String {
    let mut raw = [0u8; 24];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let token = format!("ya29.{}", B64URL.encode(raw));
    state.tokens.insert(token.clone(), principal.to_string());
    token
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// HTTP/1.1 with keep-alive, as Go's and hyper's clients use it; the metadata server's
/// answers say `Metadata-Flavor: Google`, as the Go library's probe wants.
fn serve<S: Read + Write>(stream: S, state: &Mutex<State>, url: &str) -> std::io::Result<()> {
    fake_http::serve(stream, "application/json; charset=UTF-8", |request| {
        let (status, answer) = route(request, state, url);
        let extra = if request.path.starts_with("/computeMetadata/") {
            vec![("metadata-flavor".to_string(), "Google".to_string())]
        } else {
            Vec::new()
        };
        (status, extra, answer)
    })
}

type Answer = (u16, String);

/// Google's JSON error (`google.rpc.Status` as the REST frontends write it).
fn google_error(code: u16, status: &str, message: &str) -> Answer {
    (
        code,
        serde_json::json!({"error": {"code": code, "message": message, "status": status}})
            .to_string(),
    )
}

/// OAuth 2.0's error answer (RFC 6749 5.2), as Google's token endpoint gives it.
fn oauth_error(error: &str, description: &str) -> Answer {
    (
        400,
        serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
}

fn route(request: &Request, state: &Mutex<State>, url: &str) -> Answer {
    let mut state = state.lock().unwrap();
    let answer = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/token") => token(request, &mut state, url),
        ("GET", "/computeMetadata/v1/instance/service-accounts/default/token") => {
            if request.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                (403, "Missing Metadata-Flavor:Google header.".into())
            } else {
                let token = issue(&mut state, METADATA_PRINCIPAL);
                (
                    200,
                    serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
                        .to_string(),
                )
            }
        }
        ("POST", path) if path.starts_with("/v1/") => kms(request, &mut state),
        _ => google_error(404, "NOT_FOUND", "The requested URL was not found."),
    };
    let line = format!("{} {} -> {}", request.method, request.path, answer.0);
    state.log.push(line);
    answer
}

fn token(request: &Request, state: &mut State, url: &str) -> Answer {
    let form = fake_http::form(&request.body);
    let principal = match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            match form
                .get("assertion")
                .and_then(|a| assertion_signer(a, state, &format!("{url}/token")))
            {
                Some(email) => email,
                None => return oauth_error("invalid_grant", "Invalid JWT Signature."),
            }
        }
        Some("refresh_token") => {
            let user = form.get("refresh_token").and_then(|t| state.users.get(t));
            match user {
                Some(u)
                    if form.get("client_id") == Some(&u.client_id)
                        && form.get("client_secret") == Some(&u.client_secret) =>
                {
                    u.principal.clone()
                }
                Some(_) => return oauth_error("invalid_client", "Unauthorized"),
                None => return oauth_error("invalid_grant", "Bad Request"),
            }
        }
        _ => return oauth_error("unsupported_grant_type", "Invalid grant_type"),
    };
    let token = issue(state, &principal);
    (
        200,
        serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
            .to_string(),
    )
}

/// The service account whose key signed `jwt`, when the JWT is a valid JWT bearer assertion
/// for this token endpoint: RS256, `kid` and signature of a registered account, `iss` that
/// account, `aud` this endpoint, a Cloud KMS scope, issued (with a minute of skew) before now
/// and valid for at most an hour.
fn assertion_signer(jwt: &str, state: &State, token_uri: &str) -> Option<String> {
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts.as_slice() else {
        return None;
    };
    let decode = |p: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&B64URL.decode(p).ok()?).ok()
    };
    let (header, claims, sig) = (decode(header)?, decode(claims)?, B64URL.decode(sig).ok()?);
    if header["alg"] != "RS256" {
        return None;
    }
    let email = claims["iss"].as_str()?;
    let account = state.accounts.get(email)?;
    if header["kid"] != account.key_id.as_str() {
        return None;
    }
    let signed = &jwt[..jwt.rfind('.')?];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_pkcs1)
        .verify(signed.as_bytes(), &sig)
        .ok()?;
    let scopes: Vec<&str> = claims["scope"].as_str()?.split(' ').collect();
    let (iat, exp, now) = (claims["iat"].as_u64()?, claims["exp"].as_u64()?, now());
    let valid = claims["aud"] == token_uri
        && scopes.iter().any(|s| {
            *s == "https://www.googleapis.com/auth/cloudkms"
                || *s == "https://www.googleapis.com/auth/cloud-platform"
        })
        && iat <= now + 60
        && exp > now
        && exp <= iat + 3600;
    valid.then(|| email.to_string())
}

fn kms(request: &Request, state: &mut State) -> Answer {
    let rest = &request.path["/v1/".len()..];
    let Some((name, op)) = rest.rsplit_once(':') else {
        return google_error(404, "NOT_FOUND", "The requested URL was not found.");
    };
    let principal = match request
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.get(t))
    {
        Some(p) => p.clone(),
        None => {
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            )
        }
    };
    let permission = match op {
        "encrypt" => "cloudkms.cryptoKeyVersions.useToEncrypt",
        "decrypt" => "cloudkms.cryptoKeyVersions.useToDecrypt",
        _ => return google_error(404, "NOT_FOUND", "The requested URL was not found."),
    };
    let secret = match state.keys.get(name) {
        Some(s)
            if !state
                .refused
                .contains(&(name.to_string(), principal.clone())) =>
        {
            *s
        }
        _ => {
            return google_error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission '{permission}' denied on resource '{name}' (or it may not exist)."
                ),
            )
        }
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let enum_as_int = request.query.contains("enum-encoding%3Dint");
    let protection_level = if enum_as_int {
        serde_json::json!(1)
    } else {
        serde_json::json!("SOFTWARE")
    };
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).unwrap());
    let field = if op == "encrypt" {
        "plaintext"
    } else {
        "ciphertext"
    };
    let Some(input) = body[field].as_str().and_then(|s| B64.decode(s).ok()) else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid value at '{field}': not base64 bytes"),
        );
    };
    if op == "encrypt" {
        if input.len() > 64 * 1024 {
            return google_error(400, "INVALID_ARGUMENT", "The plaintext is too large.");
        }
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).unwrap();
        let mut sealed = input;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut sealed,
        )
        .unwrap();
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        (
            200,
            serde_json::json!({
                "name": format!("{name}/cryptoKeyVersions/1"),
                "ciphertext": B64.encode(ciphertext),
                "protectionLevel": protection_level,
            })
            .to_string(),
        )
    } else {
        let invalid = || {
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Decryption failed: the ciphertext is invalid.",
            )
        };
        if input.len() < NONCE_LEN {
            return invalid();
        }
        let (nonce, sealed) = input.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let Ok(plain) = key.open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(name.as_bytes()),
            &mut sealed,
        ) else {
            return invalid();
        };
        (
            200,
            serde_json::json!({
                "plaintext": B64.encode(plain),
                "usedPrimary": true,
                "protectionLevel": protection_level,
            })
            .to_string(),
        )
    }
}

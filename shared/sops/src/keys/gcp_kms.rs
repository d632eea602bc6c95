//! GCP Cloud KMS as a key source, interoperable with sops' `gcp_kms` master keys (sops
//! gcpkms/keysource.go, 3.13.3).
//!
//! A key is named by its resource ID, `projects/P/locations/L/keyRings/R/cryptoKeys/K` (spaces
//! removed, as sops removes them). Wrapping POSTs `{"name", "plaintext": base64(data key)}` to
//! `{endpoint}/v1/{resource_id}:encrypt` and stores the answer's `ciphertext` (standard base64,
//! as sops stores it) as `enc`; unwrapping POSTs `{"name", "ciphertext"}` to `:decrypt`. This is
//! the REST transport of the Go client sops uses with `SOPS_GCP_KMS_CLIENT_TYPE=rest`; its
//! default gRPC transport carries the same messages, so files are the same either way and enseal
//! always speaks REST.
//!
//! The endpoint is `https://cloudkms.googleapis.com`, else `SOPS_GCP_KMS_ENDPOINT` (a full URL
//! verbatim, a bare `host[:port]` as `https://host[:port]`, as the Go client's `getEndpoint`
//! merges it), else `https://cloudkms.{SOPS_GCP_KMS_UNIVERSE_DOMAIN}`.
//!
//! Credentials in sops' order (`newKMSClient`): the credentials JSON given to
//! [`GcpKms::with_credentials_json`] (Flux's `sops.gcp-kms`); `GOOGLE_CREDENTIALS` (a file path
//! if such a file exists, else the JSON itself); `GOOGLE_OAUTH_ACCESS_TOKEN` (used as is); then
//! Application Default Credentials as the Go auth library finds them: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's `application_default_credentials.json`, the
//! metadata server (`GCE_METADATA_HOST`, else 169.254.169.254 when it answers). A
//! `service_account` JSON signs an RS256 JWT with its key and exchanges it at its `token_uri`
//! (the OAuth 2.0 JWT bearer grant); an `authorized_user` JSON refreshes its token at its
//! `token_uri` when it has one (the Go library always uses Google's; gcloud's files carry
//! none), else at Google's.
//!
//! The calls go through the key services' shared blocking client (keys/http.rs), bounded as it
//! bounds them; a 5xx answer or a failed connection is retried, as the Go client retries
//! UNAVAILABLE and DEADLINE_EXCEEDED. The RSA signature is ring's, which rustls already builds.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::format::metadata::{now_rfc3339, GcpKmsStanza};
use crate::keys::http::{is_https, ErrorReply, Failure, HttpClient, Roots, ATTEMPT_TIMEOUT};
use crate::keys::{KeyAccess, MasterKey, Recipient, Stanza, WrapError};
/// How long the metadata server may take to show it is there when `GCE_METADATA_HOST` is unset.
const METADATA_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// sops' `SopsGCPKMSEndpointEnv`.
pub const ENDPOINT_VAR: &str = "SOPS_GCP_KMS_ENDPOINT";
/// sops' `SopsGCPKMSUniverseDomainEnv`.
pub const UNIVERSE_DOMAIN_VAR: &str = "SOPS_GCP_KMS_UNIVERSE_DOMAIN";
/// sops' `SopsGoogleCredentialsEnv`.
pub const CREDENTIALS_VAR: &str = "GOOGLE_CREDENTIALS";
/// sops' `SopsGoogleCredentialsOAuthTokenEnv`.
pub const ACCESS_TOKEN_VAR: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
const APPLICATION_CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";
const METADATA_IP: &str = "169.254.169.254";
const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";
/// Where an `authorized_user` refresh token is used when its file names no `token_uri`, and a
/// service account's JWT is exchanged when its file names none (the Go auth library's).
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The Cloud KMS client's `DefaultAuthScopes`.
const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/cloudkms",
];
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token is renewed this long before it expires (the Go library's default early refresh).
const EARLY_REFRESH: Duration = Duration::from_secs(225);

/// The GCP KMS keys of a comma-separated list of resource IDs (`--gcp-kms`,
/// `SOPS_GCP_KMS_IDS`, a creation rule's `gcp_kms`), as sops' `MasterKeysFromResourceIDString`:
/// spaces are removed and an empty list names no key (an empty entry is kept, and refused when
/// used, as in sops).
pub fn parse_resource_ids(list: &str) -> Vec<GcpKmsStanza> {
    if list.is_empty() {
        return Vec::new();
    }
    list.split(',').map(key).collect()
}

/// One key named by its resource ID (spaces removed, as sops' `NewMasterKeyFromResourceID`).
pub fn key(resource_id: &str) -> GcpKmsStanza {
    GcpKmsStanza {
        resource_id: resource_id.replace(' ', ""),
        ..GcpKmsStanza::default()
    }
}

/// sops' check, `^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$`.
pub fn is_valid_resource_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 8
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "keyRings"
        && parts[6] == "cryptoKeys"
        && [1, 3, 5, 7].iter().all(|&i| !parts[i].is_empty())
}

/// Why GCP KMS could not wrap or unwrap a data key. Never holds key material or tokens.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GcpKmsError {
    #[error("no valid resource ID found in {0:?}")]
    InvalidResourceId(String),
    #[error("cannot start the runtime for GCP KMS calls: {0}")]
    Runtime(String),
    #[error("credentials: failed to obtain credentials from {origin}: {reason}")]
    Credentials { origin: String, reason: String },
    #[error("credentials: could not find default credentials (looked at {CREDENTIALS_VAR}, {ACCESS_TOKEN_VAR}, {APPLICATION_CREDENTIALS_VAR}, {well_known} and the metadata server)")]
    NoCredentials { well_known: String },
    #[error("cannot get an access token from {url} ({origin}): {reason}")]
    Token {
        url: String,
        origin: String,
        reason: String,
    },
    #[error("invalid GCP KMS endpoint {0:?}")]
    BadEndpoint(String),
    #[error("cannot reach GCP KMS at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("GCP KMS did not answer within {}s at {url}", ATTEMPT_TIMEOUT.as_secs())]
    TimedOut { url: String },
    #[error("GCP KMS refused POST {url}: code {status}, {reason}")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("unexpected answer from POST {url}: {problem}")]
    BadAnswer { url: String, problem: &'static str },
    #[error("the encrypted data key (`enc`) is not valid base64")]
    MalformedCiphertext,
    /// [`GcpKms::requiring_https`] and `url` is plain http.
    #[error("refusing to send a GCP request to {0} over plain http: this GCP access is for https servers only")]
    PlainHttp(String),
}

/// Where a token comes from.
enum Credentials {
    ServiceAccount {
        email: String,
        key_id: String,
        /// The RSA key, parsed once (PKCS#8 or PKCS#1, as the Go library takes them).
        key: Box<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: String,
    },
    Static(Zeroizing<String>),
    Metadata {
        host: String,
    },
}

/// What looking for credentials gave.
type Lookup = Result<Arc<Found>, GcpKmsError>;

/// Credentials and where they were found (a variable or file name, for messages).
struct Found {
    origin: String,
    credentials: Credentials,
}

struct CachedToken {
    value: Zeroizing<String>,
    /// `None`: no expiry known (a static token, or an answer without `expires_in`).
    renew_at: Option<Instant>,
}

/// GCP Cloud KMS access for wrapping and unwrapping data keys. A clone shares the first one's
/// connections, credentials and token (a handle, as an HTTP client is), so a caller that keeps
/// one (the controller) gets a token once per hour rather than once per file; the `with_*`
/// setters give the value caches of its own.
#[derive(Clone)]
pub struct GcpKms {
    http: Arc<HttpClient>,
    /// Credentials JSON given by the caller rather than found in the environment.
    credentials_json: Option<Zeroizing<Vec<u8>>>,
    /// Found on first use and kept, with the reason when there are none (until
    /// [`GcpKms::retry_credentials`]).
    found: Arc<Mutex<Option<Lookup>>>,
    token: Arc<Mutex<Option<CachedToken>>>,
    /// [`GcpKms::requiring_https`]: nothing over plain http.
    https_only: bool,
}

impl fmt::Debug for GcpKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpKms").finish_non_exhaustive()
    }
}

impl GcpKms {
    /// GCP KMS access with credentials found as sops finds them, on first use. Nothing is read
    /// or contacted until a key is used.
    pub fn from_env() -> Result<GcpKms, GcpKmsError> {
        let http = HttpClient::https_or_http(Roots::Native)
            .map_err(|e| GcpKmsError::Runtime(e.to_string()))?;
        Ok(GcpKms {
            http: Arc::new(http),
            credentials_json: None,
            found: Arc::default(),
            token: Arc::default(),
            https_only: false,
        })
    }

    /// Uses this credentials JSON (service account or authorized user) rather than the
    /// environment's, as sops' `CredentialJSON` option (Flux's `sops.gcp-kms` entry).
    pub fn with_credentials_json(mut self, json: Zeroizing<Vec<u8>>) -> GcpKms {
        self.credentials_json = Some(json);
        self.found = Arc::default();
        self.token = Arc::default();
        self
    }

    /// Sends nothing over plain http (not even to a loopback address, see `http::is_https`):
    /// for credentials someone else wrote (a tenant's `sops.gcp-kms` entry, in the controller), whose `token_uri` would
    /// otherwise let a request reach any http service inside the cluster. The metadata server,
    /// plain http by design, is then never used. The CLI allows plain http, as sops does.
    pub fn requiring_https(mut self) -> GcpKms {
        self.https_only = true;
        self
    }

    /// Forgets why no credentials were found, if none were, so that the next call looks again:
    /// for a caller that keeps the client (the controller, before each decryption), where a
    /// credentials file or metadata server missing once must not be missing for good. Found
    /// credentials are kept.
    pub fn retry_credentials(&self) {
        let mut slot = self.found.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*slot, Some(Err(_))) {
            *slot = None;
        }
    }

    /// Wraps `data_key` for `key`: the stanza comes back with `enc` and `created_at` set.
    pub fn encrypt_key(
        &self,
        key: &GcpKmsStanza,
        data_key: &[u8],
    ) -> Result<GcpKmsStanza, GcpKmsError> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(data_key));
        let mut body = Zeroizing::new(Vec::with_capacity(b64.len() + key.resource_id.len() + 40));
        let name = serde_json::to_string(&key.resource_id).expect("a string serializes");
        body.extend_from_slice(b"{\"name\":");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b",\"plaintext\":\"");
        body.extend_from_slice(b64.as_bytes());
        body.extend_from_slice(b"\"}");
        let (url, answer) = self.call(key, "encrypt", body)?;
        let ciphertext =
            answer
                .get("ciphertext")
                .and_then(|c| c.as_str())
                .ok_or(GcpKmsError::BadAnswer {
                    url: url.clone(),
                    problem: "no ciphertext",
                })?;
        // Re-encoded as sops does (standard base64 of the bytes), whatever padding the
        // server used.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(ciphertext)
            .map_err(|_| GcpKmsError::BadAnswer {
                url,
                problem: "the ciphertext is not base64",
            })?;
        Ok(GcpKmsStanza {
            enc: base64::engine::general_purpose::STANDARD.encode(bytes),
            created_at: now_rfc3339(),
            ..key.clone()
        })
    }

    /// Unwraps the data key held in `stanza.enc`.
    pub fn decrypt_key(&self, stanza: &GcpKmsStanza) -> Result<Zeroizing<Vec<u8>>, GcpKmsError> {
        // sops decodes `enc` before calling, so a broken one fails without a call.
        base64::engine::general_purpose::STANDARD
            .decode(stanza.enc.as_bytes())
            .map_err(|_| GcpKmsError::MalformedCiphertext)?;
        let body = serde_json::to_vec(&serde_json::json!({
            "name": stanza.resource_id,
            "ciphertext": stanza.enc,
        }))
        .expect("a JSON object of strings serializes");
        let (url, mut answer) = self.call(stanza, "decrypt", Zeroizing::new(body))?;
        let bad = |problem| GcpKmsError::BadAnswer {
            url: url.clone(),
            problem,
        };
        let plaintext = match answer.get_mut("plaintext") {
            Some(serde_json::Value::String(s)) => Zeroizing::new(std::mem::take(s)),
            // proto3 JSON leaves out empty bytes.
            None => Zeroizing::new(String::new()),
            Some(_) => return Err(bad("the plaintext is not a string")),
        };
        base64::engine::general_purpose::STANDARD
            .decode(plaintext.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| bad("the plaintext is not base64"))
    }

    /// POSTs `body` to `{endpoint}/v1/{resource_id}:{op}` with a bearer token; the URL (for
    /// messages) and the answer's JSON.
    fn call(
        &self,
        key: &GcpKmsStanza,
        op: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<(String, serde_json::Value), GcpKmsError> {
        if !is_valid_resource_id(&key.resource_id) {
            return Err(GcpKmsError::InvalidResourceId(key.resource_id.clone()));
        }
        let url = format!(
            "{}/v1/{}:{op}",
            endpoint()?.trim_end_matches('/'),
            key.resource_id
        );
        let token = self.access_token()?;
        let authorization = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let params = format!("name={}", form_encode(&key.resource_id));
        let headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
            ("x-goog-request-params", params.as_str()),
        ];
        let bytes = self.send(&url, &headers, body)?;
        let answer = serde_json::from_slice(&bytes).map_err(|_| GcpKmsError::BadAnswer {
            url: url.clone(),
            problem: "the answer is not JSON",
        })?;
        Ok((url, answer))
    }

    /// A valid access token: the cached one, else a new one from the credentials.
    fn access_token(&self) -> Result<Zeroizing<String>, GcpKmsError> {
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cached.as_ref() {
            if t.renew_at.is_none_or(|at| Instant::now() < at) {
                return Ok(t.value.clone());
            }
        }
        let found = {
            let mut slot = self.found.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| self.find_credentials().map(Arc::new))
                .clone()?
        };
        let token = self.fetch_token(&found)?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    fn find_credentials(&self) -> Result<Found, GcpKmsError> {
        if let Some(json) = &self.credentials_json {
            return parse_credentials(json, "the given credentials JSON");
        }
        if let Some(value) = std::env::var_os(CREDENTIALS_VAR).filter(|v| !v.is_empty()) {
            let origin = format!("{CREDENTIALS_VAR:?}");
            // sops: a path when such a file exists, else the JSON itself.
            let path = std::path::Path::new(&value);
            let json = if path.exists() {
                read_secret_file(path).map_err(|reason| GcpKmsError::Credentials {
                    origin: origin.clone(),
                    reason,
                })?
            } else {
                Zeroizing::new(value.into_encoded_bytes())
            };
            return parse_credentials(&json, &origin);
        }
        if let Ok(token) = std::env::var(ACCESS_TOKEN_VAR) {
            if !token.is_empty() {
                return Ok(Found {
                    origin: ACCESS_TOKEN_VAR.into(),
                    credentials: Credentials::Static(Zeroizing::new(token)),
                });
            }
        }
        if let Some(path) = std::env::var_os(APPLICATION_CREDENTIALS_VAR).filter(|v| !v.is_empty())
        {
            let path = std::path::PathBuf::from(path);
            let origin = format!("{APPLICATION_CREDENTIALS_VAR} ({})", path.display());
            let json = read_secret_file(&path).map_err(|reason| GcpKmsError::Credentials {
                origin: origin.clone(),
                reason,
            })?;
            return parse_credentials(&json, &origin);
        }
        let well_known = well_known_file();
        if let Some(path) = &well_known {
            if let Ok(json) = read_secret_file(path) {
                return parse_credentials(&json, &path.display().to_string());
            }
        }
        if let Some(host) = self.metadata_host() {
            return Ok(Found {
                origin: format!("the metadata server at {host}"),
                credentials: Credentials::Metadata { host },
            });
        }
        Err(GcpKmsError::NoCredentials {
            well_known: well_known
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "gcloud's application_default_credentials.json".into()),
        })
    }

    /// `GCE_METADATA_HOST`, else 169.254.169.254 when it answers as the metadata server
    /// (`Metadata-Flavor: Google`) within a second (the Go library's `OnGCE` probe).
    fn metadata_host(&self) -> Option<String> {
        if self.https_only {
            return None;
        }
        if let Ok(host) = std::env::var(METADATA_HOST_VAR) {
            if !host.is_empty() {
                return Some(host);
            }
        }
        let headers = self
            .http
            .probe(&format!("http://{METADATA_IP}"), METADATA_PROBE_TIMEOUT)?;
        headers
            .get("metadata-flavor")
            .is_some_and(|v| v == "Google")
            .then(|| METADATA_IP.to_string())
    }

    fn fetch_token(&self, found: &Found) -> Result<CachedToken, GcpKmsError> {
        let (url, body, header): (String, Zeroizing<Vec<u8>>, (&str, &str)) =
            match &found.credentials {
                Credentials::Static(token) => {
                    return Ok(CachedToken {
                        value: token.clone(),
                        renew_at: None,
                    })
                }
                Credentials::ServiceAccount {
                    email,
                    key_id,
                    key,
                    token_uri,
                } => {
                    // The signed assertion is worth a token for an hour: every copy of it
                    // is wiped (the body is sized up front so that it never reallocates).
                    let assertion = signed_jwt(email, key_id, key, token_uri)
                        .map(Zeroizing::new)
                        .map_err(|reason| GcpKmsError::Credentials {
                            origin: found.origin.clone(),
                            reason,
                        })?;
                    let encoded = Zeroizing::new(form_encode(&assertion));
                    let grant = form_encode(JWT_BEARER_GRANT);
                    let mut body = Zeroizing::new(Vec::with_capacity(
                        "grant_type=&assertion=".len() + grant.len() + encoded.len(),
                    ));
                    for part in ["grant_type=", &grant, "&assertion=", &encoded] {
                        body.extend_from_slice(part.as_bytes());
                    }
                    (
                        token_uri.clone(),
                        body,
                        ("content-type", "application/x-www-form-urlencoded"),
                    )
                }
                Credentials::AuthorizedUser {
                    client_id,
                    client_secret,
                    refresh_token,
                    token_uri,
                } => {
                    let body = Zeroizing::new(format!(
                        "client_id={}&client_secret={}&grant_type=refresh_token&refresh_token={}",
                        form_encode(client_id),
                        form_encode(client_secret),
                        form_encode(refresh_token)
                    ));
                    (
                        token_uri.clone(),
                        Zeroizing::new(body.as_bytes().to_vec()),
                        ("content-type", "application/x-www-form-urlencoded"),
                    )
                }
                Credentials::Metadata { host } => (
                    format!(
                        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token?scopes={}",
                        form_encode(&SCOPES.join(","))
                    ),
                    Zeroizing::new(Vec::new()),
                    ("metadata-flavor", "Google"),
                ),
            };
        let token_error = |reason: String| GcpKmsError::Token {
            url: url.clone(),
            origin: found.origin.clone(),
            reason,
        };
        let bytes = match self.send(&url, &[header], body) {
            Ok(bytes) => bytes,
            Err(GcpKmsError::Refused { reason, status, .. }) => {
                return Err(token_error(format!("code {status}, {reason}")))
            }
            Err(GcpKmsError::Unreachable { reason, .. }) => return Err(token_error(reason)),
            Err(GcpKmsError::TimedOut { .. }) => {
                return Err(token_error(format!(
                    "no answer within {}s",
                    ATTEMPT_TIMEOUT.as_secs()
                )))
            }
            Err(e) => return Err(e),
        };
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            access_token: Option<String>,
            expires_in: Option<serde_json::Number>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| token_error("the answer is not a token (JSON)".into()))?;
        let value = Zeroizing::new(answer.access_token.unwrap_or_default());
        if value.is_empty() {
            return Err(token_error("the answer holds no access_token".into()));
        }
        let renew_at = answer
            .expires_in
            .and_then(|n| n.as_u64())
            .map(|s| Instant::now() + Duration::from_secs(s).saturating_sub(EARLY_REFRESH));
        Ok(CachedToken { value, renew_at })
    }

    /// POSTs (GETs, without a body) to `url`, retried on a failed connection, a timeout or a
    /// 5xx; a 2xx answer's body comes back, any other status is [`GcpKmsError::Refused`].
    fn send(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Zeroizing<Vec<u8>>,
    ) -> Result<bytes::Bytes, GcpKmsError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| GcpKmsError::BadEndpoint(url.to_string()))?;
        if self.https_only && !is_https(&uri) {
            return Err(GcpKmsError::PlainHttp(url.to_string()));
        }
        let method = if body.is_empty() {
            hyper::Method::GET
        } else {
            hyper::Method::POST
        };
        let url = url.to_string();
        let retry_on = |status: hyper::StatusCode| status.is_server_error();
        match self.http.send(&method, &uri, headers, &body, retry_on) {
            Err(Failure::BadRequest) => Err(GcpKmsError::BadEndpoint(url)),
            Err(Failure::TimedOut) => Err(GcpKmsError::TimedOut { url }),
            Err(Failure::Unreachable(reason)) => Err(GcpKmsError::Unreachable { url, reason }),
            Ok(answer) if !answer.status.is_success() => Err(GcpKmsError::Refused {
                url,
                status: answer.status.as_u16(),
                reason: ErrorReply::parse(answer.status, &answer.body).details(),
            }),
            Ok(answer) => Ok(answer.body),
        }
    }
}

/// The KMS base URL as the Go client resolves it (`getEndpoint`).
fn endpoint() -> Result<String, GcpKmsError> {
    if let Ok(e) = std::env::var(ENDPOINT_VAR) {
        if !e.is_empty() {
            if e.contains("://") {
                return Ok(e);
            }
            return Ok(format!("https://{e}"));
        }
    }
    if let Ok(domain) = std::env::var(UNIVERSE_DOMAIN_VAR) {
        if !domain.is_empty() {
            return Ok(format!("https://cloudkms.{domain}"));
        }
    }
    Ok(DEFAULT_ENDPOINT.to_string())
}

/// gcloud's ADC file: `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
/// `$HOME/.config/gcloud/application_default_credentials.json` (the Go library's
/// `GetWellKnownFileName`).
fn well_known_file() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?)
            .join(".config")
            .join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

fn read_secret_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, String> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a credentials JSON (Flux's `sops.gcp-kms` entry) as the first use of a GCP key would,
/// without contacting anyone: for callers that want to say early that an entry is unusable, and
/// for the `flux_entries` fuzz target, which feeds it a tenant's entry. The error is the reason,
/// never the JSON's text.
pub fn check_credentials_json(json: &[u8]) -> Result<(), GcpKmsError> {
    parse_credentials(json, "the given credentials JSON").map(drop)
}

/// A credentials JSON: a service account's key or a user's refresh token.
fn parse_credentials(json: &[u8], origin: &str) -> Result<Found, GcpKmsError> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<String>,
        private_key_id: Option<String>,
        private_key: Option<String>,
        token_uri: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
        refresh_token: Option<String>,
    }
    let fail = |reason: String| GcpKmsError::Credentials {
        origin: origin.to_string(),
        reason,
    };
    let file: File =
        serde_json::from_slice(json).map_err(|e| fail(format!("not a credentials JSON: {e}")))?;
    // Moved into zeroizing buffers at once (serde_json's scratch copies are out of reach).
    let private_key = file.private_key.map(Zeroizing::new);
    let client_secret = file.client_secret.map(Zeroizing::new);
    let refresh_token = file.refresh_token.map(Zeroizing::new);
    let token_uri = file
        .token_uri
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| GOOGLE_TOKEN_URL.to_string());
    let credentials = match file.kind.as_deref() {
        Some("service_account") => {
            let email = file
                .client_email
                .filter(|e| !e.is_empty())
                .ok_or_else(|| fail("the service account has no client_email".into()))?;
            let pem = private_key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| fail("the service account has no private_key".into()))?;
            Credentials::ServiceAccount {
                email,
                key_id: file.private_key_id.unwrap_or_default(),
                key: Box::new(rsa_key(pem.as_bytes()).map_err(fail)?),
                token_uri,
            }
        }
        Some("authorized_user") => Credentials::AuthorizedUser {
            client_id: file.client_id.unwrap_or_default(),
            client_secret: client_secret.unwrap_or_default(),
            refresh_token: refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| fail("the authorized user has no refresh_token".into()))?,
            token_uri,
        },
        Some(other) => {
            return Err(fail(format!(
                "credentials of type {other:?} are not supported by enseal (service_account and authorized_user are)"
            )))
        }
        None => return Err(fail("the JSON has no `type`".into())),
    };
    Ok(Found {
        origin: origin.to_string(),
        credentials,
    })
}

/// The RSA key of a service account: PEM (or DER) PKCS#8, else PKCS#1.
fn rsa_key(pem: &[u8]) -> Result<ring::signature::RsaKeyPair, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let der: Zeroizing<Vec<u8>> = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Zeroizing::new(key.secret_der().to_vec()),
        Err(_) => Zeroizing::new(pem.to_vec()),
    };
    ring::signature::RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| ring::signature::RsaKeyPair::from_der(&der))
        .map_err(|e| format!("the private_key is not a usable RSA key: {e}"))
}

/// The OAuth 2.0 JWT bearer assertion of a service account, as the Go library's 2LO flow signs
/// it: RS256 with the key's ID, `iss` = the account, `scope` = the KMS scopes, `aud` = the
/// token URL, issued 10 s in the past and valid for an hour.
fn signed_jwt(
    email: &str,
    key_id: &str,
    key: &ring::signature::RsaKeyPair,
    token_uri: &str,
) -> Result<String, String> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if !key_id.is_empty() {
        header["kid"] = key_id.into();
    }
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(10);
    let claims = serde_json::json!({
        "iss": email,
        "scope": SCOPES.join(" "),
        "aud": token_uri,
        "exp": iat + 3600,
        "iat": iat,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "cannot sign the token request with the private_key".to_string())?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A GCP KMS key to wrap for: a stanza with `resource_id` set.
impl Recipient for GcpKmsStanza {
    fn name(&self) -> String {
        self.resource_id.clone()
    }

    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let gcp = access.gcp_kms.ok_or(WrapError::NoAccess)?;
        gcp.encrypt_key(self, secret)
            .map(Stanza::GcpKms)
            .map_err(|e| WrapError::Failed(e.to_string()))
    }
}

impl MasterKey for GcpKmsStanza {
    fn describe(&self) -> String {
        format!("gcp_kms {}", self.resource_id)
    }

    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        match access.gcp_kms {
            Some(gcp) => gcp.decrypt_key(self).map_err(|e| e.to_string()),
            None => Err("GCP KMS access is not configured".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_checked_like_sops() {
        assert!(is_valid_resource_id(
            "projects/p/locations/global/keyRings/r/cryptoKeys/k"
        ));
        for bad in [
            "",
            "projects/p/locations/global/keyRings/r/cryptoKeys/",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "project/p/locations/global/keyRings/r/cryptoKeys/k",
            "projects//locations/global/keyRings/r/cryptoKeys/k",
        ] {
            assert!(!is_valid_resource_id(bad), "{bad}");
        }
    }

    #[test]
    fn resource_id_lists_split_like_sops() {
        assert!(parse_resource_ids("").is_empty());
        let keys = parse_resource_ids("projects/a/locations/l/keyRings/r/cryptoKeys/k , b");
        assert_eq!(
            keys.iter()
                .map(|k| k.resource_id.as_str())
                .collect::<Vec<_>>(),
            ["projects/a/locations/l/keyRings/r/cryptoKeys/k", "b"]
        );
        // An empty entry is kept (and refused when used), as sops keeps it.
        assert_eq!(parse_resource_ids("a,").len(), 2);
    }

    /// A `sops.gcp-kms` entry is checked without a network: an authorized user with a refresh
    /// token is usable; a JSON without `type`, a service account without a key and text that is
    /// no JSON are refused, the message quoting none of the entry's values.
    #[test]
    fn credentials_json_is_checked_without_contacting_anyone() {
        check_credentials_json(
            br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r0123"}"#,
        )
        .unwrap();
        for (json, reason) in [
            (&br#"{"refresh_token":"r0123456789xyz"}"#[..], "has no `type`"),
            (
                br#"{"type":"service_account","client_email":"e@x","private_key":"k0123456789xyz"}"#,
                "not a usable RSA key",
            ),
            (b"k0123456789xyz", "not a credentials JSON"),
        ] {
            let e = check_credentials_json(json).unwrap_err().to_string();
            assert!(e.contains(reason), "{e}");
            assert!(!e.contains("0123456789xyz"), "{e}");
        }
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        assert_eq!(form_encode("a b/c+d"), "a+b%2Fc%2Bd");
    }
}

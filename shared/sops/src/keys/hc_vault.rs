//! HashiCorp Vault / OpenBao transit as a key source, interoperable with sops' `hc_vault`
//! master keys (sops hcvault/keysource.go).
//!
//! A key is named by a URI `https://vault.example.com:8200/v1/transit/keys/NAME`, split as sops
//! splits it into `vault_address` (scheme and host), `engine_path` (`transit`, or a nested
//! mount) and `key_name`. Wrapping sends `{"plaintext": base64(data key)}` to
//! `{address}/v1/{engine}/encrypt/{key}` and stores the `ciphertext` of the answer
//! (`vault:v1:...`) as `enc`, untouched; unwrapping sends `{"ciphertext": enc}` to
//! `/decrypt/{key}` and base64-decodes `plaintext`. Both are `PUT`s with `X-Vault-Token`, as the
//! Go client's `Logical().Write` sends them.
//!
//! The token is the one given to [`VaultTransit::with_token`], else one a
//! [`VaultTokenSource`] logs in for (the controller's Kubernetes auth, through
//! [`VaultTransit::login_kubernetes`]), else `VAULT_TOKEN`, else the trimmed contents of
//! `~/.vault-token` (sops' `vaultClient`: the Vault API client reads `VAULT_TOKEN`, sops falls
//! back to the file). `VAULT_ADDR` plays no part: the Go client reads
//! it, but sops overwrites the address with the key's own. `VAULT_NAMESPACE` is sent as
//! `X-Vault-Namespace`, as the Go client does. `SOPS_HC_VAULT_ALLOWLIST` (sops 3.13) limits the
//! addresses a file may send its data key to.
//!
//! The calls go through the key services' shared blocking client (keys/http.rs), bounded as it
//! bounds them; a 5xx or 412 answer or a failed connection is retried like the Go client's
//! default (2 retries).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::format::metadata::{now_rfc3339, VaultStanza};
use crate::keys::http::{is_https, ErrorReply, Failure, HttpClient, Roots, ATTEMPT_TIMEOUT};
use crate::keys::{KeyAccess, MasterKey, Recipient, Stanza, WrapError};

/// sops' `SopsHCVaultAllowlist`.
pub const ALLOWLIST_VAR: &str = "SOPS_HC_VAULT_ALLOWLIST";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VaultUriError {
    #[error(
        "missing scheme in Vault URL (should be like this: https://vault.example.com:8200/v1/transit/keys/keyName), got: {0}"
    )]
    MissingScheme(String),
    #[error(
        "running Vault with a prefixed URL is not supported! (Format has to be like https://vault.example.com:8200/v1/transit/keys/keyName), got: {0}"
    )]
    Prefixed(String),
    #[error(
        "vault path does not seem to be formatted correctly: (eg. https://vault.example.com:8200/v1/transit/keys/keyName), got: {0}"
    )]
    BadPath(String),
}

/// The Vault transit keys of a comma-separated list of URIs (`--hc-vault-transit`,
/// `SOPS_VAULT_URIS`, a creation rule's `hc_vault_transit_uri`); empty entries are skipped, as
/// in sops' `NewMasterKeysFromURIs`.
pub fn parse_uri_list(list: &str) -> Result<Vec<VaultStanza>, VaultUriError> {
    list.split(',')
        .filter(|u| !u.is_empty())
        .map(parse_uri)
        .collect()
}

/// One Vault transit key URI, `SCHEME://HOST[:PORT]/v1/ENGINE.../keys/NAME`, split as sops'
/// `NewMasterKeyFromURI` and `engineAndKeyFromPath` split it.
pub fn parse_uri(uri: &str) -> Result<VaultStanza, VaultUriError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(VaultUriError::MissingScheme(uri.to_string()));
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(VaultUriError::MissingScheme(uri.to_string()));
    }
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    // sops' two regexps: `/[^/]+/v\d+/[^/]+/[^/]+/[^/]+` (a prefix before /v1) is refused,
    // and `/v\d+/[^/]+/[^/]+/[^/]+` must match somewhere.
    let is_version =
        |s: &str| s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit());
    let nonempty_run = |from: usize, n: usize| {
        segments.len() >= from + n && segments[from..from + n].iter().all(|s| !s.is_empty())
    };
    let matches_at = |i: usize| is_version(segments[i]) && nonempty_run(i + 1, 3);
    if (2..segments.len()).any(|i| !segments[i - 1].is_empty() && matches_at(i)) {
        return Err(VaultUriError::Prefixed(uri.to_string()));
    }
    if !(1..segments.len()).any(matches_at) {
        return Err(VaultUriError::BadPath(uri.to_string()));
    }
    let dirs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let key_name = dirs[dirs.len() - 1].to_string();
    let engine_path = dirs[1..dirs.len() - 2]
        .iter()
        .filter(|d| !d.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Ok(VaultStanza {
        vault_address: format!("{scheme}://{host}"),
        engine_path,
        key_name,
        ..VaultStanza::default()
    })
}

impl VaultStanza {
    /// The key as sops names it (`ToString`): `{address}/v1/{engine}/keys/{name}`.
    pub fn uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.vault_address, self.engine_path, self.key_name
        )
    }
}

/// Why Vault could not wrap or unwrap a data key. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{ALLOWLIST_VAR}'s entry {0} is empty")]
    AllowlistEntryEmpty(usize),
    #[error("{ALLOWLIST_VAR} does not allow {0}")]
    NotAllowed(String),
    /// [`VaultTransit::requiring_allowlist`] and the variable is unset.
    #[error(
        "{ALLOWLIST_VAR} is not set, so this token is sent to no Vault server (the file names {0}): set it to the addresses the token may be sent to"
    )]
    AllowlistRequired(String),
    /// A [`VaultTokenSource`] could not get a credential to log in with.
    #[error("cannot log in to Vault at {address}: {reason}")]
    Login { address: String, reason: String },
    #[error("cannot read the Vault token from {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error("cannot use VAULT_CACERT: {0}")]
    CaCert(String),
    #[error("invalid Vault address {0:?}")]
    BadAddress(String),
    #[error("cannot start the runtime for Vault calls: {0}")]
    Runtime(String),
    #[error("cannot reach Vault at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Vault did not answer within {}s at {url}", ATTEMPT_TIMEOUT.as_secs())]
    TimedOut { url: String },
    #[error("Vault refused {method} {url}: code {status}, errors: {errors}")]
    Refused {
        url: String,
        method: String,
        status: u16,
        errors: String,
    },
    #[error("unexpected answer from PUT {url}: {problem}")]
    BadAnswer { url: String, problem: &'static str },
    /// [`VaultTransit::requiring_https`] and the address is plain http.
    #[error("refusing to send a Vault request to {0} over plain http: this Vault access is for https servers only")]
    PlainHttp(String),
}

/// Where calls may go: sops' `allowList`.
#[derive(Debug, Clone, PartialEq)]
enum Allowlist {
    All,
    Prefixes(Vec<String>),
}

impl Allowlist {
    /// sops' `getAllowlist`: unset or empty means `all` (sops' default, to become `none`);
    /// `None` when unset or empty.
    fn from_env() -> Result<Option<Allowlist>, VaultError> {
        match std::env::var(ALLOWLIST_VAR) {
            Ok(v) if !v.is_empty() => Allowlist::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    fn parse(s: &str) -> Result<Allowlist, VaultError> {
        match s {
            "all" => return Ok(Allowlist::All),
            "none" => return Ok(Allowlist::Prefixes(Vec::new())),
            _ => {}
        }
        s.split(',')
            .enumerate()
            .map(|(i, uri)| {
                let uri = uri.trim_matches(' ');
                if uri.is_empty() {
                    return Err(VaultError::AllowlistEntryEmpty(i + 1));
                }
                Ok(with_slash(uri))
            })
            .collect::<Result<_, _>>()
            .map(Allowlist::Prefixes)
    }

    /// A plain string prefix test on the address with a trailing `/`, as sops' `Allows`.
    fn allows(&self, address: &str) -> bool {
        match self {
            Allowlist::All => true,
            Allowlist::Prefixes(p) => {
                let address = with_slash(address);
                p.iter().any(|u| address.starts_with(u.as_str()))
            }
        }
    }
}

/// Whether a call may go to `address`: the allowlist's say, where an unset one (`None`) is
/// `all`, or nothing when the token requires one.
fn may_send_to(
    allowlist: Option<Allowlist>,
    required: bool,
    address: &str,
) -> Result<(), VaultError> {
    let allowlist = match allowlist {
        Some(list) => list,
        None if required => return Err(VaultError::AllowlistRequired(address.to_string())),
        None => Allowlist::All,
    };
    if !allowlist.allows(address) {
        return Err(VaultError::NotAllowed(address.to_string()));
    }
    Ok(())
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

/// A token that depends on the server: one the caller logs in for at each server it is
/// asked for (the controller's Kubernetes auth), and keeps while it is valid.
pub trait VaultTokenSource: Send + Sync {
    /// The token for `address`, logging in through `vault` when none is held.
    fn token_for(
        &self,
        vault: &VaultTransit,
        address: &str,
    ) -> Result<Zeroizing<String>, VaultError>;
    /// `address` refused the token `token_for` gave (revoked, or expired early): it is not to
    /// be given again.
    fn refused(&self, address: &str);
}

/// The client token a login gave, and how long it is valid (`None`: no expiry, as Vault
/// says with a `lease_duration` of 0).
pub struct VaultLogin {
    pub token: Zeroizing<String>,
    pub ttl: Option<Duration>,
}

impl fmt::Debug for VaultLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultLogin")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Vault transit access for wrapping and unwrapping data keys. A clone shares the first one's
/// connections (a handle, as an HTTP client is); its token settings are its own.
#[derive(Clone)]
pub struct VaultTransit {
    http: Arc<HttpClient>,
    token: Option<Zeroizing<String>>,
    /// [`VaultTransit::with_token_source`]: asked when no token was given.
    source: Option<Arc<dyn VaultTokenSource>>,
    /// [`VaultTransit::requiring_allowlist`]: an unset allowlist allows no server.
    allowlist_required: bool,
    /// Why `VAULT_CACERT` could not be used: every call then fails with it, as sops' Vault
    /// client does (its `DefaultConfig` records the error, `NewClient` returns it per key).
    ca_error: Option<String>,
    /// [`VaultTransit::requiring_https`]: nothing over plain http.
    https_only: bool,
}

impl fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransit").finish_non_exhaustive()
    }
}

impl VaultTransit {
    /// Vault access with the token found as sops finds it (`VAULT_TOKEN`, else
    /// `~/.vault-token`), read at each call. Nothing is contacted until a key is used.
    pub fn from_env() -> Result<VaultTransit, VaultError> {
        let (ca_roots, ca_error) = match ca_cert_roots() {
            Ok(roots) => (roots, None),
            Err(e) => (None, Some(e)),
        };
        // The Go client trusts only VAULT_CACERT's certificates when it is set.
        let roots = ca_roots.map_or(Roots::Native, Roots::Only);
        let http =
            HttpClient::https_or_http(roots).map_err(|e| VaultError::Runtime(e.to_string()))?;
        Ok(VaultTransit {
            http: Arc::new(http),
            token: None,
            source: None,
            allowlist_required: false,
            ca_error,
            https_only: false,
        })
    }

    /// Uses `token` rather than the environment's (Flux's `sops.vault-token`).
    pub fn with_token(mut self, token: Zeroizing<String>) -> VaultTransit {
        self.token = Some(token);
        self
    }

    /// Asks `source` for each server's token when none was given with
    /// [`VaultTransit::with_token`], before `VAULT_TOKEN` and `~/.vault-token`.
    pub fn with_token_source(mut self, source: Arc<dyn VaultTokenSource>) -> VaultTransit {
        self.source = Some(source);
        self
    }

    /// Logs in at `{address}/v1/auth/{mount}/login` with a Kubernetes ServiceAccount token
    /// (`jwt`) for `role`, as Vault's Kubernetes auth method takes it (`{"role", "jwt"}`, the
    /// Go client's `Logical().Write`), and returns the client token it gives. The JWT is the
    /// caller's own identity and the file names the server: it goes only to a server
    /// `SOPS_HC_VAULT_ALLOWLIST` lists, and to none when the variable is unset.
    pub fn login_kubernetes(
        &self,
        address: &str,
        mount: &str,
        role: &str,
        jwt: &str,
    ) -> Result<VaultLogin, VaultError> {
        may_send_to(Allowlist::from_env()?, true, address)?;
        let url = format!(
            "{}/v1/auth/{}/login",
            address.trim_end_matches('/'),
            mount.trim_matches('/')
        );
        // Serialised from borrowed strings: a `json!` value would hold a copy of the JWT that
        // is dropped unwiped.
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        let body = serde_json::to_vec(&Login { role, jwt })
            .expect("a JSON object of two strings serializes");
        let bytes = self.send(hyper::Method::PUT, &url, None, Some(Zeroizing::new(body)))?;
        #[derive(serde::Deserialize)]
        struct Answer {
            auth: Option<Auth>,
        }
        #[derive(serde::Deserialize)]
        struct Auth {
            client_token: String,
            #[serde(default)]
            lease_duration: u64,
        }
        let bad = |problem| VaultError::BadAnswer {
            url: url.clone(),
            problem,
        };
        let auth = serde_json::from_slice::<Answer>(&bytes)
            .map_err(|_| bad("not a login answer"))?
            .auth
            .ok_or_else(|| bad("no auth in the login answer"))?;
        let token = Zeroizing::new(auth.client_token);
        if token.is_empty() {
            return Err(bad("no client token in the login answer"));
        }
        Ok(VaultLogin {
            token,
            ttl: (auth.lease_duration > 0).then(|| Duration::from_secs(auth.lease_duration)),
        })
    }

    /// Sends the token only to servers `SOPS_HC_VAULT_ALLOWLIST` allows, and to none when it is
    /// unset (sops' default is every server). For a token that is not the file author's: the
    /// file names the server its data key (and so the token) goes to, and a file can be
    /// written by anyone (the controller's own token, used for every tenant's files).
    pub fn requiring_allowlist(mut self) -> VaultTransit {
        self.allowlist_required = true;
        self
    }

    /// Sends nothing over plain http (not even to a loopback address, see `http::is_https`):
    /// for a server someone else chose (a tenant's file, in the controller), where plain http would let the request reach
    /// any http service inside the cluster. sops allows plain http, and so does the CLI.
    pub fn requiring_https(mut self) -> VaultTransit {
        self.https_only = true;
        self
    }

    /// Wraps `data_key` for `key`: the stanza comes back with `enc` and `created_at` set.
    pub fn encrypt_key(
        &self,
        key: &VaultStanza,
        data_key: &[u8],
    ) -> Result<VaultStanza, VaultError> {
        let mut body = Zeroizing::new(Vec::with_capacity(data_key.len() * 2 + 20));
        body.extend_from_slice(b"{\"plaintext\":\"");
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(data_key));
        body.extend_from_slice(b64.as_bytes());
        body.extend_from_slice(b"\"}");
        let answer = self.put(key, "encrypt", body)?;
        let url = self.url(key, "encrypt");
        let ciphertext = answer
            .get("data")
            .and_then(|d| d.get("ciphertext"))
            .ok_or(VaultError::BadAnswer {
                url: url.clone(),
                problem: "no encrypted data",
            })?
            .as_str()
            .ok_or(VaultError::BadAnswer {
                url,
                problem: "encrypted ciphertext is not a string",
            })?;
        Ok(VaultStanza {
            enc: ciphertext.to_string(),
            created_at: now_rfc3339(),
            ..key.clone()
        })
    }

    /// Unwraps the data key held in `stanza.enc`.
    pub fn decrypt_key(&self, stanza: &VaultStanza) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let body = serde_json::to_vec(&serde_json::json!({ "ciphertext": stanza.enc }))
            .expect("a JSON object of one string serializes");
        let mut answer = self.put(stanza, "decrypt", Zeroizing::new(body))?;
        let url = self.url(stanza, "decrypt");
        let bad = |problem| VaultError::BadAnswer {
            url: url.clone(),
            problem,
        };
        let plaintext = match answer
            .get_mut("data")
            .and_then(|d| d.get_mut("plaintext"))
            .ok_or_else(|| bad("no decrypted data"))?
        {
            serde_json::Value::String(s) => Zeroizing::new(std::mem::take(s)),
            _ => return Err(bad("decrypted plaintext is not a string")),
        };
        base64::engine::general_purpose::STANDARD
            .decode(plaintext.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| bad("cannot decode base64 plaintext into data key bytes"))
    }

    fn url(&self, key: &VaultStanza, op: &str) -> String {
        format!(
            "{}/v1/{}/{op}/{}",
            key.vault_address.trim_end_matches('/'),
            key.engine_path,
            key.key_name
        )
    }

    /// The token for `address`, and whether the token source gave it.
    fn token(&self, address: &str) -> Result<(Option<Zeroizing<String>>, bool), VaultError> {
        if let Some(t) = &self.token {
            return Ok((Some(t.clone()), false));
        }
        if let Some(source) = &self.source {
            return Ok((Some(source.token_for(self, address)?), true));
        }
        Ok((self.environment_token()?, false))
    }

    /// `VAULT_TOKEN`, else `~/.vault-token`, as sops reads them.
    fn environment_token(&self) -> Result<Option<Zeroizing<String>>, VaultError> {
        if let Ok(t) = std::env::var("VAULT_TOKEN") {
            if !t.is_empty() {
                return Ok(Some(Zeroizing::new(t)));
            }
        }
        let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let path = std::path::Path::new(&home).join(".vault-token");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Ok(Some(Zeroizing::new(text.trim().to_string())).filter(|t| !t.is_empty()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VaultError::TokenFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// PUTs `body` (JSON) to `{address}/v1/{engine}/{op}/{key}` and returns the answer's JSON.
    fn put(
        &self,
        key: &VaultStanza,
        op: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<serde_json::Value, VaultError> {
        may_send_to(
            Allowlist::from_env()?,
            self.allowlist_required,
            &key.vault_address,
        )?;
        let url = self.url(key, op);
        let (token, from_source) = self.token(&key.vault_address)?;
        let bytes = match self.send(hyper::Method::PUT, &url, token.as_ref(), Some(body.clone())) {
            // A token the source held may have been revoked or have expired early: one new
            // login, then its answer stands.
            Err(VaultError::Refused { status: 403, .. }) if from_source => {
                let source = self.source.as_ref().expect("from_source implies a source");
                source.refused(&key.vault_address);
                let token = source.token_for(self, &key.vault_address)?;
                self.send(hyper::Method::PUT, &url, Some(&token), Some(body))?
            }
            other => other?,
        };
        // A 204 (no body) is sops' "transit backend is empty".
        serde_json::from_slice(&bytes).map_err(|_| VaultError::BadAnswer {
            url,
            problem: "transit backend is empty",
        })
    }

    /// Writes `data` to the KV secret `path` (`secret/data/app/file.json`) at `address`, as
    /// `sops publish` does (publish/vault.go `UploadUnencrypted`): nothing is written when the
    /// secret already holds `data`; KV version 2 wraps it in `{"data": ...}`. The token is
    /// `VAULT_TOKEN` only, as the Go client's `NewClient` reads it there (no token file).
    pub fn publish_kv(
        &self,
        address: &str,
        path: &str,
        kv_version: u8,
        data: &serde_json::Value,
    ) -> Result<(), VaultError> {
        let url = format!("{}/v1/{path}", address.trim_end_matches('/'));
        let token = std::env::var("VAULT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new);
        // sops only warns when the read fails, and then writes anyway.
        if let Ok(bytes) = self.send(hyper::Method::GET, &url, token.as_ref(), None) {
            let existing: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            if existing
                .as_ref()
                .and_then(|e| e.get("data"))
                .and_then(|d| d.get("data"))
                == Some(data)
            {
                return Ok(());
            }
        }
        let body = if kv_version == 1 {
            data.clone()
        } else {
            serde_json::json!({ "data": data })
        };
        let body = Zeroizing::new(serde_json::to_vec(&body).expect("JSON values serialize"));
        self.send(hyper::Method::PUT, &url, token.as_ref(), Some(body))
            .map(|_| ())
    }

    /// Sends one request, retried on a failed connection, a timeout, a 5xx or a 412 (the Go
    /// client's retry policy); a 2xx answer's body comes back, any other status is
    /// [`VaultError::Refused`] with Vault's errors.
    fn send(
        &self,
        method: hyper::Method,
        url: &str,
        token: Option<&Zeroizing<String>>,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<bytes::Bytes, VaultError> {
        let url = url.to_string();
        if let Some(reason) = &self.ca_error {
            return Err(VaultError::CaCert(reason.clone()));
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| VaultError::BadAddress(url.clone()))?;
        if self.https_only && !is_https(&uri) {
            return Err(VaultError::PlainHttp(url));
        }
        let namespace = std::env::var("VAULT_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty());
        let body = body.unwrap_or_default();
        let mut headers = vec![("x-vault-request", "true")];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        if let Some(t) = token {
            headers.push(("x-vault-token", t.as_str()));
        }
        if let Some(ns) = &namespace {
            headers.push(("x-vault-namespace", ns.as_str()));
        }
        let retry_on = |status: hyper::StatusCode| status.is_server_error() || status == 412;
        match self.http.send(&method, &uri, &headers, &body, retry_on) {
            Err(Failure::BadRequest) => Err(VaultError::BadAddress(url)),
            Err(Failure::TimedOut) => Err(VaultError::TimedOut { url }),
            Err(Failure::Unreachable(reason)) => Err(VaultError::Unreachable { url, reason }),
            Ok(answer) if !answer.status.is_success() => Err(VaultError::Refused {
                url,
                method: method.to_string(),
                status: answer.status.as_u16(),
                errors: ErrorReply::parse(answer.status, &answer.body).details(),
            }),
            Ok(answer) => Ok(answer.body),
        }
    }
}

/// The certificates of the PEM file `VAULT_CACERT` names, when it is set.
fn ca_cert_roots() -> Result<Option<rustls::RootCertStore>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let Some(path) = std::env::var_os("VAULT_CACERT").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&path).map_err(|e| format!("{shown}: {e}"))? {
        let cert = cert.map_err(|e| format!("{shown}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{shown}: no PEM certificate in it"));
    }
    Ok(Some(roots))
}

/// A Vault transit key to wrap for: a stanza with address, engine and key name set.
impl Recipient for VaultStanza {
    fn name(&self) -> String {
        self.uri()
    }

    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let vault = access.vault.ok_or(WrapError::NoAccess)?;
        vault
            .encrypt_key(self, secret)
            .map(Stanza::Vault)
            .map_err(|e| WrapError::Failed(e.to_string()))
    }
}

impl MasterKey for VaultStanza {
    fn describe(&self) -> String {
        format!("hc_vault {}", self.uri())
    }

    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        match access.vault {
            Some(vault) => vault.decrypt_key(self).map_err(|e| e.to_string()),
            None => Err("Vault access is not configured".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> (String, String, String) {
        let k = parse_uri(uri).unwrap();
        (k.vault_address, k.engine_path, k.key_name)
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    /// A token that must not follow a file's choice of server: with no allowlist it goes
    /// nowhere (sops' default of every server does not apply), and the error names the server
    /// and the variable; a set allowlist decides as for any token.
    #[test]
    fn a_token_requiring_an_allowlist_is_sent_nowhere_without_one() {
        let addr = "http://attacker.invalid:8200";
        let e = may_send_to(None, true, addr).unwrap_err();
        assert!(matches!(e, VaultError::AllowlistRequired(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(ALLOWLIST_VAR) && msg.contains(addr), "{msg}");
        assert!(may_send_to(None, false, addr).is_ok(), "sops' default");
        let listed = || Some(Allowlist::parse("https://vault.example.com").unwrap());
        let e = may_send_to(listed(), true, addr).unwrap_err();
        assert!(matches!(e, VaultError::NotAllowed(_)), "{e:?}");
        assert!(may_send_to(listed(), true, "https://vault.example.com").is_ok());
        assert!(may_send_to(Some(Allowlist::All), true, addr).is_ok());
    }

    #[test]
    fn uris_split_like_sops() {
        assert_eq!(
            parts("https://vault.example.com:8200/v1/transit/keys/app"),
            s("https://vault.example.com:8200", "transit", "app")
        );
        assert_eq!(
            parts("http://127.0.0.1:8200/v1/team/a/transit/keys/k"),
            s("http://127.0.0.1:8200", "team/a/transit", "k")
        );
        assert_eq!(parse_uri_list("").unwrap(), vec![]);
        assert_eq!(
            parse_uri_list("http://a/v1/t/keys/x,,http://b/v1/t/keys/y")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn uris_sops_refuses_are_refused() {
        assert!(matches!(
            parse_uri("vault.example.com/v1/transit/keys/k"),
            Err(VaultUriError::MissingScheme(_))
        ));
        assert!(matches!(
            parse_uri("https://vault.example.com/prefix/v1/transit/keys/k"),
            Err(VaultUriError::Prefixed(_))
        ));
        assert!(matches!(
            parse_uri("https://vault.example.com/v1/transit"),
            Err(VaultUriError::BadPath(_))
        ));
    }

    #[test]
    fn allowlist_is_a_prefix_test_with_slashes() {
        let list = Allowlist::parse("https://a.example:8200, http://b").unwrap();
        assert!(list.allows("https://a.example:8200"));
        assert!(list.allows("http://b"));
        assert!(!list.allows("http://b.other"));
        assert!(!list.allows("https://a.example:8201"));
        assert!(!Allowlist::parse("none").unwrap().allows("http://b"));
        assert!(Allowlist::parse("all").unwrap().allows("http://b"));
        assert!(matches!(
            Allowlist::parse("http://a,,http://b"),
            Err(VaultError::AllowlistEntryEmpty(2))
        ));
    }
}

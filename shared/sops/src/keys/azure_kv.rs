//! Azure Key Vault as a key source, interoperable with sops' `azure_kv` master keys (sops
//! azkv/keysource.go, on the Go SDK's azkeys and azidentity).
//!
//! A key is named by a URL `https://VAULT/keys/NAME[/VERSION]` (sops' regexp: https only, no
//! trailing part). A key named without a version is looked up (`GET {vault}/keys/{name}/`) and
//! its current version written down, as sops does before encrypting. Wrapping POSTs
//! `{"alg":"RSA-OAEP-256","value":base64url(data key)}` to
//! `{vault}/keys/{name}/{version}/encrypt` (the RSA encryption happens in the vault, as in
//! sops: it calls `Encrypt`, not `WrapKey`), and stores the answer's `value` as base64url
//! without padding in `enc`; unwrapping POSTs it to `/decrypt`. The api-version is the one the
//! Go SDK sops 3.13 builds with sends (azkeys 1.5: `2025-07-01`).
//!
//! Authentication is the Key Vault bearer challenge as the Go SDK's policy does it: the first
//! request to a vault goes without body or token, the 401's `WWW-Authenticate` names the tenant
//! (`authorization=`) and the resource or scope, which must be the vault's own domain (a host
//! suffix, so a vault cannot send its clients to another resource's token); a token for that
//! scope then comes from `{AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token` (default authority
//! `https://login.microsoftonline.com`) by a client-credentials grant, with the first of
//! DefaultAzureCredential's sources that is configured:
//! - client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`;
//! - client certificate: `AZURE_CLIENT_CERTIFICATE_PATH` (a PEM file with the certificate and
//!   its unencrypted RSA key), the assertion a PS256 JWT with `x5t#S256`, as MSAL signs it;
//! - workload identity: `AZURE_FEDERATED_TOKEN_FILE` (re-read for every token), with
//!   `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`;
//! - managed identity, App Service style (App Service, Functions, Container Apps), as MSAL's
//!   `managedidentity` (azidentity 1.14, sops 3.13) finds it: `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER` set, `IDENTITY_SERVER_THUMBPRINT` not (that is Service Fabric). The token
//!   is a `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&client_id=...&resource=...` with
//!   `X-IDENTITY-HEADER`, the resource the challenge's scope without `/.default`, `client_id`
//!   `AZURE_CLIENT_ID` when set (DefaultAzureCredential's user-assigned identity). The
//!   endpoint is plain http on loopback, reached directly (Go never proxies loopback); it comes
//!   from the process environment only, never from a file or a key Secret
//!   ([`AzureCredential`] cannot hold one, so `with_credential` cannot select it).
//!
//! Managed identity through IMDS (`169.254.169.254`, what a VM or AKS node has), Service
//! Fabric, Azure Arc, Cloud Shell and Azure ML, the Azure CLI and PKCS#12 certificates are not
//! supported yet: no honest test of IMDS is possible here (sops probes the fixed address).
//! `HTTPS_PROXY`/`NO_PROXY` are honoured as Go's `ProxyFromEnvironment` does (never for
//! localhost), and extra CAs come from `SSL_CERT_FILE`/`SSL_CERT_DIR` (rustls-native-certs
//! reads them as Go does). The calls go through the key services' shared blocking client
//! (keys/http.rs), bounded as it bounds them (2 s to connect, 5 s per attempt, 3 attempts),
//! retried on a failed connection, a timeout, a 408, 429 or 5xx.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use zeroize::Zeroizing;

use crate::format::metadata::{now_rfc3339, AzureKvStanza};
use crate::keys::http::{
    clean_reply_text, ErrorReply, Failure, HttpClient, ProxyConnector, Roots, ATTEMPT_TIMEOUT,
};
use crate::keys::{KeyAccess, MasterKey, Recipient, Stanza, WrapError};
/// The Key Vault REST API version azkeys 1.5 (sops 3.13) sends.
pub const API_VERSION: &str = "2025-07-01";
/// azidentity's default authority (`AZURE_AUTHORITY_HOST` overrides it).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// A token this close to its expiry is fetched again (azcore's refresh margin).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AzureUrlError {
    /// sops' message (azkv.NewMasterKeyFromURL); the regexp's parts are always empty then.
    #[error("could not parse {0:?} into a valid Azure Key Vault MasterKey []")]
    Invalid(String),
}

/// The keys of a comma-separated list of key URLs (`--azure-kv`, `SOPS_AZURE_KEYVAULT_URLS`,
/// a creation rule's `azure_keyvault`); as sops' `MasterKeysFromURLs`, an empty list is no key
/// and an empty entry in a list is an error.
pub fn parse_url_list(list: &str) -> Result<Vec<AzureKvStanza>, AzureUrlError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',').map(parse_url).collect()
}

/// One key URL, `https://VAULT/keys/NAME[/VERSION]`, split as sops' regexp
/// `^(https://[^/]+)/keys/([^/]+)(/[^/]*)?$` splits it (after trimming white space).
pub fn parse_url(url: &str) -> Result<AzureKvStanza, AzureUrlError> {
    let url = url.trim();
    let bad = || AzureUrlError::Invalid(url.to_string());
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let (host, path) = rest.split_once('/').ok_or_else(bad)?;
    let path = path.strip_prefix("keys/").ok_or_else(bad)?;
    let (name, version) = match path.split_once('/') {
        Some((name, version)) if !version.contains('/') => (name, version),
        Some(_) => return Err(bad()),
        None => (path, ""),
    };
    if host.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(AzureKvStanza {
        vault_url: format!("https://{host}"),
        name: name.to_string(),
        version: version.to_string(),
        ..AzureKvStanza::default()
    })
}

impl AzureKvStanza {
    /// The key as sops names it (`ToString`): `{vault_url}/keys/{name}/{version}`.
    pub fn uri(&self) -> String {
        format!("{}/keys/{}/{}", self.vault_url, self.name, self.version)
    }
}

/// Why Azure could not wrap or unwrap a data key. Never holds key material or a secret.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("DefaultAzureCredential: no credential is configured (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE, or IDENTITY_ENDPOINT and IDENTITY_HEADER for an App Service managed identity; managed identity through IMDS is not supported by enseal yet)")]
    NoCredential,
    #[error("ManagedIdentityCredential: {0} managed identity is not supported by enseal yet")]
    UnsupportedManagedIdentity(&'static str),
    /// The managed identity endpoint refused or failed; `url` is the endpoint (the identity
    /// header is never shown).
    #[error(
        "ManagedIdentityCredential: authentication failed: GET {url}: RESPONSE {status}: {details}"
    )]
    ManagedIdentity {
        url: String,
        status: u16,
        details: String,
    },
    #[error("{variable}: {reason}")]
    Credential {
        variable: &'static str,
        reason: String,
    },
    #[error("AZURE_AUTHORITY_HOST must be an https URL, got {0:?}")]
    AuthorityHost(String),
    #[error("{credential} isn't configured to acquire tokens for tenant {tenant:?}: add it to AZURE_ADDITIONALLY_ALLOWED_TENANTS, or \"*\" for any tenant")]
    TenantNotAllowed {
        credential: &'static str,
        tenant: String,
    },
    #[error("cannot start the runtime for Azure calls: {0}")]
    Runtime(String),
    #[error("invalid URL {0:?}")]
    BadUrl(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("no answer within {}s from {url}", ATTEMPT_TIMEOUT.as_secs())]
    TimedOut { url: String },
    #[error("{url}: bearer challenge: {problem}")]
    Challenge { url: String, problem: String },
    #[error("{credential}: authentication failed: POST {url}: RESPONSE {status}: {error}: {description}")]
    Token {
        credential: &'static str,
        url: String,
        status: u16,
        error: String,
        description: String,
    },
    #[error("{method} {url}: RESPONSE {status}: ERROR CODE: {code}: {message}")]
    Refused {
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {problem}")]
    BadAnswer { url: String, problem: &'static str },
    #[error("failed to base64 decode Azure Key Vault encrypted key")]
    MalformedEnc,
}

/// Who enseal authenticates as: one of DefaultAzureCredential's sources.
#[derive(Clone)]
pub enum AzureCredential {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Zeroizing<String>,
    },
    /// A certificate's RSA key (PEM file), the assertion signed with PS256.
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        /// Standard base64 of the certificate's SHA-256 (the JWT's `x5t#S256`).
        thumbprint: String,
        key: Arc<ring::rsa::KeyPair>,
    },
    /// Workload identity: the assertion is the token file's content, read for every token.
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl AzureCredential {
    /// The first client credential DefaultAzureCredential would use, from the environment
    /// (EnvironmentCredential's, then WorkloadIdentityCredential's; `None` when neither is
    /// configured, and DefaultAzureCredential goes on to the managed identity).
    pub fn from_env() -> Result<Option<AzureCredential>, AzureError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let tenant = var("AZURE_TENANT_ID");
        let client = var("AZURE_CLIENT_ID");
        // EnvironmentCredential: a secret first, then a certificate.
        if let (Some(tenant_id), Some(client_id)) = (&tenant, &client) {
            if let Some(secret) = var("AZURE_CLIENT_SECRET") {
                return Ok(Some(AzureCredential::ClientSecret {
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    secret: Zeroizing::new(secret),
                }));
            }
            if let Some(path) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
                return AzureCredential::from_certificate_file(
                    tenant_id,
                    client_id,
                    &PathBuf::from(path),
                )
                .map(Some);
            }
        }
        if let (Some(tenant_id), Some(client_id), Some(file)) =
            (tenant, client, var("AZURE_FEDERATED_TOKEN_FILE"))
        {
            return Ok(Some(AzureCredential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file: PathBuf::from(file),
            }));
        }
        Ok(None)
    }

    /// A client-certificate credential from a PEM file holding the certificate and its RSA
    /// private key (PKCS#8 or PKCS#1), as azidentity's `ParseCertificates` reads PEM.
    pub fn from_certificate_file(
        tenant_id: &str,
        client_id: &str,
        path: &std::path::Path,
    ) -> Result<AzureCredential, AzureError> {
        let fail = |reason: String| AzureError::Credential {
            variable: "AZURE_CLIENT_CERTIFICATE_PATH",
            reason: format!("{}: {reason}", path.display()),
        };
        if std::env::var("AZURE_CLIENT_CERTIFICATE_PASSWORD").is_ok_and(|p| !p.is_empty()) {
            return Err(fail(
                "password-protected certificates are not supported by enseal yet".into(),
            ));
        }
        let pem = Zeroizing::new(std::fs::read(path).map_err(|e| fail(e.to_string()))?);
        Self::from_certificate_pem(tenant_id, client_id, &pem).map_err(fail)
    }

    /// A client-certificate credential from PEM text (certificate and RSA key); the error is
    /// the reason only, for the caller to say where the PEM came from.
    pub fn from_certificate_pem(
        tenant_id: &str,
        client_id: &str,
        pem: &[u8],
    ) -> Result<AzureCredential, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use sha2::Digest as _;
        let fail = |reason: String| reason;
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| fail("no PEM certificate in it (PKCS#12 is not supported)".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| fail(format!("no usable private key: {e}")))?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => ring::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => ring::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(fail("the private key is not an RSA key".into())),
        }
        .map_err(|e| fail(format!("the private key is not a usable RSA key: {e}")))?;
        let thumbprint =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(cert.as_ref()));
        Ok(AzureCredential::ClientCertificate {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            thumbprint,
            key: Arc::new(key),
        })
    }

    /// The credential type as azidentity names it in messages.
    fn name(&self) -> &'static str {
        match self {
            AzureCredential::ClientSecret { .. } => "ClientSecretCredential",
            AzureCredential::ClientCertificate { .. } => "ClientCertificateCredential",
            AzureCredential::WorkloadIdentity { .. } => "WorkloadIdentityCredential",
        }
    }

    fn tenant_and_client(&self) -> (&str, &str) {
        match self {
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                ..
            }
            | AzureCredential::ClientCertificate {
                tenant_id,
                client_id,
                ..
            }
            | AzureCredential::WorkloadIdentity {
                tenant_id,
                client_id,
                ..
            } => (tenant_id, client_id),
        }
    }

    /// The form fields proving who we are to `token_url`.
    fn proof(&self, token_url: &str) -> Result<Vec<(&'static str, Zeroizing<String>)>, AzureError> {
        match self {
            AzureCredential::ClientSecret { secret, .. } => {
                Ok(vec![("client_secret", secret.clone())])
            }
            AzureCredential::ClientCertificate {
                client_id,
                thumbprint,
                key,
                ..
            } => Ok(vec![
                ("client_assertion_type", Zeroizing::new(JWT_BEARER.into())),
                (
                    "client_assertion",
                    Zeroizing::new(signed_assertion(client_id, token_url, thumbprint, key)?),
                ),
            ]),
            AzureCredential::WorkloadIdentity { token_file, .. } => {
                let token = std::fs::read_to_string(token_file)
                    .map(Zeroizing::new)
                    .map_err(|e| AzureError::Credential {
                        variable: "AZURE_FEDERATED_TOKEN_FILE",
                        reason: format!("{}: {e}", token_file.display()),
                    })?;
                Ok(vec![
                    ("client_assertion_type", Zeroizing::new(JWT_BEARER.into())),
                    // As read, untrimmed, as azidentity sends it (a projected token has no
                    // line break).
                    ("client_assertion", token),
                ])
            }
        }
    }
}

/// A managed identity of the App Service kind (App Service, Functions, Container Apps): the
/// host's local token endpoint and the header value that proves the caller runs there.
#[derive(Clone)]
struct AppServiceIdentity {
    endpoint: String,
    /// `IDENTITY_HEADER`: a secret of the host's, sent to the endpoint only, never shown.
    header: Zeroizing<String>,
    /// `AZURE_CLIENT_ID`, a user-assigned identity (else the system-assigned one), as
    /// DefaultAzureCredential passes it to ManagedIdentityCredential.
    client_id: Option<String>,
}

impl AppServiceIdentity {
    /// The managed identity the environment names, chosen as MSAL's `GetSource` chooses:
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are App Service unless
    /// `IDENTITY_SERVER_THUMBPRINT` makes them Service Fabric; `MSI_ENDPOINT` is Cloud Shell or
    /// Azure ML, `IDENTITY_ENDPOINT` with `IMDS_ENDPOINT` Azure Arc (refused: not supported);
    /// anything else is IMDS, not supported either (`None`).
    fn from_env() -> Result<Option<AppServiceIdentity>, AzureError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = var("IDENTITY_ENDPOINT");
        let unsupported = |source| Err(AzureError::UnsupportedManagedIdentity(source));
        match (endpoint, var("IDENTITY_HEADER")) {
            (Some(_), Some(_)) if var("IDENTITY_SERVER_THUMBPRINT").is_some() => {
                unsupported("Service Fabric")
            }
            (Some(endpoint), Some(header)) => {
                let uri = endpoint.parse::<Uri>().ok();
                let scheme = uri.as_ref().and_then(|u| u.scheme_str());
                if !matches!(scheme, Some("http" | "https"))
                    || uri.and_then(|u| u.host().map(str::to_string)).is_none()
                {
                    return Err(AzureError::Credential {
                        variable: "IDENTITY_ENDPOINT",
                        reason: format!("not an http(s) URL: {:?}", shown(&endpoint)),
                    });
                }
                Ok(Some(AppServiceIdentity {
                    endpoint,
                    header: Zeroizing::new(header),
                    client_id: var("AZURE_CLIENT_ID"),
                }))
            }
            _ if var("MSI_ENDPOINT").is_some() => unsupported("Cloud Shell or Azure ML"),
            (Some(_), None) if var("IMDS_ENDPOINT").is_some() => unsupported("Azure Arc"),
            _ => Ok(None),
        }
    }

    /// MSAL's `createAppServiceAuthRequest`: the query as Go's `url.Values.Encode` writes it
    /// (keys sorted, values form-escaped), after any query the endpoint has.
    fn token_url(&self, resource: &str) -> String {
        let mut query = Vec::new();
        query.extend_from_slice(b"api-version=2019-08-01");
        if let Some(client_id) = &self.client_id {
            query.extend_from_slice(b"&client_id=");
            form_encode(client_id, &mut query);
        }
        query.extend_from_slice(b"&resource=");
        form_encode(resource, &mut query);
        let separator = if self.endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}{}",
            self.endpoint,
            String::from_utf8_lossy(&query)
        )
    }
}

/// What Flux's `sops.azure-kv` key Secret entry holds (kustomize-controller's `AADConfig`): a
/// YAML or JSON object (UTF-16 with a byte-order mark accepted, as Flux decodes it) with
/// `tenantId`, `clientId` and `clientSecret` or `clientCertificate` (PEM), or the Azure CLI's
/// service-principal fields `tenant`, `appId`, `password`; `authorityHost` optional.
#[derive(Debug)]
pub struct FluxAzureConfig {
    pub credential: AzureCredential,
    /// `authorityHost`, when given (else the public cloud's).
    pub authority_host: Option<String>,
}

/// Why a `sops.azure-kv` entry cannot be used. Never holds the entry's text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FluxAzureConfigError {
    #[error("failed to decode Azure authentication file bytes: {0}")]
    Decode(&'static str),
    #[error("failed to unmarshal Azure authentication file: {0}")]
    Unmarshal(String),
    #[error("invalid data: requires a 'clientId' field, a combination of 'tenantId', 'clientId' and 'clientSecret', or 'tenantId', 'clientId' and 'clientCertificate'")]
    Incomplete,
    /// A key Secret names a credential; the controller's own managed identity is never one.
    #[error("a 'clientId' alone selects a managed identity, which a key Secret entry cannot use (a managed identity comes from the process environment only)")]
    ManagedIdentity,
    #[error("clientCertificate: {0}")]
    Certificate(String),
}

impl FluxAzureConfig {
    /// Reads a `sops.azure-kv` entry, choosing the credential as Flux's `TokenFromAADConfig`
    /// does: tenant, client and secret; else tenant, client and certificate; else the CLI's
    /// service-principal fields; a client ID alone is a managed identity (refused: an entry
    /// must never reach the controller's own identity).
    pub fn parse(bytes: &[u8]) -> Result<FluxAzureConfig, FluxAzureConfigError> {
        let text = Zeroizing::new(decode_utf16_bom(bytes)?);
        use saphyr::LoadableYamlNode as _;
        let docs = saphyr::YamlOwned::load_from_str(&text)
            .map_err(|e| FluxAzureConfigError::Unmarshal(e.to_string()))?;
        let field = |name: &str| -> Zeroizing<String> {
            let value = docs
                .first()
                .and_then(|d| d.as_mapping_get(name))
                .map(|v| match v {
                    v if v.as_str().is_some() => v.as_str().unwrap_or_default().to_string(),
                    v => v.as_integer().map(|i| i.to_string()).unwrap_or_default(),
                })
                .unwrap_or_default();
            Zeroizing::new(value)
        };
        if docs.first().is_some_and(|d| !d.is_mapping()) {
            return Err(FluxAzureConfigError::Unmarshal(
                "not a mapping of fields".into(),
            ));
        }
        let (tenant, client) = (field("tenantId"), field("clientId"));
        let authority_host = Some(field("authorityHost").to_string()).filter(|h| !h.is_empty());
        let done = |credential| {
            Ok(FluxAzureConfig {
                credential,
                authority_host: authority_host.clone(),
            })
        };
        if !tenant.is_empty() && !client.is_empty() {
            let secret = field("clientSecret");
            if !secret.is_empty() {
                return done(AzureCredential::ClientSecret {
                    tenant_id: tenant.to_string(),
                    client_id: client.to_string(),
                    secret,
                });
            }
            let pem = field("clientCertificate");
            if !pem.is_empty() {
                if !field("clientCertificatePassword").is_empty() {
                    return Err(FluxAzureConfigError::Certificate(
                        "password-protected certificates are not supported by enseal yet".into(),
                    ));
                }
                return AzureCredential::from_certificate_pem(&tenant, &client, pem.as_bytes())
                    .map_err(FluxAzureConfigError::Certificate)
                    .and_then(done);
            }
        }
        let (cli_tenant, app, password) = (field("tenant"), field("appId"), field("password"));
        if !cli_tenant.is_empty() && !app.is_empty() && !password.is_empty() {
            return done(AzureCredential::ClientSecret {
                tenant_id: cli_tenant.to_string(),
                client_id: app.to_string(),
                secret: password,
            });
        }
        if !client.is_empty() {
            return Err(FluxAzureConfigError::ManagedIdentity);
        }
        Err(FluxAzureConfigError::Incomplete)
    }
}

/// The entry's text: UTF-8, or UTF-16 when it starts with a byte-order mark (files written by
/// PowerShell), as Flux's `decode` reads it.
fn decode_utf16_bom(bytes: &[u8]) -> Result<String, FluxAzureConfigError> {
    let units = |rest: &[u8], big_endian: bool| -> Vec<u16> {
        rest.chunks(2)
            .map(|c| {
                let pair = [c[0], *c.get(1).unwrap_or(&0)];
                if big_endian {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            })
            .collect()
    };
    let text = match bytes {
        [0xFF, 0xFE, rest @ ..] => String::from_utf16(&units(rest, false)),
        [0xFE, 0xFF, rest @ ..] => String::from_utf16(&units(rest, true)),
        _ => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            return std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|_| FluxAzureConfigError::Decode("not UTF-8"));
        }
    };
    text.map_err(|_| FluxAzureConfigError::Decode("invalid UTF-16"))
}

/// A client assertion as MSAL makes it for a certificate: a PS256 JWT for `aud` = the token
/// endpoint, valid 10 minutes, `x5t#S256` naming the certificate.
fn signed_assertion(
    client_id: &str,
    token_url: &str,
    thumbprint: &str,
    key: &ring::rsa::KeyPair,
) -> Result<String, AzureError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut jti = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut jti);
    let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumbprint});
    let claims = serde_json::json!({
        "aud": token_url,
        "exp": now + 600,
        "iss": client_id,
        "jti": hex::encode(jti),
        "nbf": now,
        "sub": client_id,
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PSS_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| AzureError::Credential {
        variable: "AZURE_CLIENT_CERTIFICATE_PATH",
        reason: "cannot sign the client assertion".into(),
    })?;
    Ok(format!("{signing_input}.{}", b64.encode(signature)))
}

/// What a vault's bearer challenge said: the tenant and the token scope.
#[derive(Clone, Debug, PartialEq)]
struct Challenge {
    tenant: String,
    scope: String,
}

struct CachedToken {
    token: Zeroizing<String>,
    refresh_after: Instant,
}

/// Azure Key Vault access for wrapping and unwrapping data keys. A clone shares the first
/// one's connections, vault challenges and tokens (a handle, as an HTTP client is), so a caller
/// that keeps one (the controller) gets a token once per hour rather than once per file; the
/// `with_*` setters give the value caches of its own. Every address is reached by https only.
#[derive(Clone)]
pub struct AzureKeyVault {
    http: Arc<HttpClient<ProxyConnector>>,
    /// For the managed identity endpoint, plain http on loopback: made on first need.
    identity_http: Arc<OnceLock<HttpClient>>,
    /// Set by [`AzureKeyVault::with_credential`] (Flux's `sops.azure-kv`), else read from the
    /// environment at the first token request.
    credential: Option<AzureCredential>,
    /// Set by [`AzureKeyVault::with_authority_host`], else `AZURE_AUTHORITY_HOST` or the public
    /// cloud's.
    authority_host: Option<String>,
    challenges: Arc<Mutex<HashMap<String, Challenge>>>,
    tokens: Arc<Mutex<HashMap<(String, String), CachedToken>>>,
}

impl fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVault").finish_non_exhaustive()
    }
}

impl AzureKeyVault {
    /// Azure access with the credentials DefaultAzureCredential would find in the environment,
    /// read when the first token is needed. Nothing is contacted until a key is used.
    pub fn from_env() -> Result<AzureKeyVault, AzureError> {
        let http = HttpClient::https_through_env_proxy()
            .map_err(|e| AzureError::Runtime(e.to_string()))?;
        Ok(AzureKeyVault {
            http: Arc::new(http),
            identity_http: Arc::default(),
            credential: None,
            authority_host: None,
            challenges: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// Authenticates as `credential` rather than as the environment says.
    pub fn with_credential(mut self, credential: AzureCredential) -> AzureKeyVault {
        self.credential = Some(credential);
        self.tokens = Arc::default();
        self
    }

    /// Gets tokens from `host` (`https://...`) rather than as the environment says (Flux's
    /// `authorityHost`).
    pub fn with_authority_host(mut self, host: impl Into<String>) -> AzureKeyVault {
        self.authority_host = Some(host.into());
        self.tokens = Arc::default();
        self
    }

    /// Wraps `data_key` for `key`: the stanza comes back with `version` resolved, `enc` and
    /// `created_at` set.
    pub fn encrypt_key(
        &self,
        key: &AzureKvStanza,
        data_key: &[u8],
    ) -> Result<AzureKvStanza, AzureError> {
        let mut key = key.clone();
        if key.version.is_empty() {
            key.version = self.current_version(&key)?;
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let value = Zeroizing::new(b64.encode(data_key));
        let mut body = Zeroizing::new(Vec::with_capacity(value.len() + 40));
        body.extend_from_slice(b"{\"alg\":\"RSA-OAEP-256\",\"value\":\"");
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\"}");
        let url = operation_url(&key, "encrypt");
        let answer = self.vault_call(Method::POST, &url, Some(body))?;
        let result = answer_value(&answer, &url)?;
        Ok(AzureKvStanza {
            enc: b64.encode(&*result),
            created_at: now_rfc3339(),
            ..key
        })
    }

    /// Unwraps the data key held in `stanza.enc`.
    pub fn decrypt_key(&self, stanza: &AzureKvStanza) -> Result<Zeroizing<Vec<u8>>, AzureError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(stanza.enc.as_bytes())
            .map_err(|_| AzureError::MalformedEnc)?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let body = format!("{{\"alg\":\"RSA-OAEP-256\",\"value\":\"{b64}\"}}");
        let url = operation_url(stanza, "decrypt");
        let answer = self.vault_call(Method::POST, &url, Some(Zeroizing::new(body.into())))?;
        answer_value(&answer, &url)
    }

    /// The key's current version (sops' `ensureKeyHasVersion`: GetKey with an empty version).
    fn current_version(&self, key: &AzureKvStanza) -> Result<String, AzureError> {
        let url = format!(
            "{}/keys/{}/?api-version={API_VERSION}",
            key.vault_url.trim_end_matches('/'),
            encode_path(&key.name)
        );
        let answer = self.vault_call(Method::GET, &url, None)?;
        let bad = |problem| AzureError::BadAnswer {
            url: url.clone(),
            problem,
        };
        let bundle: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|_| bad("not JSON"))?;
        let kid = bundle
            .get("key")
            .and_then(|k| k.get("kid"))
            .and_then(|k| k.as_str())
            .ok_or_else(|| bad("no key.kid"))?;
        // azkeys' ID.Version: the segment after /keys/NAME/.
        let path = kid.parse::<Uri>().map_err(|_| bad("key.kid is no URL"))?;
        let segments: Vec<&str> = path.path().trim_matches('/').split('/').collect();
        match segments.as_slice() {
            [_, _, version] if !version.is_empty() => Ok((*version).to_string()),
            _ => Err(bad("key.kid has no version")),
        }
    }

    /// One Key Vault call, authorized by the vault's bearer challenge.
    fn vault_call(
        &self,
        method: Method,
        url: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<bytes::Bytes, AzureError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| AzureError::BadUrl(url.to_string()))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| AzureError::BadUrl(url.to_string()))?;
        let known = self
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
            .cloned();
        let challenge = match known {
            Some(c) => c,
            None => {
                // As the SDK's policy: elicit the challenge without the body (the data key
                // never goes out before the vault has said who it trusts).
                let (status, headers, bytes) = send(&self.http, &method, url, &[], None)?;
                if status != StatusCode::UNAUTHORIZED {
                    return refused_or(status, &method, url, bytes);
                }
                let c =
                    parse_challenge(&headers, &host).map_err(|problem| AzureError::Challenge {
                        url: url.to_string(),
                        problem,
                    })?;
                self.challenges
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host, c.clone());
                c
            }
        };
        let token = self.token(&challenge)?;
        let bearer = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let mut headers = vec![("authorization", bearer.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let (status, _, bytes) = send(&self.http, &method, url, &headers, body)?;
        refused_or(status, &method, url, bytes)
    }

    /// A token for `challenge`'s scope and tenant, cached until 5 minutes before it expires:
    /// from the credential set, else from the first of DefaultAzureCredential's sources the
    /// environment configures (the managed identity last).
    fn token(&self, challenge: &Challenge) -> Result<Zeroizing<String>, AzureError> {
        let credential = match &self.credential {
            Some(c) => c.clone(),
            None => match AzureCredential::from_env()? {
                Some(c) => c,
                None => {
                    let identity =
                        AppServiceIdentity::from_env()?.ok_or(AzureError::NoCredential)?;
                    return self.managed_identity_token(&identity, &challenge.scope);
                }
            },
        };
        let (configured, client_id) = credential.tenant_and_client();
        let tenant = resolve_tenant(configured, &challenge.tenant, credential.name())?;
        let cache_key = (tenant.clone(), challenge.scope.clone());
        if let Some(t) = self.cached(&cache_key) {
            return Ok(t);
        }
        let authority = authority_host(self.authority_host.as_deref())?;
        let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("client_id", Zeroizing::new(client_id.to_string())),
            ("grant_type", Zeroizing::new("client_credentials".into())),
            ("scope", Zeroizing::new(challenge.scope.clone())),
        ];
        form.extend(credential.proof(&url)?);
        let mut body = Zeroizing::new(Vec::new());
        for (i, (name, value)) in form.iter().enumerate() {
            if i > 0 {
                body.push(b'&');
            }
            body.extend_from_slice(name.as_bytes());
            body.push(b'=');
            form_encode(value, &mut body);
        }
        let (status, _, bytes) = send(
            &self.http,
            &Method::POST,
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body),
        )?;
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<serde_json::Value>,
        }
        let answer: Option<Answer> = serde_json::from_slice(&bytes).ok();
        let Some(Answer {
            access_token: Some(token),
            expires_in,
            ..
        }) = answer.as_ref().filter(|_| status.is_success())
        else {
            // OAuth's `{"error", "error_description"}`, cleaned; never the reply's text.
            let reply = ErrorReply::parse(status, &bytes);
            let (error, description) = match (reply.code.clone(), reply.message.clone()) {
                (None, None) => (String::new(), reply.details()),
                (error, description) => {
                    (error.unwrap_or_default(), description.unwrap_or_default())
                }
            };
            return Err(AzureError::Token {
                credential: credential.name(),
                url,
                status: status.as_u16(),
                error,
                description,
            });
        };
        // `expires_in` is a number, or a string of one from some endpoints.
        let lifetime = expires_in.as_ref().and_then(seconds).unwrap_or(3600);
        Ok(self.remember(cache_key, Zeroizing::new(token.clone()), lifetime))
    }

    /// A token from the App Service managed identity endpoint for `scope`'s resource, as
    /// MSAL's `acquireTokenForAppService` gets one.
    fn managed_identity_token(
        &self,
        identity: &AppServiceIdentity,
        scope: &str,
    ) -> Result<Zeroizing<String>, AzureError> {
        // MSAL's AcquireToken: the resource is the scope without `/.default`.
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let who = identity.client_id.as_deref().unwrap_or("system-assigned");
        let cache_key = (format!("managed identity {who}"), scope.to_string());
        if let Some(t) = self.cached(&cache_key) {
            return Ok(t);
        }
        let url = identity.token_url(resource);
        let http = match self.identity_http.get() {
            Some(http) => http,
            None => {
                let http = HttpClient::https_or_http(Roots::Native)
                    .map_err(|e| AzureError::Runtime(e.to_string()))?;
                self.identity_http.get_or_init(|| http)
            }
        };
        let (status, _, bytes) = send(
            http,
            &Method::GET,
            &url,
            &[("x-identity-header", identity.header.as_str())],
            None,
        )?;
        if !status.is_success() {
            // The endpoint without the query, as azcore's ResponseError names it.
            return Err(AzureError::ManagedIdentity {
                url: identity.endpoint.clone(),
                status: status.as_u16(),
                details: ErrorReply::parse(status, &bytes).details(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_on: Option<serde_json::Value>,
            expires_in: Option<serde_json::Value>,
        }
        let bad = |problem| AzureError::BadAnswer {
            url: url.clone(),
            problem,
        };
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
        let token = Zeroizing::new(answer.access_token.ok_or_else(|| bad("no access_token"))?);
        // `expires_on` is Unix seconds (a string of them from App Service); MSAL falls back to
        // `expires_in` and fails without either.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let lifetime = match (
            answer.expires_on.as_ref().and_then(seconds),
            answer.expires_in.as_ref().and_then(seconds),
        ) {
            (Some(on), _) => on.saturating_sub(now),
            (None, Some(lifetime)) => lifetime,
            (None, None) => return Err(bad("no expires_on or expires_in in Unix seconds")),
        };
        Ok(self.remember(cache_key, token, lifetime))
    }

    /// The cached token for `key`, unless it is due to be fetched again.
    fn cached(&self, key: &(String, String)) -> Option<Zeroizing<String>> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|t| Instant::now() < t.refresh_after)
            .map(|t| t.token.clone())
    }

    /// Caches `token`, valid `lifetime` seconds from now, and gives it back.
    fn remember(
        &self,
        key: (String, String),
        token: Zeroizing<String>,
        lifetime: u64,
    ) -> Zeroizing<String> {
        let refresh_after =
            Instant::now() + Duration::from_secs(lifetime).saturating_sub(TOKEN_REFRESH_MARGIN);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                CachedToken {
                    token: token.clone(),
                    refresh_after,
                },
            );
        token
    }
}

/// A number of seconds, as a JSON number or a string of one.
fn seconds(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.parse().ok())
}

/// Sends one request through `http`, retried on a failed connection, a timeout, a 408, 429 or
/// 5xx (azcore's retry policy); the answer comes back whatever its status.
fn send<C>(
    http: &HttpClient<C>,
    method: &Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Zeroizing<Vec<u8>>>,
) -> Result<(StatusCode, HeaderMap, bytes::Bytes), AzureError>
where
    hyper_rustls::HttpsConnector<C>:
        hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let uri: Uri = url
        .parse()
        .map_err(|_| AzureError::BadUrl(url.to_string()))?;
    let body = body.unwrap_or_default();
    let mut all_headers = vec![("accept", "application/json")];
    all_headers.extend_from_slice(headers);
    let retry_on = |status: StatusCode| {
        status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
    };
    match http.send(method, &uri, &all_headers, &body, retry_on) {
        Err(Failure::BadRequest) => Err(AzureError::BadUrl(url.to_string())),
        Err(Failure::TimedOut) => Err(AzureError::TimedOut {
            url: url.to_string(),
        }),
        Err(Failure::Unreachable(reason)) => Err(AzureError::Unreachable {
            url: url.to_string(),
            reason,
        }),
        Ok(answer) => Ok((answer.status, answer.headers, answer.body)),
    }
}

/// `{vault}/keys/{name}/{version}/{op}?api-version=...`, path segments escaped as Go's
/// `url.PathEscape` does.
fn operation_url(key: &AzureKvStanza, op: &str) -> String {
    format!(
        "{}/keys/{}/{}/{op}?api-version={API_VERSION}",
        key.vault_url.trim_end_matches('/'),
        encode_path(&key.name),
        encode_path(&key.version)
    )
}

/// The `value` of a key operation's answer, base64url (padding tolerated).
fn answer_value(answer: &[u8], url: &str) -> Result<Zeroizing<Vec<u8>>, AzureError> {
    let bad = |problem| AzureError::BadAnswer {
        url: url.to_string(),
        problem,
    };
    let mut parsed: serde_json::Value =
        serde_json::from_slice(answer).map_err(|_| bad("not JSON"))?;
    let value = match parsed.get_mut("value") {
        Some(serde_json::Value::String(s)) => Zeroizing::new(std::mem::take(s)),
        _ => return Err(bad("no value")),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('=').as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| bad("value is not base64url"))
}

fn refused_or(
    status: StatusCode,
    method: &Method,
    url: &str,
    bytes: bytes::Bytes,
) -> Result<bytes::Bytes, AzureError> {
    if status.is_success() {
        return Ok(bytes);
    }
    // Key Vault's `{"error": {"code": ..., "message": ...}}`.
    let reply = ErrorReply::parse(status, &bytes);
    Err(AzureError::Refused {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        message: match (&reply.code, &reply.message) {
            (_, Some(m)) => m.clone(),
            (Some(_), None) => String::new(),
            (None, None) => reply.details(),
        },
        code: reply.code.unwrap_or_else(|| "UNAVAILABLE".into()),
    })
}

/// Parses a Key Vault 401's `WWW-Authenticate` as the Go SDK's challenge policy does, and
/// checks that the resource is the vault's own domain (`host` ends with `.` + its host).
fn parse_challenge(headers: &HeaderMap, host: &str) -> Result<Challenge, String> {
    let header = headers
        .get("www-authenticate")
        .and_then(|h| h.to_str().ok())
        .ok_or("the 401 has no WWW-Authenticate header")?;
    let header = header.replace("Bearer ", "");
    let mut values: HashMap<&str, String> = HashMap::new();
    for part in header.split(' ') {
        let pieces: Vec<&str> = part.split('=').collect();
        if let [name, value] = pieces.as_slice() {
            values.insert(
                name,
                value.replace('"', "").trim_end_matches(',').to_string(),
            );
        }
    }
    let scope = values
        .get("scope")
        .or_else(|| values.get("resource"))
        .filter(|s| !s.is_empty())
        .ok_or("no resource or scope in WWW-Authenticate")?;
    let resource_host = scope
        .parse::<Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_string()))
        .ok_or_else(|| format!("invalid challenge resource {:?}", shown(scope)))?;
    if !host.ends_with(&format!(".{resource_host}")) {
        return Err(format!(
            "challenge resource {:?} doesn't match the requested domain",
            shown(scope)
        ));
    }
    let scope = if scope.ends_with("/.default") {
        scope.clone()
    } else {
        format!("{scope}/.default")
    };
    // azidentity's parseTenant: the fourth `/`-separated part of the authorization URL.
    let tenant = values
        .get("authorization")
        .and_then(|a| a.split('/').nth(3))
        .unwrap_or("")
        .replace(',', "");
    Ok(Challenge { tenant, scope })
}

/// A challenge's resource as messages show it: the server chose it, so it is cleaned and
/// capped as its error replies are.
fn shown(scope: &str) -> String {
    clean_reply_text(scope, 200)
}

/// azidentity's `resolveTenant`: the challenge's tenant is used only when it is the
/// credential's own or allowed by `AZURE_ADDITIONALLY_ALLOWED_TENANTS` (`;`-separated, `*`).
fn resolve_tenant(
    configured: &str,
    challenged: &str,
    credential: &'static str,
) -> Result<String, AzureError> {
    if challenged.is_empty() || challenged == configured {
        return Ok(configured.to_string());
    }
    let allowed = std::env::var("AZURE_ADDITIONALLY_ALLOWED_TENANTS").unwrap_or_default();
    let valid = challenged
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid && allowed.split(';').any(|t| t == "*" || t == challenged) {
        return Ok(challenged.to_string());
    }
    Err(AzureError::TenantNotAllowed {
        credential,
        tenant: shown(challenged),
    })
}

fn authority_host(configured: Option<&str>) -> Result<String, AzureError> {
    let host = configured
        .map(str::to_string)
        .or_else(|| std::env::var("AZURE_AUTHORITY_HOST").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_string());
    if !host.starts_with("https://") {
        return Err(AzureError::AuthorityHost(host));
    }
    Ok(host.trim_end_matches('/').to_string())
}

/// `application/x-www-form-urlencoded` of `value`, appended to `out`.
fn form_encode(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
}

/// A path segment escaped as Go's `url.PathEscape` escapes it.
fn encode_path(segment: &str) -> String {
    let mut out = String::new();
    for &b in segment.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'$' | b'&' | b'+' | b',' | b':' | b';' | b'=' | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An Azure Key Vault key to wrap for: a stanza with vault URL, name and (maybe) version set.
impl Recipient for AzureKvStanza {
    fn name(&self) -> String {
        self.uri()
    }

    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let azure = access.azure_kv.ok_or(WrapError::NoAccess)?;
        azure
            .encrypt_key(self, secret)
            .map(Stanza::AzureKv)
            .map_err(|e| {
                WrapError::Failed(format!(
                    "failed to encrypt sops data key with Azure Key Vault key '{}': {e}",
                    self.uri()
                ))
            })
    }
}

impl MasterKey for AzureKvStanza {
    fn describe(&self) -> String {
        format!("azure_kv {}", self.uri())
    }

    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        match access.azure_kv {
            Some(azure) => azure.decrypt_key(self).map_err(|e| match e {
                AzureError::MalformedEnc => e.to_string(),
                e => format!(
                    "failed to decrypt sops data key with Azure Key Vault key '{}': {e}",
                    self.uri()
                ),
            }),
            None => Err("Azure Key Vault access is not configured".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String) {
        let k = parse_url(url).unwrap();
        (k.vault_url, k.name, k.version)
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn urls_split_like_sops() {
        assert_eq!(
            parts("https://v.vault.azure.net/keys/k/0123abc"),
            s("https://v.vault.azure.net", "k", "0123abc")
        );
        assert_eq!(
            parts(" https://v.vault.azure.net/keys/k "),
            s("https://v.vault.azure.net", "k", "")
        );
        assert_eq!(
            parts("https://v.vault.azure.net/keys/k/"),
            s("https://v.vault.azure.net", "k", "")
        );
        assert_eq!(parse_url_list("").unwrap(), vec![]);
        assert_eq!(
            parse_url_list("https://a/keys/x,https://b/keys/y/1")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn urls_sops_refuses_are_refused() {
        for bad in [
            "http://v.vault.azure.net/keys/k/1",
            "https://v.vault.azure.net/secrets/k/1",
            "https://v.vault.azure.net/keys/k/1/2",
            "https://v.vault.azure.net/keys/",
            "https://v.vault.azure.net",
        ] {
            assert_eq!(
                parse_url(bad),
                Err(AzureUrlError::Invalid(bad.to_string())),
                "{bad}"
            );
        }
        assert!(parse_url_list("https://a/keys/x,").is_err());
    }

    fn challenge_headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("www-authenticate", value.parse().unwrap());
        h
    }

    #[test]
    fn a_challenge_names_tenant_and_scope_of_the_vaults_own_domain() {
        let h = challenge_headers(
            "Bearer authorization=\"https://login.microsoftonline.com/tenant-1\", resource=\"https://vault.azure.net\"",
        );
        assert_eq!(
            parse_challenge(&h, "v.vault.azure.net"),
            Ok(Challenge {
                tenant: "tenant-1".into(),
                scope: "https://vault.azure.net/.default".into()
            })
        );
        // A resource of another domain is refused, as by the SDK's verification.
        assert!(parse_challenge(&h, "v.vault.evil.example").is_err());
        assert!(parse_challenge(&HeaderMap::new(), "v.vault.azure.net").is_err());
    }

    #[test]
    fn another_tenant_needs_to_be_allowed() {
        assert_eq!(resolve_tenant("t1", "", "C").unwrap(), "t1");
        assert_eq!(resolve_tenant("t1", "t1", "C").unwrap(), "t1");
        assert!(matches!(
            resolve_tenant("t1", "t2", "C"),
            Err(AzureError::TenantNotAllowed { .. })
        ));
    }

    /// Flux's `sops.azure-kv` layouts: its own fields (YAML or JSON, UTF-16 accepted) and the
    /// Azure CLI's service-principal output; a client ID alone (managed identity) and an
    /// incomplete entry are refused with Flux's reasons, never the entry's text.
    #[test]
    fn flux_azure_kv_entries_choose_the_credential_as_flux_does() {
        let secret_of = |c: &FluxAzureConfig| match &c.credential {
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => (tenant_id.clone(), client_id.clone(), secret.to_string()),
            other => panic!("not a client secret: {other:?}"),
        };
        let yaml = FluxAzureConfig::parse(
            b"tenantId: t1\nclientId: c1\nclientSecret: s1\nauthorityHost: https://login.example\n",
        )
        .unwrap();
        assert_eq!(secret_of(&yaml), ("t1".into(), "c1".into(), "s1".into()));
        assert_eq!(
            yaml.authority_host.as_deref(),
            Some("https://login.example")
        );
        let cli = FluxAzureConfig::parse(
            br#"{"appId": "a2", "displayName": "sp", "password": "p2", "tenant": "t2"}"#,
        )
        .unwrap();
        assert_eq!(secret_of(&cli), ("t2".into(), "a2".into(), "p2".into()));
        assert_eq!(cli.authority_host, None);
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "tenantId: t3\nclientId: c3\nclientSecret: s3\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(
            secret_of(&FluxAzureConfig::parse(&utf16).unwrap()),
            ("t3".into(), "c3".into(), "s3".into())
        );
        assert_eq!(
            FluxAzureConfig::parse(b"clientId: c4\n").unwrap_err(),
            FluxAzureConfigError::ManagedIdentity
        );
        assert_eq!(
            FluxAzureConfig::parse(b"tenantId: t5\nclientSecret: hidden\n").unwrap_err(),
            FluxAzureConfigError::Incomplete
        );
        let bad =
            FluxAzureConfig::parse(b"tenantId: t6\nclientId: c6\nclientCertificate: not-pem\n")
                .unwrap_err();
        assert!(
            matches!(bad, FluxAzureConfigError::Certificate(_)),
            "{bad:?}"
        );
    }

    /// MSAL's App Service request: the endpoint, then the query as Go encodes it (keys
    /// sorted, values form-escaped), `client_id` only for a user-assigned identity.
    #[test]
    fn the_managed_identity_request_is_msals() {
        let mut id = AppServiceIdentity {
            endpoint: "http://127.0.0.1:41234/msi/token".into(),
            header: Zeroizing::new("h".into()),
            client_id: None,
        };
        assert_eq!(
            id.token_url("https://vault.azure.net"),
            "http://127.0.0.1:41234/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net"
        );
        id.client_id = Some("c 1".into());
        assert_eq!(
            id.token_url("https://vault.azure.net"),
            "http://127.0.0.1:41234/msi/token?api-version=2019-08-01&client_id=c+1&resource=https%3A%2F%2Fvault.azure.net"
        );
        assert_eq!(
            seconds(&serde_json::json!("1700000000")),
            Some(1_700_000_000)
        );
        assert_eq!(seconds(&serde_json::json!(3599)), Some(3599));
        assert_eq!(seconds(&serde_json::json!("12/07/2026 10:00:00")), None);
    }

    #[test]
    fn form_values_are_escaped() {
        let mut out = Vec::new();
        form_encode("a b&c=d/e~", &mut out);
        assert_eq!(out, b"a+b%26c%3Dd%2Fe~");
        assert_eq!(encode_path("a b/c"), "a%20b%2Fc");
    }
}

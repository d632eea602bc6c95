//! AWS KMS as a key source, interoperable with sops' `kms` master keys.
//!
//! The data key (or a Shamir share of it) is sent to KMS `Encrypt` under the key named by the
//! stanza's ARN, with the stanza's encryption context; the returned CiphertextBlob is stored as
//! standard base64 in `enc`. Opening calls KMS `Decrypt` with `KeyId` = the ARN and the same
//! context, as sops does.
//!
//! Credentials, profiles and endpoints come from the standard AWS chain (`aws-config`), so
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_KMS` and `AWS_ENDPOINT_URL_STS` work. The region always
//! comes from the key's ARN, never from the environment, as in sops.
//!
//! The rest of enseal is synchronous; [`AwsKms`] owns a small current-thread tokio runtime and
//! blocks on each SDK call. Every call is bounded in time (connect, attempt and operation
//! timeouts, a few retries) so an unreachable KMS is an error within seconds, not a hang.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::{
    Credentials, ProvideCredentials, SharedCredentialsProvider, SharedHttpClient,
};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use base64::Engine as _;
use regex::Regex;
use zeroize::Zeroizing;

use crate::format::metadata::{now_rfc3339, KmsStanza};
use crate::keys::blocking::BlockingRuntime;
use crate::keys::http::error_chain;
use crate::keys::{KeyAccess, KmsService, MasterKey, Recipient, Stanza, WrapError};

/// A connection that is not up after this long is an unreachable KMS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One HTTP attempt (connect, send, wait for the answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// A whole KMS or STS call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per call, the first one included (the AWS "standard" retry mode).
pub const MAX_ATTEMPTS: u32 = 3;

/// STS' limit on `RoleSessionName`.
const SESSION_NAME_LIMIT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("invalid AWS KMS key ARN {arn:?}: expected arn:aws:kms:REGION:ACCOUNT:key/ID or arn:aws:kms:REGION:ACCOUNT:alias/NAME")]
    InvalidArn { arn: String },
    #[error("invalid encryption context entry {entry:?}: expected key:value pairs separated by commas (k1:v1,k2:v2)")]
    InvalidContext { entry: String },
    #[error("cannot start the runtime for AWS calls: {0}")]
    Runtime(String),
    /// A call for one key failed; `failure` says why without naming the key again.
    #[error("AWS KMS key {arn}: {failure}")]
    Key { arn: String, failure: KmsFailure },
}

/// Why KMS (or STS, for a role) could not wrap or unwrap a data key. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum KmsFailure {
    #[error("the encrypted data key (`enc`) is not valid base64")]
    MalformedCiphertext,
    #[error("KMS returned no {0}")]
    EmptyResponse(&'static str),
    #[error("cannot assume role {role}: {reason}")]
    AssumeRole { role: String, reason: String },
    #[error("access denied ({code}): {message}")]
    AccessDenied { code: String, message: String },
    #[error("KMS refused the encrypted data key (InvalidCiphertextException): the encryption context differs from the one it was encrypted with, or it belongs to another key{}", message_suffix(.0))]
    InvalidCiphertext(String),
    #[error("KMS {code}: {message}")]
    Service { code: String, message: String },
    #[error("cannot reach KMS{}: {reason}", endpoint_suffix(.endpoint))]
    Unreachable {
        endpoint: Option<String>,
        reason: String,
    },
    #[error("KMS did not answer within {}s{}", OPERATION_TIMEOUT.as_secs(), endpoint_suffix(.endpoint))]
    TimedOut { endpoint: Option<String> },
    #[error("{0}")]
    Other(String),
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn endpoint_suffix(endpoint: &Option<String>) -> String {
    endpoint
        .as_ref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

/// What Flux's `sops.aws-kms` key Secret entry holds (kustomize-controller's
/// `LoadStaticCredentialsFromYAML`): a YAML or JSON object with `aws_access_key_id`,
/// `aws_secret_access_key` and optionally `aws_session_token`; other fields are ignored.
pub struct FluxAwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for FluxAwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FluxAwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a `sops.aws-kms` entry cannot be used. Never holds the entry's text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FluxAwsCredentialsError {
    #[error("failed to unmarshal AWS credentials file: {0}")]
    Unmarshal(String),
    /// Flux passes empty fields on to AWS, which then refuses every call as unsigned; said
    /// here instead, naming the field.
    #[error("the {0} field is missing or empty")]
    Missing(&'static str),
}

impl FluxAwsCredentials {
    pub fn parse(bytes: &[u8]) -> Result<FluxAwsCredentials, FluxAwsCredentialsError> {
        use saphyr::LoadableYamlNode as _;
        let text = std::str::from_utf8(bytes)
            .map(|t| Zeroizing::new(t.to_string()))
            .map_err(|_| FluxAwsCredentialsError::Unmarshal("not UTF-8".into()))?;
        let docs = saphyr::YamlOwned::load_from_str(&text)
            // The scanner's message gives a position and what was expected, never the text.
            .map_err(|e| FluxAwsCredentialsError::Unmarshal(e.to_string()))?;
        let doc = docs.first();
        if doc.is_some_and(|d| !d.is_mapping() && !d.is_null()) {
            return Err(FluxAwsCredentialsError::Unmarshal(
                "not a mapping of fields".into(),
            ));
        }
        let field = |name: &'static str| -> Result<Zeroizing<String>, FluxAwsCredentialsError> {
            match doc.and_then(|d| d.as_mapping_get(name)) {
                None => Ok(Zeroizing::new(String::new())),
                Some(v) if v.is_null() => Ok(Zeroizing::new(String::new())),
                Some(v) => v
                    .as_str()
                    .map(|s| Zeroizing::new(s.to_string()))
                    .ok_or_else(|| {
                        FluxAwsCredentialsError::Unmarshal(format!("{name} is not a string"))
                    }),
            }
        };
        let access_key_id = field("aws_access_key_id")?;
        let secret_access_key = field("aws_secret_access_key")?;
        let session_token = field("aws_session_token")?;
        if access_key_id.is_empty() {
            return Err(FluxAwsCredentialsError::Missing("aws_access_key_id"));
        }
        if secret_access_key.is_empty() {
            return Err(FluxAwsCredentialsError::Missing("aws_secret_access_key"));
        }
        Ok(FluxAwsCredentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key,
            session_token: (!session_token.is_empty()).then_some(session_token),
        })
    }
}

/// One cached client per (region, profile, role): the three things that change which
/// credentials and endpoint a call uses.
type ClientKey = (String, String, Option<String>);

/// A client and the endpoint override it uses (for messages; `None` means AWS itself).
type CachedClient = (aws_sdk_kms::Client, Option<String>);

/// AWS KMS access for wrapping and unwrapping data keys; implements [`KmsService`].
///
/// Usable from synchronous code only through its own runtime: when called from inside another
/// tokio runtime it runs the call on a helper thread, so it never blocks that runtime's worker
/// with a nested `block_on`.
pub struct AwsKms {
    runtime: BlockingRuntime,
    http: SharedHttpClient,
    endpoint: Option<String>,
    /// Set by [`AwsKms::with_static_credentials`] (Flux's `sops.aws-kms`): then the only
    /// credentials used, for KMS and for assuming a key's role.
    credentials: Option<Credentials>,
    clients: Mutex<HashMap<ClientKey, CachedClient>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms").finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Prepares KMS access from the standard AWS environment. Nothing is contacted and no
    /// credentials are read until a key is used.
    pub fn from_env() -> Result<AwsKms, KmsError> {
        let runtime = BlockingRuntime::new().map_err(|e| KmsError::Runtime(e.to_string()))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        Ok(AwsKms {
            runtime,
            http,
            endpoint: None,
            credentials: None,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Signs every call with `credentials` and nothing else: the environment's credential
    /// chain (variables, profiles, web identity, instance metadata) is never consulted, not
    /// even for a key's `aws_profile` (which then only picks config such as the endpoint).
    pub fn with_static_credentials(mut self, credentials: &FluxAwsCredentials) -> AwsKms {
        self.credentials = Some(Credentials::new(
            credentials.access_key_id.as_str(),
            credentials.secret_access_key.as_str(),
            credentials.session_token.as_ref().map(|t| t.to_string()),
            None,
            "sops.aws-kms",
        ));
        self.clients
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self
    }

    /// Sends every KMS and STS call to `url` (a local KMS, a VPC endpoint), whatever the
    /// environment says.
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> AwsKms {
        self.endpoint = Some(url.into());
        self.clients
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self
    }

    /// Wraps `data_key` for `key`: the stanza comes back with `enc` (base64 CiphertextBlob) and
    /// `created_at` (now, UTC) filled in.
    pub fn encrypt_key(&self, key: &KmsStanza, data_key: &[u8]) -> Result<KmsStanza, KmsError> {
        let fail = |failure| KmsError::Key {
            arn: key.arn.clone(),
            failure,
        };
        let (client, endpoint) = self.client(key)?;
        let request = client
            .encrypt()
            .key_id(&key.arn)
            .plaintext(Blob::new(data_key.to_vec()))
            .set_encryption_context(context_map(&key.context));
        let out = self
            .runtime
            .run(request.send())
            .map_err(|e| fail(classify(e, endpoint)))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| fail(KmsFailure::EmptyResponse("CiphertextBlob")))?;
        Ok(KmsStanza {
            enc: base64::engine::general_purpose::STANDARD.encode(blob.as_ref()),
            created_at: now_rfc3339(),
            ..key.clone()
        })
    }

    /// Unwraps the data key held in `stanza.enc`.
    pub fn decrypt_key(&self, stanza: &KmsStanza) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let fail = |failure| KmsError::Key {
            arn: stanza.arn.clone(),
            failure,
        };
        let blob = base64::engine::general_purpose::STANDARD
            .decode(stanza.enc.trim())
            .map_err(|_| fail(KmsFailure::MalformedCiphertext))?;
        let (client, endpoint) = self.client(stanza)?;
        let request = client
            .decrypt()
            .key_id(&stanza.arn)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(context_map(&stanza.context));
        let out = self
            .runtime
            .run(request.send())
            .map_err(|e| fail(classify(e, endpoint)))?;
        let plaintext = out
            .plaintext
            .ok_or_else(|| fail(KmsFailure::EmptyResponse("Plaintext")))?;
        Ok(Zeroizing::new(plaintext.into_inner()))
    }

    /// The KMS client for `key`'s region, profile and role (built on first use), and the
    /// endpoint override in effect, for error messages.
    fn client(&self, key: &KmsStanza) -> Result<CachedClient, KmsError> {
        let region = region_of(&key.arn).ok_or_else(|| KmsError::InvalidArn {
            arn: key.arn.clone(),
        })?;
        let cache_key = (region, key.aws_profile.clone(), key.role.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = clients.get(&cache_key) {
            return Ok(cached.clone());
        }
        let cached = self
            .build_client(&cache_key)
            .map_err(|failure| KmsError::Key {
                arn: key.arn.clone(),
                failure,
            })?;
        clients.insert(cache_key, cached.clone());
        Ok(cached)
    }

    fn build_client(&self, key: &ClientKey) -> Result<CachedClient, KmsFailure> {
        let (region, profile, role) = key;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .http_client(self.http.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if !profile.is_empty() {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let config: SdkConfig = self.runtime.run(loader.load());
        let endpoint = self.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL_KMS")
                .ok()
                .filter(|e| !e.is_empty())
                .or_else(|| config.endpoint_url().map(str::to_string))
        });
        let Some(role) = role else {
            return Ok((aws_sdk_kms::Client::new(&config), endpoint));
        };
        let provider = self.runtime.run(
            AssumeRoleProvider::builder(role.clone())
                .session_name(session_name())
                .configure(&config)
                .build(),
        );
        // Assume the role now, so that a refused role is reported as such rather than as a
        // credentials error inside the first KMS call.
        self.runtime
            .run(provider.provide_credentials())
            .map_err(|e| KmsFailure::AssumeRole {
                role: role.clone(),
                reason: error_chain(&e),
            })?;
        let kms_config = aws_sdk_kms::config::Builder::from(&config)
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        Ok((aws_sdk_kms::Client::from_conf(kms_config), endpoint))
    }
}

/// A KMS key to wrap for: a stanza with `arn`, `role`, `context` and `aws_profile` set and `enc`
/// empty.
impl Recipient for KmsStanza {
    fn name(&self) -> String {
        self.arn.clone()
    }

    fn wrap(&self, secret: &[u8], access: &KeyAccess<'_>) -> Result<Stanza, WrapError> {
        let kms = access.kms.ok_or(WrapError::NoAccess)?;
        kms.encrypt(self, secret)
            .map(Stanza::Kms)
            .map_err(WrapError::Failed)
    }
}

impl MasterKey for KmsStanza {
    fn describe(&self) -> String {
        format!("kms {}", self.arn)
    }

    fn unwrap(&self, access: &KeyAccess<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
        match access.kms {
            Some(kms) => kms.decrypt(self),
            None => Err("KMS access is not configured".into()),
        }
    }
}

impl KmsService for AwsKms {
    fn encrypt(&self, key: &KmsStanza, data_key: &[u8]) -> Result<KmsStanza, String> {
        self.encrypt_key(key, data_key).map_err(reason_only)
    }

    fn decrypt(&self, stanza: &KmsStanza) -> Result<Zeroizing<Vec<u8>>, String> {
        self.decrypt_key(stanza).map_err(reason_only)
    }
}

/// The key groups code names the key itself; give it only the reason.
fn reason_only(e: KmsError) -> String {
    match e {
        KmsError::Key { failure, .. } => failure.to_string(),
        other => other.to_string(),
    }
}

fn classify<E>(
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    endpoint: Option<String>,
) -> KmsFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("unknown error").to_string();
            let message = e.message().unwrap_or("").to_string();
            match code.as_str() {
                "InvalidCiphertextException" => KmsFailure::InvalidCiphertext(message),
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException" => KmsFailure::AccessDenied { code, message },
                _ => KmsFailure::Service { code, message },
            }
        }
        SdkError::TimeoutError(_) => KmsFailure::TimedOut { endpoint },
        SdkError::DispatchFailure(d) if d.is_timeout() => KmsFailure::TimedOut { endpoint },
        SdkError::DispatchFailure(d) if d.is_io() || d.is_other() => KmsFailure::Unreachable {
            endpoint,
            reason: err
                .source()
                .map(error_chain)
                .unwrap_or_else(|| err.to_string()),
        },
        _ => KmsFailure::Other(error_chain(&err)),
    }
}

fn context_map(context: &[(String, String)]) -> Option<HashMap<String, String>> {
    if context.is_empty() {
        None
    } else {
        Some(context.iter().cloned().collect())
    }
}

fn arn_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // sops' arnRegex; `\w` spelled out because Go's is ASCII-only.
    RE.get_or_init(|| {
        Regex::new(r"^arn:aws[A-Za-z0-9_-]*:kms:(.+):[0-9]+:(key|alias)/.+$")
            .expect("the ARN pattern is valid")
    })
}

/// The region named in a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID` or `.../alias/NAME`).
pub fn region_of(arn: &str) -> Option<String> {
    arn_regex()
        .captures(arn)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// The KMS keys of sops' `--kms` / `SOPS_KMS_ARN` value: ARNs separated by commas, each
/// optionally followed by `+ROLE_ARN`. Spaces are ignored, as sops strips them. Every key gets
/// `context` and `profile`.
pub fn parse_kms_list(
    list: &str,
    context: &[(String, String)],
    profile: Option<&str>,
) -> Result<Vec<KmsStanza>, KmsError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|entry| {
            let entry: String = entry.chars().filter(|c| *c != ' ').collect();
            // ARN paths may hold '+' but never ':', so "+arn:" can only join key and role.
            let (arn, role) = match entry.find("+arn:") {
                Some(i) if i > 0 => (entry[..i].to_string(), Some(entry[i + 1..].to_string())),
                _ => (entry, None),
            };
            if region_of(&arn).is_none() {
                return Err(KmsError::InvalidArn { arn });
            }
            Ok(KmsStanza {
                arn,
                role,
                context: context.to_vec(),
                aws_profile: profile.unwrap_or("").to_string(),
                ..KmsStanza::default()
            })
        })
        .collect()
}

/// sops' `--encryption-context` value: `key:value` pairs separated by commas. Nothing is
/// trimmed and each pair must hold exactly one ':' (so values cannot contain ':' or ','), as
/// sops splits it; where sops warns and drops the whole context, this is an error. A repeated
/// key keeps its last value. The pairs come back sorted by key, the order in which sops writes
/// a context.
pub fn parse_encryption_context(s: &str) -> Result<Vec<(String, String)>, KmsError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut pairs = BTreeMap::new();
    for entry in s.split(',') {
        let mut parts = entry.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(v), None) => {
                pairs.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(KmsError::InvalidContext {
                    entry: entry.to_string(),
                })
            }
        }
    }
    Ok(pairs.into_iter().collect())
}

/// `sops@<hostname>` as sops names its STS sessions, kept to the characters STS accepts and to
/// its 64-character limit.
fn session_name() -> String {
    let host = hostname();
    let clean: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))
        .collect();
    let mut name = format!("sops@{clean}");
    name.truncate(SESSION_NAME_LIMIT);
    name
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// Flux's `sops.aws-kms` entry, YAML or JSON; the session token is optional, unknown
    /// fields are ignored; an unusable entry says why without quoting it.
    #[test]
    fn flux_aws_credentials_entries_are_read_as_flux_reads_them() {
        let c = FluxAwsCredentials::parse(
            b"aws_access_key_id: AKIAEXAMPLE\naws_secret_access_key: sec/ret+KEY\nregion: x\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKIAEXAMPLE");
        assert_eq!(c.secret_access_key.as_str(), "sec/ret+KEY");
        assert!(c.session_token.is_none());
        let c = FluxAwsCredentials::parse(
            br#"{"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_session_token": "T"}"#,
        )
        .unwrap();
        assert_eq!(c.session_token.as_deref().map(String::as_str), Some("T"));
        assert!(!format!("{c:?}").contains('S'), "Debug hides the secret");
        assert_eq!(
            FluxAwsCredentials::parse(b"aws_access_key_id: A\n").unwrap_err(),
            FluxAwsCredentialsError::Missing("aws_secret_access_key")
        );
        assert_eq!(
            FluxAwsCredentials::parse(b"").unwrap_err(),
            FluxAwsCredentialsError::Missing("aws_access_key_id")
        );
        for bad in [
            &b"- SECRETLIST"[..],
            b"aws_access_key_id: [SECRETSEQ]",
            b"\xff",
        ] {
            let e = FluxAwsCredentials::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn region_comes_from_key_and_alias_arns() {
        assert_eq!(
            region_of("arn:aws:kms:eu-west-3:123456789012:key/1234abcd-12ab").as_deref(),
            Some("eu-west-3")
        );
        assert_eq!(
            region_of("arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/app").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(region_of("arn:aws:kms:us-east-1:acct:key/x"), None);
        assert_eq!(region_of("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(region_of("1234abcd-12ab"), None);
    }

    #[test]
    fn kms_list_splits_arns_and_roles_like_sops() {
        let ctx = vec![pair("app", "web")];
        let keys = parse_kms_list(
            "arn:aws:kms:us-east-1:1:key/a, arn:aws:kms:eu-west-1:1:alias/b+arn:aws:iam::1:role/r",
            &ctx,
            Some("dev"),
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].arn, "arn:aws:kms:us-east-1:1:key/a");
        assert_eq!(keys[0].role, None);
        assert_eq!(keys[1].arn, "arn:aws:kms:eu-west-1:1:alias/b");
        assert_eq!(keys[1].role.as_deref(), Some("arn:aws:iam::1:role/r"));
        for k in &keys {
            assert_eq!(k.context, ctx);
            assert_eq!(k.aws_profile, "dev");
            assert!(k.enc.is_empty());
        }
        assert!(parse_kms_list("", &[], None).unwrap().is_empty());
    }

    #[test]
    fn kms_list_refuses_what_sops_would_fail_on_later() {
        for bad in [
            "arn:aws:kms:us-east-1:1:key/a,",
            "not-an-arn",
            "+arn:aws:iam::1:role/r",
        ] {
            assert!(
                matches!(
                    parse_kms_list(bad, &[], None),
                    Err(KmsError::InvalidArn { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn encryption_context_follows_sops_splitting() {
        assert_eq!(
            parse_encryption_context("b:2,a:1").unwrap(),
            vec![pair("a", "1"), pair("b", "2")]
        );
        // No trimming, empty parts allowed, last repeated key wins.
        assert_eq!(
            parse_encryption_context(" k : v ,k2:,k2:x").unwrap(),
            vec![pair(" k ", " v "), pair("k2", "x")]
        );
        assert!(parse_encryption_context("").unwrap().is_empty());
        for bad in ["a", "a:b:c", "a:1,", "a:1,,b:2"] {
            assert!(
                matches!(
                    parse_encryption_context(bad),
                    Err(KmsError::InvalidContext { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn session_name_is_valid_for_sts() {
        let name = session_name();
        assert!(name.starts_with("sops@"));
        assert!((2..=SESSION_NAME_LIMIT).contains(&name.len()));
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)));
    }

    #[test]
    fn bad_arn_is_refused_before_any_call() {
        let kms = AwsKms::from_env().unwrap();
        let stanza = KmsStanza {
            arn: "alias/app".into(),
            enc: "AAAA".into(),
            ..Default::default()
        };
        let err = kms.decrypt_key(&stanza).unwrap_err();
        assert!(matches!(err, KmsError::InvalidArn { .. }), "{err}");
        let err = kms
            .decrypt_key(&KmsStanza {
                arn: "arn:aws:kms:us-east-1:1:key/a".into(),
                enc: "not base64!".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("arn:aws:kms:us-east-1:1:key/a"));
        assert!(matches!(
            err,
            KmsError::Key {
                failure: KmsFailure::MalformedCiphertext,
                ..
            }
        ));
    }
}

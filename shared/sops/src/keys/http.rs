//! The HTTP client the REST key services (Vault transit, GCP Cloud KMS, Azure Key Vault) share:
//! hyper over rustls (ring) on their [`BlockingRuntime`], the hyper/rustls stack the AWS SDK
//! client already builds, so no SDK of theirs enters the tree.
//!
//! Every call is bounded, as the AWS KMS source's are: [`CONNECT_TIMEOUT`] to connect,
//! [`ATTEMPT_TIMEOUT`] per attempt, [`MAX_ATTEMPTS`] attempts, so a refused or silent server
//! is an error within seconds, not a hang. What differs between the services stays theirs:
//! which answers are retried, which certificates are trusted (Vault trusts only `VAULT_CACERT`
//! when it is set, the others the system's, `SSL_CERT_FILE`/`SSL_CERT_DIR` included), whether
//! plain http is allowed, and whether the environment's proxies are used.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::blocking::BlockingRuntime;

/// A connection that is not up after this long is an unreachable server.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One HTTP attempt (connect, send, wait for the whole answer).
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call, the first included (the Vault Go client's default `MaxRetries` is 2;
/// the GCP client retries UNAVAILABLE and DEADLINE_EXCEEDED, azcore a few times too).
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// Pause before a retry.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The largest answer read. A key service's answers are a few kilobytes; the server is one a
/// file (or, in the controller, a tenant) names, and a larger answer is not read into memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the client could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Runtime(std::io::Error),
    #[error(transparent)]
    Tls(rustls::Error),
}

/// Which certificates a server's must chain to.
pub(crate) enum Roots {
    /// The system's (rustls-native-certs, which reads `SSL_CERT_FILE`/`SSL_CERT_DIR` as Go does).
    Native,
    /// These only.
    Only(rustls::RootCertStore),
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request could not be made (a header value that is not one).
    BadRequest,
    /// The last attempt did not finish within [`ATTEMPT_TIMEOUT`].
    TimedOut,
    /// The last attempt failed: the error and its sources, joined.
    Unreachable(String),
}

/// What the server said.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: bytes::Bytes,
}

/// A blocking HTTPS client for one key service.
pub(crate) struct HttpClient<C = HttpConnector> {
    runtime: BlockingRuntime,
    client: Client<HttpsConnector<C>, Full<SecretBody>>,
}

impl HttpClient {
    /// Connects directly, by https with `roots`, or by plain http (a test server, a local
    /// proxy, a Vault without TLS).
    pub(crate) fn https_or_http(roots: Roots) -> Result<HttpClient, SetupError> {
        let runtime = BlockingRuntime::new().map_err(SetupError::Runtime)?;
        let https = tls(roots)
            .map_err(SetupError::Tls)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(direct());
        Ok(HttpClient::with(runtime, https))
    }
}

impl HttpClient<ProxyConnector> {
    /// Connects by https only, with the system's roots, through the proxy the environment
    /// names (see [`ProxyConnector`]).
    pub(crate) fn https_through_env_proxy() -> Result<HttpClient<ProxyConnector>, SetupError> {
        let runtime = BlockingRuntime::new().map_err(SetupError::Runtime)?;
        let connector = ProxyConnector {
            direct: direct(),
            proxies: Arc::new(Matcher::from_env()),
        };
        let https = tls(Roots::Native)
            .map_err(SetupError::Tls)?
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        Ok(HttpClient::with(runtime, https))
    }
}

impl<C> HttpClient<C>
where
    HttpsConnector<C>: Connect + Clone + Send + Sync + 'static,
{
    fn with(runtime: BlockingRuntime, https: HttpsConnector<C>) -> HttpClient<C> {
        HttpClient {
            runtime,
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// Sends one request, retried after a failed connection, a timeout, or an answer whose
    /// status `retry_on` accepts, for [`MAX_ATTEMPTS`] attempts in all. The last answer comes
    /// back whatever its status. `body` goes out in a [`SecretBody`] for each attempt.
    pub(crate) fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &[(&str, &str)],
        body: &Zeroizing<Vec<u8>>,
        retry_on: impl Fn(StatusCode) -> bool,
    ) -> Result<Answer, Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = hyper::Request::builder()
                .method(method.clone())
                .uri(uri.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let request = request
                .body(Full::new(SecretBody::new(body.clone())))
                .map_err(|_| Failure::BadRequest)?;
            let result = self.runtime.run(async {
                let call = async {
                    let response = self.client.request(request).await.map_err(BoxError::from)?;
                    let (parts, body) = response.into_parts();
                    let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
                        .collect()
                        .await?
                        .to_bytes();
                    Ok::<_, BoxError>(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    })
                };
                tokio::time::timeout(ATTEMPT_TIMEOUT, call).await
            });
            let retry = attempt < MAX_ATTEMPTS;
            match result {
                Err(_) if retry => {}
                Err(_) => return Err(Failure::TimedOut),
                Ok(Err(_)) if retry => {}
                Ok(Err(e)) => return Err(Failure::Unreachable(error_chain(e.as_ref()))),
                Ok(Ok(answer)) if retry && retry_on(answer.status) => {}
                Ok(Ok(answer)) => return Ok(answer),
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    /// The headers of the answer to a bodiless GET of `uri`, if one comes within `limit`; no
    /// retry, and the body is not read (a probe for a server's presence).
    pub(crate) fn probe(&self, uri: &str, limit: Duration) -> Option<HeaderMap> {
        let request = hyper::Request::get(uri)
            .body(Full::new(SecretBody::new(Zeroizing::new(Vec::new()))))
            .ok()?;
        let answer = self
            .runtime
            .run(async { tokio::time::timeout(limit, self.client.request(request)).await });
        match answer {
            Ok(Ok(response)) => Some(response.into_parts().0.headers),
            _ => None,
        }
    }
}

/// A connector bounded by [`CONNECT_TIMEOUT`] that lets the TLS layer above it choose between
/// http and https.
fn direct() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
    http
}

/// rustls with ring and `roots`. Without any root (no system roots found, say), https still
/// fails only at the handshake, naming the server, and plain http where allowed still works.
fn tls(
    roots: Roots,
) -> Result<
    hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
    rustls::Error,
> {
    let configured = match roots {
        Roots::Only(roots) => rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .map(|b| {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(b.with_root_certificates(roots).with_no_client_auth())
        }),
        Roots::Native => hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| rustls::Error::General(e.to_string())),
    };
    configured.or_else(|_| {
        let config = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        Ok(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config))
    })
}

/// Whether `uri` may be used where plain http is refused: https, and nothing else. Not even
/// http to a loopback address: in the controller that is its own pod, whose sidecars serve
/// plain-http admin endpoints (Envoy's on 127.0.0.1:15000 shuts the proxy down on a POST to
/// `/quitquitquit`), which a URL a tenant writes (a Vault address, a `token_uri`) must not reach.
pub(crate) fn is_https(uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
}

/// The longest text kept of one field of a service's error reply, in characters.
const REPLY_FIELD_CHARS: usize = 300;

/// What a key service's error reply says, reduced to what may be shown: its HTTP status and the
/// code and message fields of the service's own error shape, parsed from JSON, each cleaned by
/// [`clean_reply_text`] and capped. The body itself is never kept: a reply can come from a
/// server a file or a tenant chose (or a proxy on the way), and these messages reach terminals,
/// CI logs and, in the controller, a tenant-readable status, Events and the controller's log.
///
/// The error shapes read, one per service: Vault's `{"errors": ["..."]}`; Google's and Azure Key
/// Vault's `{"error": {"code", "status", "message"}}`; OAuth 2.0's `{"error": "...",
/// "error_description": "..."}` (Google's and Microsoft's token endpoints).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ErrorReply {
    pub(crate) status: StatusCode,
    /// The service's error code (`PERMISSION_DENIED`, `Forbidden`, `invalid_grant`).
    pub(crate) code: Option<String>,
    /// The service's message (Vault's errors, joined with `; `).
    pub(crate) message: Option<String>,
    /// The reply's length, in bytes, said when it held none of the fields above.
    len: usize,
}

impl ErrorReply {
    pub(crate) fn parse(status: StatusCode, body: &[u8]) -> ErrorReply {
        let mut reply = ErrorReply {
            status,
            code: None,
            message: None,
            len: body.len(),
        };
        let Ok(serde_json::Value::Object(top)) = serde_json::from_slice(body) else {
            return reply;
        };
        let text = |v: Option<&serde_json::Value>| -> Option<String> {
            let s = match v? {
                serde_json::Value::String(s) => s.clone(),
                n @ serde_json::Value::Number(_) => n.to_string(),
                _ => return None,
            };
            Some(clean_reply_text(&s, REPLY_FIELD_CHARS)).filter(|s| !s.is_empty())
        };
        match top.get("error") {
            Some(serde_json::Value::Object(e)) => {
                // Google's `status` is the code as a word; its `code` is the HTTP status again.
                reply.code = text(e.get("status")).or_else(|| text(e.get("code")));
                reply.message = text(e.get("message"));
            }
            Some(code @ serde_json::Value::String(_)) => {
                reply.code = text(Some(code));
                reply.message = text(top.get("error_description"));
            }
            _ => {}
        }
        if let Some(serde_json::Value::Array(errors)) = top.get("errors") {
            let joined: Vec<String> = errors.iter().filter_map(|e| text(Some(e))).collect();
            if !joined.is_empty() {
                reply.message = Some(clean_reply_text(&joined.join("; "), REPLY_FIELD_CHARS));
            }
        }
        reply
    }

    /// The code and message, as `code: message`; what is missing is left out, and a reply that
    /// held neither is described by its length only.
    pub(crate) fn details(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(s), None) | (None, Some(s)) => s.clone(),
            (None, None) if self.len == 0 => "an empty reply".to_string(),
            (None, None) => format!(
                "a {}-byte reply not in the service's error format (not shown)",
                self.len
            ),
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.details())
    }
}

/// `text` made safe to show on one line: ANSI escape sequences removed, every other control
/// character (line breaks and tabs included, C1 controls, and the bidirectional overrides that
/// reorder what a terminal shows) turned into a space, runs of white space made one, and at
/// most `max` characters kept (`…` marks a cut).
pub(crate) fn clean_reply_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut kept = 0;
    let mut chars = text.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        let c = match c {
            '\u{1b}' => {
                skip_escape(&mut chars);
                ' '
            }
            // CSI as one character (C1).
            '\u{9b}' => {
                skip_csi(&mut chars);
                ' '
            }
            c if c.is_control() || is_bidi_control(c) => ' ',
            c => c,
        };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if kept + usize::from(space) >= max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            kept += 1;
            space = false;
        }
        out.push(c);
        kept += 1;
    }
    out
}

/// Skips the rest of an escape sequence after ESC: CSI (`[` ... final byte), OSC, DCS and the
/// other string sequences (to BEL or ST), or one character.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || c == '\u{9c}' {
                    return;
                }
                if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                    chars.next();
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Skips a CSI sequence's parameters and its final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            return;
        }
    }
}

/// The Unicode characters that reorder text on display (U+202A-202E, U+2066-2069) or hide in
/// it (zero-width marks, U+200B-200F, U+2028/2029 line and paragraph separators, U+FEFF).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Every message of an error's source chain, joined with `: `, each once (hyper repeats its
/// inner errors; the AWS SDK's own `Debug` dumps, the other choice, are unreadable in a
/// terminal). The AWS KMS source uses it too.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Connects directly, or through the `HTTPS_PROXY` the environment names (a CONNECT tunnel),
/// as Go's `http.ProxyFromEnvironment` decides: `NO_PROXY` exempts hosts, and localhost and
/// loopback addresses never go through a proxy.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    proxies: Arc<Matcher>,
}

type Connecting =
    Pin<Box<dyn Future<Output = Result<TokioIo<tokio::net::TcpStream>, BoxError>> + Send>>;

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let loopback = dst.host().is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let intercept = if loopback {
            None
        } else {
            self.proxies.intercept(&dst)
        };
        match intercept {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { tunnel.call(dst).await.map_err(Into::into) })
            }
            None => {
                let mut direct = self.direct.clone();
                Box::pin(async move { direct.call(dst).await.map_err(Into::into) })
            }
        }
    }
}

/// A request body that clears itself when dropped: it holds a data key (base64) on the way to
/// a key service, or a client secret or signed assertion on the way to a token endpoint
/// (hyper's own buffers after it are outside our reach).
#[derive(Clone)]
pub(crate) struct SecretBody {
    bytes: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl SecretBody {
    fn new(bytes: Zeroizing<Vec<u8>>) -> SecretBody {
        SecretBody { bytes, pos: 0 }
    }
}

impl Buf for SecretBody {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining(), "advance past the end of the body");
        self.pos += cnt;
    }
}

impl Drop for SecretBody {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    /// A plain-http server answering its requests with `statuses` in turn (the last one
    /// repeated), counting them.
    fn server(statuses: &'static [u16]) -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                'requests: loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break 'requests;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let status = statuses[n.min(statuses.len() - 1)];
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        (uri.parse().unwrap(), count)
    }

    fn client() -> HttpClient {
        HttpClient::https_or_http(Roots::Native).unwrap()
    }

    fn get(
        http: &HttpClient,
        uri: &Uri,
        retry_on: fn(StatusCode) -> bool,
    ) -> Result<Answer, Failure> {
        http.send(
            &Method::GET,
            uri,
            &[],
            &Zeroizing::new(Vec::new()),
            retry_on,
        )
    }

    #[test]
    fn statuses_retry_on_accepts_are_tried_again_until_one_is_not() {
        let (uri, count) = server(&[503, 503, 200]);
        let answer = get(&client(), &uri, |s| s.is_server_error()).unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"ok");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_last_attempt_comes_back_whatever_its_status() {
        let (uri, count) = server(&[503]);
        let answer = get(&client(), &uri, |s| s.is_server_error()).unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(count.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
    }

    #[test]
    fn statuses_retry_on_refuses_come_back_at_once() {
        let (uri, count) = server(&[412, 200]);
        let answer = get(&client(), &uri, |s| s.is_server_error()).unwrap();
        assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_refused_connection_is_unreachable_after_every_attempt() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let started = Instant::now();
        match get(&client(), &uri, |_| true) {
            Err(Failure::Unreachable(reason)) => {
                assert!(reason.contains("onnect"), "{reason}")
            }
            other => panic!("{:?}", other.map(|a| a.status)),
        }
        // Two pauses between three attempts: the retries happened, within seconds.
        let took = started.elapsed();
        assert!(took >= RETRY_PAUSE * (MAX_ATTEMPTS - 1), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn error_chain_names_each_message_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner(#[source] std::io::Error);
        let e = Outer(Inner(std::io::Error::other("inner")));
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn only_https_passes_the_https_check() {
        for ok in [
            "https://vault.example:8200/v1/x",
            "https://10.0.0.1/",
            "https://127.0.0.1:8200/",
        ] {
            assert!(is_https(&ok.parse().unwrap()), "{ok}");
        }
        for refused in [
            "http://vault.example:8200/v1/x",
            "http://127.0.0.1:15000/quitquitquit?",
            "http://127.9.9.9/",
            "http://[::1]:80/",
            "http://localhost:8200/",
            "http://10.0.0.1/",
            "http://169.254.169.254/",
            "http://kubernetes.default.svc/",
            "ftp://127.0.0.1/",
            "/relative",
        ] {
            assert!(!is_https(&refused.parse().unwrap()), "{refused}");
        }
    }

    fn reply(status: u16, body: &[u8]) -> ErrorReply {
        ErrorReply::parse(StatusCode::from_u16(status).unwrap(), body)
    }

    /// Each service's error shape gives its code and message: Vault's errors (its line breaks
    /// and tabs made spaces), Google's and Key Vault's error objects, OAuth's error pair.
    #[test]
    fn error_replies_give_each_services_code_and_message() {
        let vault = reply(
            403,
            b"{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}",
        );
        assert_eq!(
            vault.to_string(),
            "HTTP 403 Forbidden: 1 error occurred: * permission denied"
        );
        let google = reply(
            403,
            br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(google.details(), "PERMISSION_DENIED: Permission denied");
        let azure = reply(
            403,
            br#"{"error":{"code":"Forbidden","message":"No access"}}"#,
        );
        assert_eq!(
            (azure.code.as_deref(), azure.message.as_deref()),
            (Some("Forbidden"), Some("No access"))
        );
        let oauth = reply(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        assert_eq!(oauth.details(), "invalid_grant: Invalid JWT Signature.");
    }

    /// A reply that is not JSON, or JSON of another shape (a proxy's page, an internal
    /// service a file pointed at) is never quoted: only its status and length are said.
    #[test]
    fn a_reply_in_no_known_error_shape_is_not_quoted() {
        for body in [
            &b"<html>internal admin page: db-password=hunter2</html>"[..],
            br#"{"password":"hunter2","items":[1,2]}"#,
            br#"{"error":{"detail":"hunter2"}}"#,
            b"\xff\xfehunter2",
        ] {
            let r = reply(502, body);
            let shown = r.to_string();
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.starts_with("HTTP 502 Bad Gateway: a "), "{shown}");
            assert!(
                shown.contains(&format!("{}-byte reply", body.len())),
                "{shown}"
            );
        }
        assert_eq!(reply(503, b"").details(), "an empty reply");
    }

    /// ANSI escape sequences (colour, cursor moves, a terminal title, OSC 8 links) are removed
    /// whole, and other control and bidirectional characters become spaces: a reply cannot
    /// repaint a terminal or hide text in a log.
    #[test]
    fn escape_sequences_and_control_characters_are_removed_from_replies() {
        let body = serde_json::json!({
            "errors": [
                "\u{1b}[2J\u{1b}[1;1Hcleared \u{1b}[31mred\u{1b}[0m",
                "\u{1b}]0;title\u{7}\u{1b}]8;;https://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\ \u{9b}1mx",
                "a\u{202e}b\u{0}c\u{7f}d\u{85}e\u{200b}f",
            ]
        });
        let r = reply(400, body.to_string().as_bytes());
        let shown = r.to_string();
        assert_eq!(
            r.message.as_deref(),
            Some("cleared red; link x; a b c d e f"),
            "{shown:?}"
        );
        assert!(
            !shown.chars().any(|c| c.is_control() || is_bidi_control(c)),
            "{shown:?}"
        );
    }

    /// A line break in a reply cannot start a forged line in a log or a status message.
    #[test]
    fn newlines_in_replies_cannot_forge_log_lines() {
        let forged = "denied\r\nlevel=INFO msg=\"decrypted\" secret=ok\n\u{2028}x";
        let body = serde_json::json!({"error": "invalid_client", "error_description": forged});
        let shown = reply(401, body.to_string().as_bytes()).to_string();
        assert!(!shown.contains(['\n', '\r', '\u{2028}']), "{shown:?}");
        assert!(shown.contains("denied level=INFO"), "{shown:?}");
    }

    /// A huge reply (a field of a megabyte, or thousands of errors) gives a short summary.
    #[test]
    fn summaries_of_huge_replies_are_capped() {
        let long = "x".repeat(1 << 20);
        let body = serde_json::json!({"error": {"code": long, "message": long}});
        let r = reply(500, body.to_string().as_bytes());
        let shown = r.to_string();
        assert!(
            shown.len() < 2 * 4 * REPLY_FIELD_CHARS + 64,
            "{}",
            shown.len()
        );
        assert!(shown.ends_with('…'), "a cut is marked");
        let many: Vec<String> = (0..10_000).map(|i| format!("error {i}")).collect();
        let r = reply(
            500,
            serde_json::json!({ "errors": many }).to_string().as_bytes(),
        );
        assert!(
            r.message.unwrap().chars().count() <= REPLY_FIELD_CHARS + 1,
            "capped"
        );
        assert_eq!(clean_reply_text("  a \t b  ", 10), "a b");
        assert_eq!(clean_reply_text("abcdef", 3), "abc…");
    }

    /// An answer larger than [`MAX_ANSWER_BYTES`] is not read into memory: the call fails.
    #[test]
    fn answers_larger_than_the_limit_are_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        line.clear();
                    }
                    let size = MAX_ANSWER_BYTES * 4;
                    let head = format!("HTTP/1.1 500 X\r\ncontent-length: {size}\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let chunk = vec![b'x'; 64 * 1024];
                    for _ in 0..size / chunk.len() {
                        if stream.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        match get(&client(), &uri, |_| false) {
            Err(Failure::Unreachable(reason)) => assert!(reason.contains("limit"), "{reason}"),
            other => panic!("{:?}", other.map(|a| (a.status, a.body.len()))),
        }
    }

    #[test]
    fn a_secret_body_reads_out_as_hyper_advances_it() {
        let mut body = SecretBody::new(Zeroizing::new(b"abc".to_vec()));
        assert_eq!((body.remaining(), body.chunk()), (3, &b"abc"[..]));
        body.advance(2);
        assert_eq!((body.remaining(), body.chunk()), (1, &b"c"[..]));
        body.advance(1);
        assert_eq!(body.remaining(), 0);
    }
}

//! The two HTTP ports. The public one keeps Sealed Secrets' paths, so
//! kubeseal reaches it unchanged through the API server's service proxy
//! (`/api/v1/namespaces/NS/services/http:NAME:/proxy/v1/cert.pem`); metrics
//! are on a port of their own.
//!
//! `/v1/verify` and `/v1/rotate` take anyone's input and cost one RSA decryption per value and
//! key (a 4096-bit one is ~15 ms of CPU): they are rate-limited per client address as Sealed
//! Secrets does (`--rate-limit`, `--rate-limit-burst`: 2/s, burst 2), run at most
//! [`CONCURRENT_CRYPTO`] at once, and take at most [`MAX_BODY_BYTES`] and [`MAX_VALUES`]
//! values. Connections must send their headers within [`HEADER_READ_TIMEOUT`] and requests
//! finish within [`REQUEST_TIMEOUT`], so slow clients cannot hold the server's resources.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use enseal_sealing::{PrivateKey, SealedSecret};

use crate::keystore::KeyStore;
use crate::metrics::Metrics;

/// Largest request body: the API server stores objects up to 1.5 MiB, and a SealedSecret that
/// fits in a 1 MiB Secret is under 1 MiB of JSON plus base64 overhead; 1 MiB keeps a margin
/// over any real one while a bigger body is refused (413) before it is parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most sealed values per verify/rotate request (413 beyond): each costs up to one RSA
/// decryption per key, so this bounds one request's CPU (256 x 3 keys x 15 ms ~ 12 s at
/// worst) while far exceeding the keys of any real Secret.
pub const MAX_VALUES: usize = 256;
/// verify/rotate requests computing at once (503 beyond): each is CPU-bound on a blocking
/// thread; two leave cores for reconciling under a CPU limit of one or two.
pub const CONCURRENT_CRYPTO: usize = 2;
/// Time for a client to send a request's headers (hyper's own default, which needs a timer).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for a whole request, body included; the slowest legitimate one (MAX_VALUES values on
/// a small CPU limit) stays well within it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Shared {
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub leader: watch::Receiver<bool>,
    pub limits: Arc<Limits>,
    /// Whether the API server answers ready (see [`probe_api`]): without it this replica can
    /// neither reconcile nor learn of new keys.
    pub api_ready: watch::Receiver<bool>,
    /// True from SIGTERM on: a replica that is shutting down takes no new work.
    pub stopping: watch::Receiver<bool>,
}

/// How often [`probe_api`] asks the API server, and how long one answer may take (an API
/// server whose etcd is gone takes 4 s to answer that it is not ready).
pub const API_PROBE_EVERY: Duration = Duration::from_secs(2);
pub const API_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes in a row without an answer before /readyz says not ready: one slow answer from a
/// busy API server is not an outage. An answer that says not ready, or a refused connection,
/// counts at once.
pub const API_PROBE_TIMEOUTS: u32 = 2;

enum Probe {
    Ready,
    NotReady(String),
    NoAnswer,
}

/// Asks the API server's own `/readyz` (which checks etcd, and which every authenticated
/// client may read through the bootstrap role `system:public-info-viewer`) every
/// [`API_PROBE_EVERY`], and publishes the answer on `ready` until `stop` turns true.
pub async fn probe_api(
    client: kube::Client,
    ready: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut timeouts = 0u32;
    loop {
        let probe = match axum::http::Request::get("/readyz").body(Vec::new()) {
            Ok(request) => {
                match tokio::time::timeout(API_PROBE_TIMEOUT, client.request_text(request)).await {
                    Ok(Ok(body)) if body.trim() == "ok" => Probe::Ready,
                    Ok(Ok(_)) => Probe::NotReady("its /readyz does not say ok".to_owned()),
                    Ok(Err(e)) => Probe::NotReady(e.to_string()),
                    Err(_) => Probe::NoAnswer,
                }
            }
            Err(e) => Probe::NotReady(e.to_string()),
        };
        timeouts = match &probe {
            Probe::Ready => 0,
            Probe::NoAnswer => timeouts + 1,
            Probe::NotReady(_) => API_PROBE_TIMEOUTS,
        };
        let now_ready = timeouts < API_PROBE_TIMEOUTS;
        if *ready.borrow() != now_ready {
            match &probe {
                Probe::Ready => tracing::info!("the API server is ready again"),
                Probe::NotReady(reason) => tracing::warn!(%reason, "the API server is not ready"),
                Probe::NoAnswer => tracing::warn!(
                    "the API server is not ready: no answer in {API_PROBE_TIMEOUT:?}, {timeouts} times"
                ),
            }
            let _ = ready.send(now_ready);
        }
        tokio::select! {
            _ = tokio::time::sleep(API_PROBE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// What bounds the work anyone reaching the public port can cause.
pub struct Limits {
    rate: RateLimiter,
    crypto: Arc<Semaphore>,
}

impl Limits {
    /// `per_second` requests per second per client address, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Limits {
        Limits {
            rate: RateLimiter::new(per_second, burst),
            crypto: Arc::new(Semaphore::new(CONCURRENT_CRYPTO)),
        }
    }
}

/// A token bucket per client address (golang.org/x/time/rate's semantics, as Sealed Secrets'
/// httprate middleware uses them).
struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip`; `false` when there is none.
    fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        // Full buckets carry no information: dropping them keeps the map as small as the set
        // of clients seen in the last few seconds, however many addresses send requests.
        if buckets.len() > 1024 {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

/// The paths Sealed Secrets counts in its HTTP request metrics (`Instrument` in its
/// pkg/controller/server.go); the health checks are not counted there either.
const INSTRUMENTED: [&str; 3] = ["/v1/verify", "/v1/rotate", "/v1/cert.pem"];

pub fn public_router(state: Shared) -> Router {
    // Checked before the body is read: a refused request costs no parsing.
    let guarded = Router::new()
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/cert.pem", get(cert))
        .merge(guarded)
        // Outside the rate limit, as Sealed Secrets' Instrument wraps its limiter: refused
        // requests (429) are counted too.
        .layer(middleware::from_fn_with_state(state.clone(), instrument))
        .layer(middleware::from_fn(request_timeout))
        .with_state(state)
}

async fn instrument(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let Some(path) = INSTRUMENTED.iter().find(|p| **p == req.uri().path()) else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    s.metrics
        .http_request(path, &method, response.status().as_u16(), started.elapsed());
    response
}

pub fn metrics_router(state: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(request_timeout))
        .with_state(state)
}

async fn rate_limit(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // The peer address, never X-Forwarded-For: anyone could send that header to get a fresh
    // bucket per request. Through the API server's proxy all clients share its address, which
    // is also what Sealed Secrets' limiter (keyed by address) does.
    if let Some(ip) = ip {
        if !s.limits.rate.allow(ip, Instant::now()) {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "too many requests: retry later",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn request_timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => text(StatusCode::REQUEST_TIMEOUT, "request took too long"),
    }
}

/// Serves `router` on `addr` until `stop` turns true. Our own accept loop rather than
/// `axum::serve`: that one sets no timer, so hyper's header read timeout never applies.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening");
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin or stop.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return Ok(()),
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req.map(Body::new))
                });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Ready when this replica can do its work: serve the certificate (a key is loaded) and
/// reconcile (the API server is ready), and it is not shutting down.
async fn readyz(State(s): State<Shared>) -> Response {
    if *s.stopping.borrow() {
        text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !(s.keys.is_loaded() && s.keys.newest().is_some()) {
        text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet")
    } else if !*s.api_ready.borrow() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API server is not ready",
        )
    } else {
        text(StatusCode::OK, "ok")
    }
}

async fn cert(State(s): State<Shared>) -> Response {
    match s.keys.newest() {
        Some(key) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            key.cert_pem.clone(),
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet"),
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let keys = s.keys.keys();
    let body = s.metrics.render(
        keys.first().map(|k| k.created),
        keys.len(),
        *s.leader.borrow(),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

fn parse(body: &[u8]) -> Result<SealedSecret, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            format!(
                "not a SealedSecret in JSON: line {} column {}",
                e.line(),
                e.column()
            ),
        ))
    })
}

/// The posted SealedSecret and a slot to open it in, or the refusal: 400 when it is not one,
/// 413 with more than [`MAX_VALUES`] values, 503 while [`CONCURRENT_CRYPTO`] requests compute.
fn admit(s: &Shared, body: &[u8]) -> Result<(SealedSecret, OwnedSemaphorePermit), Box<Response>> {
    let ss = parse(body)?;
    let values = ss.spec.encrypted_data.len() + usize::from(ss.spec.data.is_some());
    if values > MAX_VALUES {
        return Err(Box::new(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{values} sealed values: at most {MAX_VALUES} per request"),
        )));
    }
    let permit = s.limits.crypto.clone().try_acquire_owned().map_err(|_| {
        Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "busy with other requests: retry later",
            )
                .into_response(),
        )
    })?;
    Ok((ss, permit))
}

/// 200 when every value of the posted SealedSecret opens with this controller's keys under its
/// scope, 409 otherwise (Sealed Secrets' `AttemptUnseal`: templates are not rendered).
async fn verify(State(s): State<Shared>, body: Bytes) -> Response {
    let (ss, permit) = match admit(&s, &body) {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    let keys = private_keys(&s);
    let result = tokio::task::spawn_blocking(move || {
        // Held until the work is done, even when the client has gone away.
        let _permit = permit;
        ss.verify(&keys)
    })
    .await;
    match result {
        Ok(Ok(())) => text(StatusCode::OK, ""),
        Ok(Err(e)) => text(StatusCode::CONFLICT, e.to_string()),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "verification failed"),
    }
}

/// Re-seals every value of the posted SealedSecret with the newest key (same scope), for moving
/// old objects onto a new key: `SealedSecret::rotate`, the same call as `seal --re-encrypt`.
async fn rotate(State(s): State<Shared>, body: Bytes) -> Response {
    let Some(newest) = s.keys.keys().first().cloned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet");
    };
    let (ss, permit) = match admit(&s, &body) {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    if ss.template_disagrees_with_object() {
        tracing::warn!(
            name = ss.metadata.name(),
            namespace = ss.metadata.namespace(),
            "rotate: the SealedSecret's metadata and spec.template.metadata disagree; the object's \
             own name, namespace and scope are kept"
        );
    }
    let keys = private_keys(&s);
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let rotated = ss
            .rotate(&keys, &newest.public)
            .map_err(|e| e.to_string())?;
        serde_json::to_vec(&rotated).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(json)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Ok(Err(msg)) => text(StatusCode::CONFLICT, msg),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "rotation failed"),
    }
}

/// The private keys, newest first (the order unseal tries them in).
fn private_keys(s: &Shared) -> Vec<PrivateKey> {
    s.keys.keys().iter().map(|k| k.private.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_the_burst_then_refills_at_the_rate() {
        let r = RateLimiter::new(2.0, 2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        assert!(r.allow(ip, t0));
        assert!(r.allow(ip, t0));
        assert!(!r.allow(ip, t0), "the burst is 2");
        assert!(r.allow(other, t0), "each address has its own bucket");
        assert!(!r.allow(ip, t0 + Duration::from_millis(400)));
        assert!(
            r.allow(ip, t0 + Duration::from_millis(600)),
            "2/s refills one in 0.5 s"
        );
        assert!(!r.allow(ip, t0 + Duration::from_millis(600)));
    }
}

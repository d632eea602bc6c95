//! The two HTTP ports. The public one keeps Sealed Secrets' paths, so
//! kubeseal reaches it unchanged through the API server's service proxy
//! (`/api/v1/namespaces/NS/services/http:NAME:/proxy/v1/cert.pem`); metrics
//! are on a port of their own.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use enseal_sealing::{PrivateKey, SealedSecret};

use crate::keystore::KeyStore;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Shared {
    pub keys: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub leader: watch::Receiver<bool>,
}

pub fn public_router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/cert.pem", get(cert))
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate))
        .with_state(state)
}

pub fn metrics_router(state: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub async fn serve(
    addr: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.keys.is_loaded() && s.keys.newest().is_some() {
        text(StatusCode::OK, "ok")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet")
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

/// 200 when every value of the posted SealedSecret opens with this controller's keys under its
/// scope, 409 otherwise (Sealed Secrets' `AttemptUnseal`: templates are not rendered).
async fn verify(State(s): State<Shared>, body: Bytes) -> Response {
    let ss = match parse(&body) {
        Ok(ss) => ss,
        Err(r) => return *r,
    };
    let keys = private_keys(&s);
    let result = tokio::task::spawn_blocking(move || ss.verify(&keys)).await;
    match result {
        Ok(Ok(())) => text(StatusCode::OK, ""),
        Ok(Err(e)) => text(StatusCode::CONFLICT, e.to_string()),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "verification failed"),
    }
}

/// Re-seals every value of the posted SealedSecret with the newest key (same scope), for moving
/// old objects onto a new key: `SealedSecret::rotate`, the same call as `seal --re-encrypt`.
async fn rotate(State(s): State<Shared>, body: Bytes) -> Response {
    let ss = match parse(&body) {
        Ok(ss) => ss,
        Err(r) => return *r,
    };
    let Some(newest) = s.keys.keys().first().cloned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet");
    };
    let keys = private_keys(&s);
    let result = tokio::task::spawn_blocking(move || {
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

//! The two HTTP ports. The public one keeps Sealed Secrets' paths, so
//! kubeseal reaches it unchanged through the API server's service proxy
//! (`/api/v1/namespaces/NS/services/http:NAME:/proxy/v1/cert.pem`); metrics
//! are on a port of their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::crd::SealedSecret;
use crate::keystore::KeyStore;
use crate::metrics::Metrics;
use crate::sealing;
use crate::unseal;

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

/// 200 when every value of the posted SealedSecret opens with this
/// controller's keys under its scope, 409 otherwise.
async fn verify(State(s): State<Shared>, body: Bytes) -> Response {
    let ss = match parse(&body) {
        Ok(ss) => ss,
        Err(r) => return *r,
    };
    let keys = s.keys.keys();
    let result = tokio::task::spawn_blocking(move || unseal::unseal(&ss, &keys).map(drop)).await;
    match result {
        Ok(Ok(())) => text(StatusCode::OK, ""),
        Ok(Err(e)) => text(StatusCode::CONFLICT, e.to_string()),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "verification failed"),
    }
}

/// Re-seals every value of the posted SealedSecret with the newest key
/// (same scope), for moving old objects onto a new key.
async fn rotate(State(s): State<Shared>, body: Bytes) -> Response {
    let mut ss = match parse(&body) {
        Ok(ss) => ss,
        Err(r) => return *r,
    };
    let keys = s.keys.keys();
    let Some(newest) = keys.first().cloned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no sealing key loaded yet");
    };
    let result = tokio::task::spawn_blocking(move || {
        let namespace = ss.metadata.namespace.clone().unwrap_or_default();
        let name = ss.metadata.name.clone().unwrap_or_default();
        let label = ss.scope().label(&namespace, &name);
        let privs: Vec<&sealing::PrivateKey> = keys.iter().map(|k| &k.private).collect();
        let mut resealed = BTreeMap::new();
        for (key, value) in &ss.spec.encrypted_data {
            let Some(value) = value.as_str() else {
                return Err(format!("encryptedData[{key}] is not a string"));
            };
            let plain = sealing::open_value(&privs, &label, value)
                .map_err(|e| format!("encryptedData[{key}]: {e}"))?;
            let sealed = sealing::seal_value(&newest.public, &label, &plain)
                .map_err(|e| format!("encryptedData[{key}]: {e}"))?;
            resealed.insert(key.clone(), serde_json::Value::String(sealed));
        }
        if let Some(blob) = ss.spec.data.clone().filter(|b| !b.is_empty()) {
            let plain = sealing::open_value(&privs, &label, &blob)
                .map_err(|e| format!("spec.data: {e}"))?;
            ss.spec.data = Some(
                sealing::seal_value(&newest.public, &label, &plain)
                    .map_err(|e| format!("spec.data: {e}"))?,
            );
        }
        ss.spec.encrypted_data = resealed;
        ss.status = None;
        serde_json::to_vec(&ss).map_err(|e| e.to_string())
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

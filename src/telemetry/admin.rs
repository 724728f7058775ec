//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! It listens on loopback unless `metrics.listen` says otherwise, because
//! metrics describe an account's security posture. Binding happens before
//! anything else starts, so a port in use fails the start at once.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Metrics, Status};

/// Why the admin server could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr} (metrics.listen): {reason}")]
pub struct BindError {
    /// The configured address.
    pub addr: SocketAddr,
    /// What the operating system said, in words.
    pub reason: String,
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|err| BindError {
        addr,
        reason: match err.kind() {
            std::io::ErrorKind::AddrInUse => {
                "address already in use; is another process using this port?".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::AddrNotAvailable => "address not available on this host".to_owned(),
            _ => err.to_string(),
        },
    })
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    status: Status,
}

/// The routes, for [`serve`] and for tests.
fn router(metrics: Metrics, status: Status) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, status })
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    status: Status,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, status))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn render_metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<AdminState>) -> Response {
    match state.status.healthy() {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        Err(failures) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unhealthy", "failures": failures}),
        ),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.status.readiness();
    if readiness.ready {
        json(StatusCode::OK, serde_json::json!({"status": "ready"}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "waiting": readiness.waiting}),
        )
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

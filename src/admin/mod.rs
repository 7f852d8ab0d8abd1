//! The admin REST API: JSON over HTTP on a listener of its own, versioned under `/api/v1`.
//!
//! ```text
//! request ─▶ auth (bearer token ─▶ Caller / Operator / InTenant) ─▶ handler ─▶ directory
//!                                                                    │
//!                                        every change ─▶ audit log ◀─┘
//! ```
//!
//! [`router`] builds the whole API from a state (tests drive it directly or over a real socket); [`serve`]
//! runs it on a bound listener until the shutdown token fires. Errors are RFC 9457 problems, made in one
//! place ([`error`]); listings page with an opaque cursor ([`extract`]); the OpenAPI 3.1 document is built
//! from the handlers' annotations and served at `/api/v1/openapi.json`.

pub mod audit;
pub mod auth;
pub mod bans;
pub mod certificates;
pub mod error;
pub mod extract;
pub mod health;
pub mod hostnames;
pub mod metrics;
pub mod openapi;
pub mod sessions;
pub mod tenants;
pub mod tls;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::password;
use crate::config::{Config, MetricsAuth};
use crate::directory::Directory;
use crate::sessions::LiveSessions;
use crate::telemetry::metrics::Metrics;
use crate::tls::Sealer;
use error::ApiError;
pub use health::StorageCheck;

/// Largest request body: a certificate chain with its key fits many times over.
const MAX_BODY_BYTES: usize = 1 << 20;

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AdminState(Arc<AdminContext>);

pub struct AdminContext {
    pub directory: Arc<dyn Directory>,
    pub storage: StorageCheck,
    /// argon2id parameters for passwords set through the API (the same as the CLI's).
    pub passwords: password::Params,
    /// How ban scopes of IPv6 clients are written (see `login_defence.ipv6_prefix_len`).
    pub ipv6_prefix_len: u8,
    /// Seals uploaded certificates' keys before they are stored.
    pub sealer: Arc<Sealer>,
    /// Wakes this instance's certificate watcher after an upload or delete, when one runs (others notice
    /// within their poll interval).
    pub certificates_changed: Option<Arc<Notify>>,
    /// The live FTP sessions: a disconnect of one of this instance's sessions takes effect at once.
    pub sessions: Arc<LiveSessions>,
    /// This instance's metrics, served at `/metrics`.
    pub metrics: Arc<Metrics>,
    pub metrics_auth: MetricsAuth,
}

impl AdminState {
    pub fn new(
        directory: Arc<dyn Directory>,
        storage: StorageCheck,
        sealer: Arc<Sealer>,
        certificates_changed: Option<Arc<Notify>>,
        sessions: Arc<LiveSessions>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> AdminState {
        AdminState(Arc::new(AdminContext {
            directory,
            storage,
            passwords: config.password_params(),
            ipv6_prefix_len: config.login_defence.ipv6_prefix_len,
            sealer,
            certificates_changed,
            sessions,
            metrics,
            metrics_auth: config.admin.metrics_auth,
        }))
    }
}

impl std::ops::Deref for AdminState {
    type Target = AdminContext;

    fn deref(&self) -> &AdminContext {
        &self.0
    }
}

/// The API's routes and the OpenAPI document describing them, built from the same annotations.
fn api() -> (Router<AdminState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::set_password))
        .routes(routes!(hostnames::list, hostnames::add))
        .routes(routes!(hostnames::remove))
        .routes(routes!(certificates::list, certificates::upload))
        .routes(routes!(certificates::get, certificates::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get, tokens::delete))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::get, sessions::disconnect))
        .routes(routes!(bans::list))
        .routes(routes!(bans::lift))
        .routes(routes!(usage::tenant))
        .routes(routes!(usage::user))
        .routes(routes!(audit::list));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .nest("/api/v1", v1)
        .split_for_parts()
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole API: `/api/v1/…`, `/api/v1/openapi.json`, `/healthz`, `/readyz` and `/metrics`.
pub fn router(state: AdminState) -> Router {
    let (routes, document) = api();
    let document = Arc::new(document);
    routes
        .route("/api/v1/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A bound admin listener: plain HTTP, or HTTPS with the acceptor.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Binds `config.admin.listen`, loading the certificate when one is configured.
    pub async fn bind(config: &Config) -> anyhow::Result<Listener> {
        use anyhow::Context as _;
        let admin = &config.admin;
        let tls = match (&admin.cert_file, &admin.key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let tcp = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("admin API: listening on {}", admin.listen))?;
        Ok(Listener { tcp, tls })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }
}

/// Serves the API on `listener` until `shutdown` fires, then lets requests in progress finish.
pub async fn serve(listener: Listener, state: AdminState, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<auth::ClientAddr>();
    let stop = shutdown.clone();
    match listener.tls {
        None => axum::serve(listener.tcp, app).with_graceful_shutdown(stop.cancelled_owned()).await,
        Some(acceptor) => {
            let tls = tls::TlsListener::new(listener.tcp, acceptor, shutdown)?;
            axum::serve(tls, app).with_graceful_shutdown(stop.cancelled_owned()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use tower::ServiceExt as _;

    use super::*;
    use crate::directory::admin::TokenScope;

    async fn app() -> (Router, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("wharf.db").display());
        let directory = crate::directory::open(&url).await.unwrap();
        let (_, secret) = tokens::create_token(&*directory, "ops", TokenScope::Operator).await.unwrap();
        let sealer = Arc::new(Sealer::new(&[7; 32]));
        let storage: StorageCheck = Arc::new(|| Box::pin(async { true }));
        let sessions = crate::sessions::LiveSessions::new(directory.clone(), "test");
        let metrics = Arc::new(Metrics::new(None, &Default::default()));
        let state = AdminState::new(directory, storage, sealer, None, sessions, metrics, &Config::default());
        (router(state), secret, dir)
    }

    async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String, serde_json::Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let kind = response.headers().get(header::CONTENT_TYPE).map_or("", |v| v.to_str().unwrap()).to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, kind, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn every_answer_is_json_and_every_failure_a_problem() {
        let (app, secret, _dir) = app().await;
        let (status, kind, _) = call(&app, get("/healthz")).await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "application/json"));
        assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
        for (request, status) in [
            (get("/api/v1/tenants"), StatusCode::UNAUTHORIZED),
            (get("/api/v1/nowhere"), StatusCode::NOT_FOUND),
            (Request::put("/api/v1/tenants").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        ] {
            let (got, kind, body) = call(&app, request).await;
            assert_eq!((got, kind.as_str()), (status, "application/problem+json"));
            assert_eq!(body["status"], status.as_u16());
        }
        let authorised = Request::get("/api/v1/tenants")
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = call(&app, authorised).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"items": [], "next_cursor": null}));
        let (status, _, doc) = call(&app, get("/api/v1/openapi.json")).await;
        assert_eq!((status, &doc["openapi"]), (StatusCode::OK, &serde_json::json!("3.1.0")));
    }
}

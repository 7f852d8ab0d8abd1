//! `/healthz` (the process answers) and `/readyz` (the instance serves, and whether it reaches the
//! directory and the storage), for load balancers and orchestrators; neither needs a token, and neither
//! says more than which part is down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::Query;
use super::AdminState;
use crate::directory::admin::Page;

/// How long one readiness check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How `/readyz` asks whether the storage answers. The server hands it in: the admin API knows no
/// storage backend.
pub type StorageCheck = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    /// `/readyz` only: whether this instance reaches the directory (`ok` or `down`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `/readyz` only: whether this instance reaches the storage (`ok` or `down`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// What `/readyz` fails on.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// `true`: answer 503 when the directory or the storage cannot be reached (for monitoring and for a
    /// single instance's health check). Without it, a shared dependency's outage is reported in the body
    /// but leaves the instance ready: an orchestrator that took every replica out of service at once would
    /// turn a database blip into a full outage, while logged-in sessions go on and new logins get a clear
    /// 421.
    pub strict: Option<bool>,
}

/// The process is up.
#[utoipa::path(get, operation_id = "health_healthz", path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned(), directory: None, storage: None })
}

/// This instance serves; the body says whether it reaches the directory and the storage. With
/// `strict=true`, 503 naming the part it cannot reach.
#[utoipa::path(get, operation_id = "health_readyz", path = "/readyz", tag = "health", security(()),
    params(ReadyQuery),
    responses((status = 200, body = Health),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(
    State(state): State<AdminState>,
    Query(query): Query<ReadyQuery>,
) -> Result<Json<Health>, ApiError> {
    let directory = tokio::time::timeout(CHECK_TIMEOUT, state.directory.tenants_page(Page { after: None, limit: 1 }));
    let storage = tokio::time::timeout(CHECK_TIMEOUT, (state.storage)());
    let (directory, storage) = tokio::join!(directory, storage);
    let directory_up = matches!(directory, Ok(Ok(_)));
    let storage_up = storage.unwrap_or(false);
    if query.strict == Some(true) {
        if !directory_up {
            return Err(ApiError::Unready("the directory cannot be reached"));
        }
        if !storage_up {
            return Err(ApiError::Unready("the storage cannot be reached"));
        }
    }
    let word = |up: bool| if up { "ok" } else { "down" }.to_owned();
    Ok(Json(Health {
        status: "ready".to_owned(),
        directory: Some(word(directory_up)),
        storage: Some(word(storage_up)),
    }))
}

//! `/healthz` (the process answers) and `/readyz` (the directory and the storage answer too), for load
//! balancers and orchestrators; neither needs a token, and neither says more than which part is down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
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
}

/// The process is up.
#[utoipa::path(get, operation_id = "health_healthz", path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// The directory and the storage can be reached (503 naming the one that cannot).
#[utoipa::path(get, operation_id = "health_readyz", path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AdminState>) -> Result<Json<Health>, ApiError> {
    let directory = tokio::time::timeout(CHECK_TIMEOUT, state.directory.tenants_page(Page { after: None, limit: 1 }));
    if !matches!(directory.await, Ok(Ok(_))) {
        return Err(ApiError::Unready("the directory cannot be reached"));
    }
    if !tokio::time::timeout(CHECK_TIMEOUT, (state.storage)()).await.unwrap_or(false) {
        return Err(ApiError::Unready("the storage cannot be reached"));
    }
    Ok(Json(Health { status: "ready".to_owned() }))
}

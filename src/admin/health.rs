//! `/healthz` (the process answers) and `/readyz` (the directory and the storage answer too), for load
//! balancers and orchestrators; neither needs a token, and neither says more than which part is down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use futures_util::StreamExt as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::AdminState;
use crate::access::{Access, Networks};
use crate::directory::admin::Page;
use crate::directory::{Tenant, TenantStorage, User};
use crate::storage::StorageProvider;
use crate::vfs::VirtualPath;

/// How long one readiness check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How `/readyz` knows the storage answers.
pub enum StorageCheck {
    /// The fs backend: its root folder is there.
    Folder(PathBuf),
    /// The S3 backend: a listing in the server's own bucket succeeds (with the server's client and keys).
    Provider(Arc<dyn StorageProvider>),
}

impl StorageCheck {
    async fn reachable(&self) -> bool {
        match self {
            StorageCheck::Folder(root) => tokio::fs::metadata(root).await.is_ok_and(|m| m.is_dir()),
            StorageCheck::Provider(provider) => {
                // A tenant of the server's defaults that no real tenant can be (ids start at 1): its prefix in
                // the default bucket is listed, one page at most.
                let tenant = Tenant {
                    id: 0,
                    name: "wharf-readyz".to_owned(),
                    enabled: true,
                    created_at: Utc::now(),
                    storage: TenantStorage::default(),
                    allowed_networks: Networks::anywhere(),
                    tls: Default::default(),
                };
                let user = User {
                    id: 0,
                    tenant_id: 0,
                    username: "readyz".to_owned(),
                    home: "/".to_owned(),
                    enabled: true,
                    created_at: Utc::now(),
                    last_login_at: None,
                    access: Access::default(),
                    allowed_networks: Networks::anywhere(),
                };
                let Ok(storage) = provider.open(&tenant, &user).await else { return false };
                let Ok(root) = VirtualPath::root().to_key(&VirtualPath::root()) else { return false };
                match storage.list(&root).await {
                    Ok(mut entries) => !matches!(entries.next().await, Some(Err(_))),
                    Err(_) => false,
                }
            }
        }
    }
}

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
    if !tokio::time::timeout(CHECK_TIMEOUT, state.storage.reachable()).await.unwrap_or(false) {
        return Err(ApiError::Unready("the storage cannot be reached"));
    }
    Ok(Json(Health { status: "ready".to_owned() }))
}

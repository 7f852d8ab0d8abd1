//! What a tenant or a user stores, against its quota, with the room running uploads hold (as
//! `wharf usage show` prints it).

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::InTenant;
use super::error::{ApiError, Problems};
use super::extract::Path;
use super::users::user_named;
use super::views::QuotaView;
use super::AdminState;
use crate::directory::{Account, Usage};

#[derive(Debug, Serialize, ToSchema)]
pub struct Amount {
    pub bytes: i64,
    pub files: i64,
}

impl From<Usage> for Amount {
    fn from(u: Usage) -> Self {
        Amount { bytes: u.bytes, files: u.files }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub quota: QuotaView,
    pub used: Amount,
    /// Held by uploads in progress.
    pub reserved: Amount,
}

impl From<Account> for UsageView {
    fn from(a: Account) -> Self {
        UsageView { quota: a.quota.into(), used: a.used.into(), reserved: a.reserved.into() }
    }
}

#[utoipa::path(get, operation_id = "usage_tenant", path = "/tenants/{tenant}/usage", tag = "usage",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 200, body = UsageView), Problems))]
pub async fn tenant(State(state): State<AdminState>, scope: InTenant) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(state.directory.tenant_account(scope.tenant.id, Utc::now()).await?.into()))
}

#[utoipa::path(get, operation_id = "usage_user", path = "/tenants/{tenant}/users/{username}/usage", tag = "usage",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("username" = String, Path, example = "alice")),
    responses((status = 200, body = UsageView), Problems))]
pub async fn user(
    State(state): State<AdminState>,
    scope: InTenant,
    Path((_, username)): Path<(String, String)>,
) -> Result<Json<UsageView>, ApiError> {
    let user = user_named(&state, &scope.tenant, &username).await?;
    Ok(Json(state.directory.user_account(user.id, Utc::now()).await?.into()))
}

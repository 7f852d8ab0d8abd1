//! The audit log: every change made through the API is recorded (who, what, when, from where) by
//! [`record`], and read back, oldest first, through `GET /api/v1/audit`. Tenant admins read their own
//! tenant's events only.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Problems};
use super::extract::{paged, List, PageQuery, Query};
use super::AdminState;
use crate::directory::admin::{AuditEvent, NewAuditEvent};

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token that made the change: its name and id (`ops#3`), or `cli`.
    pub actor: String,
    /// The tenant the change concerns (its id; the tenant may since have been deleted).
    pub tenant_id: Option<i64>,
    /// A dotted verb: `tenant.create`, `user.password`, `token.delete`, …
    pub action: String,
    /// What changed: `tenant/acme`, `tenant/acme/user/alice`, …
    pub target: String,
    /// The API client's address.
    pub client: Option<String>,
    /// Further facts (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        AuditView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            tenant_id: e.tenant_id,
            action: e.action,
            target: e.target,
            client: e.client,
            detail: e.detail,
        }
    }
}

/// Records a change `caller` made. A change whose event cannot be written is reported as failed to the
/// caller (503 or 500), so that nothing done through the API goes unrecorded without anyone hearing of it.
pub async fn record(
    state: &AdminState,
    caller: &Caller,
    tenant_id: Option<i64>,
    action: &str,
    target: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = NewAuditEvent {
        actor: caller.actor(),
        tenant_id,
        action: action.to_owned(),
        target,
        client: caller.client.map(|c| c.to_string()),
        detail,
    };
    if let Err(e) = state.directory.record_audit(&event, Utc::now()).await {
        tracing::error!(action, target = %event.target, "the change was made but its audit event was not written");
        return Err(e.into());
    }
    Ok(())
}

/// The audit log, oldest first.
#[utoipa::path(get, operation_id = "audit_list", path = "/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = List<AuditView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<AuditView>>, ApiError> {
    let rows = state.directory.audit_page(caller.tenant(), query.page()?).await?;
    Ok(Json(paged(rows, &query, |e| e.id, AuditView::from)?))
}

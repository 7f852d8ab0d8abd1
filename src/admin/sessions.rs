//! Live FTP sessions across every instance sharing the directory: list, look at one, ask its instance to
//! disconnect it. Tenant admins see their own tenant's sessions.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::Caller;
use super::error::{ApiError, Problems};
use super::extract::{could_name, paged_by_key, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::admin::LiveSession;

/// Sessions of instances not seen alive for this long are not listed (their instance is gone).
const ALIVE_WITHIN: TimeDelta = TimeDelta::seconds(30);

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// The instance serving the session.
    pub instance: String,
    pub tenant: Option<String>,
    pub username: String,
    /// The FTP client's address (`ip:port`).
    pub client: String,
    pub started_at: DateTime<Utc>,
}

fn view(session: LiveSession, tenant: Option<String>) -> SessionView {
    SessionView {
        id: session.id,
        instance: session.instance,
        tenant,
        username: session.username,
        client: session.client,
        started_at: session.started_at,
    }
}

async fn tenant_name(state: &AdminState, id: i64) -> Result<Option<String>, ApiError> {
    Ok(state.directory.tenant_by_id(id).await?.map(|t| t.name))
}

/// The session with `id`, if the caller may see it.
async fn visible(state: &AdminState, caller: &Caller, id: &str) -> Result<LiveSession, ApiError> {
    if !could_name(id) {
        return Err(ApiError::NotFound);
    }
    let session = state.directory.live_session(id).await?.ok_or(ApiError::NotFound)?;
    caller.check_sees(session.tenant_id)?;
    Ok(session)
}

/// Sessions of live instances, ordered by id.
#[utoipa::path(get, operation_id = "sessions_list", path = "/sessions", tag = "sessions", params(PageQuery),
    responses((status = 200, body = List<SessionView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<SessionView>>, ApiError> {
    let sessions = state.directory.live_sessions(caller.tenant(), Utc::now() - ALIVE_WITHIN).await?;
    let page = paged_by_key(sessions, &query, |s| s.id.clone(), |s| s)?;
    let mut names = HashMap::new();
    let mut items = Vec::with_capacity(page.items.len());
    for session in page.items {
        let name = match names.get(&session.tenant_id) {
            Some(name) => Option::clone(name),
            None => {
                let name = tenant_name(&state, session.tenant_id).await?;
                names.insert(session.tenant_id, name.clone());
                name
            }
        };
        items.push(view(session, name));
    }
    Ok(Json(List { items, next_cursor: page.next_cursor }))
}

#[utoipa::path(get, operation_id = "sessions_get",
    path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), Problems))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = visible(&state, &caller, &id).await?;
    let name = tenant_name(&state, session.tenant_id).await?;
    Ok(Json(view(session, name)))
}

/// Asks the session's instance to close it; 202, since the instance does so within seconds.
#[utoipa::path(delete, operation_id = "sessions_disconnect",
    path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 202, description = "The disconnect was requested"), Problems))]
pub async fn disconnect(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = visible(&state, &caller, &id).await?;
    if !state.sessions.disconnect(&session.id).await? {
        return Err(ApiError::NotFound);
    }
    let detail = json!({ "username": session.username, "client": session.client, "instance": session.instance });
    audit::record(&state, &caller, Some(session.tenant_id), "session.disconnect", format!("session/{id}"), detail)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

//! Login bans running now (client addresses and users that failed too often): list and lift. Operators
//! only, since address bans belong to no tenant.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::{tenant_named, Operator};
use super::error::{ApiError, Problems};
use super::extract::{could_name, paged_by_key, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::login_failures::{ip_scope, parse_user_scope, user_scope};
use crate::directory::Ban;

#[derive(Debug, Serialize, ToSchema)]
pub struct BanView {
    /// `ip:203.0.113.7`, `ip:2001:db8:1:2::/64` or `user:<tenant id>:<username>`.
    pub scope: String,
    /// `user@tenant` for a user's ban.
    pub login: Option<String>,
    /// Failures in the current window.
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
    pub banned_until: DateTime<Utc>,
}

/// Bans running now, ordered by scope.
#[utoipa::path(get, operation_id = "bans_list", path = "/bans", tag = "bans", params(PageQuery),
    responses((status = 200, body = List<BanView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    Operator(_): Operator,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<BanView>>, ApiError> {
    let bans = state.directory.active_bans(Utc::now()).await?;
    let page = paged_by_key(bans, &query, |b| b.scope.clone(), |b| b)?;
    let mut items = Vec::with_capacity(page.items.len());
    for ban in page.items {
        items.push(view(&state, ban).await?);
    }
    Ok(Json(List { items, next_cursor: page.next_cursor }))
}

async fn view(state: &AdminState, ban: Ban) -> Result<BanView, ApiError> {
    let login = match parse_user_scope(&ban.scope) {
        Some((tenant_id, user)) => {
            let tenant = state.directory.tenant_by_id(tenant_id).await?;
            Some(format!("{user}@{}", tenant.map_or_else(|| format!("#{tenant_id}"), |t| t.name)))
        }
        None => None,
    };
    Ok(BanView {
        scope: ban.scope,
        login,
        failures: ban.failures,
        last_failure: ban.last_failure,
        banned_until: ban.banned_until,
    })
}

/// Lifts a running ban and forgets the failures behind it. `scope` is a scope as listed, a client
/// address, or `user@tenant`; 404 when nothing under it is banned.
#[utoipa::path(delete, operation_id = "bans_lift",
    path = "/bans/{scope}", tag = "bans", params(("scope" = String, Path)),
    responses((status = 204, description = "Lifted"), Problems))]
pub async fn lift(
    State(state): State<AdminState>,
    Operator(caller): Operator,
    Path(given): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !could_name(&given) {
        return Err(ApiError::NotFound);
    }
    let scope = if given.starts_with("ip:") || given.starts_with("user:") {
        given.clone()
    } else if let Ok(ip) = given.parse::<IpAddr>() {
        ip_scope(ip, state.ipv6_prefix_len)
    } else {
        match given.split_once('@') {
            Some((user, tenant)) if !user.is_empty() => user_scope(tenant_named(&state, tenant).await?.id, user),
            _ => return Err(ApiError::NotFound),
        }
    };
    if !state.directory.lift_ban(&scope, Utc::now()).await? {
        return Err(ApiError::NotFound);
    }
    let tenant_id = parse_user_scope(&scope).map(|(id, _)| id);
    audit::record(&state, &caller, tenant_id, "ban.lift", format!("ban/{scope}"), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! A tenant's hostnames: the TLS SNI names and `HOST` arguments that select it at login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::InTenant;
use super::error::{ApiError, FieldExt as _, Problems};
use super::extract::{paged_by_key, segment, Body, Created, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::DirectoryError;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostnameView {
    /// A DNS name; stored lower case, without a trailing dot.
    #[schema(
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.?$",
        example = "ftp.acme.example"
    )]
    pub hostname: String,
}

/// The form the directory keeps a hostname in.
fn stored_form(hostname: &str) -> String {
    hostname.strip_suffix('.').unwrap_or(hostname).to_ascii_lowercase()
}

#[utoipa::path(get, operation_id = "hostnames_list", path = "/tenants/{tenant}/hostnames", tag = "hostnames",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), PageQuery),
    responses((status = 200, body = List<HostnameView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    scope: InTenant,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<HostnameView>>, ApiError> {
    let names = state.directory.hostnames(scope.tenant.id).await?;
    Ok(Json(paged_by_key(names, &query, Clone::clone, |hostname| HostnameView { hostname })?))
}

/// Maps a hostname to the tenant; 409 when it already selects a tenant.
#[utoipa::path(post, operation_id = "hostnames_add",
    path = "/tenants/{tenant}/hostnames", tag = "hostnames", request_body = HostnameView,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 201, body = HostnameView, headers(("Location" = String))), Problems))]
pub async fn add(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Body(body): Body<HostnameView>,
) -> Result<Created<HostnameView>, ApiError> {
    super::extract::plain_text("hostname", &body.hostname, 253)?;
    if state.directory.tenant_by_hostname(&body.hostname).await.field("hostname")?.is_some() {
        return Err(ApiError::Conflict("hostname".to_owned()));
    }
    state.directory.add_hostname(tenant.id, &body.hostname).await.field("hostname")?;
    let hostname = stored_form(&body.hostname);
    let target = format!("tenant/{}/hostname/{hostname}", tenant.name);
    audit::record(&state, &caller, Some(tenant.id), "hostname.add", target, json!({})).await?;
    let location = format!("/api/v1/tenants/{}/hostnames/{}", segment(&tenant.name), segment(&hostname));
    Ok(Created { location, body: HostnameView { hostname } })
}

#[utoipa::path(delete, operation_id = "hostnames_remove",
    path = "/tenants/{tenant}/hostnames/{hostname}", tag = "hostnames",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("hostname" = String, Path, example = "ftp.acme.example")),
    responses((status = 204, description = "Removed"), Problems))]
pub async fn remove(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Path((_, hostname)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !super::extract::could_name(&hostname) {
        return Err(ApiError::NotFound);
    }
    match state.directory.remove_hostname(tenant.id, &hostname).await {
        // A name that is not a hostname is not one of the tenant's either.
        Err(DirectoryError::Invalid(_)) => return Err(ApiError::NotFound),
        other => other?,
    }
    let target = format!("tenant/{}/hostname/{}", tenant.name, stored_form(&hostname));
    audit::record(&state, &caller, Some(tenant.id), "hostname.remove", target, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

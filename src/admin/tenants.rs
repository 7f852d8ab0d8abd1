//! Tenants: create, list, get, update (enabled, storage, allowed networks, quota, TLS policy), delete. Creating,
//! changing and deleting tenants is for operators; a tenant admin may read its own tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::{tenant_named, Caller, InTenant, Operator};
use super::error::{ApiError, FieldExt as _, Problems};
use super::extract::{paged, segment, Body, Created, List, PageQuery, Path, Query};
use super::views::{network_texts, networks, QuotaPatch, QuotaView, StorageView};
use super::AdminState;
use crate::config::Resumption;
use crate::directory::{self, Quota, Tenant, TenantTlsPolicy, TlsVersion};
use crate::services;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: i64,
    pub name: String,
    /// A disabled tenant's users get 530 at login, like a wrong password.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub storage: StorageView,
    /// Where the tenant's users may log in from; empty: anywhere.
    pub allowed_networks: Vec<String>,
    pub quota: QuotaView,
    /// Where the tenant's TLS policy differs from the server's `[tls]` section.
    pub tls: TlsPolicyView,
}

/// A tenant's overrides of the server's TLS policy; `null` keeps the server's setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsPolicyView {
    /// `false` lets legacy clients log in in plaintext when they name the tenant (HOST or `user@tenant`).
    #[serde(default)]
    pub require_tls_for_login: Option<bool>,
    #[serde(default)]
    pub require_prot_p: Option<bool>,
    /// `disabled` exists only server-wide.
    #[serde(default)]
    pub data_session_resumption: Option<ResumptionSetting>,
    #[serde(default)]
    pub require_same_ip_for_passive: Option<bool>,
    #[serde(default)]
    pub min_tls_version: Option<MinTlsVersion>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResumptionSetting {
    Enabled,
    Enforced,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum MinTlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl From<TenantTlsPolicy> for TlsPolicyView {
    fn from(p: TenantTlsPolicy) -> Self {
        TlsPolicyView {
            require_tls_for_login: p.require_tls_for_login,
            require_prot_p: p.require_prot_p,
            data_session_resumption: p.data_session_resumption.and_then(|r| match r {
                Resumption::Enabled => Some(ResumptionSetting::Enabled),
                Resumption::Enforced => Some(ResumptionSetting::Enforced),
                Resumption::Disabled => None,
            }),
            require_same_ip_for_passive: p.require_same_ip_for_passive,
            min_tls_version: p.min_tls_version.map(|v| match v {
                TlsVersion::Tls12 => MinTlsVersion::Tls12,
                TlsVersion::Tls13 => MinTlsVersion::Tls13,
            }),
        }
    }
}

impl From<&TlsPolicyView> for TenantTlsPolicy {
    fn from(v: &TlsPolicyView) -> Self {
        TenantTlsPolicy {
            require_tls_for_login: v.require_tls_for_login,
            require_prot_p: v.require_prot_p,
            data_session_resumption: v.data_session_resumption.map(|r| match r {
                ResumptionSetting::Enabled => Resumption::Enabled,
                ResumptionSetting::Enforced => Resumption::Enforced,
            }),
            require_same_ip_for_passive: v.require_same_ip_for_passive,
            min_tls_version: v.min_tls_version.map(|v| match v {
                MinTlsVersion::Tls12 => TlsVersion::Tls12,
                MinTlsVersion::Tls13 => TlsVersion::Tls13,
            }),
        }
    }
}

pub async fn view(state: &AdminState, tenant: Tenant) -> Result<TenantView, ApiError> {
    let quota = state.directory.tenant_account(tenant.id, Utc::now()).await?.quota;
    Ok(TenantView {
        id: tenant.id,
        name: tenant.name,
        enabled: tenant.enabled,
        created_at: tenant.created_at,
        storage: tenant.storage.into(),
        allowed_networks: network_texts(&tenant.allowed_networks),
        quota: quota.into(),
        tls: tenant.tls.into(),
    })
}

pub fn location(name: &str) -> String {
    format!("/api/v1/tenants/{}", segment(name))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1-63 lower-case letters, digits or '-'; it appears in `user@tenant` logins.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "globex")]
    pub name: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub storage: Option<StorageView>,
    #[serde(default)]
    pub allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    pub quota: Option<QuotaView>,
}

/// A partial change: fields left out stay as they are. `storage` replaces the tenant's whole storage
/// settings; `allowed_networks` the whole list (empty: anywhere); `tls` all the TLS policy overrides.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub storage: Option<StorageView>,
    #[serde(default)]
    pub allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    pub quota: Option<QuotaPatch>,
    #[serde(default)]
    pub tls: Option<TlsPolicyView>,
}

/// Tenants in creation order; a tenant admin sees its own only.
#[utoipa::path(get, operation_id = "tenants_list", path = "/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = List<TenantView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<TenantView>>, ApiError> {
    let page = query.page()?;
    let rows = match caller.tenant() {
        None => state.directory.tenants_page(page).await?,
        Some(own) => match state.directory.tenant_by_id(own).await? {
            Some(tenant) if page.after.is_none_or(|after| tenant.id > after) => vec![tenant],
            _ => Vec::new(),
        },
    };
    let list = paged(rows, &query, |t| t.id, |t| t)?;
    let mut items = Vec::with_capacity(list.items.len());
    for tenant in list.items {
        items.push(view(&state, tenant).await?);
    }
    Ok(Json(List { items, next_cursor: list.next_cursor }))
}

/// Creates a tenant (operators only).
#[utoipa::path(post, operation_id = "tenants_create", path = "/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = TenantView, headers(("Location" = String))), Problems))]
pub async fn create(
    State(state): State<AdminState>,
    Operator(caller): Operator,
    Body(new): Body<NewTenant>,
) -> Result<Created<TenantView>, ApiError> {
    directory::validate_tenant_name(&new.name).field("name")?;
    let storage = new.storage.as_ref().map(StorageView::settings).transpose()?;
    let networks = new.allowed_networks.as_deref().map(|n| networks("allowed_networks", n)).transpose()?;
    let quota = new.quota.map(|q| QuotaPatch { max_bytes: Some(q.max_bytes), max_files: Some(q.max_files) });
    let quota = quota.map(|q| q.apply(Quota::default(), "quota")).transpose()?;
    let spec = services::NewTenant {
        name: &new.name,
        storage,
        allowed_networks: networks,
        quota,
        enabled: new.enabled != Some(false),
        hostnames: &[],
    };
    let tenant = services::create_tenant(&*state.directory, spec)
        .await
        .map_err(|refused| ApiError::from(refused.error).at(refused.field))?;
    let target = format!("tenant/{}", tenant.name);
    audit::record(&state, &caller, Some(tenant.id), "tenant.create", target, json!({})).await?;
    Ok(Created { location: location(&tenant.name), body: view(&state, tenant).await? })
}

#[utoipa::path(get, operation_id = "tenants_get", path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 200, body = TenantView), Problems))]
pub async fn get(State(state): State<AdminState>, scope: InTenant) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(view(&state, scope.tenant).await?))
}

/// Changes a tenant (operators only); fields left out stay.
#[utoipa::path(patch, operation_id = "tenants_update",
    path = "/tenants/{tenant}", tag = "tenants", request_body = TenantPatch,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 200, body = TenantView), Problems))]
pub async fn update(
    State(state): State<AdminState>,
    Operator(caller): Operator,
    Path(name): Path<String>,
    Body(patch): Body<TenantPatch>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = tenant_named(&state, &name).await?;
    let dir = &state.directory;
    let storage = patch.storage.as_ref().map(StorageView::settings).transpose()?;
    let networks = patch.allowed_networks.as_deref().map(|n| networks("allowed_networks", n)).transpose()?;
    let quota = match &patch.quota {
        Some(change) => Some(change.apply(dir.tenant_account(tenant.id, Utc::now()).await?.quota, "quota")?),
        None => None,
    };
    let mut changed = Vec::new();
    if let Some(storage) = &storage {
        dir.set_tenant_storage(tenant.id, storage).await.field("storage")?;
        changed.push("storage");
    }
    if let Some(networks) = &networks {
        dir.set_tenant_networks(tenant.id, networks).await.field("allowed_networks")?;
        changed.push("allowed_networks");
    }
    if let Some(tls) = &patch.tls {
        dir.set_tenant_tls(tenant.id, &tls.into()).await.field("tls")?;
        changed.push("tls");
    }
    if let Some(quota) = &quota {
        dir.set_tenant_quota(tenant.id, quota).await.field("quota")?;
        changed.push("quota");
    }
    if let Some(enabled) = patch.enabled {
        dir.set_tenant_enabled(tenant.id, enabled).await?;
        changed.push("enabled");
        if !enabled {
            // Disabling revokes access: the tenant's open sessions are closed too, on every instance.
            dir.request_disconnect_all(tenant.id, None, chrono::Utc::now()).await?;
        }
    }
    let detail = json!({ "changed": changed, "enabled": patch.enabled });
    audit::record(&state, &caller, Some(tenant.id), "tenant.update", format!("tenant/{}", tenant.name), detail).await?;
    let tenant = dir.tenant_by_id(tenant.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(view(&state, tenant).await?))
}

/// Deletes a tenant with its users, hostnames, tokens, certificates and counters (operators only). Its
/// files stay in storage.
#[utoipa::path(delete, operation_id = "tenants_delete", path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 204, description = "Deleted"), Problems))]
pub async fn delete(
    State(state): State<AdminState>,
    Operator(caller): Operator,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_named(&state, &name).await?;
    state.directory.delete_tenant(tenant.id).await?;
    audit::record(&state, &caller, Some(tenant.id), "tenant.delete", format!("tenant/{}", tenant.name), json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

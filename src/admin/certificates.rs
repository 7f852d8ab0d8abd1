//! A tenant's certificates, served to TLS clients that name one of the tenant's hostnames: list, look at
//! one, upload (chain and key as PEM; the key is sealed before it is stored and never shown), delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::InTenant;
use super::error::{ApiError, Problems};
use super::extract::{paged, Body, Created, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::admin::CertificateInfo;

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    pub id: i64,
    pub tenant: String,
    /// The DNS names the certificate covers.
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the leaf certificate (DER), lower-case hex.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

fn view(tenant: &str, c: CertificateInfo) -> CertificateView {
    CertificateView {
        id: c.id,
        tenant: tenant.to_owned(),
        names: c.names,
        subject: c.subject,
        issuer: c.issuer,
        not_before: c.not_before,
        not_after: c.not_after,
        fingerprint: c.fingerprint,
        created_at: c.created_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificateBody {
    /// The leaf certificate first, then its intermediates (PEM).
    pub chain_pem: String,
    /// The private key (PEM); sealed before it is stored, never returned.
    pub key_pem: String,
}

/// The certificate with `id` of the scope's tenant (another tenant's is 404).
async fn of_tenant(state: &AdminState, scope: &InTenant, id: i64) -> Result<CertificateInfo, ApiError> {
    match state.directory.certificate(id).await? {
        Some(c) if c.tenant_id == scope.tenant.id => Ok(c),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(get, operation_id = "certificates_list", path = "/tenants/{tenant}/certificates", tag = "certificates",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), PageQuery),
    responses((status = 200, body = List<CertificateView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    scope: InTenant,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<CertificateView>>, ApiError> {
    let rows = state.directory.certificates_page(Some(scope.tenant.id), query.page()?).await?;
    Ok(Json(paged(rows, &query, |c| c.id, |c| view(&scope.tenant.name, c))?))
}

/// Uploads a certificate for some of the tenant's hostnames.
#[utoipa::path(post, operation_id = "certificates_upload", path = "/tenants/{tenant}/certificates", tag = "certificates",
    request_body = NewCertificateBody,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 201, body = CertificateView, headers(("Location" = String))),
        (status = 501, description = "Certificate upload is not available in this build"), Problems))]
pub async fn upload(
    State(_state): State<AdminState>,
    _scope: InTenant,
    Body(_body): Body<NewCertificateBody>,
) -> Result<Created<CertificateView>, ApiError> {
    Err(ApiError::NotImplemented("certificate upload is not available in this build yet"))
}

#[utoipa::path(get, operation_id = "certificates_get", path = "/tenants/{tenant}/certificates/{id}", tag = "certificates",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), ("id" = i64, Path)),
    responses((status = 200, body = CertificateView), Problems))]
pub async fn get(
    State(state): State<AdminState>,
    scope: InTenant,
    Path((_, id)): Path<(String, i64)>,
) -> Result<Json<CertificateView>, ApiError> {
    let certificate = of_tenant(&state, &scope, id).await?;
    Ok(Json(view(&scope.tenant.name, certificate)))
}

/// Deletes a certificate; TLS clients get another one of the tenant's (or the server's) from then on.
#[utoipa::path(delete, operation_id = "certificates_delete", path = "/tenants/{tenant}/certificates/{id}", tag = "certificates",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), ("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), Problems))]
pub async fn delete(
    State(state): State<AdminState>,
    scope: InTenant,
    Path((_, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let certificate = of_tenant(&state, &scope, id).await?;
    state.directory.delete_certificate(certificate.id).await?;
    let target = format!("tenant/{}/certificate/{id}", scope.tenant.name);
    let detail = json!({ "fingerprint": certificate.fingerprint, "names": certificate.names });
    audit::record(&state, &scope.caller, Some(scope.tenant.id), "certificate.delete", target, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

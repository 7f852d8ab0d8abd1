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
use super::extract::{paged, segment, Body, Created, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::admin::CertificateInfo;
use crate::tls;

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
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1); sealed before it is stored, never returned.
    pub key_pem: String,
    /// The tenant's hostnames the certificate must cover; default: all of them.
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
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

/// Uploads a certificate for the tenant's hostnames: checked (it must parse, match its key, cover the
/// hostnames and be valid now), its key sealed, then served for those hostnames.
#[utoipa::path(post, operation_id = "certificates_upload",
    path = "/tenants/{tenant}/certificates", tag = "certificates",
    request_body = NewCertificateBody,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 201, body = CertificateView, headers(("Location" = String))),
        Problems))]
pub async fn upload(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Body(body): Body<NewCertificateBody>,
) -> Result<Created<CertificateView>, ApiError> {
    let own = state.directory.hostnames(tenant.id).await?;
    let hostnames = match body.hostnames {
        None => own,
        Some(given) => {
            for (i, name) in given.iter().enumerate() {
                let key = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
                if !own.contains(&key) {
                    return Err(ApiError::invalid(format!("hostnames[{i}]"), "is not one of the tenant's hostnames"));
                }
            }
            given
        }
    };
    let prepared = tls::prepare(&hostnames, &body.chain_pem, &body.key_pem, &state.sealer, Utc::now())
        .map_err(|rejection| ApiError::invalid(rejection.field.as_str(), rejection.reason))?;
    let new = prepared.into_new_certificate(tenant.id);
    let saved = state.directory.save_certificate(&new, Utc::now()).await?;
    if let Some(changed) = &state.certificates_changed {
        changed.notify_one();
    }
    let target = format!("tenant/{}/certificate/{}", tenant.name, saved.id);
    let detail = json!({ "fingerprint": saved.fingerprint, "names": saved.names, "not_after": saved.not_after });
    audit::record(&state, &caller, Some(tenant.id), "certificate.upload", target, detail).await?;
    let location = format!("/api/v1/tenants/{}/certificates/{}", segment(&tenant.name), saved.id);
    Ok(Created { location, body: view(&tenant.name, saved) })
}

#[utoipa::path(get, operation_id = "certificates_get",
    path = "/tenants/{tenant}/certificates/{id}", tag = "certificates",
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
#[utoipa::path(delete, operation_id = "certificates_delete",
    path = "/tenants/{tenant}/certificates/{id}", tag = "certificates",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), ("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), Problems))]
pub async fn delete(
    State(state): State<AdminState>,
    scope: InTenant,
    Path((_, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let certificate = of_tenant(&state, &scope, id).await?;
    state.directory.delete_certificate(certificate.id).await?;
    if let Some(changed) = &state.certificates_changed {
        changed.notify_one();
    }
    let target = format!("tenant/{}/certificate/{id}", scope.tenant.name);
    let detail = json!({ "fingerprint": certificate.fingerprint, "names": certificate.names });
    audit::record(&state, &scope.caller, Some(scope.tenant.id), "certificate.delete", target, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! API tokens: a secret shown once at creation, stored as its SHA-256, with a scope (operator, or admin of
//! one tenant). Operators manage every token; a tenant admin manages its own tenant's admin tokens.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::{new_secret, secret_sha256, tenant_named, Caller};
use super::error::{ApiError, FieldExt as _, Problems};
use super::extract::{paged, Body, Created, List, PageQuery, Path, Query};
use super::AdminState;
use crate::directory::admin::{ApiToken, NewToken, TokenScope};
use crate::directory::{Directory, DirectoryError};

/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// Creates a token and returns it with its secret, which is shown this once and never stored (the
/// command line's `wharf token create` uses this too). A name already used in the same scope is a
/// conflict; a name that is empty, too long or holds control characters is invalid.
pub async fn create_token(
    directory: &dyn Directory,
    name: &str,
    scope: TokenScope,
) -> Result<(ApiToken, String), DirectoryError> {
    issue(directory, name, scope, None).await
}

async fn issue(
    directory: &dyn Directory,
    name: &str,
    scope: TokenScope,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiToken, String), DirectoryError> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(format!(
            "token name must be 1-{MAX_NAME_CHARS} characters without control characters"
        )));
    }
    let secret = new_secret();
    let new = NewToken { name: name.to_owned(), scope, secret_sha256: secret_sha256(&secret), expires_at };
    let token = directory.create_token(&new).await?;
    Ok((token, secret))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeName {
    /// Everything, every tenant.
    Operator,
    /// One tenant: its users, hostnames, certificates, sessions, usage and audit events.
    TenantAdmin,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scope: ScopeName,
    /// The tenant of a tenant admin token.
    pub tenant: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// 1-64 characters; unique within the scope.
    #[schema(min_length = 1, max_length = 64, example = "deploy")]
    pub name: String,
    pub scope: ScopeName,
    /// Required with `tenant_admin`, refused with `operator`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// When the token stops working; never if left out.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    /// The bearer secret: shown this once, never again.
    pub secret: String,
}

/// Token views with their tenants' names, looked up once per tenant.
struct Namer<'a> {
    state: &'a AdminState,
    names: HashMap<i64, Option<String>>,
}

impl Namer<'_> {
    async fn view(&mut self, token: ApiToken) -> Result<TokenView, ApiError> {
        let (scope, tenant) = match token.scope {
            TokenScope::Operator => (ScopeName::Operator, None),
            TokenScope::TenantAdmin(id) => {
                let name = match self.names.get(&id) {
                    Some(name) => name.clone(),
                    None => {
                        let name = self.state.directory.tenant_by_id(id).await?.map(|t| t.name);
                        self.names.insert(id, name.clone());
                        name
                    }
                };
                (ScopeName::TenantAdmin, name)
            }
        };
        Ok(TokenView {
            id: token.id,
            name: token.name,
            scope,
            tenant,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
        })
    }
}

/// The token with `id`, if the caller may see it (a tenant admin: its own tenant's).
async fn visible(state: &AdminState, caller: &Caller, id: i64) -> Result<ApiToken, ApiError> {
    let token = state.directory.token_by_id(id).await?.ok_or(ApiError::NotFound)?;
    match (caller.tenant(), token.scope.tenant()) {
        (None, _) => Ok(token),
        (Some(own), Some(of)) if own == of => Ok(token),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(get, operation_id = "tokens_list", path = "/tokens", tag = "tokens", params(PageQuery),
    responses((status = 200, body = List<TokenView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<TokenView>>, ApiError> {
    let rows = state.directory.tokens_page(caller.tenant(), query.page()?).await?;
    let list = paged(rows, &query, |t| t.id, |t| t)?;
    let mut namer = Namer { state: &state, names: HashMap::new() };
    let mut items = Vec::with_capacity(list.items.len());
    for token in list.items {
        items.push(namer.view(token).await?);
    }
    Ok(Json(List { items, next_cursor: list.next_cursor }))
}

/// Creates a token; the response holds its secret, shown this once. Operator tokens need an operator.
#[utoipa::path(post, operation_id = "tokens_create", path = "/tokens", tag = "tokens", request_body = NewTokenBody,
    responses((status = 201, body = CreatedToken, headers(("Location" = String))), Problems))]
pub async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    Body(body): Body<NewTokenBody>,
) -> Result<Created<CreatedToken>, ApiError> {
    let scope = match (body.scope, &body.tenant) {
        (ScopeName::Operator, _) if caller.tenant().is_some() => {
            return Err(ApiError::Forbidden("only an operator may create operator tokens"));
        }
        (ScopeName::Operator, Some(_)) => {
            return Err(ApiError::invalid("tenant", "an operator token belongs to no tenant"));
        }
        (ScopeName::Operator, None) => TokenScope::Operator,
        (ScopeName::TenantAdmin, None) => {
            return Err(ApiError::invalid("tenant", "a tenant admin token needs its tenant"));
        }
        (ScopeName::TenantAdmin, Some(name)) => {
            let tenant = tenant_named(&state, name).await?;
            caller.check_sees(tenant.id)?;
            TokenScope::TenantAdmin(tenant.id)
        }
    };
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let (token, secret) = issue(state.directory.as_ref(), &body.name, scope, body.expires_at).await.field("name")?;
    let detail = json!({ "name": token.name, "scope": body.scope });
    audit::record(&state, &caller, scope.tenant(), "token.create", format!("token/{}", token.id), detail).await?;
    let location = format!("/api/v1/tokens/{}", token.id);
    let token = Namer { state: &state, names: HashMap::new() }.view(token).await?;
    Ok(Created { location, body: CreatedToken { token, secret } })
}

#[utoipa::path(get, operation_id = "tokens_get", path = "/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = TokenView), Problems))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<TokenView>, ApiError> {
    let token = visible(&state, &caller, id).await?;
    Ok(Json(Namer { state: &state, names: HashMap::new() }.view(token).await?))
}

/// Revokes a token at once.
#[utoipa::path(delete, operation_id = "tokens_delete",
    path = "/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204, description = "Revoked"), Problems))]
pub async fn delete(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let token = visible(&state, &caller, id).await?;
    state.directory.delete_token(token.id).await?;
    let detail = json!({ "name": token.name });
    audit::record(&state, &caller, token.scope.tenant(), "token.delete", format!("token/{}", token.id), detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! A tenant's users: create, list, get, update (home, enabled, permissions, path rules, allowed networks,
//! quota), delete, and set a password. Operators and the tenant's admins may do all of it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::audit;
use super::auth::InTenant;
use super::error::{ApiError, FieldExt as _, Problems};
use super::extract::{paged, segment, Body, Created, List, PageQuery, Path, Query};
use super::views::{
    network_texts, networks, path_rules, permission_names, permissions_in, PathRule, PermissionName, QuotaPatch,
    QuotaView,
};
use super::AdminState;
use crate::access::Access;
use crate::auth::password;
use crate::directory::{self, NewUser, Quota, Tenant, User};

/// Shortest password accepted, as on the command line.
pub const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub tenant: String,
    pub username: String,
    /// The user's root inside the tenant's tree.
    pub home: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// What the user may do in its whole tree…
    pub permissions: Vec<PermissionName>,
    /// …and per sub-path (the longest matching path wins).
    pub path_permissions: Vec<PathRule>,
    /// Where the user may log in from, within the tenant's networks; empty: anywhere.
    pub allowed_networks: Vec<String>,
    pub quota: QuotaView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// 1-64 characters without '@', spaces or control characters.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "bob")]
    pub username: String,
    /// At least 8 characters, one line. Stored as an argon2id hash; never shown.
    #[schema(min_length = 8, max_length = 1024, pattern = "^[^\\r\\n]*$")]
    pub password: String,
    /// Default `/`.
    #[serde(default)]
    pub home: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default: all.
    #[serde(default)]
    pub permissions: Option<Vec<PermissionName>>,
    #[serde(default)]
    pub path_permissions: Option<Vec<PathRule>>,
    #[serde(default)]
    pub allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    pub quota: Option<QuotaView>,
}

/// A partial change: fields left out stay as they are; lists replace the current ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub home: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub permissions: Option<Vec<PermissionName>>,
    #[serde(default)]
    pub path_permissions: Option<Vec<PathRule>>,
    #[serde(default)]
    pub allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    pub quota: Option<QuotaPatch>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(min_length = 8, max_length = 1024, pattern = "^[^\\r\\n]*$")]
    pub password: String,
}

/// The checks the command line makes on a new password.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if password.contains(['\r', '\n', '\0']) {
        return Err(ApiError::invalid("password", "must be a single line"));
    }
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

async fn hash(state: &AdminState, password: String) -> Result<String, ApiError> {
    let params = state.passwords;
    let hashed = tokio::task::spawn_blocking(move || password::hash(&password, &params)).await;
    match hashed {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "hashing a password failed");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::error!(error = %e, "password hashing task failed");
            Err(ApiError::Internal)
        }
    }
}

/// The per-path rules of `access`, as the API shows them.
fn rules_of(access: &Access) -> Vec<PathRule> {
    access
        .rules()
        .iter()
        .map(|(path, set)| PathRule { path: path.as_str().to_owned(), permissions: permission_names(*set) })
        .collect()
}

pub async fn view(state: &AdminState, tenant: &Tenant, user: User) -> Result<UserView, ApiError> {
    let quota = state.directory.user_account(user.id, Utc::now()).await?.quota;
    Ok(UserView {
        id: user.id,
        tenant: tenant.name.clone(),
        path_permissions: rules_of(&user.access),
        permissions: permission_names(user.access.permissions),
        username: user.username,
        home: user.home,
        enabled: user.enabled,
        created_at: user.created_at,
        last_login_at: user.last_login_at,
        allowed_networks: network_texts(&user.allowed_networks),
        quota: quota.into(),
    })
}

/// The user called `username` in `tenant`; 404 for a name no user could have.
pub async fn user_named(state: &AdminState, tenant: &Tenant, username: &str) -> Result<User, ApiError> {
    if directory::validate_username(username).is_err() {
        return Err(ApiError::NotFound);
    }
    state.directory.user_by_name(tenant.id, username).await?.ok_or(ApiError::NotFound)
}

fn target(tenant: &Tenant, username: &str) -> String {
    format!("tenant/{}/user/{username}", tenant.name)
}

#[utoipa::path(get, operation_id = "users_list", path = "/tenants/{tenant}/users", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"), PageQuery),
    responses((status = 200, body = List<UserView>), Problems))]
pub async fn list(
    State(state): State<AdminState>,
    scope: InTenant,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<UserView>>, ApiError> {
    let rows = state.directory.users_page(Some(scope.tenant.id), query.page()?).await?;
    let list = paged(rows, &query, |u| u.id, |u| u)?;
    let mut items = Vec::with_capacity(list.items.len());
    for user in list.items {
        items.push(view(&state, &scope.tenant, user).await?);
    }
    Ok(Json(List { items, next_cursor: list.next_cursor }))
}

#[utoipa::path(post, operation_id = "users_create",
    path = "/tenants/{tenant}/users", tag = "users", request_body = NewUserBody,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme")),
    responses((status = 201, body = UserView, headers(("Location" = String))), Problems))]
pub async fn create(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Body(new): Body<NewUserBody>,
) -> Result<Created<UserView>, ApiError> {
    let dir = &state.directory;
    directory::validate_username(&new.username).field("username")?;
    check_password(&new.password)?;
    let home = directory::normalize_home(new.home.as_deref().unwrap_or("/")).field("home")?;
    let rules = new.path_permissions.as_deref().map(path_rules).transpose()?;
    let networks = new.allowed_networks.as_deref().map(|n| networks("allowed_networks", n)).transpose()?;
    let quota = new.quota.map(|q| QuotaPatch { max_bytes: Some(q.max_bytes), max_files: Some(q.max_files) });
    let quota = quota.map(|q| q.apply(Quota::default(), "quota")).transpose()?;
    let password_hash = hash(&state, new.password).await?;
    let new_user = NewUser { username: new.username.clone(), password_hash, home };
    let user = dir.create_user(tenant.id, new_user).await.field("username")?;
    let name = user.username.clone();
    let configured = async {
        if let Some(permissions) = &new.permissions {
            dir.set_permissions(tenant.id, &name, permissions_in(permissions)).await.field("permissions")?;
        }
        if let Some(rules) = &rules {
            dir.set_path_permissions(tenant.id, &name, rules).await.field("path_permissions")?;
        }
        if let Some(networks) = &networks {
            dir.set_user_networks(tenant.id, &name, networks).await.field("allowed_networks")?;
        }
        if let Some(quota) = &quota {
            dir.set_user_quota(tenant.id, &name, quota).await.field("quota")?;
        }
        if new.enabled == Some(false) {
            dir.set_user_enabled(tenant.id, &name, false).await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = configured {
        if let Err(undo) = dir.delete_user(tenant.id, &name).await {
            tracing::error!(user = %name, error = %undo, "removing a half-created user failed");
        }
        return Err(e);
    }
    audit::record(&state, &caller, Some(tenant.id), "user.create", target(&tenant, &name), json!({})).await?;
    let user = user_named(&state, &tenant, &name).await?;
    let location = format!("/api/v1/tenants/{}/users/{}", segment(&tenant.name), segment(&name));
    Ok(Created { location, body: view(&state, &tenant, user).await? })
}

#[utoipa::path(get, operation_id = "users_get", path = "/tenants/{tenant}/users/{username}", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("username" = String, Path, example = "alice")),
    responses((status = 200, body = UserView), Problems))]
pub async fn get(
    State(state): State<AdminState>,
    scope: InTenant,
    Path((_, username)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let user = user_named(&state, &scope.tenant, &username).await?;
    Ok(Json(view(&state, &scope.tenant, user).await?))
}

#[utoipa::path(patch, operation_id = "users_update",
    path = "/tenants/{tenant}/users/{username}", tag = "users", request_body = UserPatch,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("username" = String, Path, example = "alice")),
    responses((status = 200, body = UserView), Problems))]
pub async fn update(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Path((_, username)): Path<(String, String)>,
    Body(patch): Body<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let dir = &state.directory;
    let user = user_named(&state, &tenant, &username).await?;
    // Everything is checked before anything is written, so a bad field changes nothing.
    let home = patch.home.as_deref().map(directory::normalize_home).transpose().field("home")?;
    let rules = patch.path_permissions.as_deref().map(path_rules).transpose()?;
    let networks = patch.allowed_networks.as_deref().map(|n| networks("allowed_networks", n)).transpose()?;
    let quota = match &patch.quota {
        Some(change) => Some(change.apply(dir.user_account(user.id, Utc::now()).await?.quota, "quota")?),
        None => None,
    };
    let mut changed = Vec::new();
    if let Some(home) = &home {
        dir.set_user_home(tenant.id, &username, home).await.field("home")?;
        changed.push("home");
    }
    if let Some(permissions) = &patch.permissions {
        dir.set_permissions(tenant.id, &username, permissions_in(permissions)).await.field("permissions")?;
        changed.push("permissions");
    }
    if let Some(rules) = &rules {
        dir.set_path_permissions(tenant.id, &username, rules).await.field("path_permissions")?;
        changed.push("path_permissions");
    }
    if let Some(networks) = &networks {
        dir.set_user_networks(tenant.id, &username, networks).await.field("allowed_networks")?;
        changed.push("allowed_networks");
    }
    if let Some(quota) = &quota {
        dir.set_user_quota(tenant.id, &username, quota).await.field("quota")?;
        changed.push("quota");
    }
    if let Some(enabled) = patch.enabled {
        dir.set_user_enabled(tenant.id, &username, enabled).await?;
        changed.push("enabled");
        if !enabled {
            // Disabling revokes access: the user's open sessions are closed too, on every instance.
            let user = user_named(&state, &tenant, &username).await?;
            dir.request_disconnect_all(tenant.id, Some(user.id), chrono::Utc::now()).await?;
        }
    }
    let detail = json!({ "changed": changed, "enabled": patch.enabled });
    audit::record(&state, &caller, Some(tenant.id), "user.update", target(&tenant, &username), detail).await?;
    let user = user_named(&state, &tenant, &username).await?;
    Ok(Json(view(&state, &tenant, user).await?))
}

/// Deletes a user and what is kept about it; its files stay in storage.
#[utoipa::path(delete, operation_id = "users_delete", path = "/tenants/{tenant}/users/{username}", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("username" = String, Path, example = "alice")),
    responses((status = 204, description = "Deleted"), Problems))]
pub async fn delete(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Path((_, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = user_named(&state, &tenant, &username).await?;
    state.directory.delete_user(tenant.id, &user.username).await?;
    audit::record(&state, &caller, Some(tenant.id), "user.delete", target(&tenant, &user.username), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password; the next login needs the new one.
#[utoipa::path(put, operation_id = "users_set_password",
    path = "/tenants/{tenant}/users/{username}/password", tag = "users",
    request_body = PasswordBody,
    params(("tenant" = String, Path, description = "The tenant's name", example = "acme"),
        ("username" = String, Path, example = "alice")),
    responses((status = 204, description = "Changed"), Problems))]
pub async fn set_password(
    State(state): State<AdminState>,
    InTenant { caller, tenant }: InTenant,
    Path((_, username)): Path<(String, String)>,
    Body(body): Body<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let user = user_named(&state, &tenant, &username).await?;
    check_password(&body.password)?;
    let password_hash = hash(&state, body.password).await?;
    state.directory.set_password(tenant.id, &user.username, &password_hash).await?;
    audit::record(&state, &caller, Some(tenant.id), "user.password", target(&tenant, &user.username), json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::VirtualPath;

    #[test]
    fn path_rules_are_read_back_from_access() {
        let root = VirtualPath::root();
        let access = Access::new(
            "list,read".parse().unwrap(),
            [
                (root.resolve("/in").unwrap(), "all".parse().unwrap()),
                (root.resolve("/a=b").unwrap(), "none".parse().unwrap()),
            ],
        );
        let rules = rules_of(&access);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0], PathRule { path: "/a=b".into(), permissions: vec![] });
        assert_eq!(rules[1].path, "/in");
        assert_eq!(rules[1].permissions.len(), 6);
        assert!(rules_of(&Access::default()).is_empty());
    }

    #[test]
    fn passwords_are_checked_like_the_cli_does() {
        assert!(check_password("long enough").is_ok());
        for bad in ["short", "two\nlines here", ""] {
            assert!(matches!(check_password(bad), Err(ApiError::Invalid { field: Some(f), .. }) if f == "password"));
        }
    }
}

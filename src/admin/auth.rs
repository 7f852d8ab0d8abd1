//! Who is calling: bearer tokens (stored as the SHA-256 of a secret shown once), and the scope a route
//! needs, checked once by the extractor a handler asks for ([`Caller`], [`Operator`], [`InTenant`]) before
//! any body is read.
//!
//! A tenant admin's view is its own tenant: another tenant's resources answer 404, exactly as if they did not
//! exist, so tenant names and ids never leak across tenants. Routes that only operators may use answer 403
//! to a tenant admin, whatever they name.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::serve::IncomingStream;
use chrono::Utc;
use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::AdminState;
use crate::directory::admin::{ApiToken, TokenScope};
use crate::directory::{self, Tenant};

/// A token's secret: `wharf_` and 43 characters of URL-safe base64 (32 random bytes).
pub fn new_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!("wharf_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What the directory stores of a secret: its SHA-256, lower-case hex.
pub fn secret_sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The remote address of an API call (axum's connect info, for plain and TLS listeners alike).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, super::tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, super::tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Any caller with a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: ApiToken,
    pub client: Option<SocketAddr>,
}

impl Caller {
    /// How the audit log names the caller: the token's name and id (`ops#3`).
    pub fn actor(&self) -> String {
        format!("{}#{}", self.token.name, self.token.id)
    }

    /// The tenant the caller is limited to; `None` for operators.
    pub fn tenant(&self) -> Option<i64> {
        self.token.scope.tenant()
    }

    /// Whether the caller may see resources of `tenant_id`.
    pub fn sees(&self, tenant_id: i64) -> bool {
        self.tenant().is_none_or(|own| own == tenant_id)
    }

    /// 404 unless the caller may see resources of `tenant_id`.
    pub fn check_sees(&self, tenant_id: i64) -> Result<(), ApiError> {
        if self.sees(tenant_id) {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthenticated)?;
        let (scheme, secret) = header.trim().split_once(' ').ok_or(ApiError::Unauthenticated)?;
        let secret = secret.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() || secret.len() > 256 {
            return Err(ApiError::Unauthenticated);
        }
        let token = state.directory.use_token(&secret_sha256(secret), Utc::now()).await?;
        let token = token.ok_or(ApiError::Unauthenticated)?;
        let client = parts.extensions.get::<ConnectInfo<ClientAddr>>().map(|info| info.0 .0);
        Ok(Caller { token, client })
    }
}

/// A caller with the operator scope; tenant admins get 403.
#[derive(Debug, Clone)]
pub struct Operator(pub Caller);

impl FromRequestParts<AdminState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.token.scope {
            TokenScope::Operator => Ok(Operator(caller)),
            TokenScope::TenantAdmin(_) => Err(ApiError::Forbidden("this route needs an operator token")),
        }
    }
}

/// A caller and the tenant named by the route's `{tenant}`, which the caller may see: operators any that
/// exists, tenant admins their own (another tenant is 404, as if it did not exist).
#[derive(Debug, Clone)]
pub struct InTenant {
    pub caller: Caller,
    pub tenant: Tenant,
}

impl FromRequestParts<AdminState> for InTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        let name = params.iter().find(|(key, _)| *key == "tenant").map(|(_, v)| v.to_owned());
        let name = name.ok_or(ApiError::NotFound)?;
        let tenant = tenant_named(state, &name).await?;
        caller.check_sees(tenant.id)?;
        Ok(InTenant { caller, tenant })
    }
}

/// The tenant called `name`; 404 for a name that is not one (no tenant could have it).
pub async fn tenant_named(state: &AdminState, name: &str) -> Result<Tenant, ApiError> {
    if directory::validate_tenant_name(name).is_err() {
        return Err(ApiError::NotFound);
    }
    state.directory.tenant_by_name(name).await?.ok_or(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("wharf_") && a.len() == 6 + 43, "{a}");
        let hash = secret_sha256(&a);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(secret_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

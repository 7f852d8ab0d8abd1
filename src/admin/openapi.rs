//! The OpenAPI 3.1 document's frame: title, the bearer security scheme and the tags. The paths and
//! schemas come from the handlers' `#[utoipa::path]` annotations (see [`super::router`]), so the document
//! cannot drift from the code.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::Modify;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "wharf admin API",
        description = "Tenants, users, hostnames, certificates, API tokens, live sessions, bans, usage and the \
                       audit log of a wharf FTPS server. Errors are RFC 9457 problem documents; listings page \
                       with `?limit=&cursor=`.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tenants"), (name = "users"), (name = "hostnames"), (name = "certificates"), (name = "tokens"),
        (name = "sessions"), (name = "bans"), (name = "usage"), (name = "audit"), (name = "health"),
        (name = "metrics")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_covers_every_route() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/tenants",
            "/api/v1/tenants/{tenant}",
            "/api/v1/tenants/{tenant}/users",
            "/api/v1/tenants/{tenant}/users/{username}",
            "/api/v1/tenants/{tenant}/users/{username}/password",
            "/api/v1/tenants/{tenant}/users/{username}/usage",
            "/api/v1/tenants/{tenant}/hostnames",
            "/api/v1/tenants/{tenant}/hostnames/{hostname}",
            "/api/v1/tenants/{tenant}/certificates",
            "/api/v1/tenants/{tenant}/certificates/{id}",
            "/api/v1/tenants/{tenant}/usage",
            "/api/v1/tokens",
            "/api/v1/tokens/{id}",
            "/api/v1/sessions",
            "/api/v1/sessions/{id}",
            "/api/v1/bans",
            "/api/v1/bans/{scope}",
            "/api/v1/audit",
        ] {
            assert!(paths.contains_key(path), "{path} missing from the document");
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
}

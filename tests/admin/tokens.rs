//! API tokens: the secret is shown once and works at once; revoked or expired tokens are 401; scopes are
//! enforced when tokens are made (a tenant admin cannot mint an operator token).

use reqwest::Method;
use serde_json::json;

use crate::support::admin::Api;

#[tokio::test]
async fn a_token_made_through_the_api_works_until_it_is_revoked() {
    let api = Api::start().await;
    let created = api.op_post("/api/v1/tokens", json!({"name": "ci", "scope": "operator"})).await.expect(201);
    let id = created.body["token"]["id"].as_i64().unwrap();
    assert_eq!(created.location, Some(format!("/api/v1/tokens/{id}")));
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("wharf_"));
    assert_eq!(created.body["token"]["scope"], "operator");
    assert_eq!(api.last_audit().await["action"], "token.create");

    api.get(&secret, "/api/v1/tenants").await.expect(200);
    let listed = api.all(&secret, "/api/v1/tokens", 1).await;
    assert_eq!(listed.len(), 2, "ops and ci: {listed:?}");
    assert!(listed.iter().all(|t| t.get("secret").is_none()), "secrets are never listed");
    let shown = api.get(&secret, &format!("/api/v1/tokens/{id}")).await.expect(200);
    assert!(shown.body["last_used_at"].is_string(), "use is recorded: {:#?}", shown.body);

    api.delete(&api.operator.clone(), &format!("/api/v1/tokens/{id}")).await.expect(204);
    assert_eq!(api.last_audit().await["action"], "token.delete");
    api.get(&secret, "/api/v1/tenants").await.expect(401);
    api.op_get(&format!("/api/v1/tokens/{id}")).await.expect(404);
    api.op_get("/api/v1/tokens/not-a-number").await.expect(404);
}

#[tokio::test]
async fn token_scopes_and_expiry_are_checked() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let admin = api.op_post("/api/v1/tokens", json!({"name": "acme-admin", "scope": "tenant_admin", "tenant": "acme"}));
    let admin = admin.await.expect(201);
    assert_eq!(admin.body["token"]["tenant"], "acme");
    let admin_secret = admin.body["secret"].as_str().unwrap().to_owned();

    // A tenant admin may make its own tenant's admin tokens, never an operator token.
    let own =
        api.post(&admin_secret, "/api/v1/tokens", json!({"name": "helper", "scope": "tenant_admin", "tenant": "acme"}));
    own.await.expect(201);
    api.post(&admin_secret, "/api/v1/tokens", json!({"name": "root", "scope": "operator"})).await.expect(403);
    let listed = api.all(&admin_secret, "/api/v1/tokens", 10).await;
    assert_eq!(listed.len(), 2, "only acme's admin tokens: {listed:?}");

    let cases = [
        (json!({"name": "x", "scope": "tenant_admin"}), "tenant"),
        (json!({"name": "x", "scope": "operator", "tenant": "acme"}), "tenant"),
        (json!({"name": "", "scope": "operator"}), "name"),
        (json!({"name": "x", "scope": "god"}), "scope"),
        (json!({"name": "x", "scope": "operator", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "x", "scope": "operator", "expires_at": "tomorrow"}), "expires_at"),
    ];
    for (body, field) in cases {
        let reply = api.post(&op, "/api/v1/tokens", body.clone()).await.expect(422);
        assert_eq!(reply.field(), field, "{body}: {reply:#?}");
    }
    api.post(&op, "/api/v1/tokens", json!({"name": "acme-admin", "scope": "tenant_admin", "tenant": "acme"}))
        .await
        .expect(409);
    api.post(&op, "/api/v1/tokens", json!({"name": "y", "scope": "tenant_admin", "tenant": "nosuch"}))
        .await
        .expect(404);

    // A token past its expiry (made straight in the directory, since the API refuses such a date).
    let secret = wharf::admin::auth::new_secret();
    let expired = wharf::directory::admin::NewToken {
        name: "expired".into(),
        scope: wharf::directory::admin::TokenScope::Operator,
        secret_sha256: wharf::admin::auth::secret_sha256(&secret),
        expires_at: Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1)),
    };
    api.wharf.directory.create_token(&expired).await.unwrap();
    api.get(&secret, "/api/v1/tenants").await.expect(401);
    api.call(Some(&secret), Method::GET, "/api/v1/audit", None).await.expect(401);
}

//! Tenants: create (201 + Location), list with cursor pagination, get, PATCH, delete; problems that name
//! the field; 401 without a valid token; every change in the audit log.

use reqwest::Method;
use serde_json::json;

use crate::support::admin::Api;

#[tokio::test]
async fn tenants_are_created_read_changed_and_deleted_with_an_audit_trail() {
    let api = Api::start().await;
    let created = api
        .op_post(
            "/api/v1/tenants",
            json!({"name": "globex", "allowed_networks": ["203.0.113.0/24"], "quota": {"max_bytes": 1000}}),
        )
        .await
        .expect(201);
    assert_eq!(created.location.as_deref(), Some("/api/v1/tenants/globex"));
    assert_eq!(created.body["name"], "globex");
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["allowed_networks"], json!(["203.0.113.0/24"]));
    assert_eq!(created.body["quota"], json!({"max_bytes": 1000, "max_files": null}));

    let event = api.last_audit().await;
    assert_eq!(event["action"], "tenant.create");
    assert_eq!(event["target"], "tenant/globex");
    assert!(event["actor"].as_str().unwrap().starts_with("ops#"), "{event}");
    assert!(event["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{event}");

    let got = api.op_get("/api/v1/tenants/globex").await.expect(200);
    assert_eq!(got.body, created.body);

    let op = api.operator.clone();
    let patched = api
        .patch(&op, "/api/v1/tenants/globex", json!({"enabled": false, "quota": {"max_files": 5}}))
        .await
        .expect(200);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["quota"], json!({"max_bytes": 1000, "max_files": 5}), "max_bytes left as it was");
    assert_eq!(patched.body["allowed_networks"], json!(["203.0.113.0/24"]), "networks left as they were");
    let patched = api
        .patch(
            &op,
            "/api/v1/tenants/globex",
            json!({"quota": {"max_bytes": null}, "allowed_networks": [], "storage": {"prefix": "globex-files"}}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["quota"], json!({"max_bytes": null, "max_files": 5}));
    assert_eq!(patched.body["allowed_networks"], json!([]));
    assert_eq!(patched.body["storage"]["prefix"], "globex-files/");
    assert_eq!(api.last_audit().await["action"], "tenant.update");
    let tenant = api.wharf.directory.tenant_by_name("globex").await.unwrap().unwrap();
    assert!(!tenant.enabled, "the change reached the directory");

    api.delete(&op, "/api/v1/tenants/globex").await.expect(204);
    assert_eq!(api.last_audit().await["action"], "tenant.delete");
    api.op_get("/api/v1/tenants/globex").await.expect(404);
    api.delete(&op, "/api/v1/tenants/globex").await.expect(404);
    assert!(api.wharf.directory.tenant_by_name("globex").await.unwrap().is_none());
}

#[tokio::test]
async fn listings_page_with_an_opaque_cursor() {
    let api = Api::start().await;
    for name in ["t1", "t2", "t3", "t4"] {
        api.op_post("/api/v1/tenants", json!({"name": name})).await.expect(201);
    }
    let op = api.operator.clone();
    let first = api.get(&op, "/api/v1/tenants?limit=2").await.expect(200);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    assert!(first.body["next_cursor"].is_string());
    let names: Vec<String> =
        api.all(&op, "/api/v1/tenants", 2).await.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["acme", "t1", "t2", "t3", "t4"], "every tenant once, in creation order");
    let all_at_once = api.get(&op, "/api/v1/tenants?limit=500").await.expect(200);
    assert!(all_at_once.body["next_cursor"].is_null());

    assert_eq!(api.get(&op, "/api/v1/tenants?limit=0").await.expect(422).field(), "limit");
    assert_eq!(api.get(&op, "/api/v1/tenants?limit=501").await.expect(422).field(), "limit");
    assert_eq!(api.get(&op, "/api/v1/tenants?limit=many").await.expect(422).field(), "limit");
    assert_eq!(api.get(&op, "/api/v1/tenants?cursor=bm9wZQ").await.expect(422).field(), "cursor");
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let cases = [
        (json!({"name": "Not Valid"}), "name"),
        (json!({}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "ok", "colour": "red"}), "colour"),
        (json!({"name": "ok", "allowed_networks": ["10.0.0.0/8", "nonsense"]}), "allowed_networks[1]"),
        (json!({"name": "ok", "quota": {"max_bytes": -1}}), "quota.max_bytes"),
        (json!({"name": "ok", "quota": {"max_bytes": "lots"}}), "quota.max_bytes"),
        (json!({"name": "ok", "storage": {"endpoint": "ftp://x"}}), "storage"),
        (json!({"name": "ok", "storage": {"secret_ref": "plain"}}), "storage"),
    ];
    for (body, field) in cases {
        let reply = api.post(&op, "/api/v1/tenants", body.clone()).await.expect(422);
        assert_eq!(reply.field(), field, "{body}: {reply:#?}");
    }
    assert!(api.wharf.directory.tenant_by_name("ok").await.unwrap().is_none(), "nothing half-made");
    let reply = api.patch(&op, "/api/v1/tenants/acme", json!({"allowed_networks": ["10.0.0.1/8"]})).await;
    assert_eq!(reply.expect(422).field(), "allowed_networks[0]", "host bits set");

    api.post(&op, "/api/v1/tenants", json!({"name": "acme"})).await.expect(409);
    let malformed = api.request(Method::POST, "/api/v1/tenants").bearer_auth(&op).body("{\"name\": ");
    api.send(malformed).await.expect(400);
    api.op_get("/api/v1/tenants/no-such").await.expect(404);
    api.op_get("/api/v1/tenants/NOT%20A%20NAME").await.expect(404);
    api.op_get("/api/v1/nothing/here").await.expect(404);
    api.call(Some(&op), Method::PUT, "/api/v1/tenants", None).await.expect(405);
}

#[tokio::test]
async fn a_missing_or_bad_token_is_401_and_changes_nothing() {
    let api = Api::start().await;
    let body = json!({"name": "sneaky"});
    let reply = api.call(None, Method::POST, "/api/v1/tenants", Some(body.clone())).await.expect(401);
    assert!(reply.body["detail"].as_str().unwrap().contains("token"));
    api.call(Some("wharf_not-a-real-token"), Method::POST, "/api/v1/tenants", Some(body.clone())).await.expect(401);
    let basic = api.request(Method::GET, "/api/v1/tenants").basic_auth("ops", Some("pw"));
    api.send(basic).await.expect(401);
    assert!(api.wharf.directory.tenant_by_name("sneaky").await.unwrap().is_none());
}

#[tokio::test]
async fn a_tenants_tls_policy_is_changed_through_the_api_and_holds_for_its_logins() {
    let api = Api::start().await;
    let path = "/api/v1/tenants/acme";
    let shown = api.op_get(path).await.expect(200).body;
    assert_eq!(shown["tls"]["require_tls_for_login"], serde_json::Value::Null, "the server's policy");

    let relaxed = json!({"tls": {"require_tls_for_login": false, "min_tls_version": "1.3"}});
    let patched = api.patch(&api.operator.clone(), path, relaxed).await.expect(200).body;
    assert_eq!(patched["tls"]["require_tls_for_login"], false);
    assert_eq!(patched["tls"]["min_tls_version"], "1.3");
    assert_eq!(api.last_audit().await["detail"]["changed"], json!(["tls"]));
    // A plaintext login naming acme now works (the TLS 1.3 minimum concerns TLS connections only).
    let (mut ftp, _) = crate::support::raw::Ftp::connect(api.wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {}", crate::support::PASSWORD)).await.code, 230);

    let bad = json!({"tls": {"data_session_resumption": "disabled"}});
    api.patch(&api.operator.clone(), path, bad).await.expect(422);
    // `tls` replaces all overrides: an empty object returns to the server's policy.
    let reset = api.patch(&api.operator.clone(), path, json!({"tls": {}})).await.expect(200).body;
    assert_eq!(reset["tls"]["min_tls_version"], serde_json::Value::Null);
    let (mut ftp, _) = crate::support::raw::Ftp::connect(api.wharf.explicit).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 530);
}

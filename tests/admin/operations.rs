//! Running wharf through the API: live sessions (list, look, disconnect), bans (list, lift), usage, the
//! audit log, certificates, `/healthz` and `/readyz`, the OpenAPI document; HTTPS on the admin listener;
//! the same API on Postgres.

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use wharf::directory::admin::LiveSession;
use wharf::directory::FailurePolicy;

use crate::support::admin::Api;
use crate::support::postgres::Database;
use crate::support::raw::Ftp;

#[tokio::test]
async fn health_readiness_and_the_openapi_document_need_no_token() {
    let api = Api::start().await;
    let health = api.call(None, Method::GET, "/healthz", None).await.expect(200);
    assert_eq!(health.body["status"], "ok");
    let ready = api.call(None, Method::GET, "/readyz?strict=true", None).await.expect(200);
    assert_eq!((ready.body["directory"].as_str(), ready.body["storage"].as_str()), (Some("ok"), Some("ok")));
    let doc = api.call(None, Method::GET, "/api/v1/openapi.json", None).await.expect(200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/v1/tenants/{tenant}/users/{username}"]["patch"].is_object());
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());

    // Storage gone: not ready, and the reply says which part is down.
    match &api.wharf.s3 {
        None => std::fs::rename(api.wharf.config.fs_root(), api.wharf.config.data_dir.join("moved")).unwrap(),
        Some(bucket) => {
            for key in bucket.keys("").await {
                bucket.client.delete_object().bucket(&bucket.name).key(key).send().await.unwrap();
            }
            bucket.client.delete_bucket().bucket(&bucket.name).send().await.unwrap();
        }
    }
    // Still ready (a shared dependency's outage must not take every replica out of service at once), and
    // the body says what is down; `strict` fails on it.
    let ready = api.call(None, Method::GET, "/readyz", None).await.expect(200);
    assert_eq!((ready.body["directory"].as_str(), ready.body["storage"].as_str()), (Some("ok"), Some("down")));
    let down = api.call(None, Method::GET, "/readyz?strict=true", None).await.expect(503);
    assert!(down.body["detail"].as_str().unwrap().contains("storage"), "{down:#?}");
    api.call(None, Method::GET, "/healthz", None).await.expect(200);
}

#[tokio::test]
async fn live_sessions_are_listed_and_disconnected_across_instances() {
    let api = Api::start().await;
    let dir = &*api.wharf.directory;
    let acme = dir.tenant_by_name("acme").await.unwrap().unwrap();
    let alice = dir.user_by_name(acme.id, "alice").await.unwrap().unwrap();
    let session = |id: &str, instance: &str| LiveSession {
        id: id.to_owned(),
        instance: instance.to_owned(),
        tenant_id: acme.id,
        user_id: alice.id,
        username: "alice".to_owned(),
        client: "127.0.0.1:40000".to_owned(),
        started_at: Utc::now(),
    };
    dir.instance_alive("live", Utc::now()).await.unwrap();
    dir.instance_alive("dead", Utc::now() - TimeDelta::minutes(5)).await.unwrap();
    for (id, instance) in [("s1", "live"), ("s2", "live"), ("s3", "dead")] {
        dir.register_session(&session(id, instance)).await.unwrap();
    }
    let op = api.operator.clone();
    let listed = api.all(&op, "/api/v1/sessions", 1).await;
    let ids: Vec<_> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s1", "s2"], "the dead instance's session is not listed");
    assert_eq!(listed[0]["tenant"], "acme");
    assert_eq!(listed[0]["username"], "alice");
    api.op_get("/api/v1/sessions/s2").await.expect(200);
    api.op_get("/api/v1/sessions/nope").await.expect(404);

    api.delete(&op, "/api/v1/sessions/s2").await.expect(202);
    let requested: Vec<String> =
        dir.instance_sessions("live").await.unwrap().into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect();
    assert_eq!(requested, ["s2"]);
    let event = api.last_audit().await;
    assert_eq!((event["action"].as_str(), event["tenant_id"].as_i64()), (Some("session.disconnect"), Some(acme.id)));
    api.delete(&op, "/api/v1/sessions/nope").await.expect(404);
}

#[tokio::test]
async fn bans_are_listed_and_lifted_by_scope_address_or_login() {
    let api = Api::start().await;
    let dir = &*api.wharf.directory;
    let acme = dir.tenant_by_name("acme").await.unwrap().unwrap();
    let policy = FailurePolicy {
        window: TimeDelta::minutes(10),
        ban_after: Some(1),
        ban: TimeDelta::minutes(10),
        max_ban: TimeDelta::hours(1),
    };
    for scope in ["ip:203.0.113.7".to_owned(), "ip:203.0.113.8".to_owned(), format!("user:{}:alice", acme.id)] {
        dir.record_login_failure(&scope, &policy, Utc::now()).await.unwrap();
    }
    let op = api.operator.clone();
    let bans = api.all(&op, "/api/v1/bans", 2).await;
    assert_eq!(bans.len(), 3, "{bans:?}");
    let user_ban = bans.iter().find(|b| b["scope"].as_str().unwrap().starts_with("user:")).unwrap();
    assert_eq!(user_ban["login"], "alice@acme");
    assert_eq!(user_ban["failures"], 1);

    api.delete(&op, "/api/v1/bans/ip:203.0.113.7").await.expect(204);
    api.delete(&op, "/api/v1/bans/203.0.113.8").await.expect(204);
    api.delete(&op, "/api/v1/bans/alice@acme").await.expect(204);
    assert_eq!(api.last_audit().await["action"], "ban.lift");
    assert!(api.all(&op, "/api/v1/bans", 10).await.is_empty());
    api.delete(&op, "/api/v1/bans/ip:203.0.113.7").await.expect(404);
    api.delete(&op, "/api/v1/bans/alice@nosuch").await.expect(404);
    api.delete(&op, "/api/v1/bans/gibberish").await.expect(404);
    // alice can log in again.
    Ftp::login(api.wharf.explicit, "alice@acme", crate::support::PASSWORD).await;
}

#[tokio::test]
async fn usage_shows_what_tenants_and_users_store() {
    let api = Api::start().await;
    let op = api.operator.clone();
    api.patch(&op, "/api/v1/tenants/acme", json!({"quota": {"max_bytes": 1000000}})).await.expect(200);
    let mut ftp = Ftp::login(api.wharf.explicit, "alice@acme", crate::support::PASSWORD).await;
    assert_eq!(ftp.store("STOR", "a.bin", &[7u8; 1234]).await.code, 226);
    let tenant = api.op_get("/api/v1/tenants/acme/usage").await.expect(200);
    assert_eq!(tenant.body["used"], json!({"bytes": 1234, "files": 1}));
    assert_eq!(tenant.body["quota"]["max_bytes"], 1000000);
    let user = api.op_get("/api/v1/tenants/acme/users/alice/usage").await.expect(200);
    assert_eq!(user.body["used"], json!({"bytes": 1234, "files": 1}));
    assert_eq!(user.body["reserved"], json!({"bytes": 0, "files": 0}));
    api.op_get("/api/v1/tenants/acme/users/nobody/usage").await.expect(404);
}

#[tokio::test]
async fn hostnames_and_certificates_are_managed_per_tenant() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let added =
        api.op_post("/api/v1/tenants/acme/hostnames", json!({"hostname": "FTP.Acme.Example."})).await.expect(201);
    assert_eq!(added.body["hostname"], "ftp.acme.example");
    assert_eq!(added.location.as_deref(), Some("/api/v1/tenants/acme/hostnames/ftp.acme.example"));
    api.op_post("/api/v1/tenants", json!({"name": "other"})).await.expect(201);
    api.op_post("/api/v1/tenants/other/hostnames", json!({"hostname": "ftp.acme.example"})).await.expect(409);
    let bad = api.op_post("/api/v1/tenants/acme/hostnames", json!({"hostname": "not a host"})).await.expect(422);
    assert_eq!(bad.field(), "hostname");
    let listed = api.all(&op, "/api/v1/tenants/acme/hostnames", 5).await;
    assert_eq!(listed, [json!({"hostname": "ftp.acme.example"})]);
    api.delete(&op, "/api/v1/tenants/acme/hostnames/ftp.acme.example").await.expect(204);
    assert_eq!(api.last_audit().await["action"], "hostname.remove");
    api.delete(&op, "/api/v1/tenants/acme/hostnames/ftp.acme.example").await.expect(404);
}

#[tokio::test]
async fn certificates_are_checked_sealed_listed_and_deleted() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let upload = |chain: &str, key: &str| json!({"chain_pem": chain, "key_pem": key});
    let certified = rcgen::generate_simple_self_signed(vec!["ftp.acme.example".to_owned()]).unwrap();
    let (chain, key) = (certified.cert.pem(), certified.key_pair.serialize_pem());
    let path = "/api/v1/tenants/acme/certificates";

    let none = api.op_post(path, upload(&chain, &key)).await.expect(422);
    assert_eq!(none.field(), "hostnames", "acme has no hostname yet");
    api.op_post("/api/v1/tenants/acme/hostnames", json!({"hostname": "ftp.acme.example"})).await.expect(201);

    let created = api.op_post(path, upload(&chain, &key)).await.expect(201);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.location, Some(format!("{path}/{id}")));
    assert_eq!(created.body["names"], json!(["ftp.acme.example"]));
    assert_eq!(created.body["fingerprint"].as_str().unwrap().len(), 64);
    assert!(!created.body.to_string().contains("PRIVATE KEY"));
    let event = api.last_audit().await;
    assert_eq!(event["action"], "certificate.upload");
    assert!(!event.to_string().contains("PRIVATE KEY"));
    let stored = api.wharf.directory.certificate_materials().await.unwrap();
    let key_der = certified.key_pair.serialize_der();
    assert!(!stored[0].sealed_key.windows(key_der.len()).any(|w| w == key_der), "the key is sealed at rest");

    api.op_post(path, upload(&chain, &key)).await.expect(409);
    let other = rcgen::generate_simple_self_signed(vec!["ftp.acme.example".to_owned()]).unwrap();
    let wrong_key = api.op_post(path, upload(&chain, &other.key_pair.serialize_pem())).await.expect(422);
    assert_eq!(wrong_key.field(), "key_pem");
    let elsewhere = rcgen::generate_simple_self_signed(vec!["ftp.globex.example".to_owned()]).unwrap();
    let uncovered = upload(&elsewhere.cert.pem(), &elsewhere.key_pair.serialize_pem());
    assert_eq!(api.op_post(path, uncovered).await.expect(422).field(), "chain_pem");
    assert_eq!(api.op_post(path, upload("not a certificate", &key)).await.expect(422).field(), "chain_pem");
    let foreign = json!({"chain_pem": chain, "key_pem": key, "hostnames": ["ftp.globex.example"]});
    assert_eq!(api.op_post(path, foreign).await.expect(422).field(), "hostnames[0]");

    let listed = api.all(&op, path, 5).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(api.op_get(&format!("{path}/{id}")).await.expect(200).body, created.body);
    api.delete(&op, &format!("{path}/{id}")).await.expect(204);
    assert_eq!(api.last_audit().await["action"], "certificate.delete");
    api.op_get(&format!("{path}/{id}")).await.expect(404);
    api.delete(&op, &format!("{path}/{id}")).await.expect(404);
}

#[tokio::test]
async fn the_admin_api_serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let api = Api::start_with(|c| {
        c.admin.cert_file = Some(cert.clone());
        c.admin.key_file = Some(key.clone());
    })
    .await;
    assert!(api.base.starts_with("https://"));
    api.op_get("/api/v1/tenants/acme").await.expect(200);
    // Plain HTTP on the TLS port gets no API.
    let plain = reqwest::Client::new().get(api.base.replace("https://", "http://") + "/healthz").send().await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    api.op_get("/healthz").await.expect(200);
}

#[tokio::test]
async fn the_api_works_the_same_on_postgres() {
    let db = Database::create().await;
    let url = db.url.clone();
    let api = Api::start_with(|c| c.database_url = Some(url)).await;
    let op = api.operator.clone();
    api.op_post("/api/v1/tenants", json!({"name": "pg"})).await.expect(201);
    api.post(&op, "/api/v1/tenants/pg/users", json!({"username": "pat", "password": "pats password"}))
        .await
        .expect(201);
    api.patch(&op, "/api/v1/tenants/pg/users/pat", json!({"quota": {"max_files": 2}})).await.expect(200);
    api.put(&op, "/api/v1/tenants/pg/users/pat/password", json!({"password": "pats new password"})).await.expect(204);
    Ftp::login(api.wharf.explicit, "pat@pg", "pats new password").await;
    let names: Vec<_> = api.all(&op, "/api/v1/tenants", 1).await.iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, [json!("acme"), json!("pg")]);
    let admin = api.tenant_admin("pg", "pg-admin").await;
    api.get(&admin, "/api/v1/tenants/acme").await.expect(404);
    let actions: Vec<_> = api.all(&admin, "/api/v1/audit", 2).await.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, [json!("tenant.create"), json!("user.create"), json!("user.update"), json!("user.password")]);
    api.call(None, Method::GET, "/readyz", None).await.expect(200);
    // Postgres refuses NUL in text: such input is a client error, never a 500.
    api.op_get("/api/v1/sessions/a%00b").await.expect(404);
    api.delete(&op, "/api/v1/bans/ip:1%00").await.expect(404);
    api.delete(&op, "/api/v1/tenants/pg/hostnames/a%00b").await.expect(404);
    api.op_get("/api/v1/tenants/pg/users/a%00b").await.expect(404);
    api.op_post("/api/v1/tenants/pg/hostnames", json!({"hostname": "a\0b"})).await.expect(422);
    api.op_post("/api/v1/tokens", json!({"name": "a\0b", "scope": "operator"})).await.expect(422);
    let storage = json!({"storage": {"bucket": "b\0", "region": "r\0"}});
    api.patch(&op, "/api/v1/tenants/pg", storage).await.expect(422);
    api.wharf.stop().await;
    db.drop().await;
}

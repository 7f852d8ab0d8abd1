//! The scope matrix: a tenant admin of acme reaches nothing of another tenant. Every tenant-scoped route
//! answers 404 for the other tenant's resources (as if they did not exist, so names never leak), every
//! operator-only route answers 403, listings show acme's rows only — and the same requests work for acme's
//! own resources, so the refusals come from the scope check and not from a broken route.

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use wharf::directory::admin::{LiveSession, NewCertificate, TokenScope};

use crate::support::admin::Api;

/// A certificate record for `tenant_id` (the routes under test never parse it).
fn certificate(tenant_id: i64, name: &str) -> NewCertificate {
    NewCertificate {
        tenant_id,
        names: vec![name.to_owned()],
        subject: format!("CN={name}"),
        issuer: "CN=test CA".to_owned(),
        not_before: Utc::now() - TimeDelta::days(1),
        not_after: Utc::now() + TimeDelta::days(90),
        fingerprint: "ab".repeat(32),
        chain_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_owned(),
        sealed_key: vec![1, 2, 3],
    }
}

/// A valid upload for `hostname` (a fresh self-signed certificate).
fn upload(hostname: &str) -> Value {
    let certified = rcgen::generate_simple_self_signed(vec![hostname.to_owned()]).unwrap();
    json!({
        "chain_pem": certified.cert.pem(),
        "key_pem": certified.key_pair.serialize_pem(),
        "hostnames": [hostname],
    })
}

struct Tenant {
    name: &'static str,
    user: &'static str,
    hostname: &'static str,
    certificate: i64,
    session: String,
    token: i64,
}

async fn populate(api: &Api, name: &'static str, user: &'static str, hostname: &'static str) -> Tenant {
    let dir = &*api.wharf.directory;
    if !api.wharf.has_user(name, user).await {
        api.wharf.add_user(name, user, "a long password").await;
    }
    let tenant = dir.tenant_by_name(name).await.unwrap().unwrap();
    let user_id = dir.user_by_name(tenant.id, user).await.unwrap().unwrap().id;
    dir.add_hostname(tenant.id, hostname).await.unwrap();
    let certificate = dir.save_certificate(&certificate(tenant.id, hostname), Utc::now()).await.unwrap().id;
    dir.instance_alive("instance-1", Utc::now()).await.unwrap();
    let session = format!("session-{name}");
    let live = LiveSession {
        id: session.clone(),
        instance: "instance-1".to_owned(),
        tenant_id: tenant.id,
        user_id,
        username: user.to_owned(),
        client: "127.0.0.1:40000".to_owned(),
        started_at: Utc::now(),
    };
    dir.register_session(&live).await.unwrap();
    let scope = TokenScope::TenantAdmin(tenant.id);
    let token = wharf::admin::tokens::create_token(dir, &format!("{name}-helper"), scope).await.unwrap().0.id;
    Tenant { name, user, hostname, certificate, session, token }
}

/// Every route that names a tenant's resource, with a valid body, and what an operator-only route is.
fn routes(t: &Tenant, other_certificate: i64) -> Vec<(Method, String, Option<Value>, bool)> {
    let (n, u) = (t.name, t.user);
    let base = format!("/api/v1/tenants/{n}");
    vec![
        (Method::GET, base.clone(), None, false),
        (Method::PATCH, base.clone(), Some(json!({"enabled": true})), true),
        (Method::GET, format!("{base}/users"), None, false),
        (
            Method::POST,
            format!("{base}/users"),
            Some(json!({"username": "mallory", "password": "mallorys password"})),
            false,
        ),
        (Method::GET, format!("{base}/users/{u}"), None, false),
        (Method::PATCH, format!("{base}/users/{u}"), Some(json!({"enabled": true})), false),
        (Method::PUT, format!("{base}/users/{u}/password"), Some(json!({"password": "taken over!"})), false),
        (Method::GET, format!("{base}/users/{u}/usage"), None, false),
        (Method::GET, format!("{base}/usage"), None, false),
        (Method::GET, format!("{base}/hostnames"), None, false),
        (Method::POST, format!("{base}/hostnames"), Some(json!({"hostname": format!("new.{n}.example")})), false),
        (Method::GET, format!("{base}/certificates"), None, false),
        (Method::GET, format!("{base}/certificates/{}", t.certificate), None, false),
        (Method::GET, format!("/api/v1/sessions/{}", t.session), None, false),
        (Method::GET, format!("/api/v1/tokens/{}", t.token), None, false),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            Some(json!({"name": format!("x-{n}"), "scope": "tenant_admin", "tenant": n})),
            false,
        ),
        (Method::POST, format!("{base}/certificates"), Some(upload(t.hostname)), false),
        // Another tenant's certificate under one's own tenant is not found either.
        (Method::GET, format!("{base}/certificates/{other_certificate}"), None, false),
        // Destructive ones last, so the reads above find their resources.
        (Method::DELETE, format!("/api/v1/sessions/{}", t.session), None, false),
        (Method::DELETE, format!("{base}/certificates/{}", t.certificate), None, false),
        (Method::DELETE, format!("{base}/hostnames/{}", t.hostname), None, false),
        (Method::DELETE, format!("/api/v1/tokens/{}", t.token), None, false),
        (Method::DELETE, format!("{base}/users/{u}"), None, false),
        (Method::DELETE, base, None, true),
    ]
}

#[tokio::test]
async fn a_tenant_admin_never_reaches_another_tenant() {
    let api = Api::start().await;
    let acme = populate(&api, "acme", "alice", "ftp.acme.example").await;
    let other = populate(&api, "other", "olga", "ftp.other.example").await;
    let admin = api.tenant_admin("acme", "acme-admin").await;

    for (method, path, body, operator_only) in routes(&other, acme.certificate) {
        let reply = api.call(Some(&admin), method.clone(), &path, body).await;
        let expected = if operator_only { 403 } else { 404 };
        assert_eq!(reply.status, expected, "{method} {path}: {reply:#?}");
        reply.expect(expected);
    }
    for (method, path, body) in [
        (Method::POST, "/api/v1/tenants".to_owned(), Some(json!({"name": "mine"}))),
        (Method::GET, "/api/v1/bans".to_owned(), None),
        (Method::DELETE, "/api/v1/bans/ip:127.0.0.1".to_owned(), None),
        (Method::POST, "/api/v1/tokens".to_owned(), Some(json!({"name": "root", "scope": "operator"}))),
    ] {
        api.call(Some(&admin), method.clone(), &path, body).await.expect(403);
    }

    // Nothing of the other tenant changed.
    let dir = &*api.wharf.directory;
    let tenant = dir.tenant_by_name("other").await.unwrap().expect("other still exists");
    assert!(dir.user_by_name(tenant.id, "olga").await.unwrap().is_some());
    assert_eq!(dir.hostnames(tenant.id).await.unwrap(), ["ftp.other.example"]);
    assert!(dir.certificate(other.certificate).await.unwrap().is_some());
    assert!(dir.token_by_id(other.token).await.unwrap().is_some());
    assert!(dir.instance_sessions("instance-1").await.unwrap().iter().all(|(_, requested)| !requested));
    crate::support::raw::Ftp::login(api.wharf.explicit, "olga@other", "a long password").await;

    // Listings hold acme's rows only.
    let names =
        |items: Vec<Value>, key: &str| items.iter().map(|i| i[key].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(api.all(&admin, "/api/v1/tenants", 10).await, "name"), ["acme"]);
    assert_eq!(names(api.all(&admin, "/api/v1/sessions", 10).await, "tenant"), ["acme"]);
    let tokens = api.all(&admin, "/api/v1/tokens", 10).await;
    assert!(tokens.iter().all(|t| t["tenant"] == "acme") && tokens.len() == 2, "{tokens:?}");
    api.op_post("/api/v1/tenants/other/hostnames", json!({"hostname": "more.other.example"})).await.expect(201);
    let acme_id = dir.tenant_by_name("acme").await.unwrap().unwrap().id;
    let events = api.all(&admin, "/api/v1/audit", 10).await;
    assert!(events.iter().all(|e| e["tenant_id"] == acme_id), "{events:?}");

    // The same routes on acme's own resources succeed for its admin, except the operator-only ones.
    for (method, path, body, operator_only) in routes(&acme, other.certificate) {
        let reply = api.call(Some(&admin), method.clone(), &path, body).await;
        if operator_only {
            reply.expect(403);
        } else if path.ends_with(&format!("/certificates/{}", other.certificate)) {
            reply.expect(404);
        } else {
            assert!((200..300).contains(&reply.status), "{method} {path}: {reply:#?}");
        }
    }
    // …and for an operator on the other tenant (here operator-only routes too).
    for (method, path, body, _) in routes(&other, acme.certificate) {
        let reply = api.call(Some(&api.operator), method.clone(), &path, body).await;
        if path.ends_with(&format!("/certificates/{}", acme.certificate)) {
            reply.expect(404);
        } else {
            assert!((200..300).contains(&reply.status), "{method} {path}: {reply:#?}");
        }
    }
}

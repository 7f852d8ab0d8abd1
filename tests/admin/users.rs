//! Users: create, list, get, PATCH (home, enabled, permissions, path rules, networks, quota), delete, set a
//! password — and the FTP side sees each change: a new password logs in over FTPS, the old one no longer.

use serde_json::json;

use crate::support::admin::Api;
use crate::support::raw::Ftp;
use crate::support::PASSWORD;

/// The reply to PASS for `login`/`password` on a fresh explicit-FTPS connection.
async fn pass_reply(api: &Api, login: &str, password: &str) -> u16 {
    let (mut ftp, _) = Ftp::connect(api.wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd(&format!("USER {login}")).await.code, 331);
    ftp.cmd(&format!("PASS {password}")).await.code
}

#[tokio::test]
async fn a_password_set_through_the_api_is_the_one_ftps_accepts() {
    let api = Api::start().await;
    let op = api.operator.clone();
    // Logged in once, so the old password is remembered (`passwords.remember_secs`) when it is changed.
    assert_eq!(pass_reply(&api, "alice@acme", PASSWORD).await, 230);
    let reply =
        api.put(&op, "/api/v1/tenants/acme/users/alice/password", json!({"password": "brand new secret"})).await;
    assert!(reply.body.is_null());
    reply.expect(204);
    let mut ftp = Ftp::login(api.wharf.explicit, "alice@acme", "brand new secret").await;
    assert_eq!(ftp.cmd("PWD").await.code, 257);
    assert_eq!(pass_reply(&api, "alice@acme", PASSWORD).await, 530, "the old password is gone, remembered or not");
    let event = api.last_audit().await;
    assert_eq!(
        (event["action"].as_str(), event["target"].as_str()),
        (Some("user.password"), Some("tenant/acme/user/alice"))
    );
    assert!(!event.to_string().contains("brand new secret"), "no secret in the audit log");

    let short = api.put(&op, "/api/v1/tenants/acme/users/alice/password", json!({"password": "short"})).await;
    assert_eq!(short.expect(422).field(), "password");
    api.put(&op, "/api/v1/tenants/acme/users/nobody/password", json!({"password": "long enough"})).await.expect(404);
}

#[tokio::test]
async fn users_are_created_listed_changed_and_deleted() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let body = json!({
        "username": "bob",
        "password": "bobs password",
        "home": "/in//bob/",
        "permissions": ["list", "read"],
        "path_permissions": [
            {"path": "/drop", "permissions": ["write"]},
            {"path": "/odd; /name=x", "permissions": ["list"]}
        ],
        "allowed_networks": ["127.0.0.0/8"],
        "quota": {"max_files": 3}
    });
    let created = api.post(&op, "/api/v1/tenants/acme/users", body).await.expect(201);
    assert_eq!(created.location.as_deref(), Some("/api/v1/tenants/acme/users/bob"));
    let bob = created.body;
    assert_eq!(bob["home"], "/in/bob");
    assert_eq!(bob["tenant"], "acme");
    assert_eq!(bob["permissions"], json!(["list", "read"]));
    let rules = json!([
        {"path": "/drop", "permissions": ["write"]},
        {"path": "/odd; /name=x", "permissions": ["list"]}
    ]);
    assert_eq!(bob["path_permissions"], rules, "read back exactly, whatever the path holds");
    assert_eq!(bob["quota"], json!({"max_bytes": null, "max_files": 3}));
    assert!(bob.get("password").is_none() && !bob.to_string().contains("argon2"), "{bob}");
    assert_eq!(api.last_audit().await["action"], "user.create");
    api.wharf.put_dir("in/bob").await;
    let mut ftp = Ftp::login(api.wharf.explicit, "bob@acme", "bobs password").await;
    assert_eq!(ftp.cmd("MKD /x").await.code, 550, "no mkdir permission");

    let names: Vec<_> =
        api.all(&op, "/api/v1/tenants/acme/users", 1).await.iter().map(|u| u["username"].clone()).collect();
    assert_eq!(names, [json!("alice"), json!("bob")]);
    let mut got = api.op_get("/api/v1/tenants/acme/users/bob").await.expect(200).body;
    assert!(got["last_login_at"].is_string(), "bob logged in: {got}");
    got["last_login_at"] = serde_json::Value::Null;
    assert_eq!(got, bob);

    let patched = api
        .patch(
            &op,
            "/api/v1/tenants/acme/users/bob",
            json!({"enabled": false, "permissions": ["list", "read", "mkdir"], "path_permissions": []}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["permissions"], json!(["list", "read", "mkdir"]));
    assert_eq!(patched.body["path_permissions"], json!([]));
    assert_eq!(patched.body["allowed_networks"], json!(["127.0.0.0/8"]), "left as it was");
    assert_eq!(pass_reply(&api, "bob@acme", "bobs password").await, 530, "disabled");
    api.patch(&op, "/api/v1/tenants/acme/users/bob", json!({"enabled": true, "home": "/"})).await.expect(200);
    let mut ftp = Ftp::login(api.wharf.explicit, "bob@acme", "bobs password").await;
    assert_eq!(ftp.cmd("MKD /x").await.code, 257, "mkdir granted, home moved to the root");
    assert!(api.wharf.is_dir("x").await);
    let quota = api.patch(&op, "/api/v1/tenants/acme/users/bob", json!({"quota": {"max_bytes": 10}})).await.expect(200);
    assert_eq!(quota.body["quota"], json!({"max_bytes": 10, "max_files": 3}));

    api.delete(&op, "/api/v1/tenants/acme/users/bob").await.expect(204);
    assert_eq!(api.last_audit().await["action"], "user.delete");
    api.op_get("/api/v1/tenants/acme/users/bob").await.expect(404);
    assert_eq!(pass_reply(&api, "bob@acme", "bobs password").await, 530);
}

#[tokio::test]
async fn user_input_errors_name_the_field_and_change_nothing() {
    let api = Api::start().await;
    let op = api.operator.clone();
    let base = || json!({"username": "carol", "password": "carols password"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let cases = [
        (with("username", json!("car ol")), "username"),
        (with("username", json!("carol@acme")), "username"),
        (with("password", json!("short")), "password"),
        (with("home", json!("relative")), "home"),
        (with("home", json!("/a/../b")), "home"),
        (with("permissions", json!(["fly"])), "permissions[0]"),
        (with("path_permissions", json!([{"path": "/", "permissions": []}])), "path_permissions[0]"),
        (with("allowed_networks", json!(["300.1.1.1"])), "allowed_networks[0]"),
        (with("quota", json!({"max_files": -5})), "quota.max_files"),
        (json!({"username": "carol"}), "password"),
    ];
    for (body, field) in cases {
        let reply = api.post(&op, "/api/v1/tenants/acme/users", body.clone()).await.expect(422);
        assert_eq!(reply.field(), field, "{body}: {reply:#?}");
    }
    api.op_get("/api/v1/tenants/acme/users/carol").await.expect(404);
    api.post(&op, "/api/v1/tenants/acme/users", json!({"username": "alice", "password": "another password"}))
        .await
        .expect(409);
    let reply =
        api.patch(&op, "/api/v1/tenants/acme/users/alice", json!({"home": "/ok", "allowed_networks": ["x"]})).await;
    assert_eq!(reply.expect(422).field(), "allowed_networks[0]");
    let alice = api.op_get("/api/v1/tenants/acme/users/alice").await.expect(200);
    assert_eq!(alice.body["home"], "/", "a bad field changes nothing");
    api.patch(&op, "/api/v1/tenants/acme/users/nobody", json!({})).await.expect(404);
    api.post(&op, "/api/v1/tenants/nosuch/users", base()).await.expect(404);
}

//! What the admin API keeps (paged listings, tokens, the audit log, certificates, live sessions), proved on
//! every backend (`directory::tests::admin::…`).

use chrono::{TimeDelta, TimeZone};
use sha2::{Digest, Sha256};

use super::*;
use crate::directory::admin::*;

on_every_backend!(
    tenants_and_users_are_paged_in_id_order,
    page_limits_are_clamped,
    users_are_found_by_name_and_their_homes_changed_normalised,
    hostnames_are_removed_one_at_a_time,
    tokens_are_found_by_secret_until_they_expire,
    token_use_is_written_at_most_once_a_minute,
    token_names_are_unique_per_scope,
    tokens_are_listed_per_tenant_and_deleted,
    deleting_a_tenant_removes_its_tokens_certificates_and_sessions_but_keeps_its_audit_events,
    audit_events_are_paged_in_order_and_filtered_by_tenant,
    certificates_are_saved_listed_and_deleted,
    the_certificates_version_changes_on_every_addition_and_removal,
    live_sessions_are_listed_for_instances_alive_recently,
    disconnects_are_requested_polled_and_carried_out,
    dead_instances_are_forgotten_with_their_sessions,
);

/// A fixed instant, so that times read back compare exactly on both backends (microseconds).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_user(username: &str, home: &str) -> NewUser {
    NewUser { username: username.to_owned(), password_hash: "hash".to_owned(), home: home.to_owned() }
}

fn token(name: &str, scope: TokenScope, secret: &str) -> NewToken {
    NewToken { name: name.to_owned(), scope, secret_sha256: sha256_hex(secret), expires_at: None }
}

fn event(tenant_id: Option<i64>, action: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "ops#1".to_owned(),
        tenant_id,
        action: action.to_owned(),
        target: format!("target/{action}"),
        client: Some("192.0.2.7:51000".to_owned()),
        detail: serde_json::json!({ "action": action }),
    }
}

fn certificate(tenant_id: i64, name: &str) -> NewCertificate {
    NewCertificate {
        tenant_id,
        names: vec![name.to_owned(), format!("www.{name}")],
        subject: format!("CN={name}"),
        issuer: "CN=Test CA".to_owned(),
        not_before: t0(),
        not_after: t0() + TimeDelta::days(90),
        fingerprint: sha256_hex(name),
        chain_pem: format!("-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n"),
        sealed_key: name.as_bytes().to_vec(),
    }
}

fn session(id: &str, instance: &str, user: &User, started_at: DateTime<Utc>) -> LiveSession {
    LiveSession {
        id: id.to_owned(),
        instance: instance.to_owned(),
        tenant_id: user.tenant_id,
        user_id: user.id,
        username: user.username.clone(),
        client: "198.51.100.4:40000".to_owned(),
        started_at,
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    rows.iter().map(id).collect()
}

async fn tenants_and_users_are_paged_in_id_order(dir: &Fresh) {
    // Created out of name order: pages follow ids, not names.
    let c = dir.create_tenant("c").await.unwrap();
    let a = dir.create_tenant("a").await.unwrap();
    let b = dir.create_tenant("b").await.unwrap();
    let first = dir.tenants_page(Page::first(2)).await.unwrap();
    assert_eq!(first, vec![c.clone(), a.clone()]);
    let second = dir.tenants_page(Page { after: Some(a.id), limit: 2 }).await.unwrap();
    assert_eq!(second, vec![b.clone()]);
    assert!(dir.tenants_page(Page { after: Some(b.id), limit: 2 }).await.unwrap().is_empty());

    let zed = dir.create_user(a.id, new_user("zed", "/")).await.unwrap();
    let amy = dir.create_user(c.id, new_user("amy", "/")).await.unwrap();
    let bob = dir.create_user(a.id, new_user("bob", "/")).await.unwrap();
    let all = dir.users_page(None, Page::first(10)).await.unwrap();
    assert_eq!(ids(&all, |u| u.id), [zed.id, amy.id, bob.id]);
    let of_a = dir.users_page(Some(a.id), Page::first(10)).await.unwrap();
    assert_eq!(of_a, vec![zed.clone(), bob.clone()]);
    let after_zed = dir.users_page(Some(a.id), Page { after: Some(zed.id), limit: 1 }).await.unwrap();
    assert_eq!(after_zed, vec![bob]);
    assert!(dir.users_page(Some(b.id), Page::first(10)).await.unwrap().is_empty());
}

async fn page_limits_are_clamped(dir: &Fresh) {
    for name in ["a", "b", "c"] {
        dir.create_tenant(name).await.unwrap();
    }
    // Below 1 still returns one row (a caller always makes progress); above the maximum, the maximum.
    assert_eq!(dir.tenants_page(Page::first(0)).await.unwrap().len(), 1);
    assert_eq!(dir.tenants_page(Page::first(-5)).await.unwrap().len(), 1);
    assert_eq!(dir.tenants_page(Page::first(i64::MAX)).await.unwrap().len(), 3);
    assert_eq!(Page::first(5000).clamped_limit(), MAX_PAGE);
    assert_eq!(Page::first(7).clamped_limit(), 7);
}

async fn users_are_found_by_name_and_their_homes_changed_normalised(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let other = dir.create_tenant("other").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    assert_eq!(dir.user_by_name(acme.id, "alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(dir.user_by_name(other.id, "alice").await.unwrap(), None);
    assert_eq!(dir.user_by_name(acme.id, "Alice").await.unwrap(), None);

    dir.set_user_home(acme.id, "alice", "//in//sub/").await.unwrap();
    let moved = dir.user_by_name(acme.id, "alice").await.unwrap().unwrap();
    assert_eq!(moved.home, "/in/sub");
    assert_eq!(moved, User { home: "/in/sub".to_owned(), ..alice });
    for bad in ["in", "/in/../etc", "/a\nb"] {
        assert!(matches!(dir.set_user_home(acme.id, "alice", bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
    }
    assert_eq!(dir.user_by_name(acme.id, "alice").await.unwrap().unwrap().home, "/in/sub");
    assert!(matches!(dir.set_user_home(other.id, "alice", "/x").await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_user_home(acme.id, "nobody", "/x").await, Err(DirectoryError::NotFound)));
}

async fn hostnames_are_removed_one_at_a_time(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let other = dir.create_tenant("other").await.unwrap();
    dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
    dir.add_hostname(acme.id, "files.acme.example").await.unwrap();
    dir.add_hostname(other.id, "ftp.other.example").await.unwrap();

    // Looked up as stored: case and a trailing root dot do not matter.
    dir.remove_hostname(acme.id, "FTP.Acme.Example.").await.unwrap();
    assert_eq!(dir.hostnames(acme.id).await.unwrap(), ["files.acme.example"]);
    assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap(), None);
    assert!(matches!(dir.remove_hostname(acme.id, "ftp.acme.example").await, Err(DirectoryError::NotFound)));
    // Another tenant's name is not this tenant's to remove.
    assert!(matches!(dir.remove_hostname(acme.id, "ftp.other.example").await, Err(DirectoryError::NotFound)));
    assert_eq!(dir.hostnames(other.id).await.unwrap(), ["ftp.other.example"]);
}

async fn tokens_are_found_by_secret_until_they_expire(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let ops = dir.create_token(&token("ops", TokenScope::Operator, "s1")).await.unwrap();
    assert_eq!(ops.name, "ops");
    assert_eq!(ops.scope, TokenScope::Operator);
    assert_eq!((ops.expires_at, ops.last_used_at), (None, None));
    let expiring =
        NewToken { expires_at: Some(t0() + secs(3600)), ..token("ci", TokenScope::TenantAdmin(acme.id), "s2") };
    let ci = dir.create_token(&expiring).await.unwrap();
    assert_eq!(ci.scope, TokenScope::TenantAdmin(acme.id));
    assert_eq!(ci.expires_at, Some(t0() + secs(3600)));
    assert_eq!(dir.token_by_id(ci.id).await.unwrap(), Some(ci.clone()));

    let used = dir.use_token(&sha256_hex("s1"), t0()).await.unwrap().unwrap();
    assert_eq!(used, ApiToken { last_used_at: Some(t0()), ..ops });
    let used = dir.use_token(&sha256_hex("s2"), t0() + secs(3599)).await.unwrap().unwrap();
    assert_eq!(used.id, ci.id);
    assert_eq!(dir.use_token(&sha256_hex("s2"), t0() + secs(3600)).await.unwrap(), None, "expired");
    assert_eq!(dir.use_token(&sha256_hex("unknown"), t0()).await.unwrap(), None);

    for bad in [
        NewToken { secret_sha256: "not hex".into(), ..token("x", TokenScope::Operator, "s3") },
        NewToken { secret_sha256: sha256_hex("s3").to_uppercase(), ..token("x", TokenScope::Operator, "s3") },
        token("", TokenScope::Operator, "s3"),
        token("a\nb", TokenScope::Operator, "s3"),
    ] {
        assert!(matches!(dir.create_token(&bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
    }
}

async fn token_use_is_written_at_most_once_a_minute(dir: &Fresh) {
    let ops = dir.create_token(&token("ops", TokenScope::Operator, "s1")).await.unwrap();
    let secret = sha256_hex("s1");
    let last_used = || async { dir.token_by_id(ops.id).await.unwrap().unwrap().last_used_at };

    dir.use_token(&secret, t0()).await.unwrap().unwrap();
    assert_eq!(last_used().await, Some(t0()));
    // Within the minute: nothing written, and the token says when it was last recorded.
    let again = dir.use_token(&secret, t0() + secs(59)).await.unwrap().unwrap();
    assert_eq!(again.last_used_at, Some(t0()));
    assert_eq!(last_used().await, Some(t0()));
    // A minute later: written again.
    let later = dir.use_token(&secret, t0() + secs(60)).await.unwrap().unwrap();
    assert_eq!(later.last_used_at, Some(t0() + secs(60)));
    assert_eq!(last_used().await, Some(t0() + secs(60)));
    // A use stamped earlier (another instance's clock) never moves it back.
    dir.use_token(&secret, t0() + secs(10)).await.unwrap().unwrap();
    assert_eq!(last_used().await, Some(t0() + secs(60)));
}

async fn token_names_are_unique_per_scope(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    dir.create_token(&token("deploy", TokenScope::Operator, "s1")).await.unwrap();
    let conflict = dir.create_token(&token("deploy", TokenScope::Operator, "s2")).await;
    assert!(matches!(conflict, Err(DirectoryError::Conflict("token"))), "{conflict:?}");

    dir.create_token(&token("deploy", TokenScope::TenantAdmin(acme.id), "s3")).await.unwrap();
    dir.create_token(&token("deploy", TokenScope::TenantAdmin(beta.id), "s4")).await.unwrap();
    let conflict = dir.create_token(&token("deploy", TokenScope::TenantAdmin(acme.id), "s5")).await;
    assert!(matches!(conflict, Err(DirectoryError::Conflict("token"))), "{conflict:?}");

    // One secret, one token.
    let conflict = dir.create_token(&token("other", TokenScope::Operator, "s1")).await;
    assert!(matches!(conflict, Err(DirectoryError::Conflict("token"))), "{conflict:?}");
    let orphan = dir.create_token(&token("x", TokenScope::TenantAdmin(beta.id + 100), "s6")).await;
    assert!(matches!(orphan, Err(DirectoryError::NotFound)), "{orphan:?}");
    assert_eq!(dir.tokens_page(None, Page::first(100)).await.unwrap().len(), 3);
}

async fn tokens_are_listed_per_tenant_and_deleted(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let ops = dir.create_token(&token("ops", TokenScope::Operator, "s1")).await.unwrap();
    let a1 = dir.create_token(&token("a1", TokenScope::TenantAdmin(acme.id), "s2")).await.unwrap();
    let b1 = dir.create_token(&token("b1", TokenScope::TenantAdmin(beta.id), "s3")).await.unwrap();
    let a2 = dir.create_token(&token("a2", TokenScope::TenantAdmin(acme.id), "s4")).await.unwrap();

    assert_eq!(dir.tokens_page(None, Page::first(100)).await.unwrap(), vec![ops.clone(), a1.clone(), b1, a2.clone()]);
    assert_eq!(dir.tokens_page(Some(acme.id), Page::first(100)).await.unwrap(), vec![a1.clone(), a2.clone()]);
    assert_eq!(dir.tokens_page(Some(acme.id), Page { after: Some(a1.id), limit: 100 }).await.unwrap(), vec![a2]);
    assert_eq!(dir.tokens_page(None, Page::first(1)).await.unwrap(), vec![ops.clone()]);

    dir.delete_token(a1.id).await.unwrap();
    assert_eq!(dir.token_by_id(a1.id).await.unwrap(), None);
    assert_eq!(dir.use_token(&sha256_hex("s2"), t0()).await.unwrap(), None);
    assert!(matches!(dir.delete_token(a1.id).await, Err(DirectoryError::NotFound)));
    assert_eq!(dir.token_by_id(ops.id).await.unwrap(), Some(ops));
}

async fn deleting_a_tenant_removes_its_tokens_certificates_and_sessions_but_keeps_its_audit_events(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let bob = dir.create_user(beta.id, new_user("bob", "/")).await.unwrap();
    dir.instance_alive("i1", t0()).await.unwrap();
    let ops = dir.create_token(&token("ops", TokenScope::Operator, "s1")).await.unwrap();
    let acme_token = dir.create_token(&token("admin", TokenScope::TenantAdmin(acme.id), "s2")).await.unwrap();
    let beta_token = dir.create_token(&token("admin", TokenScope::TenantAdmin(beta.id), "s3")).await.unwrap();
    let acme_cert = dir.save_certificate(&certificate(acme.id, "acme.example"), t0()).await.unwrap();
    let beta_cert = dir.save_certificate(&certificate(beta.id, "beta.example"), t0()).await.unwrap();
    dir.register_session(&session("s-alice", "i1", &alice, t0())).await.unwrap();
    dir.register_session(&session("s-bob", "i1", &bob, t0())).await.unwrap();
    let created = dir.record_audit(&event(Some(acme.id), "tenant.create"), t0()).await.unwrap();
    let other = dir.record_audit(&event(Some(beta.id), "tenant.create"), t0()).await.unwrap();

    dir.delete_tenant(acme.id).await.unwrap();

    assert_eq!(dir.token_by_id(acme_token.id).await.unwrap(), None);
    assert_eq!(dir.use_token(&sha256_hex("s2"), t0()).await.unwrap(), None);
    assert_eq!(ids(&dir.tokens_page(None, Page::first(10)).await.unwrap(), |t| t.id), [ops.id, beta_token.id]);
    assert_eq!(dir.certificate(acme_cert.id).await.unwrap(), None);
    assert_eq!(dir.certificates_page(None, Page::first(10)).await.unwrap(), vec![beta_cert]);
    assert_eq!(dir.live_session("s-alice").await.unwrap(), None);
    let live = dir.live_sessions(None, t0()).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s-bob"]);

    // The events stay, for operators: the tenant id is cleared (it may be given to a new tenant).
    let events = dir.audit_page(None, Page::first(10)).await.unwrap();
    assert_eq!(events, vec![AuditEvent { tenant_id: None, ..created }, other.clone()]);
    assert!(dir.audit_page(Some(acme.id), Page::first(10)).await.unwrap().is_empty());
    // An event recorded after the deletion, about the deleted tenant, is kept the same way.
    let deleted = dir.record_audit(&event(Some(acme.id), "tenant.delete"), t0()).await.unwrap();
    assert_eq!(deleted.tenant_id, None);
    assert_eq!(deleted.action, "tenant.delete");
    assert_eq!(dir.audit_page(Some(beta.id), Page::first(10)).await.unwrap(), vec![other]);

    // Deleting a user removes its sessions too.
    dir.delete_user(beta.id, "bob").await.unwrap();
    assert_eq!(dir.live_session("s-bob").await.unwrap(), None);
}

async fn audit_events_are_paged_in_order_and_filtered_by_tenant(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let first = dir.record_audit(&event(Some(acme.id), "user.create"), t0()).await.unwrap();
    assert_eq!(first.at, t0());
    assert_eq!(first.actor, "ops#1");
    assert_eq!(first.tenant_id, Some(acme.id));
    assert_eq!(first.target, "target/user.create");
    assert_eq!(first.client.as_deref(), Some("192.0.2.7:51000"));
    assert_eq!(first.detail, serde_json::json!({ "action": "user.create" }));
    let global = NewAuditEvent { client: None, detail: serde_json::Value::Null, ..event(None, "token.create") };
    let second = dir.record_audit(&global, t0() + secs(1)).await.unwrap();
    assert_eq!((second.tenant_id, second.client.clone()), (None, None));
    assert_eq!(second.detail, serde_json::json!({}));
    let third = dir.record_audit(&event(Some(beta.id), "user.delete"), t0() + secs(2)).await.unwrap();
    let fourth = dir.record_audit(&event(Some(acme.id), "user.password"), t0() + secs(3)).await.unwrap();
    assert!(first.id < second.id && second.id < third.id && third.id < fourth.id);

    let all = dir.audit_page(None, Page::first(10)).await.unwrap();
    assert_eq!(all, vec![first.clone(), second.clone(), third.clone(), fourth.clone()]);
    assert_eq!(dir.audit_page(None, Page::first(2)).await.unwrap(), vec![first.clone(), second.clone()]);
    assert_eq!(
        dir.audit_page(None, Page { after: Some(second.id), limit: 2 }).await.unwrap(),
        vec![third, fourth.clone()]
    );
    assert_eq!(dir.audit_page(Some(acme.id), Page::first(10)).await.unwrap(), vec![first.clone(), fourth.clone()]);
    assert_eq!(dir.audit_page(Some(acme.id), Page { after: Some(first.id), limit: 10 }).await.unwrap(), vec![fourth]);

    let not_an_object = NewAuditEvent { detail: serde_json::json!([1, 2]), ..event(None, "x") };
    assert!(matches!(dir.record_audit(&not_an_object, t0()).await, Err(DirectoryError::Invalid(_))));
}

async fn certificates_are_saved_listed_and_deleted(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let mut new = certificate(acme.id, "acme.example");
    new.names = vec!["FTP.Acme.Example.".to_owned(), "*.Acme.Example".to_owned()];
    let saved = dir.save_certificate(&new, t0()).await.unwrap();
    assert_eq!(saved.tenant_id, acme.id);
    assert_eq!(saved.names, ["ftp.acme.example", "*.acme.example"]);
    assert_eq!((saved.subject.as_str(), saved.issuer.as_str()), ("CN=acme.example", "CN=Test CA"));
    assert_eq!((saved.not_before, saved.not_after), (t0(), t0() + TimeDelta::days(90)));
    assert_eq!(saved.fingerprint, sha256_hex("acme.example"));
    assert_eq!(saved.created_at, t0());
    assert_eq!(dir.certificate(saved.id).await.unwrap(), Some(saved.clone()));

    let conflict = dir.save_certificate(&new, t0()).await;
    assert!(matches!(conflict, Err(DirectoryError::Conflict("certificate"))), "{conflict:?}");
    let orphan = dir.save_certificate(&certificate(beta.id + 100, "x.example"), t0()).await;
    assert!(matches!(orphan, Err(DirectoryError::NotFound)), "{orphan:?}");
    let nameless = NewCertificate { names: vec![], ..certificate(acme.id, "y.example") };
    assert!(matches!(dir.save_certificate(&nameless, t0()).await, Err(DirectoryError::Invalid(_))));

    let of_beta = dir.save_certificate(&certificate(beta.id, "beta.example"), t0()).await.unwrap();
    let second = dir.save_certificate(&certificate(acme.id, "acme.test"), t0()).await.unwrap();
    let all = dir.certificates_page(None, Page::first(10)).await.unwrap();
    assert_eq!(all, vec![saved.clone(), of_beta.clone(), second.clone()]);
    assert_eq!(
        dir.certificates_page(Some(acme.id), Page::first(10)).await.unwrap(),
        vec![saved.clone(), second.clone()]
    );
    let after = Page { after: Some(saved.id), limit: 1 };
    assert_eq!(dir.certificates_page(None, after).await.unwrap(), vec![of_beta.clone()]);

    let materials = dir.certificate_materials().await.unwrap();
    assert_eq!(materials.iter().map(|m| m.info.clone()).collect::<Vec<_>>(), all);
    assert_eq!(materials[1].chain_pem, certificate(beta.id, "beta.example").chain_pem);
    assert_eq!(materials[1].sealed_key, b"beta.example");

    dir.delete_certificate(saved.id).await.unwrap();
    assert_eq!(dir.certificate(saved.id).await.unwrap(), None);
    assert!(matches!(dir.delete_certificate(saved.id).await, Err(DirectoryError::NotFound)));
    let left = dir.certificate_materials().await.unwrap();
    assert_eq!(left.iter().map(|m| m.info.id).collect::<Vec<_>>(), [of_beta.id, second.id]);
}

async fn the_certificates_version_changes_on_every_addition_and_removal(dir: &Fresh) {
    // What a polling instance relies on: after any change the version differs from the one before it, and
    // one version always stands for one set of certificates (so an equal version never hides a change).
    let acme = dir.create_tenant("acme").await.unwrap();
    let mut seen: Vec<((i64, i64), Vec<i64>)> = Vec::new();
    let poll = || async {
        let version = dir.certificates_version().await.unwrap();
        let set: Vec<i64> = dir.certificate_materials().await.unwrap().iter().map(|m| m.info.id).collect();
        (version, set)
    };
    let mut changed = |(version, set): ((i64, i64), Vec<i64>)| {
        if let Some((last, _)) = seen.last() {
            assert_ne!(*last, version, "unchanged version after a change to {set:?}");
        }
        for (other, other_set) in &seen {
            assert!(*other != version || *other_set == set, "{version:?} stands for {other_set:?} and {set:?}");
        }
        seen.push((version, set));
    };
    changed(poll().await);
    let a = dir.save_certificate(&certificate(acme.id, "a.example"), t0()).await.unwrap();
    changed(poll().await);
    let b = dir.save_certificate(&certificate(acme.id, "b.example"), t0()).await.unwrap();
    changed(poll().await);
    dir.delete_certificate(a.id).await.unwrap();
    changed(poll().await);
    // Same count as before the deletion of `a`, and `b` removed then a newer one added: still a new version,
    // because the id of a removed certificate is never given again.
    dir.delete_certificate(b.id).await.unwrap();
    changed(poll().await);
    let c = dir.save_certificate(&certificate(acme.id, "c.example"), t0()).await.unwrap();
    assert!(c.id > b.id, "ids are never reused: {} after {}", c.id, b.id);
    changed(poll().await);
    let d = dir.save_certificate(&certificate(acme.id, "d.example"), t0()).await.unwrap();
    changed(poll().await);
    dir.delete_certificate(d.id).await.unwrap();
    let (version, set) = poll().await;
    assert_eq!(set, [c.id]);
    changed((version, set));
    // Unchanged while nothing changes.
    assert_eq!(dir.certificates_version().await.unwrap(), version);
    // Certificates removed with their tenant change it too.
    dir.delete_tenant(acme.id).await.unwrap();
    changed(poll().await);
    assert_eq!(seen.last().unwrap().1, Vec::<i64>::new());
}

async fn live_sessions_are_listed_for_instances_alive_recently(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let bob = dir.create_user(beta.id, new_user("bob", "/")).await.unwrap();
    dir.instance_alive("live", t0() - secs(60)).await.unwrap();
    dir.instance_alive("live", t0()).await.unwrap();
    dir.instance_alive("stale", t0() - secs(600)).await.unwrap();

    let late = session("s1", "live", &alice, t0() - secs(10));
    let early = session("s2", "live", &bob, t0() - secs(20));
    let also_alice = session("s3", "live", &alice, t0() - secs(5));
    let on_stale = session("s4", "stale", &alice, t0() - secs(900));
    for s in [&late, &early, &also_alice, &on_stale] {
        dir.register_session(s).await.unwrap();
    }
    assert_eq!(dir.live_session("s1").await.unwrap(), Some(late.clone()));
    assert_eq!(dir.live_session("nope").await.unwrap(), None);

    // Oldest first; the stale instance's sessions are left out, though still stored.
    let since = t0() - secs(30);
    let all = dir.live_sessions(None, since).await.unwrap();
    assert_eq!(all, vec![early.clone(), late.clone(), also_alice.clone()]);
    assert_eq!(dir.live_sessions(Some(acme.id), since).await.unwrap(), vec![late.clone(), also_alice.clone()]);
    assert_eq!(dir.live_sessions(Some(beta.id), since).await.unwrap(), vec![early.clone()]);
    assert_eq!(dir.live_session("s4").await.unwrap(), Some(on_stale.clone()));
    let long_ago = dir.live_sessions(Some(acme.id), t0() - secs(600)).await.unwrap();
    assert_eq!(long_ago, vec![on_stale, late.clone(), also_alice]);
    // A heartbeat stamped earlier than the last one (a slow instance's clock) never moves it back.
    dir.instance_alive("live", t0() - secs(300)).await.unwrap();
    assert_eq!(dir.live_sessions(None, since).await.unwrap().len(), 3);

    let duplicate = dir.register_session(&late).await;
    assert!(matches!(duplicate, Err(DirectoryError::Conflict("session"))), "{duplicate:?}");
    let unknown_instance = dir.register_session(&session("s5", "never-alive", &alice, t0())).await;
    assert!(matches!(unknown_instance, Err(DirectoryError::NotFound)), "{unknown_instance:?}");
}

async fn disconnects_are_requested_polled_and_carried_out(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.instance_alive("i1", t0()).await.unwrap();
    dir.instance_alive("i2", t0()).await.unwrap();
    for (id, instance) in [("a", "i1"), ("b", "i1"), ("c", "i2")] {
        dir.register_session(&session(id, instance, &alice, t0())).await.unwrap();
    }
    assert!(dir.disconnect_requests("i1").await.unwrap().is_empty());

    assert!(dir.request_disconnect("b", t0()).await.unwrap());
    assert!(dir.request_disconnect("a", t0() + secs(1)).await.unwrap());
    assert!(dir.request_disconnect("b", t0() + secs(2)).await.unwrap(), "asking twice is fine");
    assert!(!dir.request_disconnect("nope", t0()).await.unwrap());
    // Oldest request first: asking again kept b's first request.
    assert_eq!(dir.disconnect_requests("i1").await.unwrap(), ["b", "a"]);
    assert!(dir.disconnect_requests("i2").await.unwrap().is_empty());
    assert!(dir.disconnect_requests("unknown").await.unwrap().is_empty());

    dir.end_session("b").await.unwrap();
    assert_eq!(dir.live_session("b").await.unwrap(), None);
    assert_eq!(dir.disconnect_requests("i1").await.unwrap(), ["a"]);
    // Ending a session that is gone already is not an error (it may have gone with its user).
    dir.end_session("b").await.unwrap();
    let left = dir.live_sessions(None, t0()).await.unwrap();
    assert_eq!(left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
}

async fn dead_instances_are_forgotten_with_their_sessions(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.instance_alive("alive", t0()).await.unwrap();
    dir.instance_alive("dead", t0() - secs(120)).await.unwrap();
    dir.instance_alive("dead-too", t0() - secs(61)).await.unwrap();
    for (id, instance) in [("a", "alive"), ("d1", "dead"), ("d2", "dead"), ("d3", "dead-too")] {
        dir.register_session(&session(id, instance, &alice, t0())).await.unwrap();
    }

    assert_eq!(dir.forget_dead_instances(t0() - secs(60)).await.unwrap(), 3);
    for gone in ["d1", "d2", "d3"] {
        assert_eq!(dir.live_session(gone).await.unwrap(), None, "{gone}");
    }
    assert!(dir.live_session("a").await.unwrap().is_some());
    assert_eq!(dir.live_sessions(None, t0() - secs(3600)).await.unwrap().len(), 1);
    assert_eq!(dir.forget_dead_instances(t0() - secs(60)).await.unwrap(), 0);

    // The instance itself was forgotten: it must report alive again before registering sessions.
    let unknown = dir.register_session(&session("d4", "dead", &alice, t0())).await;
    assert!(matches!(unknown, Err(DirectoryError::NotFound)), "{unknown:?}");
    dir.instance_alive("dead", t0()).await.unwrap();
    dir.register_session(&session("d4", "dead", &alice, t0())).await.unwrap();
    assert_eq!(dir.live_sessions(None, t0()).await.unwrap().len(), 2);
}

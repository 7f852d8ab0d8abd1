//! The admin API's changes as an FTPS client sees them: a certificate uploaded for a tenant's hostname is
//! what a client connecting with that SNI name gets, at once; a disconnect ends a live session.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::support::admin::Api;
use crate::support::raw::{client_config, Ftp};
use crate::support::PASSWORD;

/// The leaf certificate the explicit port presents after AUTH TLS with `name` as SNI.
async fn served_to(api: &Api, name: &str) -> CertificateDer<'static> {
    let (mut ftp, _) = Ftp::connect_with(api.wharf.explicit, client_config()).await;
    let reply = ftp.cmd("AUTH TLS").await;
    assert_eq!(reply.code, 234);
    let plain = ftp.into_plain();
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let stream = connector.connect(ServerName::try_from(name.to_owned()).unwrap(), plain).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

#[tokio::test]
async fn an_uploaded_certificate_is_served_on_its_sni_name_at_once_and_gone_after_delete() {
    let api = Api::start().await;
    api.op_post("/api/v1/tenants/acme/hostnames", json!({"hostname": "ftp.acme.example"})).await.expect(201);
    let before = served_to(&api, "ftp.acme.example").await;

    let certified = rcgen::generate_simple_self_signed(vec!["ftp.acme.example".to_owned()]).unwrap();
    let upload = json!({"chain_pem": certified.cert.pem(), "key_pem": certified.key_pair.serialize_pem()});
    let created = api.op_post("/api/v1/tenants/acme/certificates", upload).await.expect(201);
    let id = created.body["id"].as_i64().unwrap();
    // The upload woke this instance's watcher: the next handshake has it (bounded wait, no fixed sleep).
    let mut served = before.clone();
    for _ in 0..100 {
        served = served_to(&api, "ftp.acme.example").await;
        if served != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served.as_ref(), certified.cert.der().as_ref(), "the tenant's certificate on its name");
    assert_eq!(served_to(&api, "other.example").await, before, "other names keep the server's certificate");

    // A whole login on that name, verifying the tenant's certificate as a strict client would.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let strict = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut ftp, _) = Ftp::connect_with(api.wharf.explicit, Arc::new(strict)).await;
    ftp.auth_tls_as(ServerName::try_from("ftp.acme.example").unwrap()).await;
    assert_eq!(ftp.cmd("USER alice").await.code, 331, "the SNI name selects the tenant");
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);

    api.delete(&api.operator.clone(), &format!("/api/v1/tenants/acme/certificates/{id}")).await.expect(204);
    let mut served = certified.cert.der().clone();
    for _ in 0..100 {
        served = served_to(&api, "ftp.acme.example").await;
        if served == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served, before, "back to the server's certificate");
}

#[tokio::test]
async fn a_disconnect_through_the_api_ends_the_live_session() {
    let api = Api::start().await;
    let mut ftp = api.wharf.login().await;
    let op = api.operator.clone();
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = api.all(&op, "/api/v1/sessions", 10).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["tenant"].as_str(), listed[0]["username"].as_str()), (Some("acme"), Some("alice")));
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    api.delete(&op, &format!("/api/v1/sessions/{id}")).await.expect(202);
    let reply = tokio::time::timeout(Duration::from_secs(10), ftp.reply()).await.expect("closed at once");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(ftp.is_closed().await);
    assert_eq!(api.last_audit().await["action"], "session.disconnect");

    // Disabling the user through the API closes its new session too.
    let mut again = api.wharf.login().await;
    api.patch(&op, "/api/v1/tenants/acme/users/alice", json!({"enabled": false})).await.expect(200);
    let reply = tokio::time::timeout(Duration::from_secs(10), again.reply()).await.expect("closed in time");
    assert_eq!(reply.code, 421, "{reply:?}");
    let (mut refused, _) = Ftp::connect(api.wharf.explicit).await;
    refused.auth_tls().await;
    assert_eq!(refused.cmd("USER alice@acme").await.code, 331);
    assert_eq!(refused.cmd(&format!("PASS {PASSWORD}")).await.code, 530);
}

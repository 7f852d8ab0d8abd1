//! Bring-your-own-bucket: a tenant's own endpoint, region and keys are the ones its requests use, and
//! the server's credentials never go to a store a tenant names.

use wharf::directory::TenantStorage;

use super::start;
use crate::support::s3::{Bucket, Relay};

#[tokio::test]
async fn a_tenant_with_its_own_endpoint_region_and_keys_is_reached_with_them() {
    let wharf = start(|_| {}).await;
    let own = Bucket::create().await;
    // The tenant's endpoint is a relay in front of the same S3 server, so the test sees its requests.
    let relay = Relay::start().await;
    // Moto takes any key; a store that checks signatures (S3_TEST_ENDPOINT) needs its real one, and
    // then only the endpoint can be told apart.
    let moto = std::env::var_os("S3_TEST_ENDPOINT").is_none();
    let (key_id, secret_key, region) = match moto {
        true => ("TENANTKEYID".to_owned(), "tenant-secret-key".to_owned(), "eu-central-1".to_owned()),
        false => {
            (crate::support::s3::credentials().0, crate::support::s3::credentials().1, crate::support::s3::region())
        }
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{secret_key}\n")).unwrap();
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let storage = TenantStorage {
        bucket: Some(own.name.clone()),
        prefix: Some("in".to_owned()),
        endpoint: Some(relay.endpoint.clone()),
        region: Some(region.clone()),
        path_style: Some(true),
        access_key_id: Some(key_id.clone()),
        secret_ref: Some(format!("file:{}", secret.path().display())),
    };
    wharf.directory.set_tenant_storage(tenant.id, &storage).await.unwrap();

    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("STOR", "byo.txt", b"through my endpoint").await.code, 226);
    assert_eq!(own.get("in/byo.txt").await.as_deref(), Some(&b"through my endpoint"[..]));
    let sent = relay.sent();
    assert!(sent.contains(&format!("PUT /{}/in/byo.txt", own.name)), "the upload went through the tenant's endpoint");
    assert!(sent.contains(&format!("Credential={key_id}/")), "signed with the tenant's key id");
    assert!(sent.contains(&format!("/{region}/s3/aws4_request")), "for the tenant's region");
    assert!(!sent.contains(&secret_key), "a secret is never sent, only used to sign");
    if moto {
        let server_key = wharf.config.storage.s3.access_key_id.clone().unwrap();
        assert!(!sent.contains(&format!("Credential={server_key}/")), "the server's key never reached it");
    }
}

#[tokio::test]
async fn a_tenant_endpoint_without_the_tenants_own_keys_is_refused() {
    let wharf = start(|_| {}).await;
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let storage = TenantStorage {
        bucket: Some("elsewhere".to_owned()),
        endpoint: Some("http://127.0.0.1:9".to_owned()),
        ..Default::default()
    };
    let refused = wharf.directory.set_tenant_storage(tenant.id, &storage).await.unwrap_err();
    assert!(refused.to_string().contains("own access key"), "{refused}");
}

#[tokio::test]
async fn a_tenant_secret_that_cannot_be_read_refuses_the_storage_not_the_session() {
    let wharf = start(|_| {}).await;
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let storage = TenantStorage {
        bucket: Some("elsewhere".to_owned()),
        endpoint: Some(crate::support::s3::endpoint().to_owned()),
        access_key_id: Some("TENANTKEYID".to_owned()),
        secret_ref: Some("file:/nonexistent/wharf-secret".to_owned()),
        ..Default::default()
    };
    wharf.directory.set_tenant_storage(tenant.id, &storage).await.unwrap();
    let (mut ftp, _) = crate::support::raw::Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    let reply = ftp.cmd(&format!("PASS {}", crate::support::PASSWORD)).await;
    assert_eq!(reply.code, 451, "the storage cannot be opened: try later, not a wrong password: {reply:?}");
    assert!(!reply.text.contains("/nonexistent"), "where secrets live stays in the log: {reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200, "the session goes on");
}

//! Tests of the session store (binding to users, provisional resumption, confirmation, bounds) and of
//! real handshakes getting the certificate for their SNI name.

use rustls::server::StoresServerSessions;
use rustls_pki_types::pem::PemObject as _;

use super::session_store::{Grant, MAX_SESSIONS};
use super::*;

fn granted(grant: Grant) -> Option<Vec<u8>> {
    match grant {
        Grant::Granted(value) => Some(value),
        _ => None,
    }
}

#[test]
fn sessions_resume_only_for_the_same_user() {
    let store = Arc::new(SessionStore::default());
    let alice_control = SessionOwner::new();
    let alice_data = SessionOwner::new();
    let bob_data = SessionOwner::new();
    store.insert(b"id".to_vec(), b"secret".to_vec(), alice_control.clone());

    // Before login nobody matches, not even the same connection.
    assert!(matches!(store.lookup(b"id", &alice_control), Grant::Refused));

    alice_control.set_user(1, 10);
    alice_data.set_user(1, 10);
    bob_data.set_user(1, 11);
    assert_eq!(granted(store.lookup(b"id", &alice_data)).as_deref(), Some(&b"secret"[..]));
    assert!(matches!(store.lookup(b"id", &bob_data), Grant::Refused));
    assert!(matches!(store.lookup(b"other", &alice_data), Grant::Refused));

    // Same user id in another tenant is another user.
    let other_tenant = SessionOwner::new();
    other_tenant.set_user(2, 10);
    assert!(matches!(store.lookup(b"id", &other_tenant), Grant::Refused));
}

#[tokio::test]
async fn a_session_of_a_connection_still_logging_in_is_provisional_until_it_logs_in() {
    let tls = test_tls();
    let alice_b = SessionOwner::new();
    tls.store.insert(b"b".to_vec(), b"secret".to_vec(), alice_b.clone());
    let alice_a = SessionOwner::new();
    alice_a.set_user(1, 10);

    // The data connection of alice's session A resumes a session of her control connection B, which is
    // between AUTH TLS and PASS.
    let data = tls.data_acceptor(&alice_a, DataDirection::ToClient);
    let binding = data.binding.as_ref().unwrap();
    assert!(binding.take(b"b").is_some());
    let login = tokio::spawn({
        let alice_b = alice_b.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            alice_b.set_user(1, 10);
        }
    });
    assert!(data.confirm(Duration::from_secs(5)).await);
    login.await.unwrap();

    // If B becomes another user, or never logs in, the resumption does not count.
    let bob_b = SessionOwner::new();
    tls.store.insert(b"c".to_vec(), b"secret".to_vec(), bob_b.clone());
    let data = tls.data_acceptor(&alice_a, DataDirection::ToClient);
    assert!(data.binding.as_ref().unwrap().take(b"c").is_some());
    bob_b.set_user(1, 11);
    assert!(!data.confirm(Duration::from_secs(5)).await);
    let silent = SessionOwner::new();
    tls.store.insert(b"d".to_vec(), b"secret".to_vec(), silent);
    let data = tls.data_acceptor(&alice_a, DataDirection::ToClient);
    assert!(data.binding.as_ref().unwrap().take(b"d").is_some());
    assert!(!data.confirm(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn a_data_connection_records_sessions_only_after_a_confirmed_resumption() {
    let tls = test_tls();
    let alice = SessionOwner::new();
    alice.set_user(1, 10);
    tls.store.insert(b"control".to_vec(), b"secret".to_vec(), alice.clone());

    let full_handshake = tls.data_acceptor(&alice, DataDirection::ToClient);
    assert!(!full_handshake.binding.as_ref().unwrap().put(b"new".to_vec(), b"v".to_vec()));
    assert!(matches!(tls.store.lookup(b"new", &alice), Grant::Refused));

    let resumed = tls.data_acceptor(&alice, DataDirection::ToClient);
    let binding = resumed.binding.as_ref().unwrap();
    assert!(binding.take(b"control").is_some());
    assert!(binding.put(b"new".to_vec(), b"v".to_vec()));
    assert!(matches!(tls.store.lookup(b"new", &alice), Grant::Provisional(..)), "only provisional before confirmation");
    assert!(resumed.confirm(Duration::from_secs(1)).await);
    assert!(granted(tls.store.lookup(b"new", &alice)).is_some());

    // A stranger resuming a ticket of a connection that never logs in as alice: what rustls issued to
    // him during that handshake is never recorded under alice.
    let mallory = SessionOwner::new();
    tls.store.insert(b"mallory".to_vec(), b"secret".to_vec(), mallory.clone());
    let raced = tls.data_acceptor(&alice, DataDirection::ToClient);
    let binding = raced.binding.as_ref().unwrap();
    assert!(binding.take(b"mallory").is_some());
    assert!(binding.put(b"stolen".to_vec(), b"v".to_vec()));
    assert!(!raced.confirm(Duration::from_millis(100)).await);
    assert!(matches!(tls.store.lookup(b"stolen", &alice), Grant::Refused));
}

/// Drives what one data connection's handshake does to the store: it presents `ticket` and, when `issues`,
/// rustls issues it one new ticket.
fn data_handshake(tls: &Tls, owner: &Arc<SessionOwner>, direction: DataDirection, ticket: &[u8], issues: usize) {
    let data = tls.data_acceptor(owner, direction);
    let binding = data.binding.as_ref().unwrap();
    assert!(binding.take(ticket).is_some(), "ticket {ticket:?} resumes");
    for n in 0..issues {
        binding.put([ticket, &n.to_le_bytes()].concat(), b"v".to_vec());
    }
}

#[test]
fn uploads_send_tickets_only_to_a_client_about_to_use_its_last() {
    let tls = test_tls();
    // The control handshake issues its tickets: t0 .. t7.
    let once = SessionOwner::new();
    let control = tls.connection_config(&once, Role::Control, CONTROL_TICKETS).unwrap().1;
    let tickets: Vec<Vec<u8>> = (0..CONTROL_TICKETS).map(|n| format!("t{n}").into_bytes()).collect();
    for ticket in &tickets {
        assert!(control.put(ticket.clone(), b"v".to_vec()));
    }
    once.set_user(1, 10);

    // A client that uses each ticket once: uploads send nothing while it holds two or more.
    for ticket in &tickets[..CONTROL_TICKETS - 1] {
        assert_eq!(data_tickets(&once, DataDirection::FromClient, 2), 0);
        data_handshake(&tls, &once, DataDirection::FromClient, ticket, 0);
    }
    // The eighth upload takes the last one, so it refills the client.
    assert_eq!(data_tickets(&once, DataDirection::FromClient, 2), CLIENT_TICKETS);
    data_handshake(&tls, &once, DataDirection::FromClient, &tickets[CONTROL_TICKETS - 1], CLIENT_TICKETS);
    assert_eq!(data_tickets(&once, DataDirection::FromClient, 2), 0);

    // A client that presents the same ticket every time never gets tickets on an upload connection.
    let reuse = SessionOwner::new();
    let control = tls.connection_config(&reuse, Role::Control, CONTROL_TICKETS).unwrap().1;
    for n in 0..CONTROL_TICKETS {
        control.put(format!("r{n}").into_bytes(), b"v".to_vec());
    }
    reuse.set_user(1, 11);
    for _ in 0..100 {
        assert_eq!(data_tickets(&reuse, DataDirection::FromClient, 2), 0);
        data_handshake(&tls, &reuse, DataDirection::FromClient, b"r7", 0);
    }
    // Downloads always send the usual tickets.
    assert_eq!(data_tickets(&reuse, DataDirection::ToClient, 2), 2);
}

#[test]
fn an_early_data_connection_issues_tickets_only_once_its_direction_is_known() {
    let tls = test_tls();
    let alice = SessionOwner::new();
    let control = tls.connection_config(&alice, Role::Control, CONTROL_TICKETS).unwrap().1;
    for n in 0..CONTROL_TICKETS {
        assert!(control.put(format!("c{n}").into_bytes(), b"v".to_vec()));
    }
    alice.set_user(1, 10);
    let cases = [(None, 0), (Some(DataDirection::FromClient), 0), (Some(DataDirection::ToClient), 2)];
    for (n, (direction, issued)) in cases.into_iter().enumerate() {
        let early = tls.early_data_acceptor(&alice);
        let binding = early.binding.as_ref().unwrap();
        assert!(binding.take(format!("c{n}").as_bytes()).is_some());
        if let Some(direction) = direction {
            early.direction_known(direction);
        }
        let recorded =
            (0..CLIENT_TICKETS).filter(|i| binding.put(format!("d{n}-{i}").into_bytes(), b"v".to_vec())).count();
        assert_eq!(recorded, issued, "{direction:?}");
    }
}

#[test]
fn sessions_of_connections_that_never_log_in_are_forgotten_when_they_close() {
    let store = SessionStore::default();
    let drive_by = SessionOwner::new();
    let alice = SessionOwner::new();
    store.insert(b"a".to_vec(), b"v".to_vec(), drive_by.clone());
    store.insert(b"b".to_vec(), b"v".to_vec(), alice.clone());
    alice.set_user(1, 10);
    store.forget_anonymous(&drive_by);
    store.forget_anonymous(&alice);
    assert_eq!(store.len(), 1);
    assert!(granted(store.lookup(b"b", &alice)).is_some());
}

fn test_tls() -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = PrivateKeyDer::try_from(certified.key_pair.serialize_der()).unwrap();
    Tls::new(vec![certified.cert.der().clone()], key, Resumption::Enforced).unwrap()
}

#[test]
fn store_is_bounded() {
    let store = SessionStore::default();
    let owner = SessionOwner::new();
    for i in 0..(MAX_SESSIONS + 10) {
        store.insert(i.to_le_bytes().to_vec(), vec![0], owner.clone());
    }
    assert!(store.len() <= MAX_SESSIONS);
}

/// Handshakes over loopback as a client that trusts only `roots` and asks for `sni`; the leaf it was served.
async fn served_leaf(acceptor: TlsAcceptor, sni: &str, roots: &[CertificateDer<'static>]) -> CertificateDer<'static> {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = acceptor.accept(tcp).await.unwrap();
        let _ = stream.read(&mut [0u8; 1]).await;
    });
    let mut trusted = rustls::RootCertStore::empty();
    for root in roots {
        trusted.add(root.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trusted)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let stream = connector.connect(name, tcp).await.unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    drop(stream);
    server.await.unwrap();
    leaf
}

#[tokio::test]
async fn control_and_data_handshakes_get_the_tenant_certificate_for_their_sni_name() {
    use crate::tls::testcerts::{material, TestCa};
    let server_ca = TestCa::new("wharf self-signed");
    let tenant_ca = TestCa::new("Acme CA");
    let default = server_ca.issue(&["localhost"]);
    let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
    let tls = Tls::new(vec![default.leaf.clone()], key, Resumption::Enforced).unwrap();
    let sealer = Sealer::new(&[5; 32]);
    let acme = tenant_ca.issue(&["ftp.acme.test"]);
    let hosts = ["ftp.acme.test".to_owned()];
    let prepared = prepare(&hosts, &acme.chain_pem, &acme.key_pem, &sealer, chrono::Utc::now()).unwrap();
    let materials = [material(prepared.into_new_certificate(1))];
    let hostnames = resolver::TenantHostnames::from([(1, hosts.to_vec())]);
    tls.resolver().set_tenants(TenantCertificates::build(&materials, &hostnames, &sealer, chrono::Utc::now()));

    let roots = [server_ca.der(), tenant_ca.der()];
    let owner = SessionOwner::new();
    assert_eq!(served_leaf(tls.control_acceptor(&owner), "ftp.acme.test", &roots).await, acme.leaf);
    let data = tls.data_acceptor(&owner, DataDirection::ToClient).acceptor;
    assert_eq!(served_leaf(data, "ftp.acme.test", &roots).await, acme.leaf);
    assert_eq!(served_leaf(tls.control_acceptor(&owner), "localhost", &roots).await, default.leaf);

    // Live: a renewal swapped in is what the next handshake gets, with no new acceptor config.
    let renewal = tenant_ca.issue(&["ftp.acme.test"]);
    let prepared = prepare(&hosts, &renewal.chain_pem, &renewal.key_pem, &sealer, chrono::Utc::now()).unwrap();
    let mut newer = material(prepared.into_new_certificate(1));
    newer.info.id = 2;
    let materials = [materials[0].clone(), newer];
    let acceptor = tls.control_acceptor(&owner);
    tls.resolver().set_tenants(TenantCertificates::build(&materials, &hostnames, &sealer, chrono::Utc::now()));
    assert_eq!(served_leaf(acceptor, "ftp.acme.test", &roots).await, renewal.leaf);
}

/// Two instances on one SQLite directory: what the admin side saves, the other instance's watcher loads
/// and its handshakes serve, renewals and deletions included.
#[tokio::test]
async fn a_certificate_saved_through_the_directory_is_served_by_every_instance_after_its_next_poll() {
    use crate::tls::testcerts::TestCa;
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("wharf.db").display());
    let admin = crate::directory::open(&url).await.unwrap();
    let instance = crate::directory::open(&url).await.unwrap();
    let tenant = admin.create_tenant("acme").await.unwrap();
    admin.add_hostname(tenant.id, "ftp.acme.test").await.unwrap();

    let server_ca = TestCa::new("wharf self-signed");
    let tenant_ca = TestCa::new("Acme CA");
    let default = server_ca.issue(&["localhost"]);
    let key = PrivateKeyDer::from_pem_slice(default.key_pem.as_bytes()).unwrap();
    let tls = Tls::new(vec![default.leaf.clone()], key, Resumption::Enforced).unwrap();
    let sealer = Arc::new(Sealer::new(&[5; 32]));
    let every = Duration::from_millis(20);
    let mut watcher = CertificateWatcher::new(instance.clone(), tls.resolver().clone(), sealer.clone(), every);
    assert!(watcher.refresh(chrono::Utc::now()).await.unwrap());
    assert_eq!(tls.resolver().certificate_for(Some("ftp.acme.test")).cert[0], default.leaf);

    let save = |issued: &crate::tls::testcerts::Issued| {
        let hosts = ["ftp.acme.test".to_owned()];
        let prepared = prepare(&hosts, &issued.chain_pem, &issued.key_pem, &sealer, chrono::Utc::now()).unwrap();
        let new = prepared.into_new_certificate(tenant.id);
        let admin = admin.clone();
        async move { admin.save_certificate(&new, chrono::Utc::now()).await.unwrap() }
    };
    let first = tenant_ca.issue(&["ftp.acme.test"]);
    let first_info = save(&first).await;
    assert!(watcher.refresh(chrono::Utc::now()).await.unwrap());
    let roots = [server_ca.der(), tenant_ca.der()];
    let owner = SessionOwner::new();
    assert_eq!(served_leaf(tls.control_acceptor(&owner), "ftp.acme.test", &roots).await, first.leaf);

    // From here the watcher runs on its own, as in the server.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(watcher.run(shutdown.clone()));
    let served_soon = |leaf: CertificateDer<'static>| {
        let resolver = tls.resolver().clone();
        async move {
            let picked_up = async {
                while resolver.certificate_for(Some("ftp.acme.test")).cert[0] != leaf {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(5), picked_up).await.expect("the watcher did not reload");
        }
    };
    let renewal = tenant_ca.issue(&["ftp.acme.test"]);
    let renewal_info = save(&renewal).await;
    served_soon(renewal.leaf.clone()).await;
    assert_eq!(served_leaf(tls.control_acceptor(&owner), "ftp.acme.test", &roots).await, renewal.leaf);

    admin.delete_certificate(renewal_info.id).await.unwrap();
    served_soon(first.leaf.clone()).await;
    admin.delete_certificate(first_info.id).await.unwrap();
    served_soon(default.leaf.clone()).await;
    shutdown.cancel();
    running.await.unwrap();
}

#[test]
fn the_servers_own_certificate_is_reloaded_from_its_files_and_a_bad_one_is_refused() {
    use crate::tls::testcerts::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("CA");
    let first = ca.issue(&["ftp.example.test"]);
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &first.chain_pem).unwrap();
    std::fs::write(&key_file, &first.key_pem).unwrap();
    let mut config = crate::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    config.tls.cert_file = Some(cert_file.clone());
    config.tls.key_file = Some(key_file.clone());
    let (certs, key) = load_identity(&config).unwrap();
    let tls = Tls::new(certs, key, Resumption::Enforced).unwrap();
    assert_eq!(tls.resolver().certificate_for(None).cert[0], first.leaf);

    let second = ca.issue(&["ftp.example.test"]);
    std::fs::write(&cert_file, &second.chain_pem).unwrap();
    std::fs::write(&key_file, &second.key_pem).unwrap();
    tls.reload_identity(&config).unwrap();
    assert_eq!(tls.resolver().certificate_for(Some("ftp.example.test")).cert[0], second.leaf);

    // Half-replaced files (new certificate, old key) are refused and the working pair stays.
    std::fs::write(&cert_file, &ca.issue(&["ftp.example.test"]).chain_pem).unwrap();
    assert!(tls.reload_identity(&config).is_err());
    assert_eq!(tls.resolver().certificate_for(None).cert[0], second.leaf);
}

use std::net::SocketAddr;

use super::*;

#[test]
fn urls_lose_their_passwords_and_parameters() {
    assert_eq!(redact_url("postgres://u:secret@db/w?sslmode=require"), "postgres://u:***@db/w");
    assert_eq!(redact_url("sqlite://x.db?mode=rwc"), "sqlite://x.db");
    assert_eq!(redact_url("postgres://u@db/w"), "postgres://u@db/w");
}

#[test]
fn secrets_are_never_printed() {
    let mut c = Config::default();
    c.storage.s3.secret_access_key = Some(Secret::new("very-secret".to_owned()));
    assert!(!format!("{c:?}").contains("very-secret"));
    assert_eq!(c.storage.s3.secret_access_key.as_ref().unwrap().expose(), "very-secret");
}

#[test]
fn the_s3_backend_needs_a_bucket_and_sane_part_settings() {
    let mut c = Config::default();
    c.storage.backend = Backend::S3;
    let field = |c: &Config| match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    assert_eq!(field(&c), "storage.s3.bucket");
    c.storage.s3.bucket = Some("b".into());
    c.validate().unwrap();
    c.storage.s3.part_size = 1024 * 1024;
    assert_eq!(field(&c), "storage.s3.part_size");
    c.storage.s3.part_size = 8 * MIB;
    c.storage.s3.tenant_memory_budget = 16 * MIB;
    assert_eq!(field(&c), "storage.s3.memory_budget", "one upload needs 8 MiB x 5");
    c.storage.s3.tenant_memory_budget = 256 * MIB;
    c.storage.s3.access_key_id = Some("AK".into());
    assert_eq!(field(&c), "storage.s3.access_key_id", "a key id without a secret");
    c.storage.s3.endpoint = Some("minio:9000".into());
    c.storage.s3.access_key_id = None;
    assert_eq!(field(&c), "storage.s3.endpoint");
}

#[test]
fn login_defence_settings_are_checked() {
    let field = |c: &Config| match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    let mut c = Config::default();
    c.login_defence.user.threshold = 0;
    assert_eq!(field(&c), "login_defence.user.threshold");
    let mut c = Config::default();
    c.login_defence.ip.ban_secs = 0;
    assert_eq!(field(&c), "login_defence.ip.window_secs");
    let mut c = Config::default();
    c.login_defence.max_ban_secs = 60;
    assert_eq!(field(&c), "login_defence.max_ban_secs", "shorter than the first ban");
    let mut c = Config::default();
    c.login_defence.forget_after_secs = 60;
    assert_eq!(field(&c), "login_defence.forget_after_secs", "shorter than a window");
    let mut c = Config::default();
    c.login_defence.max_delay_ms = 10;
    assert_eq!(field(&c), "login_defence.max_delay_ms", "below the base delay");
    let mut c = Config::default();
    c.login_defence.ipv6_prefix_len = 8;
    assert_eq!(field(&c), "login_defence.ipv6_prefix_len");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(&file, "[login_defence]\nbans = false\n[login_defence.ip]\nthreshold = 3\n").unwrap();
    let c = Config::load(Some(&file)).unwrap();
    assert!(!c.login_defence.bans);
    assert_eq!(c.login_defence.ip, BanRule { threshold: 3, window_secs: 900, ban_secs: 900 });
    assert_eq!(c.login_defence.user.threshold, 10);
}

#[test]
fn defaults_are_valid_and_strict() {
    let c = Config::default();
    c.validate().unwrap();
    assert!(c.tls.require_tls_for_login && c.tls.require_prot_p && c.tls.require_same_ip_for_passive);
    assert_eq!(c.tls.data_session_resumption, Resumption::Enforced);
    assert_eq!(c.ftp.max_line_bytes, 8192);
}

#[test]
fn the_admin_api_is_off_by_default_and_its_settings_are_checked() {
    let field = |c: &Config| match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    let c = Config::default();
    assert!(!c.admin.enabled);
    assert_eq!(c.admin.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    let mut c = Config::default();
    c.admin.cert_file = Some("cert.pem".into());
    assert_eq!(field(&c), "admin.cert_file", "a certificate without its key");
    let mut c = Config::default();
    c.admin.enabled = true;
    c.admin.listen = c.ftp.explicit_listen.unwrap();
    assert_eq!(field(&c), "admin.listen");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(&file, "[admin]\nenabled = true\nlisten = \"127.0.0.1:9443\"\n").unwrap();
    let c = Config::load(Some(&file)).unwrap();
    assert!(c.admin.enabled);
    assert_eq!(c.admin.listen.port(), 9443);
    std::fs::write(&file, "[admin]\nlisten = \"not an address\"\n").unwrap();
    assert!(Config::load(Some(&file)).is_err());
}

#[test]
fn toml_overrides_and_bad_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(&file, "[ftp]\npassive_ports = \"6000-6010\"\n[tls]\ndata_session_resumption = \"enabled\"\n")
        .unwrap();
    let c = Config::load(Some(&file)).unwrap();
    assert_eq!(c.ftp.passive_ports, PortRange { start: 6000, end: 6010 });
    assert_eq!(c.tls.data_session_resumption, Resumption::Enabled);

    std::fs::write(&file, "[ftp]\npassive_ports = \"9-3\"\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("ftp.passive_ports"), "{err}");

    std::fs::write(&file, "[tls]\ndata_session_resumption = \"sometimes\"\n").unwrap();
    assert!(Config::load(Some(&file)).is_err());
}

#[test]
fn telemetry_is_off_by_default_and_its_settings_are_checked() {
    let field = |c: &Config| match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    assert_eq!(Config::default().telemetry.otlp_endpoint, None);
    type Change = fn(&mut TelemetryConfig);
    let cases: [(Change, &str); 6] = [
        (|t| t.otlp_endpoint = Some("collector:4318".into()), "telemetry.otlp_endpoint"),
        (|t| t.otlp_endpoint = Some("http://bad host/".into()), "telemetry.otlp_endpoint"),
        (|t| drop(t.otlp_headers.insert("bad header".into(), Secret::new("x".into()))), "telemetry.otlp_headers"),
        (|t| t.traces_sample_ratio = 1.5, "telemetry.traces_sample_ratio"),
        (|t| t.traces_filter = "wharf=loud".into(), "telemetry.traces_filter"),
        (|t| t.metrics_interval_secs = 0, "telemetry.metrics_interval_secs"),
    ];
    for (change, expected) in cases {
        let mut c = Config::default();
        change(&mut c.telemetry);
        assert_eq!(field(&c), expected);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    let toml = "[telemetry]\notlp_endpoint = \"https://otel.example.com:4318\"\n\
                otlp_headers = { authorization = \"Bearer abc\" }\ntraces_sample_ratio = 0.25\n";
    std::fs::write(&file, toml).unwrap();
    let c = Config::load(Some(&file)).unwrap();
    assert_eq!(c.telemetry.otlp_endpoint.as_deref(), Some("https://otel.example.com:4318"));
    assert_eq!(c.telemetry.otlp_headers["authorization"].expose(), "Bearer abc");
    assert!(!format!("{c:?}").contains("Bearer abc"), "headers are secrets");
    assert_eq!(c.telemetry.traces_sample_ratio, 0.25);
}

#[test]
fn a_passive_relay_needs_a_shared_pool_a_reachable_address_and_trusted_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    let pool = "[ftp]\npassive_mode = \"shared\"\npassive_ports = \"50000-50009\"\n";
    let load = |toml: String| {
        std::fs::write(&file, toml).unwrap();
        Config::load(Some(&file))
    };
    let relay = "[ftp.passive_relay]\nlisten = \"0.0.0.0:2122\"\nadvertise = \"10.1.2.3:2122\"\n\
                 trusted = [\"10.0.0.0/8\"]\n";
    let c = load(format!("{pool}{relay}")).unwrap();
    assert_eq!(c.ftp.passive_relay.advertise, Some("10.1.2.3:2122".parse().unwrap()));
    assert_eq!(c.ftp.passive_relay.trusted.len(), 1);
    // A specific listen address is its own advertisement.
    load(format!("{pool}[ftp.passive_relay]\nlisten = \"10.1.2.3:2122\"\ntrusted = [\"10.0.0.0/8\"]\n")).unwrap();
    let cases = [
        (relay.to_owned(), "ftp.passive_relay.listen"),
        (
            format!("{pool}[ftp.passive_relay]\nlisten = \"0.0.0.0:2122\"\ntrusted = [\"10.0.0.0/8\"]\n"),
            "ftp.passive_relay.advertise",
        ),
        (format!("{pool}{}", relay.replace("10.1.2.3:2122", "10.1.2.3:0")), "ftp.passive_relay.advertise"),
        (format!("{pool}{}", relay.replace("[\"10.0.0.0/8\"]", "[]")), "ftp.passive_relay.trusted"),
        (format!("{pool}[ftp.passive_relay]\ntrusted = [\"10.0.0.0/8\"]\n"), "ftp.passive_relay.listen"),
    ];
    for (toml, field) in cases {
        let err = load(toml.clone()).unwrap_err().to_string();
        assert!(err.contains(field), "{toml}: {err}");
    }
}

#[test]
fn proxy_protocol_needs_trusted_balancers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    let section = "[ftp.proxy_protocol]\nlisteners = [\"explicit\", \"passive\"]\n";
    std::fs::write(&file, format!("{section}trusted = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n")).unwrap();
    let c = Config::load(Some(&file)).unwrap();
    assert_eq!(c.ftp.proxy_protocol.listeners, [ProxyListener::Explicit, ProxyListener::Passive]);
    assert_eq!(c.ftp.proxy_protocol.trusted.len(), 2);

    std::fs::write(&file, section).unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("ftp.proxy_protocol.trusted"), "{err}");
    std::fs::write(&file, format!("{section}trusted = [\"10.0.0.0/33\"]\n")).unwrap();
    assert!(Config::load(Some(&file)).is_err(), "a bad network");
    std::fs::write(&file, "[ftp.proxy_protocol]\nlisteners = [\"admin\"]\ntrusted = [\"10.0.0.1\"]\n").unwrap();
    assert!(Config::load(Some(&file)).is_err(), "an unknown listener");
}

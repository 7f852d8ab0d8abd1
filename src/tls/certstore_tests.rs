//! Tests of upload checks: what is accepted, what is refused and with which field.

use chrono::TimeZone as _;
use rcgen::KeyPair;

use super::*;
use crate::tls::testcerts::{material, TestCa};

fn sealer() -> Sealer {
    Sealer::new(&[1; 32])
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 6, 1, 0, 0, 0).unwrap()
}

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn refused(result: Result<PreparedCertificate, CertificateRejection>) -> CertificateRejection {
    result.expect_err("the upload should be refused")
}

#[test]
fn a_good_certificate_is_described_and_its_key_sealed() {
    let ca = TestCa::new("Acme Test CA");
    let issued = ca.issue(&["ftp.acme.test", "files.acme.test"]);
    let sealer = sealer();
    let prepared = prepare(&hosts(&["FTP.acme.test."]), &issued.chain_pem, &issued.key_pem, &sealer, now()).unwrap();
    assert_eq!(prepared.names, ["ftp.acme.test", "files.acme.test"]);
    assert_eq!(prepared.subject, "CN=ftp.acme.test");
    assert_eq!(prepared.issuer, "CN=Acme Test CA");
    assert_eq!(prepared.not_before, Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(prepared.not_after, Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(prepared.fingerprint, hex(&Sha256::digest(&issued.leaf)));
    assert_eq!(prepared.fingerprint.len(), 64);
    assert!(!String::from_utf8_lossy(&prepared.sealed_key).contains("PRIVATE"));

    // What is stored opens back into a servable key with the whole chain.
    let material = material(prepared.into_new_certificate(7));
    let certified = open_material(&material, &sealer).unwrap();
    assert_eq!(certified.cert.len(), 2);
    assert_eq!(certified.cert[0], issued.leaf);
    assert!(matches!(
        open_material(&material, &Sealer::new(&[2; 32])),
        Err(MaterialError::Seal(SealError::WrongKey { .. }))
    ));
}

#[test]
fn only_certificates_are_kept_from_the_chain_field() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["ftp.acme.test"]);
    // A user pasting the key into the chain field too must not get it stored in the clear.
    let chain = format!("{}\n{}", issued.key_pem, issued.chain_pem);
    let prepared = prepare(&hosts(&["ftp.acme.test"]), &chain, &issued.key_pem, &sealer(), now()).unwrap();
    assert!(!prepared.chain_pem.contains("PRIVATE KEY"));
    assert_eq!(prepared.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["ftp.acme.test"]);
    let other = KeyPair::generate().unwrap().serialize_pem();
    let why = refused(prepare(&hosts(&["ftp.acme.test"]), &issued.chain_pem, &other, &sealer(), now()));
    assert_eq!(why.field, RejectedField::KeyPem);
    assert!(why.reason.contains("does not belong"), "{why}");
}

#[test]
fn a_chain_in_the_wrong_order_is_refused_for_its_key() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["ftp.acme.test"]);
    let (leaf, rest) = issued.chain_pem.split_at(issued.chain_pem.find("-----END CERTIFICATE-----\n").unwrap() + 26);
    let reversed = format!("{rest}{leaf}");
    let why = refused(prepare(&hosts(&["ftp.acme.test"]), &reversed, &issued.key_pem, &sealer(), now()));
    assert_eq!(why.field, RejectedField::KeyPem);
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let ca = TestCa::new("CA");
    let issued = ca.issue_with(&["ftp.acme.test"], &KeyPair::generate().unwrap(), 2020, 2025);
    let why = refused(prepare(&hosts(&["ftp.acme.test"]), &issued.chain_pem, &issued.key_pem, &sealer(), now()));
    assert_eq!(why.field, RejectedField::ChainPem);
    assert!(why.reason.contains("expired on 2025-01-01"), "{why}");

    let issued = ca.issue_with(&["ftp.acme.test"], &KeyPair::generate().unwrap(), 2031, 2040);
    let why = refused(prepare(&hosts(&["ftp.acme.test"]), &issued.chain_pem, &issued.key_pem, &sealer(), now()));
    assert_eq!(why.field, RejectedField::ChainPem);
    assert!(why.reason.contains("not valid before 2031-01-01"), "{why}");
}

#[test]
fn names_must_cover_every_hostname() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["ftp.acme.test"]);
    let why = refused(prepare(
        &hosts(&["ftp.acme.test", "sftp.acme.test"]),
        &issued.chain_pem,
        &issued.key_pem,
        &sealer(),
        now(),
    ));
    assert_eq!(why.field, RejectedField::ChainPem);
    assert!(why.reason.contains("does not cover sftp.acme.test (its DNS names: ftp.acme.test)"), "{why}");

    let why = refused(prepare(&[], &issued.chain_pem, &issued.key_pem, &sealer(), now()));
    assert_eq!(why.field, RejectedField::Hostnames);
}

#[test]
fn a_wildcard_covers_exactly_one_label() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["*.acme.test"]);
    let ok = prepare(&hosts(&["a.acme.test", "b.acme.test"]), &issued.chain_pem, &issued.key_pem, &sealer(), now());
    assert_eq!(ok.unwrap().names, ["*.acme.test"]);
    for host in ["acme.test", "a.b.acme.test", "a.acme.test.evil"] {
        let why = refused(prepare(&hosts(&[host]), &issued.chain_pem, &issued.key_pem, &sealer(), now()));
        assert_eq!(why.field, RejectedField::ChainPem, "{host}");
    }
}

#[test]
fn name_matching_table() {
    for (pattern, host, covers) in [
        ("ftp.acme.test", "ftp.acme.test", true),
        ("ftp.acme.test", "sftp.acme.test", false),
        ("*.acme.test", "ftp.acme.test", true),
        ("*.acme.test", "acme.test", false),
        ("*.acme.test", ".acme.test", false),
        ("*.acme.test", "a.b.acme.test", false),
        ("*.acme.test", "*.acme.test", false),
        ("f*.acme.test", "ftp.acme.test", false),
    ] {
        assert_eq!(name_covers(pattern, host), covers, "{pattern} vs {host}");
    }
}

#[test]
fn garbage_is_refused_with_the_field_at_fault() {
    let ca = TestCa::new("CA");
    let issued = ca.issue(&["ftp.acme.test"]);
    let h = hosts(&["ftp.acme.test"]);
    let why = refused(prepare(&h, "hello", &issued.key_pem, &sealer(), now()));
    assert_eq!((why.field, why.reason.as_str()), (RejectedField::ChainPem, "no CERTIFICATE block found"));
    let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let why = refused(prepare(&h, not_x509, &issued.key_pem, &sealer(), now()));
    assert_eq!(why.field, RejectedField::ChainPem);
    assert!(why.reason.contains("certificate 1 of the chain is not a valid X.509"), "{why}");
    let why = refused(prepare(&h, &issued.chain_pem, "hello", &sealer(), now()));
    assert_eq!(why.field, RejectedField::KeyPem);
    let broken_key = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
    let why = refused(prepare(&h, &issued.chain_pem, broken_key, &sealer(), now()));
    assert_eq!(why.field, RejectedField::KeyPem);
    assert!(why.reason.contains("not of a supported kind"), "{why}");
}

/// The inner key of a PKCS#8 document: PKCS#1 for RSA, SEC1 for EC.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let body = der_contents(pkcs8).unwrap();
    let skip = |der: &[u8]| {
        let (header, len) = der_header(der).unwrap();
        der[header + len..].to_vec()
    };
    let after_algorithm = skip(&skip(body));
    der_contents(&after_algorithm).unwrap().to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n")
}

#[test]
fn sec1_ec_keys_are_accepted_and_stored_as_pkcs8() {
    let ca = TestCa::new("CA");
    let key = KeyPair::generate().unwrap();
    let issued = ca.issue_with(&["ftp.acme.test"], &key, 2020, 2100);
    let sec1 = pem("EC PRIVATE KEY", &pkcs8_inner(&key.serialize_der()));
    let sealer = sealer();
    let prepared = prepare(&hosts(&["ftp.acme.test"]), &issued.chain_pem, &sec1, &sealer, now()).unwrap();
    let opened = sealer.open(&prepared.sealed_key).unwrap();
    assert!(matches!(PrivateKeyDer::try_from(opened.to_vec()), Ok(PrivateKeyDer::Pkcs8(_))));
    open_material(&material(prepared.into_new_certificate(1)), &sealer).unwrap();
}

/// A 2048-bit RSA key (made for these tests only) in PKCS#8, as rcgen with ring needs it to sign.
const RSA_PKCS8: &str = "\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHUyNQC5n5t6hj\
TmLn41gfdz24AZIYWSBG1fyqWT2eFsjXihJEjnz9ds75z8x2zUmpHdRYqXrXHHPX\
LRSzHVDON2ad6ccCZ/wa4/fEyM+jucvRVHq5AfbLuGaXFNicspPMGDqUrH1JupUa\
de5V4KPgQ84IQIt00KqvWPXu2s2GPvF8sn1hJS/hyL68ozV1r//1I2oND3pA6KwK\
aYGlmCCSYpnwcLrSBwWljSjbfXMYsGcuVL0pOJm+xHMqpbEV9+K7O4yDvAkW8oFP\
tJ7l22x7IFuO8tcIg7hBBW6SAW4ZpXqAId82NHY0umbvjQJkkU+u2iJItDIeHb2r\
va+WuC6LAgMBAAECggEAAw5sNGBe+4C4KNIF+Gfs7RXc/JdQ2OWjgZtIM6DaUNco\
9lI2ZSH91KXZ6G9vzv1y2hB1B3TTR2AIfrC1XLp3QdI67Gcii7K3wltAg7WVppR/\
S2RqObACNDl8LCJXVQtorMIetr5ZQo0Q9Jd1nEpnhIPojn4EsQshVcpAU94wHgmO\
GfUcA9r/fy9Ggi6ZOqaR3oxUxP72Ojqiu8UzWJPfBB9ucfxt+QtwNsxOyBxmD+Ds\
nzePlHiFUgprBTIzfTgxwtfpX0sdWb8lwBdmKUdgGlGkrQvpeZ/asZF8P2tj3sdi\
iQwAfNm0jJNs4uUJUUCuYBdj+mw68aQawM5hVBvcEQKBgQDwNAwirITvY0V4G+Sv\
WWYNC5OzBccjhwsjJGzJCSQ8HI7tsPwb8i5UoXm0L1od1n5AqVWEWZXS0W8khckI\
DqAtgpcK8Js9uKnxJ30ksy+0kJupQT91FfSIMtkPOuN4/dzAnfBPVN1+9/GTK2Pt\
yLIzCe4R2q7bMaOnLxLftmFf/QKBgQDUbuDEtqMyLoKRD3C4dth54FbfCI4nFek9\
V8LdBv+ZPcK29PBBB2nDY+oD922tActKGiQSxp/dqkjyqXXkI6GFS6uJspfOh7Qy\
DCIPcoXBlPDfqJDht9wiNuM8mlL8wRkH9V8Sgvyo14ooKzzlnXJb8xL0IXNGVA4Q\
+YerKRR7JwKBgGhMoUxZDuwHdf2+VuFQ90AI29xrUNn7ZHmg8l+kyYgUend5Vy8n\
TLjQ2NDFkuLL5UxcetaaM7Uz3YfFU9Jcz26TetR0P2Rgj+I33F4YNEm6VOz8ePp1\
SxXsxlWXo3hA+x7kNZms5vSf4tSdjamNcNs6n5Y/F5f0CPSqOw7K2aNdAoGANPzP\
LeIMhOjbAoniaPCkAIp3wLwmkRNDEV0BqxYizTt9hRtFjkLmG6mhZoniHoRTC9HH\
a7OFjsn51iV01YoZsOD2EauteAOba9xg5o9/U5DuICuwr8ynqRUdyzEHQCp+LuEC\
bOClWwwgVvKqBvAl5U+VS7XIRiOTOqKzN3tQs4MCgYEAmctLL4pLORHWYy0L4OCI\
BkEYMhPqx6/SSrLD5hwKl3s+cB9CUGo/eHEVOUQtrzVDETjWVukvt42AZZLI2Syi\
dEylgiXlGkXcXTngDjERzwjaaBujA5iJoEW2zg0lekWGG3iihMz9UcEWp4cAo4OF\
50CKLj7D3UMFt46bfTlXcyo=\
";

#[test]
fn pkcs1_rsa_keys_are_accepted_and_stored_as_pkcs8() {
    let pkcs8 = base64::engine::general_purpose::STANDARD.decode(RSA_PKCS8.replace('\n', "")).unwrap();
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8.clone()), &rcgen::PKCS_RSA_SHA256)
        .unwrap();
    let ca = TestCa::new("CA");
    let issued = ca.issue_with(&["ftp.acme.test"], &key, 2020, 2100);
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs8_inner(&pkcs8));
    let sealer = sealer();
    let prepared = prepare(&hosts(&["ftp.acme.test"]), &issued.chain_pem, &pkcs1, &sealer, now()).unwrap();
    assert_eq!(sealer.open(&prepared.sealed_key).unwrap().as_slice(), pkcs8.as_slice());
    open_material(&material(prepared.into_new_certificate(1)), &sealer).unwrap();

    // An RSA key offered for an EC certificate is refused before any wrapping guesswork.
    let ec = ca.issue(&["ftp.acme.test"]);
    let why = refused(prepare(&hosts(&["ftp.acme.test"]), &ec.chain_pem, &pkcs1, &sealer, now()));
    assert_eq!(why.field, RejectedField::KeyPem);
}

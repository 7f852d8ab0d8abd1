//! Tenants' certificates: checking an uploaded chain and key before they are stored, and turning stored
//! material back into something rustls can serve.
//!
//! ```text
//! upload (chain PEM, key PEM) ──prepare──▶ PreparedCertificate ──(tenant id)──▶ NewCertificate ──▶ directory
//!                                           facts + chain PEM + sealed PKCS#8 key
//! directory ──CertificateMaterial──▶ certified_key ──▶ CertifiedKey for the SNI resolver
//! ```
//!
//! [`prepare`] rejects, naming the field at fault: a chain without certificates or with one that is not
//! X.509; a key that is not PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or not of a kind rustls can sign with; a key
//! that does not belong to the first certificate; a first certificate whose subjectAltName DNS names do not
//! cover every hostname (a wildcard `*.example.com` covers one label); one that is expired or not yet valid.
//! Keys are stored as PKCS#8 whatever form they came in, sealed with the server's [`Sealer`].

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

use super::sealer::{SealError, Sealer};
use crate::directory::admin::{CertificateMaterial, NewCertificate};

/// The upload field a [`CertificateRejection`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedField {
    Hostnames,
    ChainPem,
    KeyPem,
}

impl RejectedField {
    /// The field's name in the API (`hostnames`, `chain_pem`, `key_pem`).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedField::Hostnames => "hostnames",
            RejectedField::ChainPem => "chain_pem",
            RejectedField::KeyPem => "key_pem",
        }
    }
}

/// Why an upload was refused: meant for the client (a 422), so it says what to fix and holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", field.as_str())]
pub struct CertificateRejection {
    pub field: RejectedField,
    pub reason: String,
}

fn reject(field: RejectedField, reason: impl Into<String>) -> CertificateRejection {
    CertificateRejection { field, reason: reason.into() }
}

/// A checked certificate, ready to be stored for a tenant.
#[derive(Debug, Clone)]
pub struct PreparedCertificate {
    /// The leaf's subjectAltName DNS names, lower case.
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Lower-case hex SHA-256 of the leaf (DER).
    pub fingerprint: String,
    /// The chain re-encoded: only its CERTIFICATE blocks, leaf first, whatever else the upload held.
    pub chain_pem: String,
    /// The key as PKCS#8 DER, sealed.
    pub sealed_key: Vec<u8>,
}

impl PreparedCertificate {
    pub fn into_new_certificate(self, tenant_id: i64) -> NewCertificate {
        NewCertificate {
            tenant_id,
            names: self.names,
            subject: self.subject,
            issuer: self.issuer,
            not_before: self.not_before,
            not_after: self.not_after,
            fingerprint: self.fingerprint,
            chain_pem: self.chain_pem,
            sealed_key: self.sealed_key,
        }
    }
}

/// Checks an uploaded chain and key for `hostnames` as of `now`, and seals the key.
pub fn prepare(
    hostnames: &[String],
    chain_pem: &str,
    key_pem: &str,
    sealer: &Sealer,
    now: DateTime<Utc>,
) -> Result<PreparedCertificate, CertificateRejection> {
    use RejectedField::*;
    let hostnames: Vec<String> = hostnames.iter().map(|h| normalise_name(h)).collect();
    if hostnames.is_empty() || hostnames.iter().any(|h| h.is_empty()) {
        return Err(reject(Hostnames, "give at least one hostname, none of them empty"));
    }
    let chain = parse_chain(chain_pem)?;
    let leaf = X509Certificate::from_der(&chain[0]).expect("parse_chain checked every certificate").1;

    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| reject(KeyPem, format!("no PKCS#8, RSA (PKCS#1) or EC (SEC1) private key found in PEM ({e})")))?;
    let pkcs8 = to_pkcs8(&key, leaf.public_key().raw)?;
    let certified = certified_key(chain.clone(), &pkcs8).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => reject(
            KeyPem,
            "the key does not belong to the first certificate of chain_pem (the server's own, which must come first)",
        ),
        _ => reject(KeyPem, "the key is not of a supported kind (RSA, ECDSA P-256/P-384 or Ed25519)"),
    })?;
    drop(certified);

    let names = dns_names(&leaf).map_err(|why| reject(ChainPem, why))?;
    let uncovered: Vec<&str> =
        hostnames.iter().filter(|h| !names.iter().any(|n| name_covers(n, h))).map(String::as_str).collect();
    if !uncovered.is_empty() {
        let listed = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        return Err(reject(
            ChainPem,
            format!("the certificate does not cover {} (its DNS names: {listed})", uncovered.join(", ")),
        ));
    }

    let validity = leaf.validity();
    let not_before = timestamp(validity.not_before.timestamp());
    let not_after = timestamp(validity.not_after.timestamp());
    if now < not_before {
        return Err(reject(ChainPem, format!("the certificate is not valid before {}", not_before.to_rfc3339())));
    }
    if now > not_after {
        return Err(reject(ChainPem, format!("the certificate expired on {}", not_after.to_rfc3339())));
    }

    Ok(PreparedCertificate {
        names,
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
        fingerprint: hex(&Sha256::digest(&chain[0])),
        chain_pem: encode_chain(&chain),
        sealed_key: sealer.seal(pkcs8.secret_pkcs8_der()),
    })
}

/// Why stored material cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("its key cannot be unsealed: {0}")]
    Seal(#[from] SealError),
    #[error("its chain cannot be read: {0}")]
    Chain(String),
    #[error("rustls refuses it: {0}")]
    Key(#[from] rustls::Error),
}

/// Opens stored material into what the resolver serves.
pub fn open_material(material: &CertificateMaterial, sealer: &Sealer) -> Result<Arc<CertifiedKey>, MaterialError> {
    let chain = CertificateDer::pem_slice_iter(material.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MaterialError::Chain(e.to_string()))?;
    if chain.is_empty() {
        return Err(MaterialError::Chain("no certificate".into()));
    }
    let key = sealer.open(&material.sealed_key)?;
    let pkcs8 = PrivatePkcs8KeyDer::from(key.to_vec());
    Ok(Arc::new(certified_key(chain, &pkcs8)?))
}

/// Builds a [`CertifiedKey`] with the ring provider, insisting that the key is the leaf's.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivatePkcs8KeyDer<'_>,
) -> Result<CertifiedKey, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(PrivateKeyDer::Pkcs8(key.clone_key()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match()?;
    Ok(certified)
}

fn parse_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, CertificateRejection> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| reject(RejectedField::ChainPem, format!("the PEM cannot be read ({e})")))?;
    if chain.is_empty() {
        return Err(reject(RejectedField::ChainPem, "no CERTIFICATE block found"));
    }
    for (i, der) in chain.iter().enumerate() {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(reject(
                RejectedField::ChainPem,
                format!("certificate {} of the chain is not a valid X.509 certificate ({e})", i + 1),
            ));
        }
    }
    Ok(chain)
}

/// The subjectAltName DNS names, lower case. The subject's common name is not looked at: clients have
/// ignored it for years.
fn dns_names(leaf: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let san = leaf.subject_alternative_name().map_err(|e| format!("its subjectAltName cannot be read ({e})"))?;
    let mut names = Vec::new();
    for name in san.map(|ext| ext.value.general_names.as_slice()).unwrap_or_default() {
        if let GeneralName::DNSName(dns) = name {
            let dns = normalise_name(dns);
            if !names.contains(&dns) {
                names.push(dns);
            }
        }
    }
    Ok(names)
}

/// Lower case without a trailing dot, as names are compared.
pub(crate) fn normalise_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether certificate name `pattern` covers `host` (both normalised): equal, or `*.rest` and `host` is one
/// more label in front of `rest`.
pub(crate) fn name_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, host_rest)| !label.is_empty() && label != "*" && host_rest == rest),
        None => pattern == host,
    }
}

fn timestamp(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The key as PKCS#8. PKCS#1 and SEC1 keys are wrapped with the algorithm identifier of the leaf's public
/// key (rsaEncryption, or id-ecPublicKey and its curve); whether the key really is the leaf's is checked
/// afterwards.
fn to_pkcs8(key: &PrivateKeyDer<'_>, leaf_spki: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, CertificateRejection> {
    const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let (inner, wanted, kind) = match key {
        PrivateKeyDer::Pkcs8(pkcs8) => return Ok(pkcs8.clone_key()),
        PrivateKeyDer::Pkcs1(rsa) => (rsa.secret_pkcs1_der(), RSA_ENCRYPTION, "an RSA"),
        PrivateKeyDer::Sec1(ec) => (ec.secret_sec1_der(), EC_PUBLIC_KEY, "an EC"),
        _ => return Err(reject(RejectedField::KeyPem, "unsupported private key format")),
    };
    let mismatch = || reject(RejectedField::KeyPem, format!("the key is {kind} key but the certificate's is not"));
    let algorithm = der_first_element(leaf_spki).ok_or_else(mismatch)?;
    let algorithm_body = der_contents(algorithm).ok_or_else(mismatch)?;
    if !algorithm_body.starts_with(wanted) {
        return Err(mismatch());
    }
    let mut body = Zeroizing::new(vec![0x02, 0x01, 0x00]);
    body.extend_from_slice(algorithm);
    der_push(&mut body, 0x04, inner);
    let mut pkcs8 = Vec::with_capacity(body.len() + 4);
    der_push(&mut pkcs8, 0x30, &body);
    Ok(PrivatePkcs8KeyDer::from(pkcs8))
}

/// The first element (whole TLV) inside the SEQUENCE `der`.
fn der_first_element(der: &[u8]) -> Option<&[u8]> {
    let body = der_contents(der)?;
    let (header, len) = der_header(body)?;
    body.get(..header + len)
}

/// The contents of the TLV at the start of `der`.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (header, len) = der_header(der)?;
    der.get(header..header + len)
}

/// (header length, content length) of the TLV at the start of `der`.
fn der_header(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, first as usize));
    }
    let octets = (first & 0x7f) as usize;
    if octets == 0 || octets > 4 {
        return None;
    }
    let len = der.get(2..2 + octets)?.iter().fold(0usize, |acc, b| acc << 8 | *b as usize);
    Some((2 + octets, len))
}

fn der_push(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

fn encode_chain(chain: &[CertificateDer<'_>]) -> String {
    let mut pem = String::new();
    for cert in chain {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "certstore_tests.rs"]
mod tests;

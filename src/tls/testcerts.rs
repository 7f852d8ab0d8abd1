//! Certificates for tests: a throw-away CA that issues leaves for given names and dates.

use chrono::Utc;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::CertificateDer;

use crate::directory::admin::{CertificateInfo, CertificateMaterial, NewCertificate};

pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// One issued leaf: PEM as a user would upload it, plus the DER for assertions.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
    pub leaf: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        TestCa { cert: params.self_signed(&key).unwrap(), key }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A leaf valid from 2020 to 2100 with a new P-256 key.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, &KeyPair::generate().unwrap(), 2020, 2100)
    }

    pub fn issue_with(&self, names: &[&str], key: &KeyPair, from: i32, until: i32) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let leaf = params.signed_by(key, &self.cert, &self.key).unwrap();
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.cert.pem()),
            key_pem: key.serialize_pem(),
            leaf: leaf.der().clone(),
        }
    }
}

/// What the directory would hand back for a stored certificate.
pub fn material(new: NewCertificate) -> CertificateMaterial {
    CertificateMaterial {
        info: CertificateInfo {
            id: 1,
            tenant_id: new.tenant_id,
            names: new.names,
            subject: new.subject,
            issuer: new.issuer,
            not_before: new.not_before,
            not_after: new.not_after,
            fingerprint: new.fingerprint,
            created_at: Utc::now(),
        },
        chain_pem: new.chain_pem,
        sealed_key: new.sealed_key,
    }
}

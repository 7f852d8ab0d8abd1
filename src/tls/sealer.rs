//! Encryption at rest for tenants' private keys: AES-256-GCM under the server's secret key.
//!
//! A sealed value is `version (1) ‖ key id (4) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. The key id is the
//! start of the SHA-256 of the secret key, so a value sealed under another key is reported as such instead
//! of as corruption; the version byte and key id are authenticated as associated data.
//!
//! # Where the secret key comes from
//! In order: `WHARF_SECRET_KEY` (base64 of 32 bytes); the file named by `WHARF_SECRET_KEY_FILE`; else
//! `<data_dir>/secret.key`, made with 32 random bytes and mode 0600 on first use. The generated file suits
//! one instance (the embedded default); instances that share a Postgres directory must all be given the
//! same key, or each sees the others' certificates as sealed under another key and skips them.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const TAG_LEN: usize = 16;
/// The name of the generated key file under the data folder.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Why a sealed value could not be opened, or a secret key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed value is too short or of an unknown format version")]
    Format,
    #[error("the value was sealed under another secret key (key id {sealed}, this server's is {ours}); set WHARF_SECRET_KEY to the key it was sealed with")]
    WrongKey { sealed: String, ours: String },
    #[error("the sealed value failed authentication: it is corrupted")]
    Corrupted,
    #[error("the secret key {0}")]
    BadKey(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Seals and opens secrets with the server's 32-byte key.
pub struct Sealer {
    key: LessSafeKey,
    key_id: [u8; KEY_ID_LEN],
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &hex(&self.key_id)).finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(secret: &[u8; 32]) -> Sealer {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, secret).expect("a 32-byte AES-256 key"));
        let digest = Sha256::digest(secret);
        let mut key_id = [0; KEY_ID_LEN];
        key_id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Sealer { key, key_id, rng: SystemRandom::new() }
    }

    /// A key given as base64 (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Sealer, SealError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| SealError::BadKey("is not valid base64".into()))?,
        );
        let secret: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey(format!("must be 32 bytes, not {}", bytes.len())))?;
        Ok(Sealer::new(secret))
    }

    /// A key file holding the base64 of 32 bytes.
    pub fn from_file(path: &Path) -> Result<Sealer, SealError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| SealError::Io { path: path.to_owned(), source })?,
        );
        Sealer::from_base64(&text).map_err(|e| match e {
            SealError::BadKey(why) => SealError::BadKey(format!("in {} {why}", path.display())),
            other => other,
        })
    }

    /// The key file at `path`, made with a random key (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        if !path.exists() {
            let mut secret = Zeroizing::new([0u8; 32]);
            SystemRandom::new().fill(secret.as_mut()).map_err(|_| SealError::BadKey("cannot be generated".into()))?;
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret.as_ref()));
            write_new_private(path, text.as_bytes())?;
            tracing::info!(path = %path.display(), "generated the secret key that seals certificate keys");
        }
        Sealer::from_file(path)
    }

    /// The server's key, from `WHARF_SECRET_KEY`, `WHARF_SECRET_KEY_FILE` or `<data_dir>/secret.key` (made on
    /// first use), in that order.
    pub fn from_env_or_file(data_dir: &Path) -> Result<Sealer, SealError> {
        let inline = std::env::var("WHARF_SECRET_KEY").ok().filter(|v| !v.trim().is_empty());
        let file = std::env::var_os("WHARF_SECRET_KEY_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
        Sealer::from_sources(inline.as_deref(), file.as_deref(), data_dir)
    }

    /// [`Sealer::from_env_or_file`] with the environment's values passed in.
    pub fn from_sources(inline: Option<&str>, file: Option<&Path>, data_dir: &Path) -> Result<Sealer, SealError> {
        match (inline, file) {
            (Some(text), _) => Sealer::from_base64(text).map_err(|e| match e {
                SealError::BadKey(why) => SealError::BadKey(format!("in WHARF_SECRET_KEY {why}")),
                other => other,
            }),
            (None, Some(path)) => Sealer::from_file(path),
            (None, None) => Sealer::load_or_create(&data_dir.join(SECRET_KEY_FILE)),
        }
    }

    /// The first bytes of the key's SHA-256, in hex: safe to log, tells keys apart.
    pub fn key_id(&self) -> String {
        hex(&self.key_id)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system random number generator failed");
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&out[..HEADER_LEN]), &mut body)
            .expect("AES-GCM sealing cannot fail for in-memory sizes");
        out.extend_from_slice(&body);
        body.fill(0);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        if header[1..] != self.key_id {
            return Err(SealError::WrongKey { sealed: hex(&header[1..]), ours: self.key_id() });
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Format)?;
        let mut body = Zeroizing::new(ciphertext.to_vec());
        let len = self.key.open_in_place(nonce, Aad::from(header), &mut body).map_err(|_| SealError::Corrupted)?.len();
        body.truncate(len);
        Ok(body)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` (never overwrites) readable by its owner only.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| SealError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(b"private key");
        assert_ne!(&sealed[HEADER_LEN + NONCE_LEN..][..11], b"private key");
        assert_eq!(sealer.open(&sealed).unwrap().as_slice(), b"private key");
        assert_ne!(sealer.seal(b"private key"), sealed, "a fresh nonce every time");

        let other = Sealer::new(&[8; 32]);
        assert!(matches!(other.open(&sealed), Err(SealError::WrongKey { .. })));
    }

    #[test]
    fn tampering_and_truncation_are_detected() {
        let sealer = Sealer::new(&[7; 32]);
        let mut sealed = sealer.seal(b"private key");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(sealer.open(&sealed), Err(SealError::Corrupted)));
        assert!(matches!(sealer.open(&sealed[..10]), Err(SealError::Format)));
        let mut future = sealer.seal(b"x");
        future[0] = 2;
        assert!(matches!(sealer.open(&future), Err(SealError::Format)));
    }

    #[test]
    fn keys_come_from_base64_and_must_be_32_bytes() {
        let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let a = Sealer::from_base64(&format!("{text}\n")).unwrap();
        let b = Sealer::new(&[9; 32]);
        assert_eq!(b.open(&a.seal(b"k")).unwrap().as_slice(), b"k");
        let short = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
        assert!(Sealer::from_base64(&short).unwrap_err().to_string().contains("32 bytes"));
        assert!(Sealer::from_base64("not base64!").is_err());
    }

    #[test]
    fn without_a_configured_key_one_is_generated_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::from_sources(None, None, dir.path()).unwrap();
        let again = Sealer::from_sources(None, None, dir.path()).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        assert_eq!(again.open(&first.seal(b"k")).unwrap().as_slice(), b"k");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(SECRET_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // A configured key wins over the file.
        let inline = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let configured = Sealer::from_sources(Some(&inline), None, dir.path()).unwrap();
        assert_ne!(configured.key_id(), first.key_id());
        let file = dir.path().join("given.key");
        std::fs::write(&file, &inline).unwrap();
        assert_eq!(Sealer::from_sources(None, Some(&file), dir.path()).unwrap().key_id(), configured.key_id());
        assert!(Sealer::from_sources(None, Some(&dir.path().join("missing")), dir.path()).is_err());
    }
}

//! Virtual paths: what a user sees, normalised so that no input can leave the user's root, and the only
//! way storage keys are made.
//!
//! A [`VirtualPath`] is absolute (`/`, `/a/b`), has no empty, `.` or `..` segments and no trailing slash.
//! `..` clamps at the root. Segments holding NUL, CR, LF or any other control character, or a backslash,
//! are refused rather than rewritten: a client never gets a file under a name other than the one it sent.

use crate::storage::StorageKey;

/// S3's limit on a key, in bytes; a tenant's key prefix counts against it.
pub const MAX_KEY_BYTES: usize = 1024;
/// The common file-system limit on one name, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VfsError {
    /// 553: a segment holds a forbidden character.
    #[error("file name not allowed")]
    InvalidName,
    /// 553: a segment or the whole key is too long.
    #[error("file name too long")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualPath(String);

impl VirtualPath {
    pub fn root() -> Self {
        VirtualPath("/".to_owned())
    }

    /// Resolves `input` (absolute, or relative to `self`) into a normalised path.
    pub fn resolve(&self, input: &str) -> Result<VirtualPath, VfsError> {
        let _ = input;
        todo!()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The containing directory; the root's parent is the root.
    pub fn parent(&self) -> VirtualPath {
        todo!()
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        todo!()
    }

    /// The storage key of this path for a user whose home is `home` (a path in the tenant's tree).
    /// `/` of a user with home `/in` is key `in`; `/a/b.txt` is `in/a/b.txt`.
    pub fn to_key(&self, home: &VirtualPath) -> Result<StorageKey, VfsError> {
        let _ = home;
        todo!()
    }
}

impl std::fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

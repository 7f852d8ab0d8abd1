//! Virtual paths: what a user sees, normalised so that no input can leave the user's root, and the only
//! way storage keys are made; and [`UserView`], the user's view of the tenant's storage, with quotas.
//!
//! A [`VirtualPath`] is absolute (`/`, `/a/b`), has no empty, `.` or `..` segments and no trailing slash.
//! `..` clamps at the root. Segments holding NUL, CR, LF or any other control character, or a backslash,
//! are refused rather than rewritten: a client never gets a file under a name other than the one it sent.

pub mod quota;
mod view;

pub use self::view::{UserView, ViewError, ViewOwner, QUOTA_RECHECK};
use crate::storage::{BadSegment, StorageKey};

/// S3's limit on a key, in bytes; a tenant's key prefix counts against it.
pub const MAX_KEY_BYTES: usize = StorageKey::MAX_BYTES;
/// The common file-system limit on one name, in bytes.
pub const MAX_SEGMENT_BYTES: usize = StorageKey::MAX_SEGMENT_BYTES;

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
    ///
    /// Empty, `.` and repeated-slash segments vanish, `..` pops one segment and stops at the root. Every
    /// other segment is checked, including ones a later `..` removes, so a bad name is refused wherever
    /// it appears.
    pub fn resolve(&self, input: &str) -> Result<VirtualPath, VfsError> {
        let mut segments: Vec<&str> = if input.starts_with('/') { Vec::new() } else { self.segments().collect() };
        for segment in input.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                name => {
                    check_segment(name)?;
                    segments.push(name);
                }
            }
        }
        Ok(VirtualPath::from_segments(segments))
    }

    /// The path of `name` directly inside this one. `name` must be exactly one segment: not empty, `.`
    /// or `..`, and without `/`.
    pub fn join(&self, name: &str) -> Result<VirtualPath, VfsError> {
        if matches!(name, "" | "." | "..") || name.contains('/') {
            return Err(VfsError::InvalidName);
        }
        check_segment(name)?;
        Ok(if self.is_root() { VirtualPath(format!("/{name}")) } else { VirtualPath(format!("{}/{name}", self.0)) })
    }

    /// The segments from the root down; none for the root.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The containing directory; the root's parent is the root.
    pub fn parent(&self) -> VirtualPath {
        match self.0.rfind('/') {
            Some(0) | None => VirtualPath::root(),
            Some(slash) => VirtualPath(self.0[..slash].to_owned()),
        }
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.segments().next_back()
    }

    /// The storage key of this path for a user whose home is `home` (a path in the tenant's tree).
    /// `/` of a user with home `/in` is key `in`; `/a/b.txt` is `in/a/b.txt`.
    pub fn to_key(&self, home: &VirtualPath) -> Result<StorageKey, VfsError> {
        let mut key = String::with_capacity(home.0.len() + self.0.len());
        for segment in home.segments().chain(self.segments()) {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(segment);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(VfsError::TooLong);
        }
        Ok(StorageKey::from_normalised(key))
    }

    /// Every segment must already have passed [`check_segment`].
    fn from_segments(segments: Vec<&str>) -> VirtualPath {
        if segments.is_empty() {
            return VirtualPath::root();
        }
        let mut path = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
        for segment in segments {
            path.push('/');
            path.push_str(segment);
        }
        VirtualPath(path)
    }
}

/// Refuses a name a client could not have meant literally, by the rule storage keys follow
/// ([`StorageKey::check_segment`]): a client never gets a file under a name other than the one it sent.
fn check_segment(name: &str) -> Result<(), VfsError> {
    StorageKey::check_segment(name).map_err(|e| match e {
        BadSegment::Invalid => VfsError::InvalidName,
        BadSegment::TooLong => VfsError::TooLong,
    })
}

impl std::fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    #[test]
    fn resolve_table() {
        let long = "x".repeat(MAX_SEGMENT_BYTES + 1);
        let longest = "x".repeat(MAX_SEGMENT_BYTES);
        let cases: &[(&str, &str, Result<&str, VfsError>)] = &[
            ("/", "", Ok("/")),
            ("/a/b", "", Ok("/a/b")),
            ("/", "../../etc/passwd", Ok("/etc/passwd")),
            ("/", "a/../../b", Ok("/b")),
            ("/a/b", "..", Ok("/a")),
            ("/a/b", "../..", Ok("/")),
            ("/a/b", "../../../..", Ok("/")),
            ("/a", "b/./c", Ok("/a/b/c")),
            ("/a", "/x", Ok("/x")),
            ("/a", ".", Ok("/a")),
            ("/a", "./", Ok("/a")),
            ("/", "//a///b/", Ok("/a/b")),
            ("/", "a/b/", Ok("/a/b")),
            ("/", "%2e%2e/x", Ok("/%2e%2e/x")),
            ("/", "100%", Ok("/100%")),
            ("/", "...", Ok("/...")),
            ("/", ".hidden", Ok("/.hidden")),
            ("/", " lead and trail ", Ok("/ lead and trail ")),
            ("/", "dir with spaces/f i le.txt", Ok("/dir with spaces/f i le.txt")),
            ("/", "Grüße/日本語/🚢", Ok("/Grüße/日本語/🚢")),
            ("/", "caf\u{e9} / cafe\u{301}", Ok("/caf\u{e9} / cafe\u{301}")),
            ("/", "\\..\\x", Err(VfsError::InvalidName)),
            ("/", "a\\b", Err(VfsError::InvalidName)),
            ("/", "a\0b", Err(VfsError::InvalidName)),
            ("/", "a\rb", Err(VfsError::InvalidName)),
            ("/", "a\nb", Err(VfsError::InvalidName)),
            ("/", "tab\there", Err(VfsError::InvalidName)),
            ("/", "del\u{7f}", Err(VfsError::InvalidName)),
            ("/", "c1\u{85}", Err(VfsError::InvalidName)),
            ("/", "c1\u{9f}", Err(VfsError::InvalidName)),
            ("/", "bad\n/..", Err(VfsError::InvalidName)),
            ("/", &long, Err(VfsError::TooLong)),
        ];
        for (cwd, input, want) in cases {
            let got = path(cwd).resolve(input);
            let got = got.as_ref().map(VirtualPath::as_str).map_err(Clone::clone);
            assert_eq!(got, want.clone(), "{cwd:?} + {input:?}");
        }
        assert_eq!(path("/").resolve(&longest).unwrap().as_str().len(), MAX_SEGMENT_BYTES + 1);
    }

    #[test]
    fn parent_and_file_name() {
        assert_eq!(VirtualPath::root().parent(), VirtualPath::root());
        assert_eq!(VirtualPath::root().file_name(), None);
        assert_eq!(path("/a").parent(), VirtualPath::root());
        assert_eq!(path("/a").file_name(), Some("a"));
        assert_eq!(path("/a/b c/d").parent().as_str(), "/a/b c");
        assert_eq!(path("/a/b c/d").file_name(), Some("d"));
    }

    #[test]
    fn join_takes_exactly_one_segment() {
        assert_eq!(VirtualPath::root().join("a").unwrap().as_str(), "/a");
        assert_eq!(path("/a").join("b c").unwrap().as_str(), "/a/b c");
        assert_eq!(path("/a").join("...").unwrap().as_str(), "/a/...");
        for bad in ["", ".", "..", "b/c", "/", "x\r", "x\\y"] {
            assert_eq!(path("/a").join(bad), Err(VfsError::InvalidName), "{bad:?}");
        }
        assert_eq!(path("/a").join(&"x".repeat(MAX_SEGMENT_BYTES + 1)), Err(VfsError::TooLong));
    }

    #[test]
    fn to_key_table() {
        let cases = [
            ("/", "/", ""),
            ("/", "/a/b.txt", "a/b.txt"),
            ("/in", "/", "in"),
            ("/in", "/a/b.txt", "in/a/b.txt"),
            ("/in/deep", "/x", "in/deep/x"),
        ];
        for (home, p, key) in cases {
            assert_eq!(path(p).to_key(&path(home)).unwrap().as_str(), key, "{home} {p}");
        }
    }

    #[test]
    fn to_key_refuses_keys_over_the_limit() {
        let segment = "k".repeat(200);
        let home = path(&format!("/{segment}/{segment}"));
        let p = path(&format!("/{segment}/{segment}/{segment}"));
        // 5 * 200 bytes + 4 slashes fits; one more byte does not.
        let key = p.to_key(&home).unwrap();
        assert_eq!(key.as_str().len(), 1004);
        let fits = p.join(&"f".repeat(MAX_KEY_BYTES - 1005)).unwrap();
        assert_eq!(fits.to_key(&home).unwrap().as_str().len(), MAX_KEY_BYTES);
        let over = p.join(&"f".repeat(MAX_KEY_BYTES - 1004)).unwrap();
        assert_eq!(over.to_key(&home), Err(VfsError::TooLong));
    }

    /// Inputs built from the pieces that matter most (separators, dot segments, backslashes, controls)
    /// mixed with arbitrary text.
    fn tricky_input() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("\\".to_owned()),
            Just("%2e".to_owned()),
            Just("\0".to_owned()),
            Just("\u{85}".to_owned()),
            "[a-z ]{1,4}",
            any::<String>(),
        ];
        prop_oneof![prop::collection::vec(piece, 0..16).prop_map(|p| p.concat()), any::<String>()]
    }

    fn any_path() -> impl Strategy<Value = VirtualPath> {
        "(/?[a-z.]{0,3}){0,5}".prop_map(|s| path(&s))
    }

    fn is_normalised(p: &str) -> bool {
        p == "/"
            || (p.starts_with('/')
                && !p.ends_with('/')
                && p[1..].split('/').all(|s| !matches!(s, "" | "." | "..") && !s.chars().any(char::is_control)))
    }

    proptest! {
        #[test]
        fn resolve_never_panics_and_stays_normalised(cwd in any_path(), input in tricky_input()) {
            if let Ok(p) = cwd.resolve(&input) {
                prop_assert!(is_normalised(p.as_str()), "{:?}", p);
                prop_assert!(!p.as_str().contains('\\'));
                prop_assert_eq!(p.resolve("").unwrap(), p.clone());
                prop_assert_eq!(VirtualPath::root().resolve(p.as_str()).unwrap(), p.clone());
                if let Some(name) = p.file_name() {
                    prop_assert_eq!(p.parent().join(name).unwrap(), p.clone());
                }
            }
        }

        #[test]
        fn no_input_escapes_the_home(home in any_path(), cwd in any_path(), input in tricky_input()) {
            let home_key = home.to_key(&VirtualPath::root()).unwrap();
            if let Ok(key) = cwd.resolve(&input).and_then(|p| p.to_key(&home)) {
                let (key, home_key) = (key.as_str(), home_key.as_str());
                prop_assert!(
                    home_key.is_empty() || key == home_key || key.starts_with(&format!("{home_key}/")),
                    "{:?} is outside {:?}", key, home_key
                );
            }
        }
    }
}

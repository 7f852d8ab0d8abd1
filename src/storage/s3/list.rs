//! Listings on a flat namespace: one ListObjectsV2 page (delimiter `/`) becomes directory entries, its
//! common prefixes directories and its objects files.

use std::time::SystemTime;

use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;

use super::dir_metadata;
use crate::storage::{Entry, EntryKind, Metadata, StorageKey};

/// The entries of one listing page below `prefix`: its common prefixes are directories, its objects files;
/// the directory's own marker and names a client could not address are left out.
pub(super) fn page_entries(page: &ListObjectsV2Output, prefix: &str) -> Vec<Entry> {
    let visible = |name: &str| StorageKey::check_segment(name).is_ok();
    let dirs = page.common_prefixes().iter().filter_map(|p| {
        let name = p.prefix()?.strip_prefix(prefix)?.strip_suffix('/')?;
        visible(name).then(|| Entry { name: name.to_owned(), meta: dir_metadata(None) })
    });
    let files = page.contents().iter().filter_map(|o| {
        let name = o.key()?.strip_prefix(prefix)?;
        if name.is_empty() || !visible(name) {
            return None;
        }
        let modified = o.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
        let meta = Metadata { kind: EntryKind::File, size: o.size().unwrap_or(0).max(0) as u64, modified };
        Some(Entry { name: name.to_owned(), meta })
    });
    dirs.chain(files).collect()
}

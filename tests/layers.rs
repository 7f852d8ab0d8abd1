//! The layer rules of DESIGN.md ("Layers and the stores they declare"), checked over the source: no
//! module names a layer above it. A layer that needs something from above declares a trait of its own
//! (as storage declares `UploadLedger`) and `server` wires the implementation in.

use std::path::{Path, PathBuf};

/// (layer, layers it must never name). A layer is a folder under `src/` or a file `src/<layer>.rs`.
const RULES: &[(&str, &[&str])] = &[
    ("storage", &["vfs", "directory", "ftp", "admin", "auth", "server", "sessions", "usage"]),
    ("vfs", &["ftp", "admin", "directory", "auth", "server"]),
    ("directory", &["ftp", "admin", "server", "auth", "services", "sessions"]),
    ("admin", &["storage", "ftp", "server"]),
    ("ftp", &["admin", "server"]),
    ("services", &["ftp", "admin", "server", "storage", "vfs"]),
];

fn sources(layer: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let file = src.join(format!("{layer}.rs"));
    if file.is_file() {
        found.push(file);
    }
    let mut folders = vec![src.join(layer)];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The modules of the crate that `code` names through `crate::` paths, comments left out: `crate::a::b`,
/// `crate::{a, b::c}` and nested groups count; a doc link in a comment does not.
fn named_modules(code: &str) -> Vec<String> {
    let mut named = Vec::new();
    for line in code.lines() {
        let line = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // A group may span lines in a `use`; this line's part is enough for rustfmt's usual layout,
                // and the group's continuation lines are caught below.
                for item in group.split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        named.push(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                named.push(name);
            }
        }
    }
    // Continuation lines of a multi-line `use crate::{` group.
    let mut in_group = false;
    for line in code.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("use crate::{") && !trimmed.ends_with("};") {
            in_group = true;
            continue;
        }
        if in_group {
            if trimmed.starts_with('}') {
                in_group = false;
                continue;
            }
            for item in trimmed.split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    named.push(name);
                }
            }
        }
    }
    named
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let mut broken = Vec::new();
    for (layer, above) in RULES {
        let files = sources(layer);
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for file in files {
            let code = std::fs::read_to_string(&file).unwrap();
            // Unit tests may build their fixtures from any layer.
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for name in named_modules(code) {
                if above.contains(&name.as_str()) {
                    broken.push(format!("{} names crate::{name}", file.display()));
                }
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(broken.is_empty(), "layer rules broken (see DESIGN.md):\n{}", broken.join("\n"));
}

/// The user's view is the only door to storage: the FTP layer handles virtual paths and never a storage key,
/// and only vfs makes keys out of paths.
#[test]
fn only_vfs_makes_storage_keys() {
    let mut broken = Vec::new();
    for file in sources("ftp") {
        let code = std::fs::read_to_string(&file).unwrap();
        if code.contains("StorageKey") {
            broken.push(format!("{} names StorageKey", file.display()));
        }
    }
    for layer in ["ftp", "admin", "auth", "directory", "server", "usage", "services"] {
        for file in sources(layer) {
            if std::fs::read_to_string(&file).unwrap().contains("from_normalised") {
                broken.push(format!("{} makes a key with from_normalised", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "storage keys outside vfs:\n{}", broken.join("\n"));
}

#[test]
fn the_check_sees_every_form_of_import() {
    let code = "use crate::directory::Tenant;\n\
                use crate::{config::S3Config, vfs};\n\
                use crate::{\n    ftp::reply::Reply,\n    admin,\n};\n\
                fn f() { let _ = crate::auth::login(); }\n\
                /// See [`crate::server`] for the wiring.\n\
                // crate::usage is only mentioned here\n";
    let named = named_modules(code);
    for expected in ["directory", "config", "vfs", "ftp", "admin", "auth"] {
        assert!(named.iter().any(|n| n == expected), "{expected} not seen in {named:?}");
    }
    assert!(!named.iter().any(|n| n == "server" || n == "usage"), "comments count: {named:?}");
}

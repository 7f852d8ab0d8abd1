//! JSON shapes shared by several routes (quotas, permissions, networks, storage) and their checks, which
//! name the field at fault.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, FieldExt as _};
use super::extract::present;
use crate::access::{Network, Networks, Permission, Permissions};
use crate::directory::{self, Quota, TenantStorage};

/// Limits of a tenant or a user; `null` is unlimited.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaView {
    #[schema(minimum = 0)]
    pub max_bytes: Option<i64>,
    #[schema(minimum = 0)]
    pub max_files: Option<i64>,
}

impl From<Quota> for QuotaView {
    fn from(q: Quota) -> Self {
        QuotaView { max_bytes: q.max_bytes, max_files: q.max_files }
    }
}

/// A change of quota: a limit left out stays, `null` lifts it.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_bytes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_files: Option<Option<i64>>,
}

impl QuotaPatch {
    /// `current` with this change applied; `field` is where the patch sits in the body.
    pub fn apply(&self, mut current: Quota, field: &str) -> Result<Quota, ApiError> {
        for (name, value) in [("max_bytes", self.max_bytes), ("max_files", self.max_files)] {
            if let Some(Some(n)) = value {
                if n < 0 {
                    return Err(ApiError::invalid(format!("{field}.{name}"), "must be 0 or more, or null"));
                }
            }
        }
        if let Some(limit) = self.max_bytes {
            current.max_bytes = limit;
        }
        if let Some(limit) = self.max_files {
            current.max_files = limit;
        }
        Ok(current)
    }
}

/// One thing a user may do (see the README's table of FTP commands per permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PermissionName {
    List,
    Read,
    Write,
    Delete,
    Rename,
    Mkdir,
}

impl PermissionName {
    fn permission(self) -> Permission {
        match self {
            PermissionName::List => Permission::List,
            PermissionName::Read => Permission::Read,
            PermissionName::Write => Permission::Write,
            PermissionName::Delete => Permission::Delete,
            PermissionName::Rename => Permission::Rename,
            PermissionName::Mkdir => Permission::Mkdir,
        }
    }

    fn of(permission: Permission) -> PermissionName {
        match permission {
            Permission::List => PermissionName::List,
            Permission::Read => PermissionName::Read,
            Permission::Write => PermissionName::Write,
            Permission::Delete => PermissionName::Delete,
            Permission::Rename => PermissionName::Rename,
            Permission::Mkdir => PermissionName::Mkdir,
        }
    }
}

pub fn permissions_in(names: &[PermissionName]) -> Permissions {
    Permissions::of(&names.iter().map(|n| n.permission()).collect::<Vec<_>>())
}

pub fn permission_names(set: Permissions) -> Vec<PermissionName> {
    set.iter().map(PermissionName::of).collect()
}

/// What a user may do at a path (as the user sees it) and below; the longest matching path wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    pub path: String,
    pub permissions: Vec<PermissionName>,
}

/// Checks path rules as the directory will store them; errors name the rule (`path_permissions[1]`).
pub fn path_rules(rules: &[PathRule]) -> Result<Vec<(String, Permissions)>, ApiError> {
    let pairs: Vec<(String, Permissions)> =
        rules.iter().map(|r| (r.path.clone(), permissions_in(&r.permissions))).collect();
    for (i, pair) in pairs.iter().enumerate() {
        directory::check_path_rules(std::slice::from_ref(pair)).field(&format!("path_permissions[{i}]"))?;
    }
    directory::check_path_rules(&pairs).field("path_permissions")?;
    Ok(pairs)
}

/// Parses client networks (`203.0.113.0/24`, `2001:db8::/32`); errors name the entry.
pub fn networks(field: &str, list: &[String]) -> Result<Networks, ApiError> {
    let mut parsed = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let network: Network = text.parse().map_err(|e| ApiError::invalid(format!("{field}[{i}]"), format!("{e}")))?;
        parsed.push(network);
    }
    let networks = Networks::new(parsed);
    directory::check_networks(&networks).field(field)?;
    Ok(networks)
}

pub fn network_texts(networks: &Networks) -> Vec<String> {
    networks.as_slice().iter().map(ToString::to_string).collect()
}

/// Where a tenant's files live on S3; every field `null` uses the server's settings. The secret key is
/// never stored: `secret_ref` says where to read it (`env:NAME` or `file:/path`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageView {
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: Option<bool>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_ref: Option<String>,
}

impl From<TenantStorage> for StorageView {
    fn from(s: TenantStorage) -> Self {
        StorageView {
            bucket: s.bucket,
            prefix: s.prefix,
            endpoint: s.endpoint,
            region: s.region,
            path_style: s.path_style,
            access_key_id: s.access_key_id,
            secret_ref: s.secret_ref,
        }
    }
}

impl StorageView {
    /// The settings, checked as `wharf tenant add` checks them.
    pub fn settings(&self) -> Result<TenantStorage, ApiError> {
        for (name, value) in [
            ("region", &self.region),
            ("access_key_id", &self.access_key_id),
            ("endpoint", &self.endpoint),
            ("secret_ref", &self.secret_ref),
        ] {
            if let Some(value) = value {
                super::extract::plain_text(&format!("storage.{name}"), value, 1024)?;
            }
        }
        let settings = TenantStorage {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            access_key_id: self.access_key_id.clone(),
            secret_ref: self.secret_ref.clone(),
        };
        settings.validate().map_err(directory::DirectoryError::from).field("storage")?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_patches_keep_what_they_leave_out_and_refuse_negatives() {
        let current = Quota { max_bytes: Some(10), max_files: Some(5) };
        let patch: QuotaPatch = serde_json::from_str(r#"{"max_bytes": null}"#).unwrap();
        assert_eq!(patch.apply(current, "quota").unwrap(), Quota { max_bytes: None, max_files: Some(5) });
        let patch: QuotaPatch = serde_json::from_str(r#"{"max_files": 7}"#).unwrap();
        assert_eq!(patch.apply(current, "quota").unwrap(), Quota { max_bytes: Some(10), max_files: Some(7) });
        let patch: QuotaPatch = serde_json::from_str(r#"{"max_bytes": -1}"#).unwrap();
        assert!(matches!(patch.apply(current, "quota"), Err(ApiError::Invalid { field: Some(f), .. })
                if f == "quota.max_bytes"));
    }

    #[test]
    fn networks_and_rules_name_the_bad_entry() {
        let list = vec!["203.0.113.0/24".to_owned(), "nonsense".to_owned()];
        assert!(matches!(networks("allowed_networks", &list), Err(ApiError::Invalid { field: Some(f), .. })
                if f == "allowed_networks[1]"));
        assert_eq!(network_texts(&networks("n", &list[..1]).unwrap()), vec!["203.0.113.0/24"]);
        let rules = vec![
            PathRule { path: "/in".into(), permissions: vec![PermissionName::List] },
            PathRule { path: "relative".into(), permissions: vec![] },
        ];
        assert!(
            matches!(path_rules(&rules), Err(ApiError::Invalid { field: Some(f), .. }) if f == "path_permissions[1]")
        );
        assert_eq!(path_rules(&rules[..1]).unwrap(), vec![("/in".to_owned(), Permissions::of(&[Permission::List]))]);
    }

    #[test]
    fn permissions_round_trip() {
        let names = vec![PermissionName::List, PermissionName::Write];
        assert_eq!(permission_names(permissions_in(&names)), names);
    }
}

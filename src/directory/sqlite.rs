//! The SQLite directory: the embedded default.

use async_trait::async_trait;

use super::*;

pub struct SqliteDirectory {}

impl SqliteDirectory {
    pub async fn open(url: &str) -> Result<Self, DirectoryError> {
        let _ = url;
        todo!()
    }
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn create_tenant(&self, _name: &str) -> Result<Tenant, DirectoryError> {
        todo!()
    }
    async fn tenant_by_name(&self, _name: &str) -> Result<Option<Tenant>, DirectoryError> {
        todo!()
    }
    async fn tenant_by_hostname(&self, _hostname: &str) -> Result<Option<Tenant>, DirectoryError> {
        todo!()
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError> {
        todo!()
    }
    async fn add_hostname(&self, _tenant_id: i64, _hostname: &str) -> Result<(), DirectoryError> {
        todo!()
    }
    async fn hostnames(&self, _tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
        todo!()
    }
    async fn create_user(&self, _tenant_id: i64, _user: NewUser) -> Result<User, DirectoryError> {
        todo!()
    }
    async fn set_password(&self, _tenant_id: i64, _username: &str, _hash: &str) -> Result<(), DirectoryError> {
        todo!()
    }
    async fn list_users(&self, _tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError> {
        todo!()
    }
    async fn delete_user(&self, _tenant_id: i64, _username: &str) -> Result<(), DirectoryError> {
        todo!()
    }
    async fn login_record(&self, _tenant_id: i64, _username: &str) -> Result<Option<LoginRecord>, DirectoryError> {
        todo!()
    }
    async fn record_login(&self, _user_id: i64, _new_hash: Option<&str>) -> Result<(), DirectoryError> {
        todo!()
    }
}

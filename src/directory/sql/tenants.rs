//! Tenants, their hostnames and users ([`Tenants`](crate::directory::Tenants)), in both dialects.

macro_rules! sql_tenants {
    ($dir:ident) => {
        impl $dir {
            /// Sets one text `column` (a name from this file, never from input) of a user.
            async fn update_user(
                &self,
                column: &'static str,
                value: String,
                tenant_id: i64,
                username: &str,
            ) -> Result<(), DirectoryError> {
                let sql = format!("UPDATE users SET {column} = $1 WHERE tenant_id = $2 AND username = $3");
                let done = sql!(execute, &self.pool, &sql, value, tenant_id, username)?;
                found_if(done.rows_affected() > 0)
            }

            /// Sets one text `column` (a name from this file, never from input) of a tenant.
            async fn update_tenant(&self, column: &'static str, value: String, id: i64) -> Result<(), DirectoryError> {
                let sql = format!("UPDATE tenants SET {column} = $1 WHERE id = $2");
                let done = sql!(execute, &self.pool, &sql, value, id)?;
                found_if(done.rows_affected() > 0)
            }
        }

        impl Directory for $dir {
            fn pool_status(&self) -> PoolStatus {
                PoolStatus::of(&self.pool)
            }
        }

        #[async_trait]
        impl Tenants for $dir {
            async fn create_tenant(&self, name: &str) -> Result<Tenant, DirectoryError> {
                validate_tenant_name(name)?;
                let sql = format!("INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING {TENANT_COLUMNS}");
                let row = sqlx::query(&sql)
                    .bind(name)
                    .bind(time(Utc::now()))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| conflict_as(e, "tenant"))?;
                tenant_from_row(&row, "")
            }

            async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, DirectoryError> {
                let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
                let row = sql!(fetch_optional, &self.pool, &sql, id)?;
                row.map(|row| tenant_from_row(&row, "")).transpose()
            }

            async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError> {
                let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name");
                let rows = sql!(fetch_all, &self.pool, &sql)?;
                rows.iter().map(|row| tenant_from_row(row, "")).collect()
            }

            async fn add_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError> {
                let hostname = normalize_hostname(hostname)?;
                sqlx::query("INSERT INTO tenant_hostnames (hostname, tenant_id) VALUES ($1, $2)")
                    .bind(hostname)
                    .bind(tenant_id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| conflict_as(e, "hostname"))?;
                Ok(())
            }

            async fn hostnames(&self, tenant_id: i64) -> Result<Vec<String>, DirectoryError> {
                sqlx::query_scalar("SELECT hostname FROM tenant_hostnames WHERE tenant_id = $1 ORDER BY hostname")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)
            }

            async fn delete_tenant(&self, tenant_id: i64) -> Result<(), DirectoryError> {
                // Users, hostnames and reservations go with the tenant (ON DELETE CASCADE); the failure
                // counters of its users are keyed by text and go here.
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let done = sql!(execute, &mut *tx, "DELETE FROM tenants WHERE id = $1", tenant_id)?;
                sql!(
                    execute,
                    &mut *tx,
                    "DELETE FROM login_failures WHERE scope LIKE $1",
                    format!("user:{tenant_id}:%")
                )?;
                tx.commit().await.map_err(db_error)?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_tenant_enabled(&self, tenant_id: i64, enabled: bool) -> Result<(), DirectoryError> {
                let done =
                    sql!(execute, &self.pool, "UPDATE tenants SET enabled = $1 WHERE id = $2", enabled, tenant_id)?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_tenant_storage(&self, tenant_id: i64, storage: &TenantStorage) -> Result<(), DirectoryError> {
                storage.validate()?;
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE tenants SET s3_bucket = $1, s3_prefix = $2, s3_endpoint = $3, s3_region = $4, \
                     s3_path_style = $5, s3_access_key_id = $6, s3_secret_ref = $7 WHERE id = $8",
                    &storage.bucket,
                    storage.prefix.as_deref().map(TenantStorage::normalised_prefix),
                    &storage.endpoint,
                    &storage.region,
                    storage.path_style,
                    &storage.access_key_id,
                    &storage.secret_ref,
                    tenant_id
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_tenant_networks(&self, tenant_id: i64, networks: &Networks) -> Result<(), DirectoryError> {
                self.update_tenant("allowed_networks", networks_text(networks)?, tenant_id).await
            }

            async fn set_tenant_tls(&self, tenant_id: i64, policy: &TenantTlsPolicy) -> Result<(), DirectoryError> {
                self.update_tenant("tls_policy", policy.to_text()?, tenant_id).await
            }

            async fn create_user(&self, tenant_id: i64, user: NewUser) -> Result<User, DirectoryError> {
                validate_username(&user.username)?;
                let home = normalize_home(&user.home)?;
                let sql = format!(
                    "INSERT INTO users (tenant_id, username, password_hash, home, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(tenant_id)
                    .bind(&user.username)
                    .bind(&user.password_hash)
                    .bind(home)
                    .bind(time(Utc::now()))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| conflict_as(e, "user"))?;
                user_from_row(&row, "")
            }

            async fn set_password(
                &self,
                tenant_id: i64,
                username: &str,
                password_hash: &str,
            ) -> Result<(), DirectoryError> {
                self.update_user("password_hash", password_hash.to_owned(), tenant_id, username).await
            }

            async fn list_users(&self, tenant_id: Option<i64>) -> Result<Vec<User>, DirectoryError> {
                let sql = format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE CAST($1 AS BIGINT) IS NULL OR tenant_id = $1 \
                     ORDER BY tenant_id, username"
                );
                let rows = sql!(fetch_all, &self.pool, &sql, tenant_id)?;
                rows.iter().map(|row| user_from_row(row, "")).collect()
            }

            async fn delete_user(&self, tenant_id: i64, username: &str) -> Result<(), DirectoryError> {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let done = sql!(
                    execute,
                    &mut *tx,
                    "DELETE FROM users WHERE tenant_id = $1 AND username = $2",
                    tenant_id,
                    username
                )?;
                sql!(
                    execute,
                    &mut *tx,
                    "DELETE FROM login_failures WHERE scope = $1",
                    super::login_failures::user_scope(tenant_id, username)
                )?;
                tx.commit().await.map_err(db_error)?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_user_enabled(
                &self,
                tenant_id: i64,
                username: &str,
                enabled: bool,
            ) -> Result<(), DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE users SET enabled = $1 WHERE tenant_id = $2 AND username = $3",
                    enabled,
                    tenant_id,
                    username
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_permissions(
                &self,
                tenant_id: i64,
                username: &str,
                permissions: Permissions,
            ) -> Result<(), DirectoryError> {
                self.update_user("permissions", permissions.to_string(), tenant_id, username).await
            }

            async fn set_path_permissions(
                &self,
                tenant_id: i64,
                username: &str,
                rules: &[(String, Permissions)],
            ) -> Result<(), DirectoryError> {
                self.update_user("path_permissions", path_permissions_text(rules)?, tenant_id, username).await
            }

            async fn set_user_networks(
                &self,
                tenant_id: i64,
                username: &str,
                networks: &Networks,
            ) -> Result<(), DirectoryError> {
                self.update_user("allowed_networks", networks_text(networks)?, tenant_id, username).await
            }
        }

        /// Reads a tenant from columns named `{prefix}id`, `{prefix}name`, … (a prefix keeps joins
        /// unambiguous).
        fn tenant_from_row(row: &DbRow, prefix: &str) -> Result<Tenant, DirectoryError> {
            let col = |name: &str| format!("{prefix}{name}");
            Ok(Tenant {
                id: row.try_get(col("id").as_str()).map_err(db_error)?,
                name: row.try_get(col("name").as_str()).map_err(db_error)?,
                enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
                created_at: time_of(row, &col("created_at"))?,
                storage: TenantStorage {
                    bucket: row.try_get(col("s3_bucket").as_str()).map_err(db_error)?,
                    prefix: row.try_get(col("s3_prefix").as_str()).map_err(db_error)?,
                    endpoint: row.try_get(col("s3_endpoint").as_str()).map_err(db_error)?,
                    region: row.try_get(col("s3_region").as_str()).map_err(db_error)?,
                    path_style: row.try_get(col("s3_path_style").as_str()).map_err(db_error)?,
                    access_key_id: row.try_get(col("s3_access_key_id").as_str()).map_err(db_error)?,
                    secret_ref: row.try_get(col("s3_secret_ref").as_str()).map_err(db_error)?,
                },
                allowed_networks: networks_from_text(row.try_get(col("allowed_networks").as_str()).map_err(db_error)?)?,
                tls: TenantTlsPolicy::from_text(row.try_get(col("tls_policy").as_str()).map_err(db_error)?)?,
            })
        }

        fn user_from_row(row: &DbRow, prefix: &str) -> Result<User, DirectoryError> {
            let col = |name: &str| format!("{prefix}{name}");
            Ok(User {
                id: row.try_get(col("id").as_str()).map_err(db_error)?,
                tenant_id: row.try_get(col("tenant_id").as_str()).map_err(db_error)?,
                username: row.try_get(col("username").as_str()).map_err(db_error)?,
                home: row.try_get(col("home").as_str()).map_err(db_error)?,
                enabled: row.try_get(col("enabled").as_str()).map_err(db_error)?,
                created_at: time_of(row, &col("created_at"))?,
                last_login_at: opt_time_of(row, &col("last_login_at"))?,
                access: access_from_text(
                    row.try_get(col("permissions").as_str()).map_err(db_error)?,
                    row.try_get(col("path_permissions").as_str()).map_err(db_error)?,
                )?,
                allowed_networks: networks_from_text(row.try_get(col("allowed_networks").as_str()).map_err(db_error)?)?,
            })
        }
    };
}

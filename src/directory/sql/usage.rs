//! Quotas and usage ([`Quotas`](crate::directory::Quotas)) and the S3 backend's ledger of parked uploads and
//! digests ([`UploadLedger`](crate::storage::UploadLedger)), in both dialects.

macro_rules! sql_usage {
    ($dir:ident) => {
        #[async_trait]
        impl Quotas for $dir {
            async fn set_tenant_quota(&self, tenant_id: i64, quota: &Quota) -> Result<(), DirectoryError> {
                quota::validate(quota)?;
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE tenants SET max_bytes = $1, max_files = $2 WHERE id = $3",
                    quota.max_bytes,
                    quota.max_files,
                    tenant_id
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn set_user_quota(
                &self,
                tenant_id: i64,
                username: &str,
                quota: &Quota,
            ) -> Result<(), DirectoryError> {
                quota::validate(quota)?;
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE users SET max_bytes = $1, max_files = $2 WHERE tenant_id = $3 AND username = $4",
                    quota.max_bytes,
                    quota.max_files,
                    tenant_id,
                    username
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn tenant_account(&self, tenant_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError> {
                self.account("tenants", "tenant_id", tenant_id, now).await
            }

            async fn user_account(&self, user_id: i64, now: DateTime<Utc>) -> Result<Account, DirectoryError> {
                self.account("users", "user_id", user_id, now).await
            }

            async fn reserve(
                &self,
                request: &ReservationRequest,
                now: DateTime<Utc>,
            ) -> Result<Option<Grant>, DirectoryError> {
                retry_conflicts(|| self.reserve_once(request, now)).await
            }

            async fn settle(
                &self,
                tenant_id: i64,
                user_id: i64,
                reservation: Option<i64>,
                change: Usage,
            ) -> Result<(), DirectoryError> {
                retry_conflicts(|| self.settle_once(tenant_id, user_id, reservation, change)).await
            }

            async fn release(&self, reservation: i64) -> Result<(), DirectoryError> {
                sql!(execute, &self.pool, "DELETE FROM quota_reservations WHERE id = $1", reservation)?;
                Ok(())
            }

            async fn set_usage(
                &self,
                tenant_id: i64,
                user_id: Option<i64>,
                usage: Usage,
            ) -> Result<(), DirectoryError> {
                let done = match user_id {
                    None => sqlx::query("UPDATE tenants SET used_bytes = $1, used_files = $2 WHERE id = $3")
                        .bind(usage.bytes)
                        .bind(usage.files)
                        .bind(tenant_id),
                    Some(user_id) => sqlx::query(
                        "UPDATE users SET used_bytes = $1, used_files = $2 WHERE id = $3 AND tenant_id = $4",
                    )
                    .bind(usage.bytes)
                    .bind(usage.files)
                    .bind(user_id)
                    .bind(tenant_id),
                }
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
                found_if(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl UploadLedger for $dir {
            async fn save_upload(&self, upload: &ParkedUpload) -> Result<(), StorageError> {
                let sql = format!(
                    "INSERT INTO parked_uploads ({PARKED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (location, object_key, upload_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, \
                     user_id = EXCLUDED.user_id, resumable = EXCLUDED.resumable, state = EXCLUDED.state, \
                     parked_at = EXCLUDED.parked_at, expires_at = EXCLUDED.expires_at"
                );
                sql!(
                    execute,
                    &self.pool,
                    &sql,
                    &upload.location,
                    &upload.key,
                    &upload.upload_id,
                    upload.tenant_id,
                    upload.user_id,
                    upload.resumable,
                    &upload.state,
                    time(upload.parked_at),
                    time(upload.expires_at)
                )?;
                Ok(())
            }

            async fn resumable_upload(
                &self,
                location: &str,
                key: &str,
                user_id: i64,
                now: DateTime<Utc>,
            ) -> Result<Option<ParkedUpload>, StorageError> {
                let sql = format!(
                    "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = $1 AND object_key = $2 AND resumable \
                     AND user_id = $3 AND expires_at > $4 ORDER BY parked_at DESC LIMIT 1"
                );
                let row = sql!(fetch_optional, &self.pool, &sql, location, key, user_id, time(now))?;
                Ok(row.as_ref().map(parked_from_row).transpose()?)
            }

            async fn resumable_uploads(&self, location: &str, key: &str) -> Result<Vec<ParkedUpload>, StorageError> {
                let sql = format!(
                    "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE location = $1 AND object_key = $2 AND resumable \
                     ORDER BY parked_at DESC"
                );
                let rows = sql!(fetch_all, &self.pool, &sql, location, key)?;
                Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
            }

            async fn remove_upload(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM parked_uploads WHERE location = $1 AND object_key = $2 AND upload_id = $3",
                    location,
                    key,
                    upload_id
                )?;
                Ok(done.rows_affected() > 0)
            }

            async fn renew_lease(
                &self,
                location: &str,
                key: &str,
                upload_id: &str,
                expires_at: DateTime<Utc>,
            ) -> Result<bool, StorageError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE parked_uploads SET expires_at = $4 \
                     WHERE location = $1 AND object_key = $2 AND upload_id = $3 AND NOT resumable",
                    location,
                    key,
                    upload_id,
                    time(expires_at)
                )?;
                Ok(done.rows_affected() > 0)
            }

            async fn upload_known(&self, location: &str, key: &str, upload_id: &str) -> Result<bool, StorageError> {
                let row = sql!(
                    fetch_optional,
                    &self.pool,
                    "SELECT upload_id FROM parked_uploads WHERE location = $1 AND object_key = $2 AND upload_id = $3",
                    location,
                    key,
                    upload_id
                )?;
                Ok(row.is_some())
            }

            async fn expired_uploads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ParkedUpload>, StorageError> {
                let sql = format!(
                    "SELECT {PARKED_COLUMNS} FROM parked_uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2"
                );
                let rows = sql!(fetch_all, &self.pool, &sql, time(now), limit)?;
                Ok(rows.iter().map(parked_from_row).collect::<Result<_, DirectoryError>>()?)
            }

            async fn record_digest(
                &self,
                location: &str,
                key: &str,
                etag: &str,
                digest: &str,
            ) -> Result<(), StorageError> {
                sql!(
                    execute,
                    &self.pool,
                    "INSERT INTO object_digests (location, object_key, etag, digest) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (location, object_key) DO UPDATE SET etag = EXCLUDED.etag, digest = EXCLUDED.digest",
                    location,
                    key,
                    etag,
                    digest
                )?;
                Ok(())
            }

            async fn digest(&self, location: &str, key: &str) -> Result<Option<(String, String)>, StorageError> {
                let row =
                    sqlx::query_as("SELECT etag, digest FROM object_digests WHERE location = $1 AND object_key = $2")
                        .bind(location)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db_error)?;
                Ok(row)
            }

            async fn forget_digest(&self, location: &str, key: &str) -> Result<(), StorageError> {
                sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM object_digests WHERE location = $1 AND object_key = $2",
                    location,
                    key
                )?;
                Ok(())
            }

            async fn tenant_storage(&self, tenant_id: i64) -> Result<Option<StorageOwner>, StorageError> {
                Ok(self.tenant_by_id(tenant_id).await?.map(|t| t.storage_owner()))
            }
        }

        impl $dir {
            async fn reserve_once(
                &self,
                request: &ReservationRequest,
                now: DateTime<Utc>,
            ) -> Result<Option<Grant>, DirectoryError> {
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
                // Tenant first, then user: every writer of usage locks in this order. On SQLite, BEGIN IMMEDIATE
                // already took the write lock before the first read, so no writer slips in between.
                let mut tenant = lock_side(&mut tx, "tenants", request.tenant_id).await?;
                let mut user = lock_side(&mut tx, "users", request.user_id).await?;
                sql!(
                    execute,
                    &mut *tx,
                    "DELETE FROM quota_reservations WHERE tenant_id = $1 AND expires_at <= $2",
                    request.tenant_id,
                    clock(now)
                )?;
                // A statement of its own after the locks: under READ COMMITTED it sees every reservation committed
                // by a transaction that held the lock before this one.
                let row = sql!(
                    fetch_one,
                    &mut *tx,
                    "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS tenant_bytes, \
                            CAST(COALESCE(SUM(files), 0) AS BIGINT) AS tenant_files, \
                            CAST(COALESCE(SUM(CASE WHEN user_id = $2 THEN bytes END), 0) AS BIGINT) AS user_bytes, \
                            CAST(COALESCE(SUM(CASE WHEN user_id = $2 THEN files END), 0) AS BIGINT) AS user_files \
                     FROM quota_reservations WHERE tenant_id = $1 AND id IS DISTINCT FROM $3",
                    request.tenant_id,
                    request.user_id,
                    request.id
                )?;
                tenant.others = usage_of(&row, "tenant_bytes", "tenant_files")?;
                user.others = usage_of(&row, "user_bytes", "user_files")?;
                let Some(bytes) = quota::grant(request, &[tenant, user]) else {
                    return Ok(None);
                };
                let mut id = None;
                if let Some(existing) = request.id {
                    let done = sql!(
                        execute,
                        &mut *tx,
                        "UPDATE quota_reservations SET bytes = $1, files = $2, expires_at = $3 WHERE id = $4",
                        bytes,
                        request.files,
                        clock(request.expires_at),
                        existing
                    )?;
                    id = (done.rows_affected() > 0).then_some(existing);
                }
                let id = match id {
                    Some(id) => id,
                    None => sqlx::query_scalar(
                        "INSERT INTO quota_reservations (tenant_id, user_id, bytes, files, expires_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(request.tenant_id)
                    .bind(request.user_id)
                    .bind(bytes)
                    .bind(request.files)
                    .bind(clock(request.expires_at))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?,
                };
                tx.commit().await.map_err(db_error)?;
                Ok(Some(Grant { id, bytes }))
            }

            async fn settle_once(
                &self,
                tenant_id: i64,
                user_id: i64,
                reservation: Option<i64>,
                change: Usage,
            ) -> Result<(), DirectoryError> {
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
                for (table, id) in [("tenants", tenant_id), ("users", user_id)] {
                    let sql = format!(
                        "UPDATE {table} SET used_bytes = {GREATEST}(used_bytes + $1, 0), \
                         used_files = {GREATEST}(used_files + $2, 0) WHERE id = $3"
                    );
                    sql!(execute, &mut *tx, &sql, change.bytes, change.files, id)?;
                }
                if let Some(id) = reservation {
                    sql!(execute, &mut *tx, "DELETE FROM quota_reservations WHERE id = $1", id)?;
                }
                tx.commit().await.map_err(db_error)
            }

            /// The account of a tenant or user: `table` and `owner` (its column in `quota_reservations`) are names
            /// from this file, never from input.
            async fn account(
                &self,
                table: &'static str,
                owner: &'static str,
                id: i64,
                now: DateTime<Utc>,
            ) -> Result<Account, DirectoryError> {
                let sql = format!(
                    "SELECT max_bytes, max_files, used_bytes, used_files, \
                            (SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM quota_reservations r \
                             WHERE r.{owner} = o.id AND r.expires_at > $2) AS reserved_bytes, \
                            (SELECT CAST(COALESCE(SUM(files), 0) AS BIGINT) FROM quota_reservations r \
                             WHERE r.{owner} = o.id AND r.expires_at > $2) AS reserved_files \
                     FROM {table} o WHERE id = $1"
                );
                let row = sql!(fetch_optional, &self.pool, &sql, id, clock(now))?;
                let row = row.ok_or(DirectoryError::NotFound)?;
                Ok(Account {
                    quota: quota_of(&row)?,
                    used: usage_of(&row, "used_bytes", "used_files")?,
                    reserved: usage_of(&row, "reserved_bytes", "reserved_files")?,
                })
            }
        }

        /// Reads and locks (`LOCK_ROW`) the usage row of a tenant or user (`table`: a name from this file)
        /// for the transaction.
        async fn lock_side(
            tx: &mut sqlx::Transaction<'_, Db>,
            table: &'static str,
            id: i64,
        ) -> Result<quota::Side, DirectoryError> {
            let sql =
                format!("SELECT max_bytes, max_files, used_bytes, used_files FROM {table} WHERE id = $1 {LOCK_ROW}");
            let row = sql!(fetch_optional, &mut **tx, &sql, id)?;
            let row = row.ok_or(DirectoryError::NotFound)?;
            Ok(quota::Side {
                quota: quota_of(&row)?,
                used: usage_of(&row, "used_bytes", "used_files")?,
                others: Usage::default(),
            })
        }

        fn quota_of(row: &DbRow) -> Result<Quota, DirectoryError> {
            Ok(Quota {
                max_bytes: row.try_get("max_bytes").map_err(db_error)?,
                max_files: row.try_get("max_files").map_err(db_error)?,
            })
        }

        fn usage_of(row: &DbRow, bytes: &str, files: &str) -> Result<Usage, DirectoryError> {
            Ok(Usage { bytes: row.try_get(bytes).map_err(db_error)?, files: row.try_get(files).map_err(db_error)? })
        }

        fn parked_from_row(row: &DbRow) -> Result<ParkedUpload, DirectoryError> {
            Ok(ParkedUpload {
                location: row.try_get("location").map_err(db_error)?,
                key: row.try_get("object_key").map_err(db_error)?,
                tenant_id: row.try_get("tenant_id").map_err(db_error)?,
                user_id: row.try_get("user_id").map_err(db_error)?,
                upload_id: row.try_get("upload_id").map_err(db_error)?,
                resumable: row.try_get("resumable").map_err(db_error)?,
                state: row.try_get("state").map_err(db_error)?,
                parked_at: time_of(row, "parked_at")?,
                expires_at: time_of(row, "expires_at")?,
            })
        }
    };
}

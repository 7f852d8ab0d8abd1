//! The admin API's store ([`AdminStore`](crate::directory::AdminStore): tokens, the audit log, certificates
//! and live sessions, migration 0007), in both dialects.

macro_rules! sql_admin {
    ($dir:ident) => {
        const TOKEN_COLUMNS: &str = "id, name, scope, tenant_id, created_at, expires_at, last_used_at";
        const AUDIT_COLUMNS: &str = "id, at, actor, tenant_id, action, target, client, detail";
        const CERTIFICATE_COLUMNS: &str =
            "id, tenant_id, names, subject, issuer, not_before, not_after, fingerprint, created_at";
        const SESSION_COLUMNS: &str = "id, instance, tenant_id, user_id, username, client, started_at";

        impl $dir {
            /// The rows of `table` (`columns`) after `page.after` in id order, of one tenant or of all.
            async fn page_of(
                &self,
                table: &str,
                columns: &str,
                tenant_id: Option<i64>,
                page: Page,
            ) -> Result<Vec<DbRow>, DirectoryError> {
                let sql = format!(
                    "SELECT {columns} FROM {table} WHERE (CAST($1 AS BIGINT) IS NULL OR tenant_id = $1) AND id > $2 \
                     ORDER BY id LIMIT $3"
                );
                sql!(fetch_all, &self.pool, &sql, tenant_id, page.after_id(), page.clamped_limit())
            }
        }

        #[async_trait]
        impl AdminStore for $dir {
            async fn tenants_page(&self, page: Page) -> Result<Vec<Tenant>, DirectoryError> {
                // `*`: `tenant_from_row` reads the columns it needs by name, whatever columns tenants gain later.
                let rows = sql!(
                    fetch_all,
                    &self.pool,
                    "SELECT * FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
                    page.after_id(),
                    page.clamped_limit()
                )?;
                rows.iter().map(|row| tenant_from_row(row, "")).collect()
            }

            async fn users_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<User>, DirectoryError> {
                let rows = self.page_of("users", USER_COLUMNS, tenant_id, page).await?;
                rows.iter().map(|row| user_from_row(row, "")).collect()
            }

            async fn user_by_name(&self, tenant_id: i64, username: &str) -> Result<Option<User>, DirectoryError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND username = $2");
                let row = sql!(fetch_optional, &self.pool, &sql, tenant_id, username)?;
                row.map(|row| user_from_row(&row, "")).transpose()
            }

            async fn set_user_home(&self, tenant_id: i64, username: &str, home: &str) -> Result<(), DirectoryError> {
                let home = normalize_home(home)?;
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE users SET home = $1 WHERE tenant_id = $2 AND username = $3",
                    home,
                    tenant_id,
                    username
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn remove_hostname(&self, tenant_id: i64, hostname: &str) -> Result<(), DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "DELETE FROM tenant_hostnames WHERE hostname = $1 AND tenant_id = $2",
                    hostname_key(hostname),
                    tenant_id
                )?;
                found_if(done.rows_affected() > 0)
            }

            async fn create_token(&self, token: &NewToken) -> Result<ApiToken, DirectoryError> {
                let (scope, tenant_id) = check_new_token(token)?;
                let sql = format!(
                    "INSERT INTO api_tokens (name, scope, tenant_id, secret_sha256, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(&token.name)
                    .bind(scope)
                    .bind(tenant_id)
                    .bind(&token.secret_sha256)
                    .bind(time(Utc::now()))
                    .bind(token.expires_at.map(time))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| conflict_as(e, "token"))?;
                token_from_row(&row)
            }

            async fn use_token(
                &self,
                secret_sha256: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<ApiToken>, DirectoryError> {
                // A read first: a token used again within the interval costs no write.
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens \
                     WHERE secret_sha256 = $1 AND (expires_at IS NULL OR expires_at > $2)"
                );
                let row = sql!(fetch_optional, &self.pool, &sql, secret_sha256, time(now))?;
                let Some(row) = row else { return Ok(None) };
                let mut token = token_from_row(&row)?;
                let due = now - TOKEN_USE_INTERVAL;
                if token.last_used_at.is_none_or(|last| last <= due) {
                    // Guarded again in SQL, so that concurrent calls write once.
                    sql!(
                        execute,
                        &self.pool,
                        "UPDATE api_tokens SET last_used_at = $1 \
                         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
                        time(now),
                        token.id,
                        time(due)
                    )?;
                    token.last_used_at = Some(now);
                }
                Ok(Some(token))
            }

            async fn tokens_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<ApiToken>, DirectoryError> {
                let rows = self.page_of("api_tokens", TOKEN_COLUMNS, tenant_id, page).await?;
                rows.iter().map(token_from_row).collect()
            }

            async fn token_by_id(&self, id: i64) -> Result<Option<ApiToken>, DirectoryError> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
                let row = sql!(fetch_optional, &self.pool, &sql, id)?;
                row.as_ref().map(token_from_row).transpose()
            }

            async fn delete_token(&self, id: i64) -> Result<(), DirectoryError> {
                let done = sql!(execute, &self.pool, "DELETE FROM api_tokens WHERE id = $1", id)?;
                found_if(done.rows_affected() > 0)
            }

            async fn record_audit(
                &self,
                event: &NewAuditEvent,
                now: DateTime<Utc>,
            ) -> Result<AuditEvent, DirectoryError> {
                // The tenant only if it still exists: an event about a deleted tenant is kept for operators, as the
                // events recorded before its deletion are (ON DELETE SET NULL).
                let sql = format!(
                    "INSERT INTO audit_events (at, actor, tenant_id, action, target, client, detail) \
                     VALUES ($1, $2, (SELECT id FROM tenants WHERE id = $3), $4, $5, $6, $7) RETURNING {AUDIT_COLUMNS}"
                );
                let row = sql!(
                    fetch_one,
                    &self.pool,
                    &sql,
                    time(now),
                    &event.actor,
                    event.tenant_id,
                    &event.action,
                    &event.target,
                    &event.client,
                    detail_text(&event.detail)?
                )?;
                audit_from_row(&row)
            }

            async fn audit_page(&self, tenant_id: Option<i64>, page: Page) -> Result<Vec<AuditEvent>, DirectoryError> {
                let rows = self.page_of("audit_events", AUDIT_COLUMNS, tenant_id, page).await?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn save_certificate(
                &self,
                certificate: &NewCertificate,
                now: DateTime<Utc>,
            ) -> Result<CertificateInfo, DirectoryError> {
                let sql = format!(
                    "INSERT INTO certificates (tenant_id, names, subject, issuer, not_before, not_after, fingerprint, \
                                               chain_pem, sealed_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {CERTIFICATE_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(certificate.tenant_id)
                    .bind(names(certificate_names(certificate)?)?)
                    .bind(&certificate.subject)
                    .bind(&certificate.issuer)
                    .bind(time(certificate.not_before))
                    .bind(time(certificate.not_after))
                    .bind(&certificate.fingerprint)
                    .bind(&certificate.chain_pem)
                    .bind(&certificate.sealed_key)
                    .bind(time(now))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| conflict_as(e, "certificate"))?;
                certificate_from_row(&row)
            }

            async fn certificates_page(
                &self,
                tenant_id: Option<i64>,
                page: Page,
            ) -> Result<Vec<CertificateInfo>, DirectoryError> {
                let rows = self.page_of("certificates", CERTIFICATE_COLUMNS, tenant_id, page).await?;
                rows.iter().map(certificate_from_row).collect()
            }

            async fn certificate(&self, id: i64) -> Result<Option<CertificateInfo>, DirectoryError> {
                let sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE id = $1");
                let row = sql!(fetch_optional, &self.pool, &sql, id)?;
                row.as_ref().map(certificate_from_row).transpose()
            }

            async fn delete_certificate(&self, id: i64) -> Result<(), DirectoryError> {
                let done = sql!(execute, &self.pool, "DELETE FROM certificates WHERE id = $1", id)?;
                found_if(done.rows_affected() > 0)
            }

            async fn certificate_materials(&self) -> Result<Vec<CertificateMaterial>, DirectoryError> {
                let sql = format!("SELECT {CERTIFICATE_COLUMNS}, chain_pem, sealed_key FROM certificates ORDER BY id");
                let rows = sql!(fetch_all, &self.pool, &sql)?;
                rows.iter()
                    .map(|row| {
                        Ok(CertificateMaterial {
                            info: certificate_from_row(row)?,
                            chain_pem: row.try_get("chain_pem").map_err(db_error)?,
                            sealed_key: row.try_get("sealed_key").map_err(db_error)?,
                        })
                    })
                    .collect()
            }

            async fn certificates_version(&self) -> Result<(i64, i64), DirectoryError> {
                // (count, highest id): an addition raises the highest id (identities never go back), a removal
                // without an addition lowers the count.
                let row =
                    sql!(fetch_one, &self.pool, "SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS top FROM certificates")?;
                Ok((row.try_get("n").map_err(db_error)?, row.try_get("top").map_err(db_error)?))
            }

            async fn instance_alive(&self, instance: &str, now: DateTime<Utc>) -> Result<(), DirectoryError> {
                let sql = format!(
                    "INSERT INTO instances (id, alive_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET alive_at = {GREATEST}(instances.alive_at, excluded.alive_at)"
                );
                sql!(execute, &self.pool, &sql, instance, time(now))?;
                Ok(())
            }

            async fn register_session(&self, session: &LiveSession) -> Result<(), DirectoryError> {
                sqlx::query(
                    "INSERT INTO live_sessions (id, instance, tenant_id, user_id, username, client, started_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&session.id)
                .bind(&session.instance)
                .bind(session.tenant_id)
                .bind(session.user_id)
                .bind(&session.username)
                .bind(&session.client)
                .bind(time(session.started_at))
                .execute(&self.pool)
                .await
                .map_err(|e| conflict_as(e, "session"))?;
                Ok(())
            }

            async fn end_session(&self, id: &str) -> Result<(), DirectoryError> {
                // No NotFound: the session may be gone already (its tenant or user deleted, or its instance
                // forgotten while out of reach), and ending it twice is still ending it.
                sql!(execute, &self.pool, "DELETE FROM live_sessions WHERE id = $1", id)?;
                Ok(())
            }

            async fn live_sessions(
                &self,
                tenant_id: Option<i64>,
                alive_since: DateTime<Utc>,
            ) -> Result<Vec<LiveSession>, DirectoryError> {
                let rows = sql!(
                    fetch_all,
                    &self.pool,
                    "SELECT s.id, s.instance, s.tenant_id, s.user_id, s.username, s.client, s.started_at \
                     FROM live_sessions s JOIN instances i ON i.id = s.instance \
                     WHERE i.alive_at >= $1 AND (CAST($2 AS BIGINT) IS NULL OR s.tenant_id = $2) \
                     ORDER BY s.started_at, s.id",
                    time(alive_since),
                    tenant_id
                )?;
                rows.iter().map(session_from_row).collect()
            }

            async fn live_session(&self, id: &str) -> Result<Option<LiveSession>, DirectoryError> {
                let sql = format!("SELECT {SESSION_COLUMNS} FROM live_sessions WHERE id = $1");
                let row = sql!(fetch_optional, &self.pool, &sql, id)?;
                row.as_ref().map(session_from_row).transpose()
            }

            async fn request_disconnect(&self, id: &str, now: DateTime<Utc>) -> Result<bool, DirectoryError> {
                // The first request's time stays: asking again does not make the request newer.
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE live_sessions SET disconnect_requested_at = COALESCE(disconnect_requested_at, $1) \
                     WHERE id = $2",
                    time(now),
                    id
                )?;
                Ok(done.rows_affected() > 0)
            }

            async fn request_disconnect_all(
                &self,
                tenant_id: i64,
                user_id: Option<i64>,
                now: DateTime<Utc>,
            ) -> Result<u64, DirectoryError> {
                let done = sql!(
                    execute,
                    &self.pool,
                    "UPDATE live_sessions SET disconnect_requested_at = COALESCE(disconnect_requested_at, $1) \
                     WHERE tenant_id = $2 AND ($3 IS NULL OR user_id = $3)",
                    time(now),
                    tenant_id,
                    user_id
                )?;
                Ok(done.rows_affected())
            }

            async fn instance_sessions(&self, instance: &str) -> Result<Vec<(String, bool)>, DirectoryError> {
                let rows = sql!(
                    fetch_all,
                    &self.pool,
                    "SELECT id, disconnect_requested_at IS NOT NULL AS requested FROM live_sessions \
                     WHERE instance = $1 ORDER BY id",
                    instance
                )?;
                rows.iter()
                    .map(|row| Ok((row.try_get("id").map_err(db_error)?, row.try_get("requested").map_err(db_error)?)))
                    .collect()
            }

            async fn forget_dead_instances(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError> {
                // The dead instances' rows stay locked until both deletes commit, so a heartbeat arriving meanwhile
                // waits: no instance keeps its row while losing its sessions. The explicit delete counts the
                // sessions the cascade would remove anyway.
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
                let sql = format!(
                    "DELETE FROM live_sessions \
                     WHERE instance IN (SELECT id FROM instances WHERE alive_at < $1 {LOCK_ROW})"
                );
                let sessions = sql!(execute, &mut *tx, &sql, time(before))?;
                sql!(execute, &mut *tx, "DELETE FROM instances WHERE alive_at < $1", time(before))?;
                tx.commit().await.map_err(db_error)?;
                Ok(sessions.rows_affected())
            }
        }

        fn token_from_row(row: &DbRow) -> Result<ApiToken, DirectoryError> {
            let scope: String = row.try_get("scope").map_err(db_error)?;
            Ok(ApiToken {
                id: row.try_get("id").map_err(db_error)?,
                name: row.try_get("name").map_err(db_error)?,
                scope: scope_from(&scope, row.try_get("tenant_id").map_err(db_error)?)?,
                created_at: time_of(row, "created_at")?,
                expires_at: opt_time_of(row, "expires_at")?,
                last_used_at: opt_time_of(row, "last_used_at")?,
            })
        }

        fn audit_from_row(row: &DbRow) -> Result<AuditEvent, DirectoryError> {
            let detail: String = row.try_get("detail").map_err(db_error)?;
            Ok(AuditEvent {
                id: row.try_get("id").map_err(db_error)?,
                at: time_of(row, "at")?,
                actor: row.try_get("actor").map_err(db_error)?,
                tenant_id: row.try_get("tenant_id").map_err(db_error)?,
                action: row.try_get("action").map_err(db_error)?,
                target: row.try_get("target").map_err(db_error)?,
                client: row.try_get("client").map_err(db_error)?,
                detail: detail_from_text(&detail)?,
            })
        }

        fn certificate_from_row(row: &DbRow) -> Result<CertificateInfo, DirectoryError> {
            Ok(CertificateInfo {
                id: row.try_get("id").map_err(db_error)?,
                tenant_id: row.try_get("tenant_id").map_err(db_error)?,
                names: names_of(row, "names")?,
                subject: row.try_get("subject").map_err(db_error)?,
                issuer: row.try_get("issuer").map_err(db_error)?,
                not_before: time_of(row, "not_before")?,
                not_after: time_of(row, "not_after")?,
                fingerprint: row.try_get("fingerprint").map_err(db_error)?,
                created_at: time_of(row, "created_at")?,
            })
        }

        fn session_from_row(row: &DbRow) -> Result<LiveSession, DirectoryError> {
            Ok(LiveSession {
                id: row.try_get("id").map_err(db_error)?,
                instance: row.try_get("instance").map_err(db_error)?,
                tenant_id: row.try_get("tenant_id").map_err(db_error)?,
                user_id: row.try_get("user_id").map_err(db_error)?,
                username: row.try_get("username").map_err(db_error)?,
                client: row.try_get("client").map_err(db_error)?,
                started_at: time_of(row, "started_at")?,
            })
        }
    };
}

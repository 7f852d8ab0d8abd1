//! The admin API over a real socket: a [`Wharf`] with its admin listener on an ephemeral loopback port, an
//! operator token, and a small JSON client (reqwest) that keeps every reply's status, headers and body.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::Value;
use wharf::config::Config;
use wharf::directory::admin::TokenScope;

use super::Wharf;

pub struct Api {
    pub wharf: Wharf,
    pub base: String,
    /// The secret of an operator token made at start.
    pub operator: String,
    http: reqwest::Client,
}

/// One HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub location: Option<String>,
    pub body: Value,
}

impl Reply {
    /// The body's `field` (of a 422 problem).
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "unexpected reply: {self:#?}");
        if status >= 400 {
            assert_eq!(self.content_type, "application/problem+json", "{self:#?}");
            assert_eq!(self.body["status"], status, "{self:#?}");
        }
        self
    }
}

impl Api {
    /// wharf on SQLite (the embedded default) with the admin API on.
    pub async fn start() -> Api {
        Api::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Api {
        Api::start_on(super::backend(), adjust).await
    }

    /// On `backend` whatever the environment says.
    pub async fn start_on(backend: wharf::config::Backend, adjust: impl FnOnce(&mut Config)) -> Api {
        let wharf = Wharf::start_on(backend, |c| {
            c.admin.enabled = true;
            adjust(c);
        })
        .await;
        let addr: SocketAddr = wharf.admin.expect("the admin API listens");
        let scheme = if wharf.config.admin.cert_file.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let (_, operator) = wharf::admin::tokens::create_token(&*wharf.directory, "ops", TokenScope::Operator)
            .await
            .expect("an operator token");
        let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build().expect("an HTTP client");
        Api { wharf, base, operator, http }
    }

    /// A tenant admin token of `tenant` (created if needed), made straight in the directory.
    pub async fn tenant_admin(&self, tenant: &str, name: &str) -> String {
        let dir = &*self.wharf.directory;
        let tenant = match dir.tenant_by_name(tenant).await.unwrap() {
            Some(t) => t,
            None => dir.create_tenant(tenant).await.unwrap(),
        };
        let scope = TokenScope::TenantAdmin(tenant.id);
        wharf::admin::tokens::create_token(dir, name, scope).await.unwrap().1
    }

    /// A request with `token` as bearer (none when `None`) and a JSON body when given.
    pub async fn call(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the admin API answers");
        let status = response.status().as_u16();
        let header = |name| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let location = header(reqwest::header::LOCATION);
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
        Reply { status, content_type, location, body }
    }

    /// A raw request builder, for tests that shape requests themselves.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Some(token), Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Some(token), Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Some(token), Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Some(token), Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.call(Some(token), Method::DELETE, path, None).await
    }

    /// As the operator.
    pub async fn op_get(&self, path: &str) -> Reply {
        self.get(&self.operator.clone(), path).await
    }

    pub async fn op_post(&self, path: &str, body: Value) -> Reply {
        self.post(&self.operator.clone(), path, body).await
    }

    /// Every item of a listing, following `next_cursor` page by page (`limit` per page).
    pub async fn all(&self, token: &str, path: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(token, &url).await.expect(200);
            let got = page.body["items"].as_array().unwrap().clone();
            assert!(got.len() <= limit as usize);
            items.extend(got);
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    /// The newest audit event, as the operator reads it.
    pub async fn last_audit(&self) -> Value {
        self.all(&self.operator.clone(), "/api/v1/audit", 500).await.pop().expect("an audit event")
    }
}

//! Metrics (issue 6): `/metrics` on the admin listener shows what the instance did, in the Prometheus text
//! format, to operators (or to anyone with `admin.metrics_auth = "none"`).

use reqwest::Method;
use wharf::config::{Backend, MetricsAuth};

use crate::support::admin::Api;
use crate::support::raw::Ftp;
use crate::support::{bytes, PASSWORD};

/// One scrape, parsed into samples.
struct Scrape {
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Scrape {
    /// The value of the one sample called `name` whose labels include `labels` (others may be there too).
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }

    /// Like [`Scrape::value`], 0 when no such sample was recorded yet.
    #[track_caller]
    fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or(0.0)
    }

    #[track_caller]
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.iter().any(|(l, w)| l == k && w == v)))
            .collect();
        match found.as_slice() {
            [one] => Some(one.value),
            [] => None,
            more => panic!("several samples {name}{labels:?}: {more:#?}"),
        }
    }

    fn parse(text: &str) -> Scrape {
        let samples = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(parse_sample).collect();
        Scrape { samples }
    }
}

/// `name{k="v",…} value`, label values unescaped.
fn parse_sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Sample { name: head.to_owned(), labels: Vec::new(), value };
    };
    let mut labels = Vec::new();
    let mut chars = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}")).chars();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{line:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                c => value.push(c),
            }
        }
        labels.push((key, value));
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => panic!("unexpected {c:?} in {line:?}"),
        }
    }
    Sample { name: name.to_owned(), labels, value }
}

/// GET /metrics with `token`: status, content type and body.
async fn get_metrics(api: &Api, token: Option<&str>) -> (u16, String, String) {
    let mut request = api.request(Method::GET, "/metrics");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    let kind = response.headers().get(reqwest::header::CONTENT_TYPE).map_or("", |v| v.to_str().unwrap()).to_owned();
    (status, kind, response.text().await.unwrap())
}

async fn scrape(api: &Api) -> Scrape {
    let (status, kind, text) = get_metrics(api, Some(&api.operator)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    Scrape::parse(&text)
}

#[tokio::test]
async fn an_upload_and_a_download_move_the_counters_of_their_tenant() {
    let api = Api::start().await;
    let mut ftp = api.wharf.login().await;
    let data = bytes(70_000, 6);
    assert_eq!(ftp.store("STOR", "/m.bin", &data).await.code, 226);
    let (got, reply) = ftp.retr("/m.bin").await;
    assert_eq!((got.len(), reply.code), (data.len(), 226));

    let m = scrape(&api).await;
    let size = data.len() as f64;
    let acme = ("tenant", "acme");
    assert_eq!(m.value("wharf_logins_total", &[("result", "ok"), acme]), 1.0);
    assert_eq!(m.value("wharf_transfer_bytes_total", &[acme, ("direction", "in")]), size);
    assert_eq!(m.value("wharf_transfer_bytes_total", &[acme, ("direction", "out")]), size);
    for direction in ["in", "out"] {
        let labels = [acme, ("direction", direction), ("result", "ok")];
        assert_eq!(m.value("wharf_transfers_total", &labels), 1.0);
        let labels = [("direction", direction), ("result", "ok")];
        assert_eq!(m.value("wharf_transfer_duration_seconds_count", &labels), 1.0);
        let inf = [("direction", direction), ("result", "ok"), ("le", "+Inf")];
        assert_eq!(m.value("wharf_transfer_duration_seconds_bucket", &inf), 1.0);
    }
    // The session is still open and logged in.
    assert_eq!(m.value("wharf_sessions_active", &[]), 1.0);
    assert_eq!(m.value("wharf_sessions_logged_in", &[]), 1.0);
    assert!(m.value("wharf_db_pool_max", &[]) >= 1.0);
    assert!(m.value("wharf_db_pool_connections", &[("state", "idle")]) >= 0.0);

    // A listing counts apart, so that `out` stays file data.
    let (_, reply) = ftp.listing("MLSD /").await;
    assert_eq!(reply.code, 226);
    let m = scrape(&api).await;
    assert_eq!(m.value("wharf_transfer_bytes_total", &[acme, ("direction", "out")]), size);
    assert_eq!(m.value("wharf_transfers_total", &[acme, ("direction", "list"), ("result", "ok")]), 1.0);
}

#[tokio::test]
async fn a_wrong_password_moves_the_rejected_logins() {
    let api = Api::start().await;
    let before = scrape(&api).await.value_or_zero("wharf_logins_total", &[("result", "rejected")]);
    let (mut ftp, _) = Ftp::connect(api.wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd("PASS not the password").await.code, 530);
    let m = scrape(&api).await;
    assert_eq!(m.value("wharf_logins_total", &[("result", "rejected")]), before + 1.0);
    assert_eq!(m.value_or_zero("wharf_logins_total", &[("result", "ok")]), 0.0);
    // Still connected, not logged in.
    assert_eq!(m.value("wharf_sessions_active", &[]), 1.0);
    assert_eq!(m.value("wharf_sessions_logged_in", &[]), 0.0);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 503, "PASS needs a USER again");
}

#[tokio::test]
async fn metrics_need_an_operator_token_by_default() {
    let api = Api::start().await;
    let (status, kind, _) = get_metrics(&api, None).await;
    assert_eq!((status, kind.as_str()), (401, "application/problem+json"));
    let (status, _, _) = get_metrics(&api, Some("wharf_not-a-token")).await;
    assert_eq!(status, 401);
    let tenant_admin = api.tenant_admin("acme", "acme-admin").await;
    let (status, kind, _) = get_metrics(&api, Some(&tenant_admin)).await;
    assert_eq!((status, kind.as_str()), (403, "application/problem+json"));
    let (status, _, text) = get_metrics(&api, Some(&api.operator)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE wharf_sessions_active gauge"), "{text}");
}

#[tokio::test]
async fn metrics_auth_none_opens_metrics_to_scrapers_without_a_token() {
    let api = Api::start_with(|c| c.admin.metrics_auth = MetricsAuth::None).await;
    let (status, kind, text) = get_metrics(&api, None).await;
    assert_eq!((status, kind.as_str()), (200, "text/plain; version=0.0.4; charset=utf-8"));
    Scrape::parse(&text).value("wharf_db_pool_max", &[]);
    // Only /metrics opens: the API still needs a token.
    api.call(None, Method::GET, "/api/v1/tenants", None).await.expect(401);
}

#[tokio::test]
async fn s3_requests_are_timed_by_operation() {
    let api = Api::start_on(Backend::S3, |_| {}).await;
    let mut ftp = api.wharf.login().await;
    assert_eq!(ftp.store("STOR", "/s3.bin", &bytes(10_000, 7)).await.code, 226);
    let (_, reply) = ftp.retr("/s3.bin").await;
    assert_eq!(reply.code, 226);
    let m = scrape(&api).await;
    for operation in ["PutObject", "GetObject"] {
        let count = m.value("wharf_s3_request_duration_seconds_count", &[("operation", operation)]);
        assert!(count >= 1.0, "{operation}: {count}");
    }
    // A file that is not there is asked for, answered 404 and counted as such, not as a failure of S3.
    let (_, reply) = ftp.retr("/missing.bin").await;
    assert_eq!(reply.code, 550);
    let m = scrape(&api).await;
    let not_found = m.samples.iter().filter(|s| {
        s.name == "wharf_s3_request_errors_total" && s.labels.iter().any(|(k, v)| k == "kind" && v == "not_found")
    });
    assert!(not_found.map(|s| s.value).sum::<f64>() >= 1.0, "{:#?}", m.samples);
}

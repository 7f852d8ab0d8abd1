//! OpenTelemetry export: the `wharf` binary sends its spans (and metrics) over OTLP/HTTP to a collector,
//! here an in-process one that decodes what arrives with the protocol's own message definitions.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::cli::{run, serving, wharf, Serving};
use crate::support::raw::Ftp;

/// What the collector has received.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

type Inbox = Arc<Mutex<Received>>;

/// An OTLP/HTTP collector on loopback; returns its base URL.
async fn collector(inbox: Inbox) -> String {
    async fn traces(State(inbox): State<Inbox>, body: Bytes) -> &'static [u8] {
        let request = ExportTraceServiceRequest::decode(body).expect("a protobuf ExportTraceServiceRequest");
        inbox.lock().unwrap().traces.push(request);
        b""
    }
    async fn metrics(State(inbox): State<Inbox>, body: Bytes) -> &'static [u8] {
        let request = ExportMetricsServiceRequest::decode(body).expect("a protobuf ExportMetricsServiceRequest");
        inbox.lock().unwrap().metrics.push(request);
        b""
    }
    let app =
        axum::Router::new().route("/v1/traces", post(traces)).route("/v1/metrics", post(metrics)).with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// The spans of a session (control connection, commands, transfers) reach the collector with the tenant,
/// user, client, bytes and result, in one trace whose parents follow the session, and so do the metrics; the
/// last ones leave when wharf stops on SIGTERM. A password never leaves.
#[tokio::test]
async fn sessions_commands_and_transfers_are_exported_as_spans_and_metrics_over_otlp() {
    let inbox = Inbox::default();
    let endpoint = collector(inbox.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme"], None).await;
    assert!(ok, "{out}{err}");
    let password = "a password that must not leave";
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some(&format!("{password}\n"))).await;
    assert!(ok, "{out}{err}");
    let mut cmd = wharf(dir.path());
    cmd.arg("serve").env("WHARF_TELEMETRY__OTLP_ENDPOINT", &endpoint).stderr(Stdio::null());
    let Serving { mut child, explicit, stdout: _stdout } = serving(cmd).await;

    let mut ftp = Ftp::login(explicit, "alice@acme", password).await;
    assert_eq!(ftp.store("STOR", "report.csv", b"a,b\n1,2\n").await.code, 226);
    let (data, reply) = ftp.retr("report.csv").await;
    assert_eq!((data.len(), reply.code), (8, 226));
    assert_eq!(ftp.cmd("QUIT").await.code, 221);
    drop(ftp);

    // The batch processor holds spans for a few seconds; SIGTERM must flush them before the exit.
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("wharf stops").unwrap();
    assert!(status.success(), "{status}");

    let received = inbox.lock().unwrap();
    let resource_spans: Vec<_> = received.traces.iter().flat_map(|r| &r.resource_spans).collect();
    assert!(!resource_spans.is_empty(), "spans arrived");
    let resource = attributes(&resource_spans[0].resource.as_ref().unwrap().attributes);
    assert_eq!(resource.get("service.name").map(String::as_str), Some("wharf"));
    let spans: Vec<&Span> = resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    let named = |name: &str| spans.iter().copied().filter(|s| s.name == name).collect::<Vec<_>>();

    let sessions = named("ftp.session");
    let session = sessions
        .iter()
        .find(|s| attributes(&s.attributes).get("user").map(String::as_str) == Some("alice"))
        .expect("the logged-in session's span");
    let facts = attributes(&session.attributes);
    assert_eq!(facts["tenant"], "acme");
    assert_eq!(facts["client.address"], "127.0.0.1");
    assert!(!facts["session"].is_empty(), "the live session's id, as in the logs and the admin API");

    let commands = named("ftp.command");
    let verb = |s: &&Span| attributes(&s.attributes).get("ftp.command").cloned().unwrap_or_default();
    let in_session = |s: &&&Span| s.trace_id == session.trace_id && s.parent_span_id == session.span_id;
    let verbs: Vec<String> = commands.iter().filter(in_session).map(verb).collect();
    for expected in ["AUTH", "USER", "PASS", "EPSV", "STOR", "RETR", "QUIT"] {
        assert!(verbs.iter().any(|v| v == expected), "a {expected} span in the session: {verbs:?}");
    }
    let pass = commands.iter().find(|s| in_session(s) && verb(s) == "PASS").unwrap();
    assert_eq!(attributes(&pass.attributes)["ftp.reply_code"], "230");

    let transfers = named("ftp.transfer");
    for (command, expected_bytes) in [("STOR", "8"), ("RETR", "8")] {
        let started_by = commands.iter().find(|s| in_session(s) && verb(s) == command).unwrap();
        let transfer = transfers
            .iter()
            .find(|t| t.parent_span_id == started_by.span_id)
            .unwrap_or_else(|| panic!("the {command} transfer, a child of its command"));
        let facts = attributes(&transfer.attributes);
        assert_eq!(facts["ftp.command"], command);
        assert_eq!(facts["path"], "/report.csv");
        assert_eq!((facts["tenant"].as_str(), facts["user"].as_str()), ("acme", "alice"));
        assert_eq!(facts["client.address"], "127.0.0.1");
        assert_eq!(facts["bytes"], expected_bytes);
        assert_eq!((facts["result"].as_str(), facts["ftp.reply_code"].as_str()), ("ok", "226"));
        assert!(transfer.end_time_unix_nano >= transfer.start_time_unix_nano);
    }

    let everything = format!("{:?}", received.traces);
    assert!(!everything.contains(password), "the password is in no attribute or event");

    // The same metrics /metrics serves are pushed too; the last push happens at the stop.
    let bytes_in = received
        .metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "wharf.transfer.bytes")
        .filter_map(|m| match &m.data {
            Some(Data::Sum(sum)) => Some(sum.data_points.clone()),
            _ => None,
        })
        .flatten()
        .filter(|point| {
            let labels = attributes(&point.attributes);
            labels.get("tenant").map(String::as_str) == Some("acme")
                && labels.get("direction").map(String::as_str) == Some("in")
        })
        .map(|point| match point.value {
            Some(number_data_point::Value::AsInt(n)) => n,
            other => panic!("an integer counter: {other:?}"),
        })
        .max();
    assert_eq!(bytes_in, Some(8), "the upload's bytes, pushed over OTLP");
}

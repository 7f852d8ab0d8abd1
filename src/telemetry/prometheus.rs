//! Prometheus text exposition format 0.0.4 of collected OpenTelemetry metrics.
//!
//! Names follow OpenTelemetry's Prometheus compatibility rules: characters outside `[a-zA-Z0-9_:]` become
//! `_`, the unit becomes a suffix (`s` → `_seconds`, `By` → `_bytes`; annotations like `{session}` add
//! none), and monotonic sums are counters ending in `_total`. Non-monotonic sums and gauges are gauges;
//! histograms give cumulative `_bucket{le=…}` lines up to `+Inf`, then `_sum` and `_count`.

use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric of `collected`.
pub fn render(collected: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in collected.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::U64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::I64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::F64(data) => write_metric(&mut out, metric, data),
            }
        }
    }
    out
}

/// A sample value as Prometheus reads it (`+Inf`, `-Inf` and `NaN` spelled its way).
trait Sample: Copy {
    fn write(self, out: &mut String);
}

macro_rules! integer_sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn write(self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_sample!(u64, i64);

impl Sample for f64 {
    fn write(self, out: &mut String) {
        write_float(out, self);
    }
}

fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

fn write_metric<T: Sample>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    match data {
        MetricData::Sum(sum) => {
            let counter = sum.is_monotonic();
            let name = name(metric.name(), metric.unit(), counter);
            header(out, &name, metric.description(), if counter { "counter" } else { "gauge" });
            for point in sum.data_points() {
                sample(out, &name, point.attributes(), None, point.value());
            }
        }
        MetricData::Gauge(gauge) => {
            let name = name(metric.name(), metric.unit(), false);
            header(out, &name, metric.description(), "gauge");
            for point in gauge.data_points() {
                sample(out, &name, point.attributes(), None, point.value());
            }
        }
        MetricData::Histogram(histogram) => {
            let name = name(metric.name(), metric.unit(), false);
            header(out, &name, metric.description(), "histogram");
            let bucket = format!("{name}_bucket");
            for point in histogram.data_points() {
                // OpenTelemetry counts per bucket; Prometheus's buckets include every smaller one.
                let mut cumulative = 0;
                let bounds = point.bounds().map(Some).chain(std::iter::once(None));
                for (bound, count) in bounds.zip(point.bucket_counts()) {
                    cumulative += count;
                    let mut le = String::new();
                    write_float(&mut le, bound.unwrap_or(f64::INFINITY));
                    sample(out, &bucket, point.attributes(), Some(&le), cumulative);
                }
                sample(out, &format!("{name}_sum"), point.attributes(), None, point.sum());
                sample(out, &format!("{name}_count"), point.attributes(), None, point.count());
            }
        }
        // Wharf records none; an exporter of them would need native histograms.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample<'a, T: Sample>(
    out: &mut String,
    name: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: T,
) {
    out.push_str(name);
    let mut labels: Vec<(String, String)> =
        attributes.map(|kv| (sanitise(kv.key.as_str()), kv.value.as_str().into_owned())).collect();
    // The SDK keeps attributes in no promised order; sorted lines diff and read better.
    labels.sort();
    if let Some(le) = le {
        labels.push(("le".to_owned(), le.to_owned()));
    }
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label(out, value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    value.write(out);
    out.push('\n');
}

fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A metric's Prometheus name from its OpenTelemetry name and unit.
fn name(otel: &str, unit: &str, counter: bool) -> String {
    let mut name = sanitise(otel);
    let suffix = match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        _ => None,
    };
    if let Some(suffix) = suffix {
        if !name.ends_with(&format!("_{suffix}")) {
            name.push('_');
            name.push_str(suffix);
        }
    }
    if counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

/// Replaces what Prometheus names may not hold with `_` (a leading digit too).
fn sanitise(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;

    fn metrics() -> Metrics {
        Metrics::new(None, &Default::default())
    }

    #[test]
    fn counters_end_in_total_after_their_unit() {
        let metrics = metrics();
        let meter = metrics.meter();
        meter.u64_counter("app.sent").with_unit("By").with_description("Sent").build().add(7, &[]);
        meter.u64_counter("app.requests_total").build().add(2, &[]);
        meter.i64_up_down_counter("app.open").with_unit("{connection}").build().add(3, &[]);
        let text = metrics.render_prometheus().unwrap();
        assert!(text.contains("# HELP app_sent_bytes_total Sent\n# TYPE app_sent_bytes_total counter\n"), "{text}");
        assert!(text.contains("\napp_sent_bytes_total 7\n"), "{text}");
        assert!(text.contains("\napp_requests_total 2\n"), "{text}");
        assert!(text.contains("# TYPE app_open gauge\napp_open 3\n"), "{text}");
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let metrics = metrics();
        let meter = metrics.meter();
        let counter = meter.u64_counter("c").build();
        counter.add(1, &[KeyValue::new("tenant", "a\\b\"c\nd"), KeyValue::new("bad.key", "x")]);
        let text = metrics.render_prometheus().unwrap();
        assert!(text.contains("c_total{bad_key=\"x\",tenant=\"a\\\\b\\\"c\\nd\"} 1\n"), "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let metrics = metrics();
        let meter = metrics.meter();
        let histogram = meter.f64_histogram("op.duration").with_unit("s").with_boundaries(vec![0.1, 1.0]).build();
        for value in [0.05, 0.5, 0.7, 3.0] {
            histogram.record(value, &[KeyValue::new("op", "get")]);
        }
        let text = metrics.render_prometheus().unwrap();
        let expected = "# TYPE op_duration_seconds histogram\n\
            op_duration_seconds_bucket{op=\"get\",le=\"0.1\"} 1\n\
            op_duration_seconds_bucket{op=\"get\",le=\"1\"} 3\n\
            op_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n\
            op_duration_seconds_sum{op=\"get\"} 4.25\n\
            op_duration_seconds_count{op=\"get\"} 4\n";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn names_lose_what_prometheus_cannot_hold() {
        assert_eq!(name("wharf.transfer.duration", "s", false), "wharf_transfer_duration_seconds");
        assert_eq!(name("wharf.transfer.bytes", "By", true), "wharf_transfer_bytes_total");
        assert_eq!(name("wharf.logins", "{login}", true), "wharf_logins_total");
        assert_eq!(name("9-lives", "", false), "_9_lives");
    }
}

//! Logs and traces of the process: the `tracing` subscriber, and the OpenTelemetry export
//! of spans over OTLP/HTTP when `otlp_endpoint` is set.
//!
//! **What is exported**: the spans of Emporium's crates (targets `emporium*`) at DEBUG and
//! above — one per HTTP request (`http.request`, exported as `METHOD /route`), one per actor
//! turn (`actor.turn`), one per forwarded call on each side (`cluster.forward`,
//! `cluster.serve`) — with the events
//! of those crates at INFO and above as span events. Service name `emporium`, resource
//! attribute `service.instance.id` = the node id. Spans leave in batches from the SDK's own
//! thread (`OTEL_BSP_*` variables tune it); [`Telemetry::shutdown`] flushes what is left.
//!
//! **Log lines** follow the `log` filter, as before, whether or not spans are exported:
//! the exporter's filter is its own, so DEBUG spans cost a callsite check and nothing more
//! on a node that exports nothing (and the request span, at INFO, puts the request id on
//! every log line of a request).
//!
//! **Across nodes**: [`W3cTraceContext`] is the runtime's [`TraceContext`] port in W3C
//! form; a node that exports installs it, so a call forwarded to another node continues
//! the sender's trace there. A malformed parent is ignored (the serve span starts a new
//! trace): tracing never changes an outcome.

use std::fmt;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata, Subscriber, span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

use emporium_runtime::{TraceContext, TraceHeaders};

/// The service name every node exports under.
pub const SERVICE_NAME: &str = "emporium";

/// Why the process's logs and traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter cannot be built: {0}")]
    Exporter(#[from] ExporterBuildError),
    #[error("a tracing subscriber is installed already: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// The installed subscriber's exporting half, kept to flush it at the end.
#[must_use = "call `shutdown` at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Install the process-wide subscriber: log lines filtered by `log` (env-filter
    /// syntax), and spans exported to `otlp_endpoint` when it is set. Call once, after the
    /// TLS crypto provider is installed (the exporter's HTTP client takes it).
    pub fn init(
        log: &str,
        otlp_endpoint: Option<&str>,
        node_id: &str,
    ) -> Result<Self, TelemetryError> {
        let provider = otlp_endpoint
            .map(|endpoint| tracer_provider(endpoint, node_id))
            .transpose()?;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(LogFields)
                    .with_filter(log_filter(log)),
            )
            .with(provider.as_ref().map(export_layer))
            .try_init()?;
        Ok(Self { provider })
    }

    /// Export what is still buffered and stop exporting. Blocks (at most the exporter's
    /// timeout): call it outside the async runtime, after the node stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("emporium: the last spans may not have been exported: {error}");
        }
    }
}

/// The log filter: `log`, with ractor's per-session chatter kept out unless asked for.
fn log_filter(log: &str) -> EnvFilter {
    let directives = if log.contains("ractor") {
        log.to_owned()
    } else {
        format!("{log},ractor=warn,ractor_cluster=warn")
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The fields of a log line: tracing's default format without the `otel.*` fields. Those
/// only steer the exporter (span name, kind, status) and repeat the method and route in a
/// log line; formatting them cost every request's span about 2% of a node's CPU on a
/// product read (perf, issue 14).
struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = WithoutExporterFields(DefaultVisitor::new(writer, true));
        fields.record(&mut visitor);
        visitor.0.finish()
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        // A record of exporter fields only (a span's `otel.status_code`) adds nothing, not
        // even the space before it.
        let mut logged = HasLoggedField(false);
        fields.record(&mut logged);
        if !logged.0 {
            return Ok(());
        }
        if !current.fields.is_empty() {
            current.fields.push(' ');
        }
        self.format_fields(current.as_writer(), fields)
    }
}

/// Whether a record holds any field a log line shows.
struct HasLoggedField(bool);

impl Visit for HasLoggedField {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        self.0 |= !is_exporter_field(field);
    }
}

/// A visitor passing every field but the exporter's on to the default one.
struct WithoutExporterFields<'writer>(DefaultVisitor<'writer>);

impl Visit for WithoutExporterFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !is_exporter_field(field) {
            self.0.record_str(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !is_exporter_field(field) {
            self.0.record_debug(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !is_exporter_field(field) {
            self.0.record_error(field, value);
        }
    }
}

fn is_exporter_field(field: &Field) -> bool {
    field.name().starts_with("otel.")
}

/// A tracer provider exporting in batches to the collector at `endpoint` (its base URL:
/// `/v1/traces` is appended, as `OTEL_EXPORTER_OTLP_ENDPOINT` would be).
pub fn tracer_provider(
    endpoint: &str,
    node_id: &str,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.instance.id", node_id.to_owned()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The layer that turns Emporium's spans into OpenTelemetry spans of `provider`, with
/// its own filter (see the module docs).
pub fn export_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SERVICE_NAME))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter::filter_fn(is_exported).with_max_level_hint(Level::DEBUG))
}

/// Emporium's spans at DEBUG and above, its events at INFO and above.
fn is_exported(metadata: &Metadata<'_>) -> bool {
    let limit = if metadata.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    metadata.target().starts_with("emporium") && *metadata.level() <= limit
}

/// The runtime's trace context port in W3C form (`traceparent`, `tracestate`), read from
/// and written to the OpenTelemetry context of `tracing` spans.
#[derive(Clone, Copy, Debug, Default)]
pub struct W3cTraceContext;

impl TraceContext for W3cTraceContext {
    fn inject(&self) -> Option<TraceHeaders> {
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = Carrier::default();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        Some(TraceHeaders {
            traceparent: carrier.traceparent?,
            tracestate: carrier.tracestate.filter(|state| !state.is_empty()),
        })
    }

    fn adopt(&self, span: &tracing::Span, parent: &TraceHeaders) {
        let carrier = Carrier {
            traceparent: Some(parent.traceparent.clone()),
            tracestate: parent.tracestate.clone(),
        };
        let context: Context = TraceContextPropagator::new().extract(&carrier);
        if context.span().span_context().is_valid() {
            // Fails only when `span` is not exported or already started: it stays a root.
            let _ = span.set_parent(context);
        }
    }
}

/// The two W3C headers, as the propagator writes and reads them.
#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn a_log_line_carries_the_request_fields_but_not_the_exporters() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(LogFields)
                .with_ansi(false)
                .with_writer(lines.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "http.request",
                otel.name = %format_args!("GET {}", "/v1/products/{sku}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                http.route = "/v1/products/{sku}",
                http.response.status_code = tracing::field::Empty,
                request_id = "r-1",
            );
            span.record("otel.status_code", "ERROR");
            span.record("http.response.status_code", 500);
            span.in_scope(|| tracing::error!(status = 500, "response failed"));
        });
        let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
        assert!(
            text.contains(
                "http.request{http.route=\"/v1/products/{sku}\" request_id=\"r-1\" \
                 http.response.status_code=500}"
            ),
            "{text}"
        );
        assert!(text.contains("response failed status=500"), "{text}");
        assert!(!text.contains("otel."), "{text}");
    }
}

//! Trace context across nodes: the port a node plugs its tracer into.
//!
//! The runtime opens `tracing` spans of its own — one per actor turn (`actor.turn`, a child
//! of the span that asked), one per forwarded call on the sender (`cluster.forward`) and one
//! per forwarded call served (`cluster.serve`) — and knows nothing of OpenTelemetry. What
//! crosses nodes is the W3C trace context of the sender's forward span, as two optional
//! strings in the transport envelope ([`TraceHeaders`]); a [`TraceContext`] installed by the
//! node (`RuntimeBuilder::trace_context`) writes them from the current span and
//! makes the receiver's serve span a child of them. The default, [`NoTrace`], carries
//! nothing, so a node without a tracer pays nothing for it.
//!
//! **Contract** (every implementation):
//! - tracing never changes an outcome: [`TraceContext::adopt`] ignores a parent it cannot
//!   read (malformed, another version), and a call is served the same with or without one;
//! - both methods are cheap and never block (they run on every forwarded call).

/// The W3C trace context headers of a call crossing nodes (`traceparent`, `tracestate`),
/// carried verbatim: their syntax is the [`TraceContext`]'s business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// Writes and reads the trace context that crosses nodes with a forwarded call.
pub trait TraceContext: Send + Sync + 'static {
    /// The current span's context, to travel with a call; `None` when there is none.
    fn inject(&self) -> Option<TraceHeaders>;

    /// Make `span` (just created, not yet entered) a child of the remote `parent`. A
    /// `parent` that cannot be read is ignored: `span` stays a root.
    fn adopt(&self, span: &tracing::Span, parent: &TraceHeaders);
}

/// No trace context: nothing is carried, nothing adopted (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

impl TraceContext for NoTrace {
    fn inject(&self) -> Option<TraceHeaders> {
        None
    }

    fn adopt(&self, _span: &tracing::Span, _parent: &TraceHeaders) {}
}

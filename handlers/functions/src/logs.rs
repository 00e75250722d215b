//! Logging: every line carries the invocation it belongs to, and an invocation's lines also go
//! back to the host in `Logs`.
//!
//! The adapter opens one span per invocation, named [`INVOCATION_SPAN`], with the field
//! `invocation_id` (the host's `X-Azure-Functions-InvocationId`); work spawned for it keeps the
//! span. On the console, the JSON formatter prints the span's fields on every line. The
//! [`CaptureLayer`] copies each line at `INFO` or above made inside such a span into a
//! [`LogStore`], from which the adapter takes them for the answer's `Logs`: the host records
//! them as the invocation's own logs (Application Insights traces with its id). Lines are
//! capped per invocation; the rest are counted.
//!
//! The host reads the handler's stdout as information and its stderr as errors (warnings when
//! the line contains "warn"): [`init`] writes `WARN` and `ERROR` to stderr, the rest to stdout.
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The name of the span the adapter opens per invocation.
pub const INVOCATION_SPAN: &str = "invocation";

/// Lines kept per invocation for `Logs`; more are counted, not kept.
pub const MAX_LINES: usize = 200;

/// The captured lines of invocations in flight.
#[derive(Debug, Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<HashMap<String, Captured>>>,
}

#[derive(Debug, Default)]
struct Captured {
    lines: Vec<String>,
    dropped: usize,
}

impl LogStore {
    /// Starts capturing for `invocation_id`.
    pub fn begin(&self, invocation_id: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(invocation_id.to_string(), Captured::default());
        }
    }

    /// How many invocations are being captured (each one's lines are taken when it answers).
    pub fn in_flight(&self) -> usize {
        self.inner.lock().map(|map| map.len()).unwrap_or(0)
    }

    /// Stops capturing for `invocation_id` and returns its lines (with a last line counting
    /// those that did not fit).
    pub fn take(&self, invocation_id: &str) -> Vec<String> {
        let captured = self
            .inner
            .lock()
            .ok()
            .and_then(|mut map| map.remove(invocation_id))
            .unwrap_or_default();
        let mut lines = captured.lines;
        if captured.dropped > 0 {
            lines.push(format!(
                "... {} more lines in the handler's console log",
                captured.dropped
            ));
        }
        lines
    }

    fn push(&self, invocation_id: &str, line: String) {
        if let Ok(mut map) = self.inner.lock() {
            if let Some(captured) = map.get_mut(invocation_id) {
                if captured.lines.len() < MAX_LINES {
                    captured.lines.push(line);
                } else {
                    captured.dropped += 1;
                }
            }
        }
    }
}

/// The invocation id a span carries, kept in the span's extensions.
struct InvocationKey(String);

/// Copies lines made inside an invocation span into a [`LogStore`].
pub struct CaptureLayer {
    store: LogStore,
}

impl CaptureLayer {
    pub fn new(store: LogStore) -> Self {
        Self { store }
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        if attributes.metadata().name() != INVOCATION_SPAN {
            return;
        }
        let mut visitor = FieldText::default();
        attributes.record(&mut visitor);
        if let (Some(invocation_id), Some(span)) = (visitor.invocation_id, context.span(id)) {
            span.extensions_mut().insert(InvocationKey(invocation_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        if *event.metadata().level() > Level::INFO {
            return;
        }
        let Some(scope) = context.event_scope(event) else {
            return;
        };
        for span in scope {
            let key = span
                .extensions()
                .get::<InvocationKey>()
                .map(|key| key.0.clone());
            if let Some(invocation_id) = key {
                let mut visitor = FieldText::default();
                event.record(&mut visitor);
                let line = format!("{} {}", event.metadata().level(), visitor.text);
                self.store.push(&invocation_id, line);
                return;
            }
        }
    }
}

/// An event's message and fields as one line: `message key=value ...`.
#[derive(Default)]
struct FieldText {
    text: String,
    invocation_id: Option<String>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "invocation_id" {
            self.invocation_id = Some(value.to_string());
        }
        self.add(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "invocation_id" {
            self.invocation_id = Some(text.trim_matches('"').to_string());
        }
        self.add(field, &text);
    }
}

impl FieldText {
    fn add(&mut self, field: &Field, value: &str) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.text, "{}={value}", field.name());
        }
    }
}

/// Installs the process's logging: JSON lines with the current span's fields, `WARN` and
/// `ERROR` on stderr, the rest on stdout, invocation lines also captured into `store`.
pub fn init(store: LogStore) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let console = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(
            std::io::stderr
                .with_max_level(Level::WARN)
                .or_else(std::io::stdout),
        )
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(CaptureLayer::new(store))
        .try_init();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracing::Instrument;

    #[tokio::test]
    async fn lines_inside_an_invocation_are_captured_and_capped() {
        let store = LogStore::default();
        let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(store.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        store.begin("inv-1");
        let span = tracing::info_span!(INVOCATION_SPAN, invocation_id = "inv-1", function = "F");
        async {
            tracing::info!(hub = "h", "reconciled");
            tracing::debug!("not kept");
            for n in 0..MAX_LINES + 5 {
                tracing::warn!(n, "many");
            }
        }
        .instrument(span)
        .await;
        tracing::info!("outside any invocation");
        let lines = store.take("inv-1");
        assert_eq!(lines[0], "INFO reconciled hub=h");
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(
            lines[MAX_LINES].contains("6 more lines"),
            "{:?}",
            lines.last()
        );
        assert!(store.take("inv-1").is_empty(), "taken once");
    }
}

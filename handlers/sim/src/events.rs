//! Event Grid delivery of ARM's `Microsoft.Resources.ResourceWriteSuccess` /
//! `ResourceDeleteSuccess` events (Microsoft Learn, "Azure Resource Manager events in Event Grid", and the Event Grid data-plane schema of `tests/fixtures/azure-rest-api-specs/eventgrid-resources-2018-01-01`): the envelope in Event Grid or
//! CloudEvents schema, a JSON array body for Event Grid, `aeg-*` headers, retries with Event
//! Grid's backoff ladder (scaled), at least once; and the knobs that duplicate, delay, reorder and
//! drop a share of events. Every event is also kept for `GET /_sim/events`.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::{EventKnobs, EventSchema};
use crate::identity::TENANT_ID;
use crate::world::PendingEvent;

/// One emitted event and what became of its delivery.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    /// Sequence number of the event in this simulator (0, 1, ...).
    pub seq: u64,
    /// The event in Event Grid schema (as delivered with that schema).
    pub event: Value,
    /// Delivery attempts made (duplicates included).
    pub attempts: u32,
    /// Whether an attempt succeeded (200–204).
    pub delivered: bool,
    /// Whether the event was dropped by the `drop` knob (never delivered).
    pub dropped: bool,
    /// The last HTTP status received, if any.
    pub last_status: Option<u16>,
}

/// How long a held-back (reordered) event waits for a successor before it is sent anyway.
const HOLD_WINDOW: Duration = Duration::from_millis(200);

/// Event Grid's retry ladder (delivery-and-retry.md), in multiples of its first step (10 s).
const LADDER: [f64; 9] = [1.0, 3.0, 6.0, 30.0, 60.0, 180.0, 360.0, 1080.0, 2160.0];

/// Builds the Event Grid schema envelope of a pending event.
pub(crate) fn envelope(pending: &PendingEvent, time: &str) -> Value {
    let event_type = if pending.delete {
        "Microsoft.Resources.ResourceDeleteSuccess"
    } else {
        "Microsoft.Resources.ResourceWriteSuccess"
    };
    let principal = pending
        .claims
        .get("oid")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let mut data = json!({
        "authorization": {
            "scope": pending.subject,
            "action": pending.operation_name,
            "evidence": {"role": "Network Contributor", "principalId": principal, "principalType": "ServicePrincipal"}
        },
        "claims": pending.claims,
        "correlationId": pending.correlation_id,
        "resourceProvider": pending.resource_provider,
        "resourceUri": pending.subject,
        "operationName": pending.operation_name,
        "status": "Succeeded",
        "subscriptionId": pending.subscription_id,
        "tenantId": TENANT_ID,
    });
    if let (Some(request), Some(map)) = (&pending.http_request, data.as_object_mut()) {
        map.insert("httpRequest".into(), request.clone());
    }
    json!({
        "topic": format!("/subscriptions/{}", pending.subscription_id),
        "subject": pending.subject,
        "eventType": event_type,
        "eventTime": time,
        "id": uuid::Uuid::new_v4().to_string(),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    })
}

/// The CloudEvents 1.0 form of an Event Grid envelope.
pub(crate) fn to_cloudevent(event: &Value) -> Value {
    json!({
        "source": event.get("topic"),
        "subject": event.get("subject"),
        "type": event.get("eventType"),
        "time": event.get("eventTime"),
        "id": event.get("id"),
        "data": event.get("data"),
        "specversion": "1.0",
    })
}

/// The event log and the delivery queue.
#[derive(Debug)]
pub(crate) struct EventBus {
    pub records: Mutex<Vec<EventRecord>>,
    sender: Option<mpsc::UnboundedSender<u64>>,
    next_seq: std::sync::atomic::AtomicU64,
}

impl EventBus {
    /// A bus that only records (no `--events-to`).
    pub(crate) fn recording() -> Arc<Self> {
        Arc::new(Self {
            records: Mutex::new(Vec::new()),
            sender: None,
            next_seq: Default::default(),
        })
    }

    /// A bus that delivers to `url`.
    pub(crate) fn delivering(
        url: String,
        schema: EventSchema,
        knobs: EventKnobs,
    ) -> anyhow::Result<Arc<Self>> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let bus = Arc::new(Self {
            records: Mutex::new(Vec::new()),
            sender: Some(sender),
            next_seq: Default::default(),
        });
        tokio::spawn(dispatch(
            Arc::downgrade(&bus),
            receiver,
            client,
            url,
            schema,
            knobs,
        ));
        Ok(bus)
    }

    /// Records an event and queues it for delivery.
    pub(crate) fn emit(&self, pending: &PendingEvent) {
        let event = envelope(pending, &crate::clock::now_rfc3339());
        let event_type = event
            .get("eventType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        tracing::info!(event_type = %event_type, subject = %pending.subject, "event");
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let Ok(mut records) = self.records.lock() else {
                return;
            };
            records.push(EventRecord {
                seq,
                event,
                attempts: 0,
                delivered: false,
                dropped: false,
                last_status: None,
            });
        }
        if let Some(sender) = &self.sender {
            let _ = sender.send(seq);
        }
    }

    fn update(&self, seq: u64, change: impl FnOnce(&mut EventRecord)) {
        if let Ok(mut records) = self.records.lock() {
            if let Some(record) = records.iter_mut().rev().find(|r| r.seq == seq) {
                change(record);
            }
        }
    }

    fn event(&self, seq: u64) -> Option<Value> {
        self.records
            .lock()
            .ok()?
            .iter()
            .rev()
            .find(|r| r.seq == seq)
            .map(|r| r.event.clone())
    }
}

async fn dispatch(
    bus: std::sync::Weak<EventBus>,
    mut receiver: mpsc::UnboundedReceiver<u64>,
    client: reqwest::Client,
    url: String,
    schema: EventSchema,
    knobs: EventKnobs,
) {
    let send = |seq: u64, copies: usize, late: bool| {
        let mut knobs = knobs.clone();
        if late {
            // Behind the event it was held for.
            knobs.delay += Duration::from_millis(20);
        }
        for _ in 0..copies {
            tokio::spawn(deliver(
                bus.clone(),
                seq,
                client.clone(),
                url.clone(),
                schema,
                knobs.clone(),
            ));
        }
    };
    let copies = || {
        if rand::random::<f64>() < knobs.duplicate {
            2
        } else {
            1
        }
    };
    let mut held: Option<u64> = None;
    loop {
        // A held-back event waits for the next one, but not forever: at least once still holds.
        let next = match held {
            Some(h) => match tokio::time::timeout(HOLD_WINDOW, receiver.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    held = None;
                    send(h, copies(), false);
                    continue;
                }
            },
            None => receiver.recv().await,
        };
        let Some(seq) = next else {
            if let Some(h) = held.take() {
                send(h, copies(), false);
            }
            return;
        };
        let Some(strong) = bus.upgrade() else { return };
        if rand::random::<f64>() < knobs.drop {
            strong.update(seq, |r| r.dropped = true);
            continue;
        }
        if held.is_none() && rand::random::<f64>() < knobs.reorder {
            held = Some(seq);
            continue;
        }
        send(seq, copies(), false);
        if let Some(h) = held.take() {
            send(h, copies(), true);
        }
    }
}

async fn deliver(
    bus: std::sync::Weak<EventBus>,
    index: u64,
    client: reqwest::Client,
    url: String,
    schema: EventSchema,
    knobs: EventKnobs,
) {
    if !knobs.delay.is_zero() {
        tokio::time::sleep(knobs.delay).await;
    }
    for attempt in 0..knobs.max_attempts {
        let Some(strong) = bus.upgrade() else { return };
        let Some(event) = strong.event(index) else {
            return;
        };
        let (body, content_type) = match schema {
            EventSchema::Eventgrid => (Value::Array(vec![event]), "application/json"),
            EventSchema::Cloudevents => (
                to_cloudevent(&event),
                "application/cloudevents+json; charset=utf-8",
            ),
        };
        let result = client
            .post(&url)
            .header("content-type", content_type)
            .header("aeg-event-type", "Notification")
            .header("aeg-subscription-name", "HUBSPOKE-SIM")
            .header("aeg-delivery-count", attempt.to_string())
            .header("aeg-data-version", "2")
            .header("aeg-metadata-version", "1")
            .body(body.to_string())
            .send()
            .await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        strong.update(index, |r| {
            r.attempts += 1;
            r.last_status = status;
            if matches!(status, Some(200..=204)) {
                r.delivered = true;
            }
        });
        match status {
            Some(200..=204) => return,
            // Event Grid does not retry these for webhooks (delivery-and-retry.md).
            Some(400 | 401 | 403 | 413) => return,
            _ => {}
        }
        drop(strong);
        let step = LADDER.get(attempt as usize).copied().unwrap_or(4320.0);
        tokio::time::sleep(knobs.first_retry.mul_f64(step)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn envelope_has_the_documented_fields() {
        let mut claims = Map::new();
        claims.insert("oid".into(), json!("me"));
        let pending = PendingEvent {
            delete: false,
            subject:
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v"
                    .into(),
            operation_name: "Microsoft.Network/virtualNetworks/write".into(),
            resource_provider: "Microsoft.Network",
            subscription_id: "s".into(),
            claims,
            correlation_id: "c".into(),
            http_request: None,
        };
        let event = envelope(&pending, "2026-01-01T00:00:00.000Z");
        assert_eq!(
            event["eventType"],
            "Microsoft.Resources.ResourceWriteSuccess"
        );
        assert_eq!(
            event["data"]["operationName"],
            "Microsoft.Network/virtualNetworks/write"
        );
        assert_eq!(event["data"]["claims"]["oid"], "me");
        assert!(event["data"].get("httpRequest").is_none());
        let cloud = to_cloudevent(&event);
        assert_eq!(cloud["type"], "Microsoft.Resources.ResourceWriteSuccess");
        assert_eq!(cloud["specversion"], "1.0");
    }
}

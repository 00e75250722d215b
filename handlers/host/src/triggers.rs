//! The triggers the host drives itself: timers and storage queues.
//!
//! Timers (`TimerListener`): on a schedule of [`crate::schedule`]; a timer never overlaps itself (the next
//! occurrence is computed once an invocation ended); `runOnStartup` fires once at start; with
//! blob storage, only the instance holding the timer's listener lock runs its schedule
//! ([`crate::timer_lock`]).
//! `ScheduleStatus` is kept in memory (null on the first run), where Azure keeps it in storage.
//!
//! Queues (the queue extension's `QueueListener` and `QueueProcessor`): messages are received
//! `batchSize` at a time, invisible for 10 minutes and renewed at half of that while the
//! function runs; a new batch is fetched once at most `newBatchThreshold` are running; an empty
//! poll backs off exponentially with jitter from 100 ms to `maxPollingInterval`, and a message
//! written to the queue by a function of this host wakes the listener at once. A success
//! deletes the message; a failure makes it visible again after `visibilityTimeout`, or, once its
//! dequeue count reaches `maxDequeueCount`, copies it to `<queue>-poison` and deletes it; a
//! message already past the count when received (the host died during its last attempt) goes to
//! the poison queue without an invocation. A message that does not decode with
//! `messageEncoding` goes to the poison queue too.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use hubspoke_queue::{Queue, ReceivedMessage};
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::config::{Function, QueuesOptions};
use crate::in_flight::InFlight;
use crate::invocation::{apply_binding_data, double_encoded, Invoker, Outcome};
use crate::timer_lock::{TimerLock, RECOVERY_INTERVAL};

/// How long a received message stays invisible while its function runs.
const PROCESSING_VISIBILITY: Duration = Duration::from_secs(600);
/// The shortest wait between polls.
const MIN_POLL: Duration = Duration::from_millis(100);

/// The in-memory schedule status of a timer.
#[derive(Debug, Clone, Default)]
pub struct TimerStatus {
    last: Option<DateTime<Utc>>,
}

/// Runs a timer function until `stop`. With a `lock`, the schedule runs only while this
/// instance holds the timer's listener lock ([`crate::timer_lock`]); meanwhile a manual run (the
/// admin route) still fires here, as on the real host.
#[allow(clippy::too_many_arguments)]
pub async fn run_timer(
    function: Arc<Function>,
    schedule: Cron,
    run_on_startup: bool,
    invoker: Arc<Invoker>,
    in_flight: Arc<InFlight>,
    mut stop: watch::Receiver<bool>,
    manual: Arc<Notify>,
    lock: Option<TimerLock>,
) {
    let mut status = TimerStatus::default();
    let mut first = run_on_startup;
    loop {
        let held = match &lock {
            None => None,
            Some(lock) => loop {
                match lock.try_acquire().await {
                    Ok(Some(held)) => break Some(held),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(function = %function.name, error = %e, "cannot reach the timer's listener lock")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(RECOVERY_INTERVAL) => {}
                    _ = manual.notified() => {
                        fire(&function, &schedule, false, &invoker, &in_flight, &mut status).await;
                    }
                    _ = stop.changed() => return,
                }
            },
        };
        let mut lost = held.as_ref().map(|held| held.lost.clone());
        loop {
            let now = Utc::now();
            let next = match schedule.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(e) => {
                    error!(function = %function.name, error = %e, "the schedule has no next occurrence");
                    return;
                }
            };
            let past_due;
            if first {
                first = false;
                past_due = false;
            } else {
                let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                let lock_lost = async {
                    match lost.as_mut() {
                        Some(lost) => {
                            let _ = lost.wait_for(|lost| *lost).await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = manual.notified() => {}
                    _ = stop.changed() => {
                        if let Some(held) = held {
                            held.release().await;
                        }
                        return;
                    }
                    _ = lock_lost => break,
                }
                past_due = Utc::now() - next > chrono::Duration::seconds(1);
            }
            fire(
                &function,
                &schedule,
                past_due,
                &invoker,
                &in_flight,
                &mut status,
            )
            .await;
        }
        if let Some(held) = held {
            held.release().await;
        }
    }
}

/// One invocation of a timer function.
async fn fire(
    function: &Function,
    schedule: &Cron,
    past_due: bool,
    invoker: &Invoker,
    in_flight: &Arc<InFlight>,
    status: &mut TimerStatus,
) {
    let fired = Utc::now();
    let following = schedule.find_next_occurrence(&fired, false).ok();
    let schedule_status = status.last.map(|last| {
        json!({
            "Last": iso(last),
            "Next": following.map(iso),
            "LastUpdated": iso(last),
        })
    });
    let mut data = Map::new();
    data.insert(
        function.trigger.binding_name().to_string(),
        json!({
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": schedule_status,
            "IsPastDue": past_due,
        }),
    );
    let _guard = in_flight.enter();
    let _ = invoker.invoke(function, data, Map::new()).await;
    status.last = Some(fired);
}

fn iso(time: DateTime<Utc>) -> String {
    crate::invocation::seven_digits(time, "+00:00")
}

/// What a queue listener needs.
pub struct QueueListener {
    pub function: Arc<Function>,
    pub queue: Queue,
    pub poison: Option<Queue>,
    pub options: QueuesOptions,
    pub invoker: Arc<Invoker>,
    pub in_flight: Arc<InFlight>,
    pub wake: Arc<Notify>,
}

/// Polls a queue and invokes its function until `stop`; in-flight messages finish first.
pub async fn run_queue(listener: Arc<QueueListener>, mut stop: watch::Receiver<bool>) {
    let mut delay = MIN_POLL;
    let mut processing: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Whether the queue is known to exist: checked until it does, and again after any error,
    // as the listener does (it never creates the queue it listens to).
    let mut exists = false;
    loop {
        if *stop.borrow() {
            break;
        }
        if !exists {
            exists = listener.queue.exists().await.unwrap_or(false);
        }
        let received = if exists {
            listener
                .queue
                .receive(listener.options.batch_size, PROCESSING_VISIBILITY)
                .await
        } else {
            Ok(Vec::new())
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(e) => {
                exists = false;
                warn!(queue = %listener.queue.name(), error = %e, "polling the queue failed; backing off");
                Vec::new()
            }
        };
        if messages.is_empty() {
            delay = next_delay(delay, listener.options.max_polling_interval);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = listener.wake.notified() => { delay = MIN_POLL; }
                _ = stop.changed() => break,
            }
            continue;
        }
        delay = MIN_POLL;
        for message in messages {
            let listener = listener.clone();
            let guard = listener.in_flight.enter();
            processing.push(tokio::spawn(async move {
                let _guard = guard;
                process(&listener, message).await;
            }));
        }
        // Fetch again once no more than newBatchThreshold messages are being processed.
        loop {
            processing.retain(|task| !task.is_finished());
            if processing.len() <= listener.options.new_batch_threshold as usize {
                break;
            }
            let Some(first) = processing.first_mut() else {
                break;
            };
            let _ = first.await;
        }
    }
    for task in processing {
        let _ = task.await;
    }
}

/// Randomized exponential back-off between polls of an empty queue.
fn next_delay(current: Duration, max: Duration) -> Duration {
    let doubled = current.saturating_mul(2).min(max);
    let low = current.max(MIN_POLL).min(doubled);
    let span = doubled.saturating_sub(low).as_secs_f64();
    (low + Duration::from_secs_f64(span * rand::random::<f64>())).max(MIN_POLL)
}

async fn process(listener: &QueueListener, message: ReceivedMessage) {
    let options = &listener.options;
    let queue = &listener.queue;
    if message.dequeue_count > options.max_dequeue_count {
        to_poison(listener, &message).await;
        return;
    }
    let Some(bytes) = options.message_encoding.decode(&message.text) else {
        warn!(queue = %queue.name(), id = %message.id, "the message does not decode with the queue's messageEncoding; moving it to the poison queue");
        to_poison(listener, &message).await;
        return;
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut data = Map::new();
    data.insert(
        listener.function.trigger.binding_name().to_string(),
        double_encoded(&text),
    );
    let mut metadata = Map::new();
    metadata.insert(
        "DequeueCount".to_string(),
        Value::String(message.dequeue_count.to_string()),
    );
    metadata.insert(
        "ExpirationTime".to_string(),
        date(message.expiration_time.as_ref()),
    );
    metadata.insert("Id".to_string(), double_encoded(&message.id));
    metadata.insert(
        "InsertionTime".to_string(),
        date(message.insertion_time.as_ref()),
    );
    metadata.insert(
        "NextVisibleTime".to_string(),
        date(message.next_visible_time.as_ref()),
    );
    metadata.insert(
        "PopReceipt".to_string(),
        double_encoded(&message.pop_receipt),
    );
    apply_binding_data(&text, &mut metadata);

    // Keep the message invisible while the function runs: renew at half the visibility.
    let receipt = Arc::new(tokio::sync::Mutex::new(message.pop_receipt.clone()));
    let renewing = {
        let queue = queue.clone();
        let id = message.id.clone();
        let receipt = receipt.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROCESSING_VISIBILITY / 2).await;
                let mut current = receipt.lock().await;
                match queue
                    .update_visibility(&id, &current, PROCESSING_VISIBILITY)
                    .await
                {
                    Ok(updated) => *current = updated.pop_receipt,
                    Err(e) => warn!(error = %e, "renewing the message's visibility failed"),
                }
            }
        })
    };
    let outcome = listener
        .invoker
        .invoke(&listener.function, data, metadata)
        .await;
    renewing.abort();
    let pop_receipt = receipt.lock().await.clone();
    let current = ReceivedMessage {
        pop_receipt,
        ..message
    };
    match outcome {
        Outcome::Succeeded { .. } => {
            if let Err(e) = queue.delete(&current.id, &current.pop_receipt).await {
                if !e.is_message_gone() {
                    error!(error = %e, "deleting the processed message failed");
                }
            }
        }
        Outcome::Failed(_) if current.dequeue_count >= options.max_dequeue_count => {
            to_poison(listener, &current).await;
        }
        Outcome::Failed(_) => {
            if let Err(e) = queue
                .update_visibility(
                    &current.id,
                    &current.pop_receipt,
                    options.visibility_timeout,
                )
                .await
            {
                if !e.is_message_gone() {
                    error!(error = %e, "releasing the failed message failed");
                }
            }
        }
    }
}

async fn to_poison(listener: &QueueListener, message: &ReceivedMessage) {
    let Some(poison) = &listener.poison else {
        // A queue without a poison queue keeps a failed message invisible (no fast loop).
        return;
    };
    warn!(
        "Message has reached MaxDequeueCount of {}. Moving message to queue '{}'.",
        listener.options.max_dequeue_count,
        poison.name()
    );
    let copied = async {
        poison.create_if_missing().await?;
        poison.send_text(&message.text, None).await
    }
    .await;
    match copied {
        Ok(_) => {
            if let Err(e) = listener
                .queue
                .delete(&message.id, &message.pop_receipt)
                .await
            {
                if !e.is_message_gone() {
                    error!(error = %e, "deleting the poisoned message failed");
                }
            }
            info!(queue = %listener.queue.name(), id = %message.id, "message moved to the poison queue");
        }
        Err(e) => error!(error = %e, "copying the message to the poison queue failed"),
    }
}

/// A storage time as the host sends it in Metadata (a DateTimeOffset: ISO 8601, `+00:00`).
fn date(time: Option<&hubspoke_queue::client::OffsetDateTime>) -> Value {
    match time {
        Some(time) => {
            let seconds = time.unix_timestamp();
            match DateTime::<Utc>::from_timestamp(seconds, 0) {
                Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
                None => Value::Null,
            }
        }
        None => Value::Null,
    }
}

/// The poison queue of `queue`: none for a poison queue itself or a name too long for the suffix.
pub fn poison_queue_name(queue: &str) -> Option<String> {
    let name = format!("{queue}-poison");
    (!queue.ends_with("-poison") && name.len() <= 63).then_some(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_to_the_maximum() {
        let max = Duration::from_secs(2);
        let mut delay = MIN_POLL;
        for _ in 0..20 {
            delay = next_delay(delay, max);
            assert!(delay >= MIN_POLL && delay <= max, "{delay:?}");
        }
        assert!(delay > Duration::from_millis(500));
        assert_eq!(
            poison_queue_name("hubspoke-work").unwrap(),
            "hubspoke-work-poison"
        );
        assert_eq!(poison_queue_name("x-poison"), None);
    }
}

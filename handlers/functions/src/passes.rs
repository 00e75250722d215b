//! One reconcile of a hub at a time in this process; requests that arrive meanwhile collapse
//! into one more pass (docs/design.md §3).
//!
//! Per hub there is at most one pass running and one pass pending. A request joins the pending
//! pass if there is one, else it starts a new pending pass, which waits for the running one to
//! end and then runs. So every request is answered by a pass that started after it arrived —
//! which is what a level-triggered reconcile needs: a change made before the request is seen —
//! and a burst of requests costs at most two passes. Passes run as tasks of their own, so a
//! request that goes away (its connection dropped) never cuts a pass short.
//!
//! The pass is given a [`SlotStart`]: whether it had to wait for a running pass (then it may
//! not run a further pass for other instances' work items: its requests already waited for
//! one), and a look at whether a request is pending behind it. Across instances, the hubs'
//! leases ([`crate::lease`]) keep one pass per hub; this saves work within one process.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use hubspoke_core::id::VnetId;
use tokio::sync::watch;
use tracing::Instrument;

/// The hubs' pass slots.
#[derive(Debug, Default)]
pub struct HubPasses {
    slots: Mutex<HashMap<VnetId, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Held while a pass of this hub runs.
    running: tokio::sync::Mutex<()>,
    /// The pass that will run next, as the receiver of its result.
    pending: Mutex<Option<Pending>>,
}

/// A pass's result as its waiters see it: `None` until it ends.
type Pending = watch::Receiver<Option<Arc<PassEnd>>>;

/// How a pass ended, for every request it answered.
#[derive(Debug)]
pub struct PassEnd {
    /// A new id per pass.
    pub id: String,
    /// What the pass returned, or the panic message if it panicked.
    pub result: Result<Arc<dyn std::any::Any + Send + Sync>, String>,
}

/// What a pass is told when it starts.
pub struct SlotStart {
    /// True when the pass waited for another pass of its hub in this process to end.
    pub waited: bool,
    slot: Option<Arc<Slot>>,
}

impl SlotStart {
    /// A pass run outside the slots: it waited for nothing, nobody waits behind it.
    pub fn alone() -> Self {
        Self {
            waited: false,
            slot: None,
        }
    }

    /// Whether a request of this process waits for the next pass of the hub (it will run once
    /// this one ends).
    pub fn pending(&self) -> bool {
        self.slot.as_ref().is_some_and(|slot| {
            slot.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
        })
    }
}

/// What [`HubPasses::run`] gives a request.
pub struct Joined<T> {
    pub pass_id: String,
    /// False for the request that started the pass, true for those that joined it.
    pub shared: bool,
    pub result: Result<Arc<T>, String>,
}

impl HubPasses {
    /// Runs `pass` for `hub`, or joins the pass that will run next. `pass` is only called when
    /// this request starts a new pass, once the pass before it (if any) ended.
    pub async fn run<T, F, Fut>(&self, hub: &VnetId, pass: F) -> Joined<T>
    where
        T: Send + Sync + 'static,
        F: FnOnce(SlotStart) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(hub.clone()).or_default().clone()
        };
        let (mut receiver, shared) = {
            let mut pending = slot.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.as_ref() {
                Some(receiver) => (receiver.clone(), true),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    *pending = Some(receiver.clone());
                    let slot = slot.clone();
                    tokio::spawn(
                        async move {
                            let (_running, waited) = match slot.running.try_lock() {
                                Ok(running) => (running, false),
                                Err(_) => (slot.running.lock().await, true),
                            };
                            // From here on, a new request starts the next pass.
                            slot.pending
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .take();
                            let id = uuid::Uuid::new_v4().to_string();
                            let work = pass(SlotStart {
                                waited,
                                slot: Some(slot.clone()),
                            });
                            let result = match tokio::spawn(work.in_current_span()).await {
                                Ok(value) => {
                                    Ok(Arc::new(value) as Arc<dyn std::any::Any + Send + Sync>)
                                }
                                Err(error) => Err(panic_text(error)),
                            };
                            let _ = sender.send(Some(Arc::new(PassEnd { id, result })));
                        }
                        .in_current_span(),
                    );
                    (receiver, false)
                }
            }
        };
        let ended = match receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        match ended {
            Some(end) => Joined {
                pass_id: end.id.clone(),
                shared,
                result: match &end.result {
                    Ok(value) => value
                        .clone()
                        .downcast::<T>()
                        .map_err(|_| "the pass returned an unexpected type".to_string()),
                    Err(message) => Err(message.clone()),
                },
            },
            None => Joined {
                pass_id: String::new(),
                shared,
                result: Err("the pass ended without a result".into()),
            },
        }
    }
}

/// The message of a panicked task.
fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "the pass was cancelled".into();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the pass panicked".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    fn hub(name: &str) -> VnetId {
        format!(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/{name}"
        )
        .parse()
        .unwrap()
    }

    #[tokio::test]
    async fn requests_during_a_pass_collapse_into_one_more_pass() {
        let passes = Arc::new(HubPasses::default());
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let first_running = Arc::new(Notify::new());
        let hub = hub("h");

        let make = |started: Arc<AtomicUsize>, release: Arc<Notify>, running: Arc<Notify>| {
            move |_: SlotStart| async move {
                let n = started.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    running.notify_one();
                    release.notified().await;
                }
                n
            }
        };
        let first = {
            let (passes, hub) = (passes.clone(), hub.clone());
            let pass = make(started.clone(), release.clone(), first_running.clone());
            tokio::spawn(async move { passes.run(&hub, pass).await })
        };
        first_running.notified().await;
        // Five more requests while the first pass runs: they share one pending pass.
        let mut later = Vec::new();
        for _ in 0..5 {
            let (passes, hub) = (passes.clone(), hub.clone());
            let pass = make(started.clone(), release.clone(), first_running.clone());
            later.push(tokio::spawn(async move { passes.run(&hub, pass).await }));
        }
        // The test runtime is single-threaded and polls spawned tasks in order: one yield lets
        // each of the five register (they join before their first await) before the first pass
        // is released.
        tokio::task::yield_now().await;
        release.notify_one();
        let first = first.await.unwrap();
        assert!(!first.shared);
        assert_eq!(*first.result.unwrap(), 0);
        let mut ids = std::collections::BTreeSet::new();
        for handle in later {
            let joined = handle.await.unwrap();
            assert_eq!(
                *joined.result.unwrap(),
                1,
                "the second pass answers them all"
            );
            ids.insert(joined.pass_id);
        }
        assert_eq!(ids.len(), 1, "one shared pass");
        assert_eq!(started.load(Ordering::SeqCst), 2, "two passes in all");
    }

    #[tokio::test]
    async fn a_pass_knows_whether_it_waited_and_whether_a_request_waits_behind_it() {
        let passes = Arc::new(HubPasses::default());
        let hub = hub("w");
        let release = Arc::new(Notify::new());
        let running = Arc::new(Notify::new());
        let first = {
            let (passes, hub, release, running) = (
                passes.clone(),
                hub.clone(),
                release.clone(),
                running.clone(),
            );
            tokio::spawn(async move {
                passes
                    .run(&hub, move |start: SlotStart| async move {
                        let waited = start.waited;
                        running.notify_one();
                        release.notified().await;
                        (waited, start.pending())
                    })
                    .await
            })
        };
        running.notified().await;
        let second = {
            let (passes, hub) = (passes.clone(), hub.clone());
            tokio::spawn(async move {
                passes
                    .run(&hub, |start: SlotStart| async move {
                        (start.waited, start.pending())
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        release.notify_one();
        let first = first.await.unwrap();
        assert_eq!(
            *first.result.unwrap(),
            (false, true),
            "the first started at once, and a request waited behind it"
        );
        let second = second.await.unwrap();
        assert_eq!(*second.result.unwrap(), (true, false), "the second waited");
        assert!(!SlotStart::alone().pending() && !SlotStart::alone().waited);
    }

    #[tokio::test]
    async fn a_panicking_pass_is_an_error_and_the_next_one_runs() {
        let passes = HubPasses::default();
        let hub = hub("p");
        let joined = passes
            .run(&hub, |_| async {
                if true {
                    panic!("boom");
                }
                1u8
            })
            .await;
        assert_eq!(joined.result.unwrap_err(), "boom");
        let again = passes.run(&hub, |_| async { 2u8 }).await;
        assert_eq!(*again.result.unwrap(), 2);
    }
}

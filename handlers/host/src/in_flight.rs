//! The count of invocations in flight, which every trigger and the front door enter, so that a
//! stop lets them finish before it stops the handler.
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Counts invocations in flight, so that a stop waits for them.
#[derive(Default)]
pub struct InFlight {
    count: Mutex<usize>,
    idle: Notify,
}

/// Held while an invocation runs.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    /// Marks one invocation as running until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        if let Ok(mut count) = self.count.lock() {
            *count += 1;
        }
        InFlightGuard(self.clone())
    }

    /// Invocations running now.
    pub fn count(&self) -> usize {
        self.count.lock().map(|c| *c).unwrap_or(0)
    }

    /// Returns once no invocation runs.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.lock().map(|c| *c == 0).unwrap_or(true) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut count) = self.0.count.lock() {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.0.idle.notify_waiters();
            }
        }
    }
}

//! The scheduler of long-running operations: each completes at its due time, and the events the
//! estate queued (when an operation completes, or at once for a PATCH of tags) are emitted.
use std::sync::Arc;
use std::time::Instant;

use crate::shared::Shared;
use crate::world::World;

/// Completes each operation at its due time and emits its events.
pub(crate) fn schedule(shared: &Arc<Shared>, scheduled: &[(String, Instant)]) {
    for (op_id, due) in scheduled {
        let shared = shared.clone();
        let op_id = op_id.clone();
        let due = *due;
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            complete(&shared, &op_id);
        });
    }
}

/// Completes one operation now (if still in progress) and emits its events.
pub(crate) fn complete(shared: &Shared, op_id: &str) {
    let events = match shared.world.lock() {
        Ok(mut world) => {
            world.complete(op_id);
            std::mem::take(&mut world.outbox)
        }
        Err(_) => Vec::new(),
    };
    for event in &events {
        shared.events.emit(event);
    }
}

/// Emits whatever the world queued synchronously (PATCH).
pub(crate) fn flush_outbox(shared: &Shared, world: &mut World) {
    for event in std::mem::take(&mut world.outbox) {
        shared.events.emit(&event);
    }
}

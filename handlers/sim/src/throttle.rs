//! ARM's request throttling: per-subscription token buckets for reads, writes and deletes
//! (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling,
//! 2024 token-bucket revision: reads 250 at 25/s, writes 200 at 10/s, deletes 200 at 10/s),
//! then the Network RP's own budgets behind it (the same page: 10,000 reads and 1,000 writes per 5
//! minutes), with a time factor so tests can drain and refill buckets quickly. ARM throttles
//! first; a request it admits has taken its ARM token even when the resource provider then
//! throttles it (throttling "happens at two levels", the page says).
use std::collections::HashMap;
use std::time::Instant;

use crate::config::ThrottleSpec;

/// The operation class a request is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OpClass {
    Read,
    Write,
    Delete,
}

impl OpClass {
    pub(crate) fn of_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => OpClass::Read,
            "DELETE" => OpClass::Delete,
            _ => OpClass::Write,
        }
    }

    /// The `x-ms-ratelimit-remaining-subscription-*` header of this class.
    pub(crate) fn header(self) -> &'static str {
        match self {
            OpClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
            OpClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
            OpClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every subscription.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub spec: ThrottleSpec,
    buckets: HashMap<(String, OpClass), Bucket>,
    network: HashMap<(String, &'static str), Bucket>,
}

/// The outcome of taking a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Allowed; this many tokens remain in ARM's bucket.
    Allowed(u64),
    /// Throttled; retry after `retry_after` seconds. `remaining`: ARM's bucket, 0 when ARM
    /// throttled, what it left when the Network RP did.
    Throttled {
        retry_after: u64,
        remaining: u64,
        by_network_rp: bool,
    },
}

impl Throttle {
    pub(crate) fn new(spec: ThrottleSpec) -> Self {
        Self {
            spec,
            buckets: HashMap::new(),
            network: HashMap::new(),
        }
    }

    fn size_and_rate(&self, class: OpClass) -> (f64, f64) {
        let (size, rate) = match class {
            OpClass::Read => self.spec.reads,
            OpClass::Write => self.spec.writes,
            OpClass::Delete => self.spec.deletes,
        };
        (size, rate * self.spec.time_factor.max(f64::MIN_POSITIVE))
    }

    /// Takes one token for `subscription` and `class` at `now`, from ARM's bucket and from the
    /// Network RP's 5-minute budget (both must have one).
    pub(crate) fn take(&mut self, subscription: &str, class: OpClass, now: Instant) -> Verdict {
        let (size, rate) = self.size_and_rate(class);
        if !self.spec.enabled {
            return Verdict::Allowed(size as u64);
        }
        let factor = self.spec.time_factor.max(f64::MIN_POSITIVE);
        let (network_size, network_rate) = match class {
            OpClass::Read => self.spec.network_reads,
            OpClass::Write | OpClass::Delete => self.spec.network_writes,
        };
        let network_rate = network_rate * factor;
        let sub = subscription.to_ascii_lowercase();
        let arm_tokens = refill(self.buckets.entry((sub.clone(), class)), size, rate, now);
        let network_class = if class == OpClass::Read {
            "network-reads"
        } else {
            "network-writes"
        };
        let network_tokens = refill(
            self.network.entry((sub.clone(), network_class)),
            network_size,
            network_rate,
            now,
        );
        // Whole seconds, as ARM sends; compressed time may round down to 0.
        let whole = |wait: f64| {
            let secs = if self.spec.time_factor > 1.0 {
                wait.round()
            } else {
                wait.ceil()
            };
            secs.max(0.0) as u64
        };
        if arm_tokens < 1.0 {
            return Verdict::Throttled {
                retry_after: whole((1.0 - arm_tokens) / rate),
                remaining: 0,
                by_network_rp: false,
            };
        }
        // ARM admits the request: its token is spent, whatever the resource provider says.
        if let Some(bucket) = self.buckets.get_mut(&(sub.clone(), class)) {
            bucket.tokens -= 1.0;
        }
        let remaining = (arm_tokens - 1.0).floor() as u64;
        if network_tokens < 1.0 {
            return Verdict::Throttled {
                retry_after: whole((1.0 - network_tokens) / network_rate),
                remaining,
                by_network_rp: true,
            };
        }
        if let Some(bucket) = self.network.get_mut(&(sub, network_class)) {
            bucket.tokens -= 1.0;
        }
        Verdict::Allowed(remaining)
    }
}

impl Throttle {
    /// The tokens left in `subscription`'s ARM bucket of `class` at `now`, without taking one:
    /// what an answer that was not counted (refused before throttling, or an injected fault)
    /// reports in its `x-ms-ratelimit-remaining-subscription-*` header.
    pub(crate) fn remaining(&mut self, subscription: &str, class: OpClass, now: Instant) -> u64 {
        let (size, rate) = self.size_and_rate(class);
        if !self.spec.enabled {
            return size as u64;
        }
        let sub = subscription.to_ascii_lowercase();
        refill(self.buckets.entry((sub, class)), size, rate, now).floor() as u64
    }
}

/// Refills a bucket (created full) up to `now` and returns its tokens.
fn refill<K>(
    entry: std::collections::hash_map::Entry<'_, K, Bucket>,
    size: f64,
    rate: f64,
    now: Instant,
) -> f64 {
    let bucket = entry.or_insert(Bucket {
        tokens: size,
        at: now,
    });
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(size);
    bucket.at = now;
    bucket.tokens
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_drains_then_refills() {
        let mut throttle = Throttle::new(ThrottleSpec {
            writes: (3.0, 1.0),
            ..ThrottleSpec::default()
        });
        let t0 = Instant::now();
        assert_eq!(throttle.take("s", OpClass::Write, t0), Verdict::Allowed(2));
        assert_eq!(throttle.take("s", OpClass::Write, t0), Verdict::Allowed(1));
        assert_eq!(throttle.take("s", OpClass::Write, t0), Verdict::Allowed(0));
        assert_eq!(
            throttle.take("s", OpClass::Write, t0),
            Verdict::Throttled {
                retry_after: 1,
                remaining: 0,
                by_network_rp: false
            }
        );
        // Another subscription has its own bucket; reads their own.
        assert_eq!(
            throttle.take("other", OpClass::Write, t0),
            Verdict::Allowed(2)
        );
        assert!(matches!(
            throttle.take("s", OpClass::Read, t0),
            Verdict::Allowed(_)
        ));
        assert_eq!(
            throttle.take("s", OpClass::Write, t0 + Duration::from_secs(2)),
            Verdict::Allowed(1)
        );
    }

    #[test]
    fn the_network_rp_budget_applies_on_top() {
        let mut throttle = Throttle::new(ThrottleSpec {
            writes: (100.0, 100.0),
            network_writes: (2.0, 2.0 / 300.0),
            ..ThrottleSpec::default()
        });
        let t0 = Instant::now();
        assert!(matches!(
            throttle.take("s", OpClass::Write, t0),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            throttle.take("s", OpClass::Delete, t0),
            Verdict::Allowed(_)
        ));
        // ARM admits it (its token is spent, 98 left), the Network RP throttles it.
        assert_eq!(
            throttle.take("s", OpClass::Write, t0),
            Verdict::Throttled {
                retry_after: 150,
                remaining: 98,
                by_network_rp: true
            }
        );
    }
}

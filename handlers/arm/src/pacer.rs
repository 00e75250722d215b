//! The pacer: when the client may send its next request to a subscription, so that a reconcile
//! runs at Azure's speed limit and not above it.
//!
//! Azure Resource Manager throttles per subscription, per security principal and per operation
//! type with token buckets (learn.microsoft.com, "Understand how Azure Resource Manager throttles
//! requests", 2024 revision: reads 250 at 25 per second, writes 200 at 10 per second, deletes 200
//! at 10 per second) and reports what is left on every answer in
//! `x-ms-ratelimit-remaining-subscription-reads|writes|deletes`. Resource providers throttle on
//! top of that without a header (the Network RP: 10,000 reads and 1,000 writes per 5 minutes).
//!
//! Per subscription and operation type (a *lane*) the pacer keeps a mirror of Azure's bucket:
//! - Until the lane's first answer, at most [`FIRST_FLIGHT`] requests go out: the published
//!   bucket may not be this subscription's (free and trial subscriptions get smaller ones). The
//!   first admitted answer gives the bucket's size (the largest left reported since, plus one),
//!   so a pass starts as wide as the bucket is. The mirror refills at a rate learned from the
//!   answers (starting at the published rate).
//! - Every answer's header resets it to what Azure said was left, minus the requests sent since
//!   (spent, or about to be). Other passes, other instances and people working in the same
//!   subscription show up there: that is all different processes share.
//! - A request goes out only while the mirror keeps a reserve (a tenth of the bucket by default,
//!   for whoever else works in the subscription), and at most half of what is above the reserve
//!   is ever sent without having heard back, so that instances reading the same header do not
//!   all spend it.
//! - A lane with requests waiting and none in flight has no news but its own belief of the
//!   refill rate, which may be wrong (others' use, a different bucket, compressed time). Rather
//!   than wait for the reserve to refill on that belief, it sends one waiting request as a probe
//!   once it believes a token is back and ten round trips have passed without news (twice as
//!   long after a probe that was throttled, half as long after one that was not): the answer
//!   says what is left.
//! - A 429 pauses the lane for its `Retry-After`. When its header says ARM's bucket is empty, the
//!   mirror believed in a token that was not there: it halves the refill rate it believes (once
//!   per window: requests refused together count once) and waits for the bucket. Otherwise a
//!   budget no header reports ran out (the
//!   resource provider's, such as the Network RP's): the lane's rate is capped at half the rate it
//!   was sending at, halved again by each later 429, grown back by a step with every answer that
//!   is not throttled, and lifted once back at the rate that drew the first 429 (additive
//!   increase, multiplicative decrease).
//!
//! Requests waiting for a lane are served by priority (the caller's: `apply` gives the length of
//! the chain of changes waiting behind a change), then in arrival order.
//!
//! The pacer is not a retry policy (the client still retries what fails), and it does not limit
//! the long-running operations in flight: Azure counts requests, not operations.
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;
use tokio::sync::oneshot;

/// A token bucket as Azure publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSize {
    /// Tokens when full: requests that may be sent at once.
    pub size: u32,
    /// Tokens added per second.
    pub refill_per_second: u32,
}

/// What the pacer assumes before Azure's answers tell it more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingSettings {
    /// The reads bucket of a subscription.
    pub reads: BucketSize,
    /// The writes (PUT, PATCH, POST) bucket of a subscription.
    pub writes: BucketSize,
    /// The deletes bucket of a subscription.
    pub deletes: BucketSize,
    /// Percentage of each bucket never spent, left for whoever else works in the subscription.
    pub reserve_percent: u8,
}

impl Default for PacingSettings {
    /// ARM's published per-subscription buckets (2024 token-bucket revision) and a reserve of
    /// 10 %.
    fn default() -> Self {
        Self {
            reads: BucketSize {
                size: 250,
                refill_per_second: 25,
            },
            writes: BucketSize {
                size: 200,
                refill_per_second: 10,
            },
            deletes: BucketSize {
                size: 200,
                refill_per_second: 10,
            },
            reserve_percent: 10,
        }
    }
}

/// The operation types ARM counts apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    Read,
    Write,
    Delete,
}

impl Class {
    pub(crate) fn of(method: &Method) -> Self {
        if *method == Method::GET || *method == Method::HEAD {
            Class::Read
        } else if *method == Method::DELETE {
            Class::Delete
        } else {
            Class::Write
        }
    }

    /// The header in which Azure reports what is left of this class's bucket.
    fn header(self) -> &'static str {
        match self {
            Class::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Class::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Class::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
}

/// Requests a lane sends before its first answer.
pub(crate) const FIRST_FLIGHT: u32 = 2;

/// A lane: one subscription (lower case; empty for tenant-level requests) and one class.
type LaneKey = (String, Class);

/// Paces every request of a client and of its clones.
pub(crate) struct Pacer {
    settings: PacingSettings,
    lanes: Mutex<HashMap<LaneKey, Lane>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Leave to send one request. Hand it back with [`Permit::answered`]; dropping it means the
/// request got no answer (it may or may not have been counted by Azure).
pub(crate) struct Permit {
    pacer: Arc<Pacer>,
    key: LaneKey,
    /// The lane's sequence number of this request.
    seq: u64,
    /// When it was granted, for the round trip.
    granted: Instant,
    /// Whether the lane still counts this request as unanswered.
    open: bool,
}

impl Pacer {
    pub(crate) fn new(settings: PacingSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            lanes: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until a request of `class` may be sent to `subscription` (`priority`: higher first).
    pub(crate) async fn admit(
        self: &Arc<Self>,
        subscription: &str,
        class: Class,
        priority: u32,
    ) -> Permit {
        let key: LaneKey = (subscription.to_ascii_lowercase(), class);
        loop {
            let (sender, receiver) = oneshot::channel();
            {
                let Ok(mut lanes) = self.lanes.lock() else {
                    // A poisoned pacer (a panic elsewhere) must not stop the client: send unpaced.
                    return self.unpaced(key);
                };
                let settings = self.settings;
                let lane = lanes
                    .entry(key.clone())
                    .or_insert_with(|| Lane::new(&settings, class, Instant::now()));
                lane.enqueue(priority, sender);
                self.dispatch(&key, lane);
            }
            if let Ok(seq) = receiver.await {
                return Permit {
                    pacer: self.clone(),
                    key,
                    seq,
                    granted: Instant::now(),
                    open: true,
                };
            }
            // The lane dropped our place (cannot happen while we wait, but never hang on it).
        }
    }

    fn unpaced(self: &Arc<Self>, key: LaneKey) -> Permit {
        Permit {
            pacer: self.clone(),
            key,
            seq: 0,
            granted: Instant::now(),
            open: false,
        }
    }

    /// Grants what the lane allows now and, if requests still wait, arms a wake-up for when the
    /// lane expects to allow the next one (answers in flight may allow it sooner).
    fn dispatch(self: &Arc<Self>, key: &LaneKey, lane: &mut Lane) {
        let now = Instant::now();
        if let Some(at) = lane.grant(now) {
            let already = lane.wake_at.is_some_and(|armed| armed <= at);
            // A permit dropped as the runtime shuts down has no one left to wake.
            if let (false, Ok(runtime)) = (already, tokio::runtime::Handle::try_current()) {
                lane.wake_at = Some(at);
                let pacer = self.clone();
                let key = key.clone();
                runtime.spawn(async move {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    pacer.wake(&key);
                });
            }
        }
    }

    fn wake(self: &Arc<Self>, key: &LaneKey) {
        let Ok(mut lanes) = self.lanes.lock() else {
            return;
        };
        if let Some(lane) = lanes.get_mut(key) {
            if lane.wake_at.is_some_and(|at| at <= Instant::now()) {
                lane.wake_at = None;
            }
            self.dispatch(key, lane);
        }
    }

    fn settle(self: &Arc<Self>, permit: &mut Permit, answer: Option<Answered<'_>>) {
        if !permit.open {
            return;
        }
        permit.open = false;
        let Ok(mut lanes) = self.lanes.lock() else {
            return;
        };
        if let Some(lane) = lanes.get_mut(&permit.key) {
            let now = Instant::now();
            if answer.is_some() {
                lane.round_trip(now.saturating_duration_since(permit.granted), now);
            }
            lane.settle(permit.seq, permit.key.1, answer, now);
            self.dispatch(&permit.key, lane);
        }
    }
}

/// What an answer tells the pacer.
struct Answered<'a> {
    headers: &'a HeaderMap,
    throttled: bool,
    retry_after: Option<Duration>,
    succeeded: bool,
}

impl Permit {
    /// The request was answered: `throttled` when it was a 429 for rate limiting, `succeeded`
    /// for a 2xx.
    pub(crate) fn answered(
        mut self,
        headers: &HeaderMap,
        succeeded: bool,
        throttled: bool,
        retry_after: Option<Duration>,
    ) {
        let pacer = self.pacer.clone();
        pacer.settle(
            &mut self,
            Some(Answered {
                headers,
                throttled,
                retry_after,
                succeeded,
            }),
        );
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.open {
            let pacer = self.pacer.clone();
            pacer.settle(self, None);
        }
    }
}

/// A request waiting for a lane.
struct Waiter {
    priority: u32,
    order: u64,
    grant: oneshot::Sender<u64>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    /// The greatest is served first: highest priority, then the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.order.cmp(&self.order))
    }
}

/// After a 429 that ARM's header does not explain: a rate the lane may not exceed, whatever the
/// headers say.
#[derive(Debug, Clone, Copy)]
struct RateCap {
    /// Requests per second.
    rate: f64,
    /// The rate that drew the first 429: once the cap is back there, it goes.
    ceiling: f64,
    /// The first request sent under this rate: a 429 to an earlier one says nothing new and does
    /// not lower it again (one decrease per window, as TCP does).
    from_seq: u64,
    /// Added to `rate` per answer that was not throttled.
    step: f64,
    /// Sends allowed now (at most [`CAP_BURST`]).
    tokens: f64,
    at: Instant,
}

/// Sends a capped lane may make at once.
const CAP_BURST: f64 = 2.0;

/// Answers not throttled for the cap to grow back from half to whole: a 429 in every 8 answers
/// holds the rate where it is, so a stray 429 costs little and a budget that keeps throttling is
/// found.
const CAP_RECOVERY_ANSWERS: f64 = 8.0;

/// Grants remembered to measure the rate a lane is sending at.
const RECENT_GRANTS: usize = 16;

/// Round trips a blind lane waits before it probes (see the module).
const PROBE_ROUND_TRIPS: u32 = 10;

/// The longest a blind lane waits before it probes, however slow its answers or however many
/// probes were throttled.
const PROBE_LONGEST: Duration = Duration::from_secs(30);

/// A point from which the refill rate is measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    tokens: f64,
    sent: u64,
}

/// One subscription's bucket of one class, as the pacer believes it to be.
struct Lane {
    /// Tokens when full: the published size, or more if a header said so.
    size: f64,
    /// Tokens never spent.
    reserve: f64,
    reserve_percent: u8,
    /// Tokens added per second: learned from the headers, halved by a 429 that found none.
    refill: f64,
    /// The first request sent after the refill rate was last halved.
    refill_cut_from: u64,
    /// Bounds of `refill` and of a cap's rate, so that a few odd answers cannot stall a lane
    /// or unleash it.
    slowest: f64,
    fastest: f64,
    /// The mirror: tokens believed left, requests sent and not answered already taken off.
    tokens: f64,
    /// When `tokens` was last refilled.
    at: Instant,
    /// Requests granted so far (the next one's sequence number).
    sent: u64,
    /// Granted and not yet answered.
    unanswered: u32,
    /// Whether a request of the lane has been settled (answered, or failed without an answer).
    heard: bool,
    /// Whether an answer has reported the bucket: its size is then learned, not published.
    measured: bool,
    /// When the last grants were made (at most [`RECENT_GRANTS`]).
    recent: VecDeque<Instant>,
    /// No request before this (`Retry-After` of a 429).
    paused_until: Option<Instant>,
    cap: Option<RateCap>,
    sample: Option<Sample>,
    waiters: BinaryHeap<Waiter>,
    arrivals: u64,
    /// When a wake-up is armed for.
    wake_at: Option<Instant>,
    /// The usual round trip of the lane's requests (a moving average).
    round_trip: Duration,
    /// When the lane last had news (an answer), or was created.
    news_at: Instant,
    /// The request sent as a probe, until it is answered.
    probe: Option<u64>,
    /// Probes throttled in a row.
    probes_throttled: u32,
}

impl Lane {
    fn new(settings: &PacingSettings, class: Class, now: Instant) -> Self {
        let bucket = match class {
            Class::Read => settings.reads,
            Class::Write => settings.writes,
            Class::Delete => settings.deletes,
        };
        let size = f64::from(bucket.size.max(1));
        let refill = f64::from(bucket.refill_per_second.max(1));
        Self {
            size,
            reserve: reserve_of(size, settings.reserve_percent),
            refill,
            refill_cut_from: 0,
            // Azure's answers may show a much faster bucket (another cloud, or a simulator with
            // compressed time); a hundredth of the published rate is the slowest believed.
            slowest: refill / 100.0,
            fastest: refill * 10_000.0,
            tokens: size,
            at: now,
            sent: 0,
            unanswered: 0,
            heard: false,
            measured: false,
            recent: VecDeque::with_capacity(RECENT_GRANTS),
            paused_until: None,
            cap: None,
            sample: None,
            waiters: BinaryHeap::new(),
            arrivals: 0,
            wake_at: None,
            // Azure's answers take tens of milliseconds; the first answer measures it.
            round_trip: Duration::from_millis(100),
            news_at: now,
            probe: None,
            probes_throttled: 0,
            reserve_percent: settings.reserve_percent,
        }
    }

    fn enqueue(&mut self, priority: u32, grant: oneshot::Sender<u64>) {
        self.waiters.push(Waiter {
            priority,
            order: self.arrivals,
            grant,
        });
        self.arrivals += 1;
    }

    fn refill_to(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill).min(self.size);
        self.at = now;
        if let Some(cap) = &mut self.cap {
            let elapsed = now.saturating_duration_since(cap.at).as_secs_f64();
            cap.tokens = (cap.tokens + elapsed * cap.rate).min(CAP_BURST);
            cap.at = now;
        }
    }

    /// Grants waiting requests while the lane allows; returns when it expects to allow the next
    /// one if requests still wait.
    fn grant(&mut self, now: Instant) -> Option<Instant> {
        self.refill_to(now);
        loop {
            let head = self.waiters.peek()?;
            if head.grant.is_closed() {
                self.waiters.pop();
                continue;
            }
            if let Some(until) = self.paused_until {
                if until > now {
                    return Some(until);
                }
                self.paused_until = None;
            }
            if !self.heard && self.unanswered >= FIRST_FLIGHT {
                // The first answer wakes the lane.
                return None;
            }
            // Keep the reserve, and never have more than half of what was above it unanswered:
            // after this grant, unanswered + 1 <= (tokens + unanswered - reserve) / 2. The first
            // request only needs one token above the reserve.
            let needed = if self.unanswered == 0 {
                self.reserve + 1.0
            } else {
                self.reserve + 2.0 + f64::from(self.unanswered)
            };
            let mut probing = false;
            if self.tokens < needed {
                let believed = now + seconds((needed - self.tokens) / self.refill);
                if self.unanswered > 0 {
                    // An answer will bring news sooner or later.
                    return Some(believed);
                }
                // Nothing in flight will bring news: probe once the lane believes a token is back
                // (right, the probe goes through; pessimistic, it finds out sooner) and it has
                // been without news for the probe interval.
                let one_token = now + seconds((1.0 - self.tokens).max(0.0) / self.refill);
                let probe_at = (self.news_at + self.probe_interval()).max(one_token);
                if now < probe_at {
                    return Some(believed.min(probe_at));
                }
                probing = true;
            }
            if let Some(cap) = &self.cap {
                if cap.tokens < 1.0 {
                    return Some(now + seconds((1.0 - cap.tokens) / cap.rate));
                }
            }
            let waiter = self.waiters.pop()?;
            if waiter.grant.send(self.sent).is_ok() {
                if probing {
                    self.probe = Some(self.sent);
                }
                self.sent += 1;
                self.tokens -= 1.0;
                self.unanswered += 1;
                if let Some(cap) = &mut self.cap {
                    cap.tokens -= 1.0;
                }
                if self.recent.len() == RECENT_GRANTS {
                    self.recent.pop_front();
                }
                self.recent.push_back(now);
            }
        }
    }

    /// How long a blind lane waits for news before it probes.
    fn probe_interval(&self) -> Duration {
        (self.round_trip * PROBE_ROUND_TRIPS * 2u32.pow(self.probes_throttled.min(12)))
            .min(PROBE_LONGEST)
    }

    /// Takes in the round trip of an answered request.
    fn round_trip(&mut self, took: Duration, now: Instant) {
        self.round_trip = (self.round_trip * 4 + took) / 5;
        self.news_at = now;
    }

    /// Takes in the answer to request `seq` (or its absence).
    fn settle(&mut self, seq: u64, class: Class, answer: Option<Answered<'_>>, now: Instant) {
        self.unanswered = self.unanswered.saturating_sub(1);
        self.heard = true;
        self.refill_to(now);
        if self.probe == Some(seq) {
            self.probe = None;
            // Twice as long after a throttled probe, half as long after one that was not: the
            // interval settles where probes are mostly answered.
            self.probes_throttled = match &answer {
                Some(answer) if answer.throttled => (self.probes_throttled + 1).min(12),
                _ => self.probes_throttled.saturating_sub(1),
            };
        }
        let Some(answer) = answer else {
            return;
        };
        let remaining = answer
            .headers
            .get(class.header())
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|value| value.is_finite() && *value >= 0.0);
        let mut bucket_empty = false;
        if let Some(remaining) = remaining {
            bucket_empty = remaining < 1.0;
            // An admitted request shows the bucket held what it reported left plus the token it
            // took: the first such report replaces the published size, later ones can only raise
            // it. A 429's report says nothing of the size.
            if !answer.throttled && (!self.measured || remaining + 1.0 > self.size) {
                self.size = remaining + 1.0;
                self.reserve = reserve_of(self.size, self.reserve_percent);
                self.measured = true;
            }
            // Requests sent after this one are spent, or about to be.
            let sent_after = self.sent.saturating_sub(seq + 1) as f64;
            let tokens = remaining - sent_after;
            self.learn_refill(now, tokens);
            self.tokens = tokens.min(self.size);
        }
        if answer.throttled {
            if let Some(retry_after) = answer.retry_after.filter(|d| !d.is_zero()) {
                let until = now + retry_after;
                self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
            }
            self.sample = None;
            // An empty bucket is the mirror's business: it believed in a token that was not there,
            // so the bucket refills slower than it thought (or others spend it); the samples
            // raise the rate again. Otherwise a budget the header does not report ran out: cap
            // the rate.
            // Once per window: a 429 to a request sent before the last cut says nothing new (many
            // in flight are refused together).
            let news = self.cap.is_none_or(|cap| seq >= cap.from_seq);
            if bucket_empty && seq >= self.refill_cut_from {
                self.refill = (self.refill / 2.0).max(self.slowest);
                self.refill_cut_from = self.sent;
            }
            if !bucket_empty && news {
                let sending = self.sending_rate().max(self.refill);
                let (base, ceiling) = match self.cap {
                    Some(cap) => (cap.rate, cap.ceiling),
                    None => (sending, sending),
                };
                let rate = (base / 2.0).clamp(self.slowest, self.fastest);
                self.cap = Some(RateCap {
                    rate,
                    ceiling,
                    from_seq: self.sent,
                    step: rate / CAP_RECOVERY_ANSWERS,
                    tokens: 0.0,
                    at: now,
                });
            }
        } else if answer.succeeded {
            if let Some(cap) = &mut self.cap {
                cap.rate += cap.step;
                // (Sums of steps land on the ceiling give or take a rounding.)
                if cap.rate >= cap.ceiling * (1.0 - 1e-9) {
                    self.cap = None;
                }
            }
        }
    }

    /// Requests per second granted lately (0 without two grants to measure from).
    fn sending_rate(&self) -> f64 {
        match (self.recent.front(), self.recent.back()) {
            (Some(first), Some(last)) if self.recent.len() >= 2 => {
                let span = last.saturating_duration_since(*first).as_secs_f64();
                (self.recent.len() - 1) as f64 / span.max(0.001)
            }
            _ => 0.0,
        }
    }

    /// Learns the refill rate from two answers far enough apart: what the bucket gained plus
    /// what was sent meanwhile, per second. Others' use lowers it, which is what is left to us.
    fn learn_refill(&mut self, now: Instant, tokens: f64) {
        if tokens >= self.size - 1.0 {
            // A full bucket says nothing of its refill rate.
            self.sample = None;
            return;
        }
        let Some(sample) = self.sample else {
            self.sample = Some(Sample {
                at: now,
                tokens,
                sent: self.sent,
            });
            return;
        };
        let elapsed = now.saturating_duration_since(sample.at).as_secs_f64();
        // Long enough for about ten tokens at the rate believed, so that whole-number headers and
        // answers arriving out of order do not make noise.
        if elapsed * self.refill < 10.0 {
            return;
        }
        let gained = tokens - sample.tokens + self.sent.saturating_sub(sample.sent) as f64;
        // One measure moves the belief at most fourfold either way.
        let measured = (gained / elapsed).clamp(self.refill / 4.0, self.refill * 4.0);
        self.refill = (0.5 * self.refill + 0.5 * measured).clamp(self.slowest, self.fastest);
        self.sample = Some(Sample {
            at: now,
            tokens,
            sent: self.sent,
        });
    }
}

fn reserve_of(size: f64, percent: u8) -> f64 {
    (size * f64::from(percent.min(100)) / 100.0)
        .min(size - 1.0)
        .max(0.0)
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 3600.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn small() -> PacingSettings {
        PacingSettings {
            writes: BucketSize {
                size: 10,
                refill_per_second: 1,
            },
            ..PacingSettings::default()
        }
    }

    fn remaining(value: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            Class::Write.header(),
            HeaderValue::from_str(&value.to_string()).unwrap(),
        );
        headers
    }

    /// Requests granted at once from a fresh lane, nothing answered.
    fn granted_at_once(lane: &mut Lane, now: Instant, asked: usize) -> Vec<oneshot::Receiver<u64>> {
        let receivers: Vec<_> = (0..asked)
            .map(|_| {
                let (sender, receiver) = oneshot::channel();
                lane.enqueue(0, sender);
                receiver
            })
            .collect();
        lane.grant(now);
        receivers
    }

    #[test]
    fn a_fresh_lane_asks_first_then_starts_as_wide_as_the_bucket_keeping_a_reserve() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        // Before any answer, two requests go out.
        let mut receivers = granted_at_once(&mut lane, now, 12);
        let count = |receivers: &mut Vec<oneshot::Receiver<u64>>| {
            receivers
                .iter_mut()
                .filter_map(|r| r.try_recv().ok())
                .count()
        };
        assert_eq!(count(&mut receivers), 2);
        // The first answer reports 19 left: a bucket of 20 (not the 10 published), reserve 2.
        // The mirror believes 19 minus the one sent after it, and at most half of the 17 above
        // the reserve go unanswered: 7 more.
        lane.settle(0, Class::Write, Some(answer(&remaining(19), false)), now);
        assert_eq!((lane.size, lane.reserve, lane.tokens), (20.0, 2.0, 18.0));
        lane.grant(now);
        assert_eq!(count(&mut receivers), 7);
        assert_eq!(lane.unanswered, 8);
        // An answer saying 5 are left (another user spent some): the mirror believes 5 minus the
        // 7 sent after it, and nothing goes until the bucket refills.
        lane.settle(1, Class::Write, Some(answer(&remaining(5), false)), now);
        assert_eq!(lane.tokens, -2.0);
        assert!(lane.grant(now).is_some());
        assert_eq!(count(&mut receivers), 0);
    }

    fn answer(headers: &HeaderMap, throttled: bool) -> Answered<'_> {
        Answered {
            headers,
            throttled,
            retry_after: None,
            succeeded: !throttled,
        }
    }

    #[test]
    fn an_empty_bucket_waits_for_its_refill() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        let _receivers = granted_at_once(&mut lane, now, 1);
        lane.settle(0, Class::Write, Some(answer(&remaining(0), true)), now);
        // ARM's header explains the 429: no cap. The mirror believed in a token that was not
        // there, so it halves the refill rate it believes (1 per second published): the reserve
        // and one more are 4 s away. With nothing in flight to bring news, it probes sooner,
        // once it believes one token is back: 2 s.
        assert!(lane.cap.is_none());
        assert_eq!((lane.tokens, lane.refill), (0.0, 0.5));
        let (sender, mut receiver) = oneshot::channel();
        lane.enqueue(0, sender);
        let wake = lane.grant(now).unwrap();
        assert!(receiver.try_recv().is_err());
        assert_eq!(wake, now + Duration::from_secs(2));
        // With a request in flight, news will come: it keeps to its belief (the reserve, one
        // more, and room for the one unanswered: 4 tokens, 8 s).
        lane.unanswered = 1;
        assert_eq!(lane.grant(now), Some(now + Duration::from_secs(8)));
    }

    #[test]
    fn a_budget_no_header_reports_caps_the_rate_until_answers_grow_it_back() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        lane.heard = true;
        // Four requests sent over 99 ms (about 30 per second), the first throttled while ARM's
        // bucket still had tokens: a hidden budget.
        let mut receivers = Vec::new();
        for at in [0u64, 33, 66, 99] {
            let (sender, receiver) = oneshot::channel();
            lane.enqueue(0, sender);
            lane.grant(now + Duration::from_millis(at));
            receivers.push(receiver);
        }
        assert_eq!(lane.sent, 4);
        let later = now + Duration::from_millis(99);
        lane.settle(0, Class::Write, Some(answer(&remaining(6), true)), later);
        let cap = lane.cap.unwrap();
        assert!((cap.rate - 15.15).abs() < 0.1, "{cap:?}");
        // A 429 to a request sent before the cap says nothing new.
        lane.settle(1, Class::Write, Some(answer(&remaining(6), true)), later);
        assert_eq!(lane.cap.unwrap().rate, cap.rate);
        // Answers that are not throttled grow it back to where it was, then it goes.
        for _ in 0..CAP_RECOVERY_ANSWERS as usize {
            lane.unanswered += 1;
            lane.settle(
                lane.sent,
                Class::Write,
                Some(answer(&remaining(9), false)),
                later,
            );
        }
        assert!(lane.cap.is_none());
    }

    #[test]
    fn a_lane_without_news_probes_rather_than_trust_its_belief() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        lane.heard = true;
        // Spent down to the reserve less 0.9, believing 1 token per second: 1.9 s to the next
        // grant, but a probe goes once a token is believed back (0.9 s), ten round trips of
        // 10 ms having passed without news.
        lane.tokens = 0.1;
        lane.round_trip = Duration::from_millis(10);
        let mut receivers = granted_at_once(&mut lane, now, 3);
        let wake = lane.grant(now).unwrap();
        assert_eq!(wake, now + Duration::from_millis(900));
        let later = now + Duration::from_millis(900);
        lane.grant(later);
        let granted: Vec<u64> = receivers
            .iter_mut()
            .filter_map(|r| r.try_recv().ok())
            .collect();
        assert_eq!(granted, [0], "one probe");
        assert_eq!(lane.probe, Some(0));
        // Throttled: the next probe waits twice as long, answered: half as long again.
        lane.settle(0, Class::Write, Some(answer(&remaining(0), true)), later);
        assert_eq!(lane.probe_interval(), Duration::from_millis(200));
        lane.probe = Some(1);
        lane.unanswered = 1;
        lane.settle(1, Class::Write, Some(answer(&remaining(3), false)), later);
        assert_eq!(lane.probe_interval(), Duration::from_millis(100));
    }

    #[test]
    fn the_refill_rate_is_learned_from_the_headers() {
        let start = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, start);
        // A bucket of 10, known from earlier answers.
        lane.measured = true;
        lane.tokens = 0.0;
        lane.settle(0, Class::Write, Some(answer(&remaining(1), false)), start);
        // 20 s later the bucket shows 5 more, and 15 were sent meanwhile: 1 per second.
        lane.sent += 15;
        let later = start + Duration::from_secs(20);
        lane.settle(
            lane.sent - 1,
            Class::Write,
            Some(answer(&remaining(6), false)),
            later,
        );
        assert!((lane.refill - 1.0).abs() < 1e-9, "{}", lane.refill);
        // Others' use shows as a slower refill: what is left to us.
        let much_later = later + Duration::from_secs(10);
        lane.settle(
            lane.sent - 1,
            Class::Write,
            Some(answer(&remaining(8), false)),
            much_later,
        );
        assert!(lane.refill < 1.0);
    }

    #[test]
    fn waiters_are_served_by_priority_then_in_order() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        lane.tokens = 0.0;
        let mut receivers: Vec<(u32, oneshot::Receiver<u64>)> = [0u32, 3, 1, 3]
            .into_iter()
            .map(|priority| {
                let (sender, receiver) = oneshot::channel();
                lane.enqueue(priority, sender);
                (priority, receiver)
            })
            .collect();
        assert!(lane.grant(now).is_some());
        // Room for two (reserve 1, half of the rest unanswered): the two of priority 3, the
        // first first.
        lane.tokens = 5.0;
        lane.grant(now);
        let order: Vec<(u32, u64)> = receivers
            .iter_mut()
            .filter_map(|(priority, r)| r.try_recv().ok().map(|seq| (*priority, seq)))
            .collect();
        assert_eq!(order, [(3, 0), (3, 1)]);
    }

    #[test]
    fn the_bucket_size_is_learned_from_the_answers() {
        let now = Instant::now();
        let mut lane = Lane::new(&small(), Class::Write, now);
        let _receivers = granted_at_once(&mut lane, now, 1);
        // Smaller than published (a trial subscription), then seen larger.
        lane.settle(0, Class::Write, Some(answer(&remaining(4), false)), now);
        assert_eq!(lane.size, 5.0);
        lane.unanswered += 1;
        lane.settle(0, Class::Write, Some(answer(&remaining(99), false)), now);
        assert_eq!((lane.size, lane.reserve, lane.tokens), (100.0, 10.0, 99.0));
        // A lower report later is spending, not a smaller bucket.
        lane.unanswered += 1;
        lane.settle(0, Class::Write, Some(answer(&remaining(50), false)), now);
        assert_eq!(lane.size, 100.0);
    }
}

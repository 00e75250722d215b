//! The retry policy of one ARM request (docs/design.md section 6), as [`Retries`]: the account a
//! request keeps against the bounds of its [`RetryPolicy`], and the rule that says, after each
//! unsuccessful send, whether and when it is sent again.
//!
//! - Which failures are retried: [`classify`] alone decides. Retried are 429 (throttling, and
//!   `RetryableErrorDueToAnotherOperation` lock conflicts), 409 `AnotherOperationInProgress`,
//!   400 `ReferencedResourceNotProvisioned`, 408, 5xx, connection and timeout errors and a dropped
//!   connection; and a PUT or DELETE whose operation ended `Canceled` (superseded) or `Failed`
//!   with a code `classify` finds transient (Azure failed, not the request: `InternalServerError`,
//!   `RetryableError`, ...), which is sent again. Everything else is final at once: refusals (401,
//!   403, 409 `ScopeLocked`) are never retried.
//! - The attempt budget: one request is sent at most `max_attempts` times, and waits at most
//!   `budget` in total between its sends; then it fails [`ErrorKind::Exhausted`] (or `Transport`
//!   when the last failure had no answer).
//! - The backoff: the delay before retry *n* is a random duration in
//!   `0..=min(max_delay, base_delay * 2^(n-1))` (full jitter), never shorter than the answer's
//!   `Retry-After`. The bounds are settings, so tests make them zero.
//! - A 429 for rate limiting is pacing, not failure: the request waits for the client's pacer
//!   (which honours `Retry-After`) and is sent again without spending an attempt; the wait counts
//!   against `budget`, and a `Retry-After` that alone would pass it fails at once.
//! - An operation sent again (after `Canceled`, or `Failed` with a transient code) is a retry of
//!   the request that started it: the PUT or DELETE and its re-issues share one [`Retries`].
use std::time::{Duration, Instant};

use crate::error::{classify, Disposition, ErrorKind, Reported};
use crate::settings::RetryPolicy;

/// One request's retries so far, against its policy's bounds. A PUT or DELETE and the re-issues
/// of its operation share one.
#[derive(Debug)]
pub(crate) struct Retries {
    policy: RetryPolicy,
    /// Sends that count against `max_attempts` (not those after a throttled answer).
    attempts: u32,
    /// Time spent waiting to send again, against `budget`.
    waited: Duration,
    /// Set by a throttled answer: when it came. The wait for the pacer is measured from here.
    throttled_since: Option<Instant>,
}

/// What to do after a send that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send again after this delay: the next attempt.
    SendAfter(Duration),
    /// Throttled: send again once the pacer admits the request, without spending an attempt.
    SendWhenPaced,
    /// Throttled, and the answer's `Retry-After` alone would pass the budget: fail `Exhausted`.
    ThrottledPastBudget,
    /// Give up: the request fails with this kind.
    Stop(ErrorKind),
}

impl Next {
    /// Whether the answer was rate limiting (a 429 that is not a lock conflict).
    pub(crate) fn is_throttling(self) -> bool {
        matches!(self, Next::SendWhenPaced | Next::ThrottledPastBudget)
    }
}

/// How a long-running operation ended without effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// `Canceled`: superseded by another operation.
    Canceled,
    /// `Failed`, with an error code.
    Failed,
}

impl Unfinished {
    /// The operation's end as the logs spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unfinished::Canceled => "canceled",
            Unfinished::Failed => "failed",
        }
    }
}

impl Retries {
    /// A request not sent yet, under `policy`.
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            attempts: 0,
            waited: Duration::ZERO,
            throttled_since: None,
        }
    }

    /// The sends counted so far (the one under way included).
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Before each send: spends an attempt, unless the request is sent again after throttling.
    /// True when this send is a retry.
    pub(crate) fn begin_send(&mut self) -> bool {
        if self.throttled_since.is_none() {
            self.attempts += 1;
        }
        self.attempts > 1 || self.throttled_since.is_some()
    }

    /// Once the pacer admitted the request: the wait since a throttled answer counts against the
    /// budget. False when it ran the budget out.
    pub(crate) fn after_pacing(&mut self) -> bool {
        match self.throttled_since.take() {
            Some(since) => {
                self.waited += since.elapsed();
                self.waited <= self.policy.budget
            }
            None => true,
        }
    }

    /// After an answer that is not a success.
    pub(crate) fn after_answer(
        &mut self,
        status: u16,
        code: &str,
        retry_after: Option<Duration>,
    ) -> Next {
        match classify(Reported::Answer(status), code) {
            Disposition::Stop(kind) => Next::Stop(kind),
            Disposition::Retry { throttled: true } => {
                if self.waited + retry_after.unwrap_or_default() > self.policy.budget {
                    return Next::ThrottledPastBudget;
                }
                self.throttled_since = Some(Instant::now());
                Next::SendWhenPaced
            }
            Disposition::Retry { throttled: false } => self.retry(retry_after),
        }
    }

    /// After a send that had no answer (connection, TLS or timeout error): the delay before the
    /// next attempt, or `None` when the retries are spent (the request fails `Transport`).
    pub(crate) fn after_no_answer(&mut self) -> Option<Duration> {
        self.next_delay(None)
    }

    /// After the operation a PUT or DELETE started ended without effect (with error `code` when
    /// it `Failed`): the request is sent again, as a retry, when the operation was `Canceled` or
    /// failed transiently. The delay before that, or the kind the request fails with.
    pub(crate) fn after_operation(
        &mut self,
        ended: Unfinished,
        code: &str,
    ) -> Result<Duration, ErrorKind> {
        if ended == Unfinished::Failed {
            if let Disposition::Stop(kind) = classify(Reported::Operation, code) {
                return Err(kind);
            }
        }
        self.next_delay(None).ok_or(ErrorKind::Exhausted)
    }

    /// The next attempt after its backoff, or `Exhausted` when the attempts or the budget are
    /// spent. Records the wait.
    fn retry(&mut self, retry_after: Option<Duration>) -> Next {
        match self.next_delay(retry_after) {
            Some(delay) => Next::SendAfter(delay),
            None => Next::Stop(ErrorKind::Exhausted),
        }
    }

    /// The delay before the next attempt, or `None` when the attempts or the budget are spent.
    fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let delay = backoff(&self.policy, self.attempts, retry_after);
        if self.waited + delay > self.policy.budget {
            return None;
        }
        self.waited += delay;
        Some(delay)
    }
}

/// Full jitter over a capped exponential ceiling, at least `retry_after`. `retry` counts from 1.
fn backoff(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = retry.saturating_sub(1).min(30);
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32 << doublings)
        .min(policy.max_delay);
    let jitter = Duration::from_secs_f64(ceiling.as_secs_f64() * rand::random::<f64>());
    jitter.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            budget: Duration::from_secs(10),
        };
        for retry in 1..10 {
            let delay = backoff(&policy, retry, None);
            let ceiling = Duration::from_millis(100 * (1 << (retry - 1).min(2)));
            assert!(delay <= ceiling, "retry {retry}: {delay:?} > {ceiling:?}");
        }
        let honoured = backoff(&policy, 1, Some(Duration::from_secs(3)));
        assert!(honoured >= Duration::from_secs(3));
    }

    #[test]
    fn attempts_and_budget_bound_the_retries() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            budget: Duration::from_secs(1),
        };
        let mut state = Retries {
            attempts: 1,
            ..Retries::new(policy)
        };
        assert!(state.next_delay(None).is_some());
        state.attempts = 3;
        assert!(state.next_delay(None).is_none());
        let mut state = Retries {
            attempts: 1,
            ..Retries::new(policy)
        };
        assert!(state.next_delay(Some(Duration::from_secs(2))).is_none());
    }
}

//! Reconnect and retry delays, sans-IO.
//!
//! A [`BackoffPolicy`] says how long to wait before each retry: a [`Schedule`] of base
//! delays (exponential, fixed, Fibonacci or a fixed table), an optional cap, a [`Jitter`],
//! and limits (attempt count, total time, the longest `Retry-After` worth waiting for).
//! [`BackoffPolicy::start`] gives a [`Backoff`], the running state of one retry sequence;
//! it takes the current time as an argument and never sleeps, so tests drive it with
//! made-up instants and a seed.
//!
//! The vendor constructors ([`BackoffPolicy::genesys_web_messaging`],
//! [`BackoffPolicy::tetherfi_poll`], …) encode the policies documented in
//! `shared/protocols/<vendor>.md`; each names its section.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cc_transport::BackoffPolicy;
//!
//! let mut backoff = BackoffPolicy::tetherfi_poll().start_seeded(7);
//! let now = Instant::now();
//! assert_eq!(backoff.next_delay(now), Some(Duration::from_secs(3)));
//! assert_eq!(backoff.next_delay(now), Some(Duration::from_secs(3)));
//! ```

use std::borrow::Cow;
use std::time::{Duration, Instant};

/// How the base delay of retry `n` (0 for the first retry) is computed.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `initial * factor^n`.
    Exponential {
        /// The first delay.
        initial: Duration,
        /// The growth factor (2.0 doubles).
        factor: f64,
    },
    /// The same delay every time.
    Fixed(Duration),
    /// `unit * fib(n)` with fib = 1, 1, 2, 3, 5, 8, …
    Fibonacci {
        /// The delay of the first two retries.
        unit: Duration,
    },
    /// Entries of a table, read from index `start + n`; past the end the last entry repeats.
    Table {
        /// The delays.
        steps: Cow<'static, [Duration]>,
        /// The index of the first retry (some vendor engines skip entry 0).
        start: usize,
    },
}

/// Randomization added to the base delay `d` (after the cap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// Uniform in `[0, d]` ("full jitter").
    Full,
    /// Uniform in `[d/2, d]` ("equal jitter").
    Equal,
    /// `d` plus uniform in `[0, max)`.
    Additive(Duration),
    /// `d * (1 ± r)` with `r` uniform in `[0, factor]` (socket.io's `randomizationFactor`).
    Proportional(f64),
}

/// A retry policy: schedule, cap, jitter and limits. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// The base delays.
    pub schedule: Schedule,
    /// The longest delay ever returned (applied to the base delay and again after jitter).
    pub cap: Option<Duration>,
    /// The randomization.
    pub jitter: Jitter,
    /// The most retries before giving up; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// Give up once this much time has passed since the first failure of a sequence.
    pub max_elapsed: Option<Duration>,
    /// Give up instead of waiting when the server asks for a longer `Retry-After` than this.
    pub max_retry_after: Option<Duration>,
}

impl Default for BackoffPolicy {
    /// The default when a vendor documents nothing: exponential from 1 s, doubling, capped
    /// at 30 s, full jitter, unlimited attempts.
    fn default() -> Self {
        BackoffPolicy::exponential(Duration::from_secs(1), Duration::from_secs(30))
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Tetherfi's DWR engine retry table, in seconds (`shared/protocols/tetherfi.md` §2.6).
pub const TETHERFI_RETRY_TABLE: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(3),
];

impl BackoffPolicy {
    /// Exponential from `initial`, doubling, capped at `cap`, full jitter, unlimited.
    pub fn exponential(initial: Duration, cap: Duration) -> Self {
        BackoffPolicy {
            schedule: Schedule::Exponential {
                initial,
                factor: 2.0,
            },
            cap: Some(cap),
            jitter: Jitter::Full,
            max_attempts: None,
            max_elapsed: None,
            max_retry_after: None,
        }
    }

    /// The same `delay` every time, no jitter, unlimited.
    pub fn fixed(delay: Duration) -> Self {
        BackoffPolicy {
            schedule: Schedule::Fixed(delay),
            cap: None,
            jitter: Jitter::None,
            max_attempts: None,
            max_elapsed: None,
            max_retry_after: None,
        }
    }

    /// Fibonacci multiples of `unit` (1, 1, 2, 3, 5, …), no cap, no jitter, unlimited.
    pub fn fibonacci(unit: Duration) -> Self {
        BackoffPolicy {
            schedule: Schedule::Fibonacci { unit },
            ..BackoffPolicy::fixed(unit)
        }
    }

    /// The entries of `steps` in order, then the last one again; no jitter, unlimited.
    pub fn table(steps: impl Into<Cow<'static, [Duration]>>) -> Self {
        BackoffPolicy {
            schedule: Schedule::Table {
                steps: steps.into(),
                start: 0,
            },
            ..BackoffPolicy::fixed(Duration::ZERO)
        }
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the cap.
    pub fn with_cap(mut self, cap: Option<Duration>) -> Self {
        self.cap = cap;
        self
    }

    /// Sets the attempt limit (`None` = unlimited).
    pub fn with_max_attempts(mut self, max: Option<u32>) -> Self {
        self.max_attempts = max;
        self
    }

    /// Sets the total-time limit.
    pub fn with_max_elapsed(mut self, max: Option<Duration>) -> Self {
        self.max_elapsed = max;
        self
    }

    /// Sets the longest `Retry-After` worth waiting for.
    pub fn with_max_retry_after(mut self, max: Option<Duration>) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Genesys Web Messaging WebSocket: a new socket every 5 s for up to 5 minutes
    /// (`shared/protocols/genesys.md` §3B step 6 and §4B "Client-side politeness": "reconnect
    /// every 5 s for up to 5 min"). No jitter, as in the official transport.
    pub fn genesys_web_messaging() -> Self {
        BackoffPolicy::fixed(secs(5)).with_max_elapsed(Some(secs(300)))
    }

    /// Genesys REST (history and other guest calls): retry after the server's `Retry-After`,
    /// 3 s when it gives none, and give up when it asks for more than 3 minutes
    /// (`shared/protocols/genesys.md` §4B "REST history", the platform SDK's `ApiClient.Retry`).
    pub fn genesys_rest() -> Self {
        BackoffPolicy::fixed(secs(3)).with_max_retry_after(Some(secs(180)))
    }

    /// Genesys guest chat v2 event stream. The note documents no reconnect schedule (§3A step 8
    /// only says to reopen the same `eventStreamUri` while the JWT is valid), so this is the
    /// crate default: exponential 1 s → 30 s, full jitter, unlimited.
    pub fn genesys_guest_chat() -> Self {
        BackoffPolicy::default()
    }

    /// Avaya AXP event-stream long poll: Fibonacci 1, 1, 2, 3, 5, 8 … s plus a random 0–1 s,
    /// no cap, until `reconnection_timeout` has passed since the failure
    /// (`shared/protocols/avaya.md` §2.8 "long-poll back-off" and §3.6 "Retry state"; the
    /// adapter's default `reconnection_timeout` is 120 s, §2.8 PROPOSED).
    pub fn avaya_event_stream(reconnection_timeout: Duration) -> Self {
        BackoffPolicy::fibonacci(secs(1))
            .with_jitter(Jitter::Additive(secs(1)))
            .with_max_elapsed(Some(reconnection_timeout))
    }

    /// Tetherfi DWR reverse-AJAX polling: the engine's table `[1, 3, 3]` s read from index 1
    /// (its retry counter starts at 1, so every wait is 3 s), at most 100 retries
    /// (`shared/protocols/tetherfi.md` §2.6 "Poll retry intervals" and "Give-up", §4.1).
    pub fn tetherfi_poll() -> Self {
        BackoffPolicy {
            schedule: Schedule::Table {
                steps: Cow::Borrowed(&TETHERFI_RETRY_TABLE),
                start: 1,
            },
            ..BackoffPolicy::fixed(Duration::ZERO)
        }
        .with_max_attempts(Some(100))
    }

    /// Tetherfi WebSocket chat proxy (`tetherfi.md` §3.7): the note gives no reconnect policy
    /// for it, so this reuses the DWR engine's schedule ([`BackoffPolicy::tetherfi_poll`]).
    pub fn tetherfi_ws_proxy() -> Self {
        BackoffPolicy::tetherfi_poll()
    }

    /// TVox widget connection: every 10 s forever (`shared/protocols/tvox.md` §2.1
    /// `retryOptions`, "never stop, retry every 10 s", and §3.3 step 3, PROPOSED
    /// `{intervalMs: 10000, maxRetries: null}`).
    pub fn tvox() -> Self {
        BackoffPolicy::fixed(secs(10))
    }

    /// Expertflow Socket.IO chat: the socket.io client defaults, unlimited attempts, 1 s
    /// doubling to 5 s with ±50 % randomization (`shared/protocols/expertflow.md` §2.2
    /// "Reconnection": "unlimited attempts, 1 s→5 s back-off with jitter"; the factor 2 and
    /// randomization 0.5 are socket.io's `reconnectionDelay`/`randomizationFactor` defaults).
    pub fn expertflow_socketio() -> Self {
        BackoffPolicy::exponential(secs(1), secs(5)).with_jitter(Jitter::Proportional(0.5))
    }

    /// Expertflow SIP over WebSocket: up to 10 reconnects 5 s apart
    /// (`shared/protocols/expertflow.md` §5.1 step 12 "Transport loss").
    pub fn expertflow_sip() -> Self {
        BackoffPolicy::fixed(secs(5)).with_max_attempts(Some(10))
    }

    /// Starts a retry sequence with a random seed.
    pub fn start(&self) -> Backoff {
        self.start_seeded(fastrand::u64(..))
    }

    /// Starts a retry sequence whose jitter is deterministic for `seed`.
    pub fn start_seeded(&self, seed: u64) -> Backoff {
        Backoff {
            policy: self.clone(),
            attempt: 0,
            started: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The base delay (schedule and cap, no jitter) of retry `n` (0 = first retry).
    pub fn base_delay(&self, n: u32) -> Duration {
        let base = match &self.schedule {
            Schedule::Exponential { initial, factor } => {
                let mult = factor.max(1.0).powi(n.min(1024) as i32);
                let secs = initial.as_secs_f64() * mult;
                // Saturate instead of panicking on overflow.
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
            }
            Schedule::Fixed(d) => *d,
            Schedule::Fibonacci { unit } => {
                let (mut a, mut b) = (1u64, 1u64);
                for _ in 0..n {
                    (a, b) = (b, a.saturating_add(b));
                }
                unit.saturating_mul(u32::try_from(a).unwrap_or(u32::MAX))
            }
            Schedule::Table { steps, start } => {
                let idx = start.saturating_add(n as usize);
                steps
                    .get(idx)
                    .or_else(|| steps.last())
                    .copied()
                    .unwrap_or_default()
            }
        };
        match self.cap {
            Some(cap) => base.min(cap),
            None => base,
        }
    }
}

/// The running state of one retry sequence of a [`BackoffPolicy`]. Sans-IO: pass the time in.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    started: Option<Instant>,
    rng: fastrand::Rng,
}

impl Backoff {
    /// The policy this sequence follows.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// How many delays were handed out since the start or the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets the sequence (call it after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.started = None;
    }

    /// The delay before the next retry, or `None` when the policy says to give up.
    /// `now` is the time of the failure; the first call starts the elapsed-time clock.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        self.next_delay_with(now, None)
    }

    /// Like [`Backoff::next_delay`], but a server's `Retry-After` replaces the computed delay
    /// (unless it exceeds [`BackoffPolicy::max_retry_after`], which means give up).
    pub fn next_delay_with(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let started = *self.started.get_or_insert(now);
        if let Some(max) = self.policy.max_attempts
            && self.attempt >= max
        {
            return None;
        }
        let delay = match retry_after {
            Some(wait) => {
                if self.policy.max_retry_after.is_some_and(|max| wait > max) {
                    return None;
                }
                wait
            }
            None => self.jittered(self.policy.base_delay(self.attempt)),
        };
        if let Some(max) = self.policy.max_elapsed {
            let elapsed = now.saturating_duration_since(started);
            // The retry itself must start within the window.
            if elapsed.saturating_add(delay) > max {
                return None;
            }
        }
        self.attempt += 1;
        Some(delay)
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let d = match self.policy.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(self.rng.f64()),
            Jitter::Equal => base / 2 + (base / 2).mul_f64(self.rng.f64()),
            Jitter::Additive(max) => base.saturating_add(max.mul_f64(self.rng.f64())),
            Jitter::Proportional(factor) => {
                let dev = base.mul_f64(self.rng.f64() * factor.clamp(0.0, 1.0));
                if self.rng.bool() {
                    base.saturating_add(dev)
                } else {
                    base.saturating_sub(dev)
                }
            }
        };
        match self.policy.cap {
            Some(cap) => d.min(cap),
            None => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(policy: &BackoffPolicy, n: usize, seed: u64) -> Vec<Option<Duration>> {
        let mut b = policy.start_seeded(seed);
        let now = Instant::now();
        (0..n).map(|_| b.next_delay(now)).collect()
    }

    fn some_secs(v: &[u64]) -> Vec<Option<Duration>> {
        v.iter().map(|s| Some(secs(*s))).collect()
    }

    #[test]
    fn exponential_base_doubles_and_caps() {
        let p = BackoffPolicy::exponential(secs(1), secs(30)).with_jitter(Jitter::None);
        assert_eq!(delays(&p, 7, 1), some_secs(&[1, 2, 4, 8, 16, 30, 30]));
        // Huge attempt numbers saturate instead of panicking.
        assert_eq!(p.base_delay(u32::MAX), secs(30));
        let uncapped = p.with_cap(None);
        assert_eq!(uncapped.base_delay(5000), Duration::MAX);
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_is_seeded() {
        let p = BackoffPolicy::exponential(secs(1), secs(30));
        for seed in 0..50 {
            let mut b = p.start_seeded(seed);
            let now = Instant::now();
            for n in 0..10 {
                let d = b.next_delay(now).unwrap();
                assert!(d <= p.base_delay(n), "{d:?} > base of {n}");
            }
        }
        assert_eq!(delays(&p, 10, 42), delays(&p, 10, 42));
        assert_ne!(delays(&p, 10, 42), delays(&p, 10, 43));
    }

    #[test]
    fn equal_jitter_stays_in_upper_half() {
        let p = BackoffPolicy::exponential(secs(2), secs(60)).with_jitter(Jitter::Equal);
        for seed in 0..50 {
            let mut b = p.start_seeded(seed);
            for n in 0..8 {
                let d = b.next_delay(Instant::now()).unwrap();
                let base = p.base_delay(n);
                assert!(d >= base / 2 && d <= base, "{d:?} vs {base:?}");
            }
        }
    }

    #[test]
    fn max_attempts_gives_up() {
        let p = BackoffPolicy::fixed(secs(1)).with_max_attempts(Some(2));
        assert_eq!(delays(&p, 3, 0), vec![Some(secs(1)), Some(secs(1)), None]);
    }

    #[test]
    fn max_elapsed_gives_up_and_reset_restarts_the_clock() {
        let p = BackoffPolicy::genesys_web_messaging();
        let t0 = Instant::now();
        let mut b = p.start_seeded(0);
        let mut n = 0;
        let mut t = t0;
        while let Some(d) = b.next_delay(t) {
            assert_eq!(d, secs(5));
            t += d;
            n += 1;
        }
        // 5-s retries starting within 5 minutes: 60 of them.
        assert_eq!(n, 60);
        b.reset();
        assert_eq!(b.next_delay(t), Some(secs(5)));
        assert_eq!(b.attempt(), 1);
    }

    #[test]
    fn retry_after_overrides_and_respects_its_limit() {
        let p = BackoffPolicy::genesys_rest();
        let mut b = p.start_seeded(0);
        let now = Instant::now();
        assert_eq!(b.next_delay(now), Some(secs(3)));
        assert_eq!(b.next_delay_with(now, Some(secs(17))), Some(secs(17)));
        assert_eq!(b.next_delay_with(now, Some(secs(181))), None);
        assert_eq!(b.next_delay_with(now, Some(secs(180))), Some(secs(180)));
    }

    #[test]
    fn tetherfi_table_skips_the_first_entry_and_stops_after_100() {
        let d = delays(&BackoffPolicy::tetherfi_poll(), 101, 0);
        assert!(d[..100].iter().all(|d| *d == Some(secs(3))));
        assert_eq!(d[100], None);
        let plain = BackoffPolicy::table(&TETHERFI_RETRY_TABLE[..]);
        assert_eq!(delays(&plain, 4, 0), some_secs(&[1, 3, 3, 3]));
    }

    #[test]
    fn avaya_is_fibonacci_plus_up_to_one_second() {
        let p = BackoffPolicy::avaya_event_stream(secs(120));
        let fib = [1, 1, 2, 3, 5, 8, 13, 21];
        for seed in 0..20 {
            let mut b = p.start_seeded(seed);
            for f in fib {
                let d = b.next_delay(Instant::now()).unwrap();
                assert!(d >= secs(f) && d < secs(f + 1), "{d:?} for {f}");
            }
        }
        // The reconnection timeout bounds the whole sequence.
        let t0 = Instant::now();
        let mut b = p.start_seeded(3);
        let mut t = t0;
        while let Some(d) = b.next_delay(t) {
            t += d;
        }
        assert!(t.duration_since(t0) <= secs(120));
        assert!(b.attempt() >= 8);
    }

    #[test]
    fn socketio_randomization_stays_within_half_and_cap() {
        let p = BackoffPolicy::expertflow_socketio();
        for seed in 0..50 {
            let mut b = p.start_seeded(seed);
            for n in 0..6 {
                let d = b.next_delay(Instant::now()).unwrap();
                let base = p.base_delay(n);
                assert!(
                    d >= base / 2 && d <= base.mul_f64(1.5).min(secs(5)),
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn vendor_fixed_tables() {
        assert_eq!(
            delays(&BackoffPolicy::tvox(), 3, 0),
            some_secs(&[10, 10, 10])
        );
        let sip = delays(&BackoffPolicy::expertflow_sip(), 11, 0);
        assert_eq!(sip[..10], some_secs(&[5; 10])[..]);
        assert_eq!(sip[10], None);
        assert_eq!(
            BackoffPolicy::genesys_guest_chat(),
            BackoffPolicy::default()
        );
    }
}

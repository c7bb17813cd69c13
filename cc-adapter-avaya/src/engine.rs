//! The sans-IO session engine: the vendor SDK's timers and event-stream state machine
//! (`shared/protocols/avaya.md` §3.6, §4.3, §4.4), with time passed in.
//!
//! The client tells the engine what happened (`activity`, `set_token`, a poll's outcome, a
//! timeout) and the engine answers with [`Output`]s: events to emit, the outboxes to open or
//! hold, the session to shut down. [`Engine::next_timeout`] says when to call
//! [`Engine::on_timeout`] next, and [`Engine::poll_due`] whether a long poll should run now.
//!
//! - **Activity timers.** Exactly one of idle, grace and reconnection runs. The idle timer
//!   starts with the session; activity (create engagement, join, send, disconnect,
//!   `keep_alive`) restarts it while the idle or grace timer is the current one. Idle expiry
//!   → `IDLE_TIMEOUT_EXPIRED` ([`Event::IdleWarning`]) and the grace timer; grace expiry →
//!   shutdown with reason `USER_INACTIVE`.
//! - **Token timers.** `TOKEN_EXPIRY_REMINDER` ([`Event::TokenExpiring`]) exactly 180 s
//!   before the JWT's `exp` (at once when less remains), `TOKEN_EXPIRED`
//!   ([`Event::TokenExpired`]) at `exp`; the stream then stays paused until `set_token`
//!   (so does a 401 from the server, whichever comes first).
//! - **Event stream.** Closed → Connecting → Connected; a network failure or a server error
//!   enters Retry (Fibonacci back-off 1, 1, 2, 3, 5, … s plus up to 1 s of jitter) and starts
//!   the reconnection timer in place of the idle one; its expiry ends in Failed
//!   (`RECONNECTION_TIMEOUT`), from which only [`Engine::retry_connection`] leaves. An attempt
//!   also ends in Connected when the disconnection probe sent with it answers
//!   ([`Engine::probe_ok`]): the attempt's long poll may be held by the server (so does the
//!   first poll after a new token or a manual retry). 401/403
//!   pause the stream until [`Engine::set_token`]; a 404 `Session not found` ends it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::{ConnectionState, Error, Event};
use serde_json::json;

use crate::VENDOR;

/// How long before the token's `exp` the reminder fires.
pub const TOKEN_REMINDER: Duration = Duration::from_secs(180);

/// The session's timer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Idle timeout.
    pub idle: Duration,
    /// Grace after the idle warning.
    pub grace: Duration,
    /// How long the stream retries after a failure.
    pub reconnection: Duration,
}

/// The one activity timer that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivityTimer {
    /// Idle until this instant.
    Idle(Instant),
    /// Grace until this instant.
    Grace(Instant),
    /// Reconnecting until this instant.
    Reconnection(Instant),
    /// None (shut down).
    Off,
}

/// Why the stream is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// HTTP 401: the token was refused.
    Unauthorized,
    /// HTTP 403.
    Forbidden,
}

/// The event stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Not running (no active engagement).
    Closed,
    /// Starting; no reply yet.
    Connecting,
    /// Polling.
    Connected,
    /// Waiting for a new token.
    Paused(Pause),
    /// Waiting for the next attempt at `at`.
    Retry {
        /// Attempts so far.
        attempt: u32,
        /// When the next one starts.
        at: Instant,
    },
    /// An attempt of the Retry state is under way.
    Attempting {
        /// Which attempt.
        attempt: u32,
    },
    /// Gave up (reconnection timeout); only `retry_connection` leaves.
    Failed,
    /// The session is gone or shut down.
    Ended,
}

/// Why a poll failed, as the client classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollFailure {
    /// HTTP 401.
    Unauthorized,
    /// HTTP 403.
    Forbidden,
    /// HTTP 404 `Session not found`.
    SessionNotFound,
    /// HTTP 500 (after the probe found the server down).
    ServerError,
    /// HTTP 501.
    NotImplemented,
    /// Any other status.
    Unexpected(u16),
    /// Network failure or the client's abort.
    Network,
}

impl PollFailure {
    fn reason(&self, retrying: bool) -> &'static str {
        match self {
            PollFailure::Unauthorized => "UNAUTHORIZED",
            PollFailure::Forbidden => "FORBIDDEN",
            PollFailure::SessionNotFound => "CLIENT_SESSION_INVALIDATED",
            // In Retry every other failure is reported as unreachable, as the SDK does.
            _ if retrying => "SERVER_UNREACHABLE",
            PollFailure::ServerError => "SERVER_ERROR",
            PollFailure::NotImplemented | PollFailure::Network => "SERVER_UNREACHABLE",
            PollFailure::Unexpected(_) => "UNEXPECTED_ERROR",
        }
    }
}

/// What the client must do.
#[derive(Clone, Debug)]
pub enum Output {
    /// Emit this event.
    Emit(Event),
    /// The stream works: the outboxes may send (and reconcile).
    StreamUp,
    /// The stream broke: the outboxes hold their messages.
    StreamDown,
    /// Shut the session down with this reason (`DELETE …/sessions/{id}?reason=`).
    Shutdown(&'static str),
    /// The server lost the session: every operation now fails `Closed`.
    SessionGone,
}

/// The engine; see the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    timers: Timers,
    timer: ActivityTimer,
    stream: Stream,
    attempt: u32,
    token_reminder: Option<Instant>,
    token_expiry: Option<Instant>,
    token_exp_unix: i64,
    token_expired: bool,
    /// The stream is Connecting again after an outage (a new token, a manual retry).
    resuming: bool,
    rng: fastrand::Rng,
}

fn vendor_event(name: &str, payload: serde_json::Value) -> Output {
    Output::Emit(Event::Vendor {
        vendor: VENDOR,
        name: Arc::from(name),
        payload: Arc::new(payload),
    })
}

fn connection(state: ConnectionState) -> Output {
    Output::Emit(Event::Connection(state))
}

fn disconnected(reason: &str) -> Output {
    connection(ConnectionState::Disconnected {
        reason: Arc::from(reason),
    })
}

/// The `n`th Fibonacci back-off, 1-based: 1, 1, 2, 3, 5, 8, … seconds.
pub fn fibonacci(n: u32) -> Duration {
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 1..n.max(1) {
        let c = a.saturating_add(b);
        a = b;
        b = c;
    }
    Duration::from_secs(a)
}

impl Engine {
    /// A session created at `now`: the idle timer runs.
    pub fn new(timers: Timers, now: Instant) -> Self {
        Engine {
            timers,
            timer: ActivityTimer::Idle(now + timers.idle),
            stream: Stream::Closed,
            attempt: 0,
            token_reminder: None,
            token_expiry: None,
            token_exp_unix: 0,
            token_expired: false,
            resuming: false,
            rng: fastrand::Rng::new(),
        }
    }

    /// Uses a seeded jitter source (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// The timer settings.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// The running activity timer.
    pub fn timer(&self) -> ActivityTimer {
        self.timer
    }

    /// The stream's state.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Whether the session ended (shut down or gone).
    pub fn ended(&self) -> bool {
        self.stream == Stream::Ended
    }

    /// A token expiring at `exp_unix` (seconds) was set at `now`, the wall clock reading
    /// `wall_ms`. Restarts the token timers and resumes a paused stream.
    pub fn set_token(&mut self, now: Instant, wall_ms: i64, exp_unix: i64) -> Vec<Output> {
        let left_ms = exp_unix.saturating_mul(1000).saturating_sub(wall_ms).max(0);
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let expiry = now + left;
        self.token_expiry = Some(expiry);
        self.token_reminder = Some(expiry.checked_sub(TOKEN_REMINDER).unwrap_or(now).max(now));
        self.token_exp_unix = exp_unix;
        self.token_expired = false;
        let mut out = Vec::new();
        if let Stream::Paused(_) = self.stream {
            // Resumes without a CONNECTING event, as the SDK does.
            self.stream = Stream::Connecting;
            self.resuming = true;
        }
        if left.is_zero() {
            out.extend(self.on_timeout(now));
        }
        out
    }

    /// User activity (create engagement, join, send, disconnect) or `keep_alive`: restarts
    /// the idle timer if the idle or grace timer is the current one.
    pub fn activity(&mut self, now: Instant) {
        if matches!(self.timer, ActivityTimer::Idle(_) | ActivityTimer::Grace(_)) {
            self.timer = ActivityTimer::Idle(now + self.timers.idle);
        }
    }

    /// The first active engagement appeared: the stream starts.
    pub fn start_stream(&mut self) -> Vec<Output> {
        if self.stream != Stream::Closed {
            return Vec::new();
        }
        self.stream = Stream::Connecting;
        self.resuming = false;
        vec![
            vendor_event("EVENT_STREAM_CONNECTING", json!({})),
            connection(ConnectionState::Connecting),
        ]
    }

    /// The last active engagement ended: the stream stops.
    pub fn stop_stream(&mut self, now: Instant) -> Vec<Output> {
        match self.stream {
            Stream::Closed | Stream::Ended => Vec::new(),
            s => {
                if matches!(
                    s,
                    Stream::Retry { .. } | Stream::Attempting { .. } | Stream::Failed
                ) {
                    self.timer = ActivityTimer::Idle(now + self.timers.idle);
                }
                self.stream = Stream::Closed;
                self.attempt = 0;
                self.resuming = false;
                vec![vendor_event("EVENT_STREAM_CLOSED", json!({}))]
            }
        }
    }

    /// Whether a long poll should start now.
    pub fn poll_due(&self, now: Instant) -> bool {
        match self.stream {
            Stream::Connecting | Stream::Connected => true,
            Stream::Retry { at, .. } => now >= at,
            _ => false,
        }
    }

    /// A poll starts now; in Retry this is an attempt (`EVENT_STREAM_CONNECTING`).
    pub fn begin_poll(&mut self, _now: Instant) -> Vec<Output> {
        if let Stream::Retry { attempt, .. } = self.stream {
            self.stream = Stream::Attempting { attempt };
            return vec![vendor_event("EVENT_STREAM_CONNECTING", json!({}))];
        }
        Vec::new()
    }

    /// A poll answered 200.
    pub fn poll_ok(&mut self, now: Instant) -> Vec<Output> {
        match self.stream {
            Stream::Connected => Vec::new(),
            Stream::Closed | Stream::Ended | Stream::Paused(_) => Vec::new(),
            _ => {
                if matches!(
                    self.timer,
                    ActivityTimer::Reconnection(_) | ActivityTimer::Off
                ) {
                    self.timer = ActivityTimer::Idle(now + self.timers.idle);
                }
                self.stream = Stream::Connected;
                self.attempt = 0;
                self.resuming = false;
                vec![
                    vendor_event("EVENT_STREAM_CONNECTED", json!({})),
                    connection(ConnectionState::Connected),
                    Output::StreamUp,
                ]
            }
        }
    }

    /// The disconnection probe sent with a reconnection poll answered 200: the server is
    /// back. That poll may be held by the server until an event arrives or its hold time
    /// passes (25 s), and the messages queued during the outage wait for the stream, so the
    /// probe's answer counts as the poll's: Connected, as after a 200 poll (the poll stays
    /// open and goes on as the stream's next poll). Outside a reconnection
    /// ([`Engine::reconnecting`]) this does nothing.
    pub fn probe_ok(&mut self, now: Instant) -> Vec<Output> {
        if self.reconnecting() {
            self.poll_ok(now)
        } else {
            Vec::new()
        }
    }

    /// Whether the stream is coming back after an outage and the poll under way (or about
    /// to start) has not answered yet: an attempt of the Retry state, or the first poll
    /// after a new token (Paused) or a manual retry (Failed). Not the first poll of a new
    /// stream, which the server answers at once with the engagement's events.
    pub fn reconnecting(&self) -> bool {
        match self.stream {
            Stream::Attempting { .. } => true,
            Stream::Connecting => self.resuming,
            _ => false,
        }
    }

    /// A poll failed.
    pub fn poll_failed(&mut self, now: Instant, failure: PollFailure) -> Vec<Output> {
        if matches!(self.stream, Stream::Closed | Stream::Ended) {
            return Vec::new();
        }
        self.resuming = false;
        let retrying = matches!(
            self.stream,
            Stream::Retry { .. } | Stream::Attempting { .. } | Stream::Failed
        );
        let reason = failure.reason(retrying);
        let mut out = Vec::new();
        match failure {
            PollFailure::Unauthorized | PollFailure::Forbidden => {
                let pause = if failure == PollFailure::Unauthorized {
                    Pause::Unauthorized
                } else {
                    Pause::Forbidden
                };
                let was_up = !matches!(self.stream, Stream::Paused(_));
                self.stream = Stream::Paused(pause);
                out.push(vendor_event(
                    "EVENT_STREAM_FAILED",
                    json!({ "reason": reason, "message": "JWT token is invalid" }),
                ));
                if pause == Pause::Unauthorized && !self.token_expired {
                    // The server no longer takes the token: for the app this is the expiry.
                    self.token_expired = true;
                    out.push(Output::Emit(Event::TokenExpired));
                }
                if pause == Pause::Forbidden {
                    out.push(Output::Emit(Event::error(Error::Auth {
                        vendor: VENDOR,
                        code: Some("ACS-304".to_owned()),
                        message: "the event stream was refused (HTTP 403)".to_owned(),
                    })));
                }
                out.push(disconnected(&format!("{reason}: waiting for a new token")));
                if was_up {
                    out.push(Output::StreamDown);
                }
            }
            PollFailure::SessionNotFound => {
                self.stream = Stream::Ended;
                self.timer = ActivityTimer::Off;
                self.token_reminder = None;
                self.token_expiry = None;
                out.push(vendor_event("EVENT_STREAM_CLOSED", json!({})));
                out.push(vendor_event(
                    "EVENT_STREAM_FAILED",
                    json!({ "reason": reason, "message": "Session not found" }),
                ));
                out.push(disconnected(reason));
                out.push(Output::StreamDown);
                out.push(Output::SessionGone);
            }
            _ => {
                if !retrying {
                    self.timer = ActivityTimer::Reconnection(now + self.timers.reconnection);
                    out.push(Output::StreamDown);
                }
                if self.stream == Stream::Failed {
                    // A manual retry failed: stay failed, no automatic attempt.
                    out.push(vendor_event(
                        "EVENT_STREAM_FAILED",
                        json!({ "reason": reason, "message": "Server is unreachable" }),
                    ));
                    return out;
                }
                self.attempt += 1;
                let jitter = Duration::from_millis(self.rng.u64(0..1000));
                let delay = fibonacci(self.attempt) + jitter;
                self.stream = Stream::Retry {
                    attempt: self.attempt,
                    at: now + delay,
                };
                out.push(vendor_event(
                    "EVENT_STREAM_FAILED",
                    json!({
                        "reason": reason,
                        "message": "Server is unreachable",
                        "retryAfter": delay.as_secs_f64(),
                    }),
                ));
                out.push(connection(ConnectionState::Reconnecting {
                    attempt: self.attempt,
                    delay,
                }));
            }
        }
        out
    }

    /// `retryConnection()`: in Failed, one attempt now; in Retry, the wait is cut short and
    /// the back-off starts over. Anything else is refused (ACS-318).
    pub fn retry_connection(&mut self, now: Instant) -> Result<Vec<Output>, Error> {
        match self.stream {
            Stream::Failed => {
                self.stream = Stream::Connecting;
                self.resuming = true;
                Ok(vec![vendor_event("EVENT_STREAM_CONNECTING", json!({}))])
            }
            Stream::Retry { attempt, .. } => {
                self.attempt = 0;
                self.stream = Stream::Retry { attempt, at: now };
                Ok(Vec::new())
            }
            // An attempt is under way already; the back-off starts over after it.
            Stream::Attempting { .. } => {
                self.attempt = 0;
                Ok(Vec::new())
            }
            _ => Err(crate::error::from_acs(
                "ACS-318",
                "the event stream has not failed",
            )),
        }
    }

    /// When [`Engine::on_timeout`] should run next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let timer = match self.timer {
            ActivityTimer::Idle(t) | ActivityTimer::Grace(t) | ActivityTimer::Reconnection(t) => {
                Some(t)
            }
            ActivityTimer::Off => None,
        };
        let retry = match self.stream {
            Stream::Retry { at, .. } => Some(at),
            _ => None,
        };
        [timer, self.token_reminder, self.token_expiry, retry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.ended() {
            return out;
        }
        if let Some(t) = self.token_reminder
            && now >= t
        {
            self.token_reminder = None;
            let left = self
                .token_expiry
                .map_or(Duration::ZERO, |e| e.saturating_duration_since(now));
            out.push(vendor_event(
                "TOKEN_EXPIRY_REMINDER",
                json!({ "expiryDate": self.token_exp_unix }),
            ));
            out.push(Output::Emit(Event::TokenExpiring { in_: left }));
        }
        if let Some(t) = self.token_expiry
            && now >= t
        {
            self.token_expiry = None;
            out.push(vendor_event(
                "TOKEN_EXPIRED",
                json!({ "expiredDate": self.token_exp_unix }),
            ));
            if !self.token_expired {
                self.token_expired = true;
                out.push(Output::Emit(Event::TokenExpired));
            }
            // "Disconnected until a valid JWT is set": no poll goes with a dead token.
            if matches!(
                self.stream,
                Stream::Connecting
                    | Stream::Connected
                    | Stream::Retry { .. }
                    | Stream::Attempting { .. }
            ) {
                let was_up = self.stream == Stream::Connected;
                self.stream = Stream::Paused(Pause::Unauthorized);
                out.push(disconnected("TOKEN_EXPIRED: waiting for a new token"));
                if was_up {
                    out.push(Output::StreamDown);
                }
            }
        }
        match self.timer {
            ActivityTimer::Idle(t) if now >= t => {
                let until = t + self.timers.grace;
                self.timer = ActivityTimer::Grace(until);
                let grace = until.saturating_duration_since(now);
                out.push(vendor_event(
                    "IDLE_TIMEOUT_EXPIRED",
                    json!({ "gracePeriod": self.timers.grace.as_secs() }),
                ));
                out.push(Output::Emit(Event::IdleWarning {
                    engagement: None,
                    grace,
                }));
                if now >= until {
                    out.extend(self.on_timeout(now));
                }
            }
            ActivityTimer::Grace(t) if now >= t => {
                out.extend(self.shutdown());
                out.push(Output::Shutdown("USER_INACTIVE"));
            }
            ActivityTimer::Reconnection(t) if now >= t => {
                self.timer = ActivityTimer::Off;
                if matches!(
                    self.stream,
                    Stream::Retry { .. } | Stream::Attempting { .. }
                ) {
                    self.stream = Stream::Failed;
                    out.push(vendor_event(
                        "EVENT_STREAM_FAILED",
                        json!({ "reason": "RECONNECTION_TIMEOUT", "message": "Server is unreachable" }),
                    ));
                    out.push(disconnected("RECONNECTION_TIMEOUT"));
                }
            }
            _ => {}
        }
        out
    }

    /// The session shuts down: every timer stops, the stream ends.
    pub fn shutdown(&mut self) -> Vec<Output> {
        if self.ended() {
            return Vec::new();
        }
        let was_open = !matches!(self.stream, Stream::Closed);
        self.stream = Stream::Ended;
        self.timer = ActivityTimer::Off;
        self.token_reminder = None;
        self.token_expiry = None;
        if was_open {
            vec![Output::StreamDown]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;

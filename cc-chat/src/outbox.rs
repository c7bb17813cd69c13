//! The outbox: every message the app sends, from *pending* until the vendor confirms it.
//!
//! # The machinery
//!
//! [`Outbox::push`] gives a message a [`ClientMessageId`] (a UUID v7) and records it as
//! [`DeliveryState::Pending`], connected or not. The adapter's engine then asks
//! [`Outbox::poll`] what to do, whenever something may have changed (a push, a frame, a
//! timer, a connection change):
//!
//! - [`Poll::Send`]: write this message now. The outbox counts the attempt and the message is
//!   *in flight*; the adapter reports [`Outbox::on_written`] when the write completed, or
//!   [`Outbox::on_send_error`] when it did not (the outbox retries with back-off up to
//!   [`OutboxConfig::max_attempts`], then fails the message).
//! - [`Poll::WaitUntil`]: nothing may go before that instant (pacing, retry back-off, an
//!   ack deadline); arm a timer and poll again.
//! - [`Poll::Reconcile`]: the connection dropped while messages were in flight (or their
//!   ack is overdue, with [`OutboxConfig::ack_timeout`]), so nobody knows whether the vendor
//!   got them. Call [`Outbox::reconcile`] with the messages the
//!   server shows (history after reconnect, a resume payload); pass an empty slice when the
//!   vendor offers no way to look. Messages the server already has are confirmed, the rest go
//!   back to the queue, in their original place.
//! - [`Poll::Idle`]: nothing to do until the next push, frame or connection change.
//!
//! Nothing is handed out while disconnected ([`Outbox::on_disconnected`] /
//! [`Outbox::on_connected`]), and messages leave strictly in push order: a message waiting
//! for its back-off holds the ones behind it, so the agent never sees them reordered.
//!
//! The vendor confirms a message by an ack ([`Outbox::on_acked`], with its id and time when
//! it gives them) or by echoing it ([`Outbox::on_echo`]). Echoes are matched by client id
//! when the vendor carries it, else by vendor id, else by content: the oldest unconfirmed
//! message of the same role and content written within [`OutboxConfig::echo_window`]. Each
//! message matches at most one echo, so two identical texts sent a moment apart pair up
//! one-to-one, and a second copy of an echo is reported as
//! [`EchoMatch::AlreadyConfirmed`], never as a new message.
//!
//! Confirmed messages stay known for one echo window (for late echoes), then are forgotten;
//! from then on the [`crate::Transcript`] carries their delivery state. A message whose
//! retries are used up, or that the vendor refused for good, leaves the outbox as a
//! [`Failure`], whose [`Failure::event`] is the [`Event::MessageFailed`] to emit.
//!
//! An optional [`Pacer`] (a token bucket, see [`Rate`]) spaces the writes for vendors with
//! a per-session message rate; messages wait, they are never dropped.
//!
//! Time comes in as [`Instant`]s (timers, windows); the wall-clock time a message was
//! written is derived from the [`Timestamp`] given at push, for comparison with the
//! server's times during reconciliation.
//!
//! # Driving it across a reconnect
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cc_chat::{Content, EngagementId, Outbox, OutboxConfig, Participant, Poll, Role, Timestamp};
//! use cc_core::Vendor;
//!
//! let t0 = Instant::now();
//! let mut outbox = Outbox::new(
//!     Vendor::Genesys,
//!     EngagementId::from("e-1"),
//!     Participant::new(Role::Customer),
//!     OutboxConfig::default(),
//! );
//! // Disconnected: the message is queued, nothing is handed out.
//! let hello = outbox.push(Content::text("hello"), Timestamp(1_000), t0);
//! assert_eq!(outbox.poll(t0), Poll::Idle);
//!
//! // Connected: it goes, exactly once.
//! outbox.on_connected();
//! let Poll::Send(out) = outbox.poll(t0) else { panic!() };
//! assert_eq!(out.message.client_id, hello.client_id);
//! outbox.on_written(out.client_id(), t0);
//! assert_eq!(outbox.poll(t0), Poll::Idle);
//!
//! // The connection drops before the echo: the message is uncertain.
//! outbox.on_disconnected();
//! outbox.on_connected();
//! assert_eq!(outbox.poll(t0), Poll::Reconcile);
//! // History after reconnect does not show it: it is sent again.
//! let report = outbox.reconcile(&[], t0);
//! assert_eq!(report.requeued, vec![out.client_id()]);
//! assert!(matches!(outbox.poll(t0), Poll::Send(_)));
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::{
    ClientMessageId, Content, DeliveryState, EngagementId, Error, Event, Message, MessageId,
    Participant, Timestamp, Vendor,
};

use crate::{advance_state, same_content};

/// A message rate: `count` messages per `per`, with bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Messages per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// How many may go back to back after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `count` messages per second, bursts of `count`.
    pub const fn per_second(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(1),
            burst: count,
        }
    }

    /// `count` messages per `per`, bursts of `count`.
    pub const fn new(count: u32, per: Duration) -> Rate {
        Rate {
            count,
            per,
            burst: count,
        }
    }

    /// The same rate with another burst size.
    pub const fn with_burst(self, burst: u32) -> Rate {
        Rate { burst, ..self }
    }
}

/// A sans-IO pacer: "when may the next message go", as a token bucket.
///
/// Implemented as the generic cell rate algorithm: one message every `per / count`, with
/// `burst - 1` messages of credit after a quiet spell. Nothing is dropped: a caller that is
/// not allowed yet learns the instant it will be.
#[derive(Clone, Debug)]
pub struct Pacer {
    interval: Duration,
    tolerance: Duration,
    /// The theoretical arrival time of the next message.
    tat: Option<Instant>,
}

impl Pacer {
    /// A pacer for `rate`. A zero `count` or `burst` counts as 1.
    pub fn new(rate: Rate) -> Pacer {
        let count = rate.count.max(1);
        let burst = rate.burst.max(1);
        let interval = rate.per / count;
        Pacer {
            interval,
            tolerance: interval * (burst - 1),
            tat: None,
        }
    }

    /// The earliest instant the next message may go: `now` when it may go now.
    pub fn ready_at(&self, now: Instant) -> Instant {
        match self.tat {
            None => now,
            Some(tat) => match tat.checked_sub(self.tolerance) {
                Some(t) if t > now => t,
                _ => now,
            },
        }
    }

    /// Whether a message may go at `now`.
    pub fn is_ready(&self, now: Instant) -> bool {
        self.ready_at(now) <= now
    }

    /// Takes one slot at `now`, or says when the next one is free.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let at = self.ready_at(now);
        if at > now {
            return Err(at);
        }
        let base = match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        };
        self.tat = Some(base + self.interval);
        Ok(())
    }
}

/// How the outbox behaves; set per adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Attempts per message before it fails (at least 1). Every hand-out counts, including a
    /// resend after an uncertain drop.
    pub max_attempts: u32,
    /// How far apart an echo matched by content may be from the write (and a server time
    /// from the local time of the write); also how long confirmed messages are remembered.
    pub echo_window: Duration,
    /// The back-off after a failed attempt, multiplied by the attempt number; a vendor's
    /// `retry_after` takes precedence.
    pub retry_backoff: Duration,
    /// At most this many messages written and not yet confirmed; `None` for no limit.
    pub max_in_flight: Option<usize>,
    /// A message written this long ago and still unconfirmed, while connected, is treated
    /// like one in flight at a drop: uncertain, to be reconciled. `None` waits forever
    /// (for vendors that always ack or echo).
    pub ack_timeout: Option<Duration>,
    /// The vendor's message rate, when it has one.
    pub rate: Option<Rate>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 3,
            echo_window: Duration::from_secs(30),
            retry_backoff: Duration::from_secs(1),
            max_in_flight: None,
            ack_timeout: None,
            rate: None,
        }
    }
}

/// A message to write now; see [`Poll::Send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The message, with its client id, state [`DeliveryState::Pending`].
    pub message: Message,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

impl Outgoing {
    /// The message's client id.
    pub fn client_id(&self) -> ClientMessageId {
        self.message
            .client_id
            .expect("outbox messages carry a client id")
    }
}

/// What the adapter should do next; see [`Outbox::poll`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned by value and consumed at once, never stored"
)]
pub enum Poll {
    /// Write this message now, then report [`Outbox::on_written`] or
    /// [`Outbox::on_send_error`].
    Send(Outgoing),
    /// Nothing may go before this instant (pacing, back-off, an ack deadline); poll again
    /// then.
    WaitUntil(Instant),
    /// Messages were in flight when the connection dropped: call [`Outbox::reconcile`].
    Reconcile,
    /// Nothing to do until something changes.
    Idle,
}

/// How an echo relates to the outbox; see [`Outbox::on_echo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EchoMatch {
    /// The echo confirms one of our messages: the merged message (client id, vendor id,
    /// server time, state `Sent`). Emit [`Event::MessageSent`] and store it in the transcript.
    Confirmed(Message),
    /// The echo is of one of our messages that was already confirmed (a late echo after an
    /// ack, or a second copy): the merged message, for the transcript, but no new event.
    AlreadyConfirmed(Message),
    /// Not a message of this outbox (another device, an earlier session): treat as an
    /// ordinary message; the transcript dedupes it by vendor id.
    Unmatched,
}

/// A message the outbox gave up on.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The message, in state [`DeliveryState::Failed`].
    pub message: Message,
    /// Why.
    pub error: Arc<Error>,
}

impl Failure {
    /// The message's client id.
    pub fn client_id(&self) -> ClientMessageId {
        self.message
            .client_id
            .expect("outbox messages carry a client id")
    }

    /// The [`Event::MessageFailed`] to emit.
    pub fn event(&self) -> Event {
        Event::MessageFailed {
            engagement: self.message.engagement.clone(),
            client_id: self.client_id(),
            error: Arc::clone(&self.error),
        }
    }
}

/// What became of a failed attempt; see [`Outbox::on_send_error`].
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned by value and consumed at once, never stored"
)]
pub enum SendErrorOutcome {
    /// The message is queued again and goes at or after this instant.
    Retry(Instant),
    /// The message failed for good.
    Failed(Failure),
    /// The outbox does not hold that message (already confirmed or failed).
    Unknown,
}

/// What [`Outbox::reconcile`] decided about the uncertain messages.
#[derive(Clone, Debug, Default)]
pub struct ReconcileReport {
    /// Messages the server already has: confirmed, merged with what the server showed.
    pub confirmed: Vec<Message>,
    /// Messages the server does not show: queued again, in their original order.
    pub requeued: Vec<ClientMessageId>,
    /// Messages whose attempts are used up.
    pub failed: Vec<Failure>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting to be handed out.
    Queued,
    /// Handed out; `written` once the adapter reported the write.
    InFlight { written: bool },
    /// In flight when the connection dropped.
    Uncertain,
    /// Confirmed by ack or echo at `at`; `echoed` once an echo was matched.
    Confirmed { at: Instant, echoed: bool },
}

#[derive(Clone, Debug)]
struct Entry {
    message: Message,
    stage: Stage,
    attempts: u32,
    pushed_at: Instant,
    not_before: Option<Instant>,
    first_handed: Option<Instant>,
    last_handed: Option<Instant>,
}

impl Entry {
    fn client_id(&self) -> ClientMessageId {
        self.message.client_id.expect("client id set at push")
    }

    /// The wall-clock time of `t`, derived from the push time.
    fn wall(&self, t: Instant) -> Timestamp {
        let ms = t.saturating_duration_since(self.pushed_at).as_millis();
        Timestamp(
            self.message
                .local_time
                .0
                .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
        )
    }

    fn is_confirmed(&self) -> bool {
        matches!(self.stage, Stage::Confirmed { .. })
    }

    /// Whether `server_time` is within `window` of any attempt to write this message.
    fn server_time_fits(&self, server_time: Timestamp, window: Duration) -> bool {
        let (Some(first), Some(last)) = (self.first_handed, self.last_handed) else {
            return false;
        };
        let w = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let lo = self.wall(first).0.saturating_sub(w);
        let hi = self.wall(last).0.saturating_add(w);
        (lo..=hi).contains(&server_time.0)
    }

    /// Folds what the vendor says about the message into it.
    fn merge_from(&mut self, other: &Message) {
        let m = &mut self.message;
        if m.id.is_none() {
            m.id.clone_from(&other.id);
        }
        if other.server_time.is_some() {
            m.server_time = other.server_time;
        }
        if other.sender.id.is_some() && m.sender.id.is_none() {
            m.sender.id.clone_from(&other.sender.id);
        }
        if m.sender.display_name.is_none() {
            m.sender.display_name.clone_from(&other.sender.display_name);
        }
    }
}

/// The outbox of one engagement; see the [module docs](self).
///
/// Entries live in a queue in push order; lookups are linear, which suits the handful of
/// messages an engagement has in flight at a time.
#[derive(Clone, Debug)]
pub struct Outbox {
    vendor: Vendor,
    engagement: EngagementId,
    sender: Participant,
    config: OutboxConfig,
    pacer: Option<Pacer>,
    connected: bool,
    entries: VecDeque<Entry>,
}

impl Outbox {
    /// An empty, disconnected outbox for messages `sender` sends in `engagement`.
    pub fn new(
        vendor: Vendor,
        engagement: EngagementId,
        sender: Participant,
        config: OutboxConfig,
    ) -> Outbox {
        Outbox {
            vendor,
            engagement,
            sender,
            pacer: config.rate.map(Pacer::new),
            config,
            connected: false,
            entries: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// Whether the adapter said the connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Records a message to send: a new client id, state `Pending`, `local_time` as given.
    /// Returns the message as recorded (for [`crate::sent_message`] and the transcript).
    pub fn push(&mut self, content: Content, local_time: Timestamp, now: Instant) -> Message {
        self.push_message(content, false, local_time, now)
    }

    /// Like [`Outbox::push`], for a message kept out of the visible transcript.
    pub fn push_hidden(
        &mut self,
        content: Content,
        local_time: Timestamp,
        now: Instant,
    ) -> Message {
        self.push_message(content, true, local_time, now)
    }

    fn push_message(
        &mut self,
        content: Content,
        hidden: bool,
        local_time: Timestamp,
        now: Instant,
    ) -> Message {
        let message = Message {
            id: None,
            client_id: Some(ClientMessageId::new()),
            engagement: self.engagement.clone(),
            sender: self.sender.clone(),
            content,
            server_time: None,
            local_time,
            state: DeliveryState::Pending,
            hidden,
        };
        self.entries.push_back(Entry {
            message: message.clone(),
            stage: Stage::Queued,
            attempts: 0,
            pushed_at: now,
            not_before: None,
            first_handed: None,
            last_handed: None,
        });
        message
    }

    /// The connection is up (and the engagement ready to take messages).
    pub fn on_connected(&mut self) {
        self.connected = true;
    }

    /// The connection dropped: messages in flight become uncertain.
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        for e in &mut self.entries {
            if let Stage::InFlight { .. } = e.stage {
                e.stage = Stage::Uncertain;
            }
        }
    }

    /// What to do next at `now`; see [`Poll`].
    pub fn poll(&mut self, now: Instant) -> Poll {
        self.prune(now);
        if !self.connected {
            return Poll::Idle;
        }
        if let Some(timeout) = self.config.ack_timeout {
            for e in &mut self.entries {
                if let (Stage::InFlight { .. }, Some(t)) = (e.stage, e.last_handed)
                    && now.saturating_duration_since(t) >= timeout
                {
                    e.stage = Stage::Uncertain;
                }
            }
        }
        if self.entries.iter().any(|e| e.stage == Stage::Uncertain) {
            return Poll::Reconcile;
        }
        if let Some(max) = self.config.max_in_flight {
            let in_flight = self
                .entries
                .iter()
                .filter(|e| matches!(e.stage, Stage::InFlight { .. }))
                .count();
            if in_flight >= max {
                return self.idle();
            }
        }
        let Some(idx) = self.entries.iter().position(|e| e.stage == Stage::Queued) else {
            return self.idle();
        };
        if let Some(t) = self.entries[idx].not_before
            && t > now
        {
            return Poll::WaitUntil(t);
        }
        if let Some(pacer) = &mut self.pacer
            && let Err(t) = pacer.try_acquire(now)
        {
            return Poll::WaitUntil(t);
        }
        let e = &mut self.entries[idx];
        e.attempts += 1;
        e.stage = Stage::InFlight { written: false };
        e.not_before = None;
        e.first_handed.get_or_insert(now);
        e.last_handed = Some(now);
        Poll::Send(Outgoing {
            message: e.message.clone(),
            attempt: e.attempts,
        })
    }

    /// Nothing to send: wait for the earliest ack deadline, if any.
    fn idle(&self) -> Poll {
        let Some(timeout) = self.config.ack_timeout else {
            return Poll::Idle;
        };
        self.entries
            .iter()
            .filter(|e| matches!(e.stage, Stage::InFlight { .. }))
            .filter_map(|e| e.last_handed)
            .min()
            .map_or(Poll::Idle, |t| Poll::WaitUntil(t + timeout))
    }

    /// Forgets confirmed messages older than the echo window.
    fn prune(&mut self, now: Instant) {
        let window = self.config.echo_window;
        self.entries.retain(|e| match e.stage {
            Stage::Confirmed { at, .. } => now.saturating_duration_since(at) <= window,
            _ => true,
        });
    }

    fn index_of(&self, client_id: ClientMessageId) -> Option<usize> {
        self.entries.iter().position(|e| e.client_id() == client_id)
    }

    /// The write of a handed-out message completed. Returns whether the outbox knows it.
    pub fn on_written(&mut self, client_id: ClientMessageId, _now: Instant) -> bool {
        match self.index_of(client_id) {
            Some(i) => {
                if let Stage::InFlight { written } = &mut self.entries[i].stage {
                    *written = true;
                }
                true
            }
            None => false,
        }
    }

    /// The vendor acknowledged a message, with its id and time when it gave them. Returns
    /// the confirmed message the first time (emit [`Event::MessageSent`]), `None` when the
    /// message was already confirmed or is unknown.
    pub fn on_acked(
        &mut self,
        client_id: ClientMessageId,
        id: Option<MessageId>,
        server_time: Option<Timestamp>,
        now: Instant,
    ) -> Option<Message> {
        let i = self.index_of(client_id)?;
        let e = &mut self.entries[i];
        if e.message.id.is_none() {
            e.message.id = id;
        }
        if server_time.is_some() {
            e.message.server_time = server_time;
        }
        if e.is_confirmed() {
            return None;
        }
        e.stage = Stage::Confirmed {
            at: now,
            echoed: false,
        };
        advance_state(&mut e.message.state, DeliveryState::Sent);
        Some(e.message.clone())
    }

    /// Matches a vendor echo of one of our own messages; see [`EchoMatch`].
    pub fn on_echo(&mut self, echo: &Message, now: Instant) -> EchoMatch {
        let idx = if let Some(cid) = echo.client_id {
            self.index_of(cid)
        } else if let Some(vid) = echo.id.as_ref().and_then(|vid| {
            self.entries
                .iter()
                .position(|e| e.message.id.as_ref() == Some(vid))
        }) {
            Some(vid)
        } else {
            self.content_match(echo, now)
        };
        let Some(i) = idx else {
            return EchoMatch::Unmatched;
        };
        let e = &mut self.entries[i];
        e.merge_from(echo);
        if let Stage::Confirmed { echoed, .. } = &mut e.stage {
            *echoed = true;
            return EchoMatch::AlreadyConfirmed(e.message.clone());
        }
        e.stage = Stage::Confirmed {
            at: now,
            echoed: true,
        };
        advance_state(&mut e.message.state, DeliveryState::Sent);
        EchoMatch::Confirmed(e.message.clone())
    }

    /// The oldest entry an echo without usable ids may be the copy of.
    fn content_match(&self, echo: &Message, now: Instant) -> Option<usize> {
        let window = self.config.echo_window;
        self.entries.iter().position(|e| {
            let waiting = match e.stage {
                Stage::InFlight { .. } | Stage::Uncertain => true,
                // Queued again after an uncertain drop: the first copy may still echo.
                Stage::Queued => e.last_handed.is_some(),
                Stage::Confirmed { echoed, .. } => {
                    !echoed && (e.message.id.is_none() || echo.id.is_none())
                }
            };
            if !waiting
                || e.message.sender.role != echo.sender.role
                || !same_content(&e.message.content, &echo.content)
            {
                return false;
            }
            let recent = e
                .last_handed
                .is_some_and(|t| now.saturating_duration_since(t) <= window);
            let server_fits = echo
                .server_time
                .is_some_and(|st| e.server_time_fits(st, window));
            recent || server_fits
        })
    }

    /// A write failed. Retries with back-off while attempts remain and the error is
    /// retryable; otherwise the message fails.
    pub fn on_send_error(
        &mut self,
        client_id: ClientMessageId,
        error: Error,
        now: Instant,
    ) -> SendErrorOutcome {
        let Some(i) = self.index_of(client_id) else {
            return SendErrorOutcome::Unknown;
        };
        let e = &mut self.entries[i];
        if e.is_confirmed() {
            return SendErrorOutcome::Unknown;
        }
        if error.is_retryable() && e.attempts < self.config.max_attempts.max(1) {
            let delay = error
                .retry_after()
                .unwrap_or(self.config.retry_backoff * e.attempts.max(1));
            let at = now + delay;
            e.stage = Stage::Queued;
            e.not_before = Some(at);
            return SendErrorOutcome::Retry(at);
        }
        SendErrorOutcome::Failed(self.fail_at(i, Arc::new(error)))
    }

    fn fail_at(&mut self, i: usize, error: Arc<Error>) -> Failure {
        let mut e = self.entries.remove(i).expect("index in range");
        e.message.state = DeliveryState::Failed {
            reason: error.to_string(),
            retryable: error.is_retryable(),
        };
        Failure {
            message: e.message,
            error,
        }
    }

    /// Whether messages are waiting for [`Outbox::reconcile`].
    pub fn has_uncertain(&self) -> bool {
        self.entries.iter().any(|e| e.stage == Stage::Uncertain)
    }

    /// Settles the uncertain messages against `seen`, the messages the server shows after
    /// reconnect (history, a resume payload; any roles, any order). An uncertain message is
    /// confirmed when a seen message carries its client id, or has the same role and content
    /// and a server time within the echo window of one of its writes (each seen message
    /// confirms at most one, oldest first). The others are queued again, or fail when their
    /// attempts are used up. Pass an empty slice when the vendor has no way to look: then
    /// every uncertain message is sent again.
    pub fn reconcile(&mut self, seen: &[Message], now: Instant) -> ReconcileReport {
        let window = self.config.echo_window;
        // Vendor ids already confirmed cannot confirm another message.
        let mut used: Vec<bool> = seen
            .iter()
            .map(|s| {
                s.id.as_ref().is_some_and(|id| {
                    self.entries
                        .iter()
                        .any(|e| e.message.id.as_ref() == Some(id))
                })
            })
            .collect();
        let mut report = ReconcileReport::default();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].stage != Stage::Uncertain {
                i += 1;
                continue;
            }
            let e = &self.entries[i];
            let cid = e.client_id();
            let by_id = seen
                .iter()
                .enumerate()
                .position(|(k, s)| !used[k] && s.client_id == Some(cid));
            let found = by_id.or_else(|| {
                seen.iter().enumerate().position(|(k, s)| {
                    !used[k]
                        && s.client_id.is_none()
                        && s.sender.role == e.message.sender.role
                        && same_content(&s.content, &e.message.content)
                        && s.server_time
                            .is_some_and(|st| e.server_time_fits(st, window))
                })
            });
            if let Some(k) = found {
                used[k] = true;
                let e = &mut self.entries[i];
                e.merge_from(&seen[k]);
                e.stage = Stage::Confirmed {
                    at: now,
                    echoed: true,
                };
                advance_state(&mut e.message.state, DeliveryState::Sent);
                report.confirmed.push(e.message.clone());
                i += 1;
            } else if e.attempts >= self.config.max_attempts.max(1) {
                let error = Error::transport(
                    self.vendor,
                    "send message",
                    format!(
                        "the connection dropped before the vendor confirmed the message, \
                         {} attempts made",
                        e.attempts
                    ),
                );
                report.failed.push(self.fail_at(i, Arc::new(error)));
            } else {
                let e = &mut self.entries[i];
                e.stage = Stage::Queued;
                e.not_before = None;
                report.requeued.push(cid);
                i += 1;
            }
        }
        report
    }

    /// Fails every message not yet confirmed with `error` (the engagement ended, the session
    /// closed). Returns the failures, in push order.
    pub fn close(&mut self, error: Error) -> Vec<Failure> {
        let error = Arc::new(error);
        let mut failures = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].is_confirmed() {
                i += 1;
            } else {
                failures.push(self.fail_at(i, Arc::clone(&error)));
            }
        }
        failures
    }

    /// The messages not yet confirmed, in push order.
    pub fn pending(&self) -> Vec<Message> {
        self.entries
            .iter()
            .filter(|e| !e.is_confirmed())
            .map(|e| e.message.clone())
            .collect()
    }

    /// How many messages are not yet confirmed.
    pub fn pending_len(&self) -> usize {
        self.entries.iter().filter(|e| !e.is_confirmed()).count()
    }

    /// The message with that client id, while the outbox holds it.
    pub fn get(&self, client_id: ClientMessageId) -> Option<&Message> {
        self.entries
            .iter()
            .find(|e| e.client_id() == client_id)
            .map(|e| &e.message)
    }
}

#[cfg(test)]
mod tests;

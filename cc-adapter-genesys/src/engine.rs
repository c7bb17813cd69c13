//! Sans-IO protocol engines for both Genesys transports.
//!
//! An engine does no I/O and reads no clock: the driver (`client.rs`) feeds it
//! `(now, frame)` and `(now, command)`, then drains [`Output`]s (frames or HTTP calls to
//! make, events to publish) and asks for the next deadline with `poll_timeout`. Everything
//! the vendor protocol requires lives here, so it is tested without sockets:
//!
//! - the outbox (`cc_chat::Outbox`): pacing at most 2 `onMessage` per rolling second per
//!   session (more are queued, never dropped; a `4029` puts the message back for
//!   `retryAfter`), echo matching, and reconciliation after a reconnect;
//! - typing (`cc_chat::TypingDebouncer`): one typing-start per [`TYPING_COOLDOWN`];
//! - the agent's typing indicator times out (Web Messaging: its `duration`; guest chat: 4 s);
//! - exactly-once across reconnects: a message whose echo did not arrive before the socket
//!   dropped is checked against the server history (by its `customMessageId`) before it is
//!   sent again; echoes and history entries are deduplicated by message id;
//! - pre-filters: messages matching a registered pattern are kept out of the visible
//!   transcript (`hidden`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_chat::outbox::{
    EchoMatch, Outbox, OutboxConfig, Poll as OutboxPoll, Rate, ReconcileReport, SendErrorOutcome,
};
use cc_chat::{TypingConfig, TypingDebouncer};
use cc_core::{
    Action, Attachment, Card, ClientMessageId, Content, DeliveryState, EngagementId, Error, Event,
    Initiator, Message, MessageId, Participant, RichContent, Role, Timestamp, Vendor,
};
use regex::Regex;
use serde_json::Value;

use crate::error;
use crate::wire::guest::{self as gw, BodyType, MemberRole, MemberState, StreamEvent};
use crate::wire::messaging::{
    self as mw, ContentItem, Direction, EnvelopeType, EventItem, EventType, OriginatingEntity,
    OutgoingMessage, PresenceType, Request, ServerBody, ServerFrame, StructuredMessage, TypingType,
};
use crate::wire::{WireToken, time};

/// Messages per rolling second the vendor accepts per session.
pub const MESSAGES_PER_SECOND: usize = 2;
/// Added to the pacing window so network jitter cannot make two paced messages arrive
/// closer than the vendor's one second (INFERRED; see docs.md).
pub const PACING_MARGIN: Duration = Duration::from_millis(100);
/// Least time between two typing-start frames.
pub const TYPING_COOLDOWN: Duration = Duration::from_secs(5);
/// How long the agent's typing indicator shows when the vendor gives no duration.
pub const AGENT_TYPING_TIMEOUT: Duration = Duration::from_secs(4);
/// Web messaging: longest message text (INFERRED from the agent-side limit).
pub const MESSAGING_MAX_CHARS: usize = 4000;
/// Guest chat: longest message body.
pub const GUEST_MAX_CHARS: usize = 4000;
/// Web messaging: interval of the application-level `echo` keep-alive.
pub const ECHO_INTERVAL: Duration = Duration::from_secs(30);
/// Guest chat: a heartbeat is expected at least this often before the stream counts as dead.
pub const GUEST_STREAM_SILENCE: Duration = Duration::from_secs(65);
/// Metadata key carrying the client message id (INFERRED; see docs.md).
pub const CUSTOM_MESSAGE_ID: &str = "customMessageId";
/// Metadata key marking a filtered message (INFERRED; see docs.md).
pub const FILTERED: &str = "filtered";

/// What the engine asks the driver to do, or tells the app.
#[derive(Debug)]
pub enum Output {
    /// Send this text frame on the socket.
    Send(String),
    /// Publish this event.
    Event(Event),
    /// The reply to a request the driver is waiting for (by tracing id).
    Reply {
        /// The request's tracing id.
        tracing_id: String,
        /// The reply body or the error.
        result: Result<ServerBody, Error>,
    },
    /// Fetch the newest history page and pass it to `handle_history` (after a reconnect).
    Backfill,
    /// The server ended the connection for good: close the socket and do not reconnect.
    Close,
    /// Guest chat: send this HTTP request and pass the response to `handle_response`.
    Http(HttpCall),
    /// Guest chat: the stream may be stale (a request failed in transit): reconnect it.
    Reconnect,
    /// Guest chat: fetch this member (`GET .../members/{id}`) and pass it to `handle_member`.
    FetchMember(String),
}

/// The typing debouncer both transports use: a typing-start at most every
/// [`TYPING_COOLDOWN`], no stop signal (neither transport has one).
pub fn typing_debouncer() -> TypingDebouncer {
    TypingDebouncer::new(TypingConfig {
        resend_every: TYPING_COOLDOWN,
        idle_after: TYPING_COOLDOWN,
        send_stop: false,
    })
}

/// Registered pre-filters (`addPrefilter`): matching messages are hidden.
#[derive(Debug, Clone, Default)]
pub struct Prefilters(Vec<Regex>);

impl Prefilters {
    /// Adds patterns; fails naming the bad one.
    pub fn add(&mut self, patterns: &[impl AsRef<str>]) -> Result<Vec<String>, Error> {
        if patterns.is_empty() {
            return Err(Error::invalid(
                Vendor::Genesys,
                "filters",
                "no pattern given",
            ));
        }
        let mut new = Vec::new();
        for p in patterns.iter().map(AsRef::as_ref) {
            new.push(
                Regex::new(p).map_err(|e| {
                    Error::invalid(Vendor::Genesys, "filters", format!("`{p}`: {e}"))
                })?,
            );
        }
        self.0.extend(new);
        Ok(self.0.iter().map(|r| r.as_str().to_owned()).collect())
    }

    /// Whether `text` matches a filter.
    pub fn matches(&self, text: &str) -> bool {
        self.0.iter().any(|r| r.is_match(text))
    }

    /// Whether `content` is text that matches a filter (and so is hidden).
    pub fn hides(&self, content: &Content) -> bool {
        content.as_text().is_some_and(|t| self.matches(t))
    }
}

/// Why a customer's rich content is refused: a customer sends text.
fn rich_from_customer() -> Error {
    Error::invalid(
        Vendor::Genesys,
        "content",
        "a customer sends text; answer quick replies with their payload as text",
    )
}

/// The engagement ended.
fn ended(engagement: &EngagementId, initiator: Initiator, reason: &str) -> Event {
    Event::EngagementEnded {
        engagement: engagement.clone(),
        initiator,
        reason: Some(Arc::from(reason)),
    }
}

fn participant(role: Role, id: Option<&str>, name: Option<&str>) -> Participant {
    let mut p = Participant::new(role);
    p.id = id.map(Arc::from);
    p.display_name = name.map(str::to_owned);
    p
}

fn wall_ms() -> Timestamp {
    Timestamp::now()
}

/// A notice body: `{"kind", "payload"}` as JSON text, or any other text as a `notice`.
fn notice_of(body: &str) -> Content {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(o)) if o.contains_key("kind") => Content::Notice(cc_core::Notice {
            kind: o
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("notice")
                .to_owned(),
            payload: o.get("payload").cloned().unwrap_or(Value::Null),
        }),
        _ => Content::Notice(cc_core::Notice {
            kind: "notice".into(),
            payload: Value::String(body.to_owned()),
        }),
    }
}

/// The outbox both transports use: 2 messages per rolling second (one every 550 ms, which
/// with [`PACING_MARGIN`] keeps any second to two), retries for rate limits and transport
/// failures, echoes remembered for 30 s.
pub fn outbox_config() -> OutboxConfig {
    let window = Duration::from_secs(1) + PACING_MARGIN;
    OutboxConfig {
        max_attempts: 10,
        echo_window: Duration::from_secs(30),
        retry_backoff: Duration::from_secs(1),
        max_in_flight: None,
        ack_timeout: None,
        rate: Some(Rate::new(MESSAGES_PER_SECOND as u32, window).with_burst(1)),
    }
}

/// Queues the customer's message in `outbox` (hidden: kept out of the visible transcript).
fn queue(outbox: &mut Outbox, content: Content, hidden: bool, now: Instant) -> Message {
    let local = wall_ms();
    if hidden {
        outbox.push_hidden(content, local, now)
    } else {
        outbox.push(content, local, now)
    }
}

/// One step of draining the outbox.
enum Drained {
    /// Write this message now (the outbox already counts it written).
    Write(Box<cc_chat::outbox::Outgoing>),
    /// Messages in flight at a drop, settled with no history to compare against.
    Settled(ReconcileReport),
}

/// Drains what the outbox lets go now, in order; `wake` is set to when to drain again if
/// pacing holds messages back.
fn drain(outbox: &mut Outbox, wake: &mut Option<Instant>, now: Instant) -> Vec<Drained> {
    let mut steps = Vec::new();
    loop {
        match outbox.poll(now) {
            OutboxPoll::Send(out) => {
                outbox.on_written(out.client_id(), now);
                steps.push(Drained::Write(Box::new(out)));
            }
            OutboxPoll::WaitUntil(t) => {
                *wake = Some(t);
                return steps;
            }
            OutboxPoll::Reconcile => steps.push(Drained::Settled(outbox.reconcile(&[], now))),
            OutboxPoll::Idle => return steps,
        }
    }
}

/// The events of a reconcile report: each confirmed message (its server id now `seen`), then
/// each failure.
fn settled(seen: &mut HashSet<String>, report: ReconcileReport) -> Vec<Event> {
    let mut events = Vec::new();
    for m in report.confirmed {
        if let Some(id) = &m.id {
            seen.insert(id.to_string());
        }
        events.push(Event::MessageSent(Arc::new(m)));
    }
    events.extend(report.failed.iter().map(|f| f.event()));
    events
}

/// A server time (ISO-8601) as a timestamp.
fn server_time(iso: Option<&str>) -> Option<Timestamp> {
    iso.and_then(time::parse_ms).map(Timestamp)
}

/// When the server says a structured message was sent (`channel.time`).
fn sent_at(m: &StructuredMessage) -> Option<Timestamp> {
    server_time(m.channel.as_ref().and_then(|c| c.time.as_deref()))
}

/// Converts server content to the neutral model.
pub fn content_of(m: &StructuredMessage) -> Content {
    let text = m.text.clone().unwrap_or_default();
    let mut replies = Vec::new();
    for c in &m.content {
        match c.content_type.as_str() {
            "Attachment" => {
                if let Some(a) = &c.attachment {
                    return Content::File(Attachment {
                        id: Some(a.id.clone()),
                        name: a.filename.clone().unwrap_or_else(|| a.id.clone()),
                        mime_type: a
                            .mime
                            .clone()
                            .unwrap_or_else(|| "application/octet-stream".into()),
                        size: a.file_size,
                        url: a.url.clone(),
                    });
                }
            }
            "QuickReply" => {
                if let Some(q) = &c.quick_reply {
                    replies.push(Action {
                        label: q.text.clone(),
                        payload: q.payload.clone(),
                        url: None,
                    });
                }
            }
            "Card" => {
                if let Some(card) = &c.card {
                    return Content::Rich(RichContent::Card(card_of(card)));
                }
            }
            "Carousel" => {
                if let Some(car) = &c.carousel {
                    return Content::Rich(RichContent::Carousel {
                        cards: car.cards.iter().map(card_of).collect(),
                    });
                }
            }
            "ButtonResponse" => {
                if let Some(b) = &c.button_response {
                    return Content::Text(b.text.clone());
                }
            }
            _ => {}
        }
    }
    if replies.is_empty() {
        Content::Text(text)
    } else {
        Content::Rich(RichContent::QuickReplies { text, replies })
    }
}

fn card_of(c: &mw::CardWire) -> Card {
    Card {
        title: c.title.clone(),
        text: c.description.clone(),
        image_url: c.image.clone(),
        actions: c
            .actions
            .iter()
            .map(|a| Action {
                label: a.text.clone(),
                payload: a.payload.clone().unwrap_or_else(|| a.text.clone()),
                url: a.url.clone(),
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Web Messaging
// ---------------------------------------------------------------------------------------------

/// Where the web messaging session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessagingState {
    /// No socket.
    Disconnected,
    /// Socket open, `configureSession` sent.
    Configuring,
    /// Configured; `backfilling` while the history check after a reconnect runs.
    Configured {
        /// Waiting for `handle_history`.
        backfilling: bool,
    },
    /// The session is over for this token (cleared, expired, closed elsewhere).
    Finished,
}

/// The web messaging protocol engine.
#[derive(Debug)]
pub struct MessagingEngine {
    token: WireToken,
    deployment_id: String,
    engagement: EngagementId,
    customer: Participant,
    state: MessagingState,
    configured_once: bool,
    started: bool,
    ended: bool,
    read_only: bool,
    start_new: bool,
    session: Option<mw::SessionResponse>,
    outbox: Outbox,
    wake: Option<Instant>,
    seen: HashSet<String>,
    typing: TypingDebouncer,
    agent_typing: Option<(Instant, Arc<Participant>)>,
    agents: BTreeMap<String, Arc<Participant>>,
    requests: HashSet<String>,
    next_echo: Option<Instant>,
    prefilters: Prefilters,
    custom_attributes: BTreeMap<String, String>,
    out: VecDeque<Output>,
    counter: u64,
}

impl MessagingEngine {
    /// An engine for the session named by `token`.
    pub fn new(
        token: WireToken,
        deployment_id: impl Into<String>,
        engagement: EngagementId,
        customer: Participant,
    ) -> Self {
        let outbox = Outbox::new(
            Vendor::Genesys,
            engagement.clone(),
            customer.clone(),
            outbox_config(),
        );
        MessagingEngine {
            token,
            deployment_id: deployment_id.into(),
            engagement,
            customer,
            state: MessagingState::Disconnected,
            configured_once: false,
            started: false,
            ended: false,
            read_only: false,
            start_new: false,
            session: None,
            outbox,
            wake: None,
            seen: HashSet::new(),
            typing: typing_debouncer(),
            agent_typing: None,
            agents: BTreeMap::new(),
            requests: HashSet::new(),
            next_echo: None,
            prefilters: Prefilters::default(),
            custom_attributes: BTreeMap::new(),
            out: VecDeque::new(),
            counter: 0,
        }
    }

    /// The engagement id.
    pub fn engagement(&self) -> &EngagementId {
        &self.engagement
    }

    /// The state.
    pub fn state(&self) -> MessagingState {
        self.state
    }

    /// The last `SessionResponse`.
    pub fn session(&self) -> Option<&mw::SessionResponse> {
        self.session.as_ref()
    }

    /// Whether the chat ended (agent disconnect, clear, expiry).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the conversation was disconnected read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The agents seen so far, by name.
    pub fn agents(&self) -> Vec<Participant> {
        self.agents.values().map(|p| (**p).clone()).collect()
    }

    /// Messages accepted but not yet acknowledged by the server.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.pending_len()
    }

    /// The pre-filters.
    pub fn prefilters_mut(&mut self) -> &mut Prefilters {
        &mut self.prefilters
    }

    /// The custom attributes sent with the next message (`updateUserData`).
    pub fn set_custom_attributes(&mut self, attrs: BTreeMap<String, String>) {
        self.custom_attributes.extend(attrs);
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn send(&mut self, r: &Request) {
        self.out.push_back(Output::Send(r.to_json()));
    }

    fn next_tracing_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// The socket opened: configure the session.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state == MessagingState::Finished {
            return;
        }
        self.state = MessagingState::Configuring;
        let start_new = std::mem::take(&mut self.start_new);
        let tracing_id = Some(self.next_tracing_id("configure"));
        self.send(&Request::ConfigureSession {
            token: self.token.clone(),
            deployment_id: self.deployment_id.clone(),
            start_new: Some(start_new),
            journey_context: None,
            tracing_id,
        });
        self.next_echo = Some(now + ECHO_INTERVAL);
    }

    /// The socket dropped: messages in flight wait for the history check after reconnect.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        if self.state != MessagingState::Finished {
            self.state = MessagingState::Disconnected;
        }
        self.outbox.on_disconnected();
        self.next_echo = None;
        for id in std::mem::take(&mut self.requests) {
            self.out.push_back(Output::Reply {
                tracing_id: id,
                result: Err(Error::closed(Vendor::Genesys, "web messaging socket")),
            });
        }
    }

    /// Asks to start a new conversation at the next configure (after a read-only end).
    pub fn request_start_new(&mut self) {
        self.start_new = true;
    }

    /// Starts the conversation: Presence `Join` with the custom attributes.
    pub fn start(&mut self, _now: Instant, attributes: BTreeMap<String, String>) {
        if self.read_only {
            // After a read-only disconnect only `startNew` opens a new conversation.
            self.read_only = false;
            let tracing_id = Some(self.next_tracing_id("configure"));
            self.send(&Request::ConfigureSession {
                token: self.token.clone(),
                deployment_id: self.deployment_id.clone(),
                start_new: Some(true),
                journey_context: None,
                tracing_id,
            });
        }
        self.custom_attributes.extend(attributes);
        let mut msg = OutgoingMessage::event(EventItem::presence(PresenceType::Join));
        if !self.custom_attributes.is_empty() {
            msg.channel = Some(mw::OutgoingChannel {
                metadata: mw::ChannelMetadata {
                    custom_attributes: std::mem::take(&mut self.custom_attributes),
                },
            });
        }
        let tracing_id = Some(self.next_tracing_id("join"));
        self.send(&Request::OnMessage {
            token: self.token.clone(),
            message: msg,
            tracing_id,
        });
        self.started = true;
        self.ended = false;
    }

    /// Queues a message in the outbox; it goes out as pacing allows. Text, or a file
    /// already uploaded (its attachment id in [`cc_core::Attachment::id`]).
    pub fn send_message(
        &mut self,
        now: Instant,
        content: Content,
        hidden: bool,
    ) -> Result<Message, Error> {
        if self.state == MessagingState::Finished {
            return Err(Error::closed(Vendor::Genesys, "web messaging session"));
        }
        match &content {
            Content::Text(t) => {
                let n = t.chars().count();
                if n > MESSAGING_MAX_CHARS {
                    return Err(Error::invalid(
                        Vendor::Genesys,
                        "content.text",
                        format!("{n} characters, more than {MESSAGING_MAX_CHARS}"),
                    ));
                }
            }
            Content::File(a) if a.id.is_some() => {}
            Content::File(_) => {
                return Err(Error::invalid(
                    Vendor::Genesys,
                    "content",
                    "files go through upload()",
                ));
            }
            Content::Rich(_) => {
                return Err(rich_from_customer());
            }
            Content::Notice(_) => {
                return Err(Error::unsupported(
                    Vendor::Genesys,
                    cc_core::Feature::CustomNotices,
                ));
            }
        }
        let message = queue(&mut self.outbox, content, hidden, now);
        self.typing.on_sent(now);
        self.pump(now);
        Ok(message)
    }

    /// The `onMessage` body of an outbox message.
    fn wire_message(&mut self, m: &Message) -> OutgoingMessage {
        let (text, attachment) = match &m.content {
            Content::Text(t) => (t.clone(), None),
            Content::File(a) => (String::new(), a.id.clone()),
            _ => (String::new(), None),
        };
        let mut message = OutgoingMessage::text(text);
        if let Some(id) = attachment {
            message
                .content
                .push(ContentItem::attachment(mw::AttachmentWire {
                    id,
                    url: None,
                    filename: None,
                    file_size: None,
                    media_type: None,
                    mime: None,
                }));
        }
        if let Some(c) = m.client_id {
            message
                .metadata
                .insert(CUSTOM_MESSAGE_ID.into(), c.to_string());
        }
        if m.hidden {
            message.metadata.insert(FILTERED.into(), "true".into());
        }
        if !self.custom_attributes.is_empty() {
            message.channel = Some(mw::OutgoingChannel {
                metadata: mw::ChannelMetadata {
                    custom_attributes: std::mem::take(&mut self.custom_attributes),
                },
            });
        }
        message
    }

    fn can_send(&self) -> bool {
        self.state == MessagingState::Configured { backfilling: false }
    }

    fn pump(&mut self, now: Instant) {
        self.wake = None;
        if !self.can_send() {
            return;
        }
        // Uncertain messages are settled against history in `handle_history`; one settled
        // here had none to look at.
        for step in drain(&mut self.outbox, &mut self.wake, now) {
            match step {
                Drained::Write(out) => {
                    let message = self.wire_message(&out.message);
                    self.send(&Request::OnMessage {
                        token: self.token.clone(),
                        message,
                        tracing_id: Some(out.client_id().to_string()),
                    });
                }
                Drained::Settled(report) => self.reconciled(report),
            }
        }
    }

    fn reconciled(&mut self, report: ReconcileReport) {
        for e in settled(&mut self.seen, report) {
            self.emit(e);
        }
    }

    fn send_failed(&mut self, client_id: ClientMessageId, err: Error, now: Instant) {
        match self.outbox.on_send_error(client_id, err, now) {
            SendErrorOutcome::Failed(f) => self.emit(f.event()),
            SendErrorOutcome::Retry(_) | SendErrorOutcome::Unknown => {}
        }
    }

    /// Typing started; returns whether a frame went out (the cool-down may swallow it).
    pub fn typing(&mut self, now: Instant) -> bool {
        if !self.can_send() || !self.typing.on_input(now) {
            return false;
        }
        let tracing_id = Some(self.next_tracing_id("typing"));
        self.send(&Request::OnMessage {
            token: self.token.clone(),
            message: OutgoingMessage::event(EventItem::typing_on(None)),
            tracing_id,
        });
        true
    }

    /// Sends a request whose reply the driver waits for; returns its tracing id.
    pub fn request(
        &mut self,
        make: impl FnOnce(WireToken, Option<String>) -> Request,
    ) -> Result<String, Error> {
        if !matches!(self.state, MessagingState::Configured { .. }) {
            return Err(Error::closed(Vendor::Genesys, "web messaging socket"));
        }
        let id = self.next_tracing_id("req");
        let r = make(self.token.clone(), Some(id.clone()));
        self.requests.insert(id.clone());
        self.send(&r);
        Ok(id)
    }

    /// Clears the conversation (Presence `Clear`), as `endChat`.
    /// Allowed while history is still being read after a resume (`backfilling`): only
    /// messages wait for the backfill, which decides what was already delivered.
    pub fn clear(&mut self) -> Result<(), Error> {
        if !matches!(self.state, MessagingState::Configured { .. }) {
            return Err(Error::closed(Vendor::Genesys, "web messaging socket"));
        }
        let tracing_id = Some(self.next_tracing_id("clear"));
        self.send(&Request::OnMessage {
            token: self.token.clone(),
            message: OutgoingMessage::event(EventItem::presence(PresenceType::Clear)),
            tracing_id,
        });
        Ok(())
    }

    /// The next deadline.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |y: Instant| y.min(x)));
        let _ = now;
        if let Some(w) = self.wake {
            consider(w);
        }
        if let Some((at, _)) = &self.agent_typing {
            consider(*at);
        }
        if let Some(e) = self.next_echo {
            consider(e);
        }
        t
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, p)) = &self.agent_typing
            && *at <= now
        {
            let participant = p.clone();
            self.agent_typing = None;
            self.emit(Event::Typing {
                engagement: self.engagement.clone(),
                participant,
                on: false,
            });
        }
        if let Some(e) = self.next_echo
            && e <= now
            && self.can_send()
        {
            self.next_echo = Some(now + ECHO_INTERVAL);
            let tracing_id = Some(self.next_tracing_id("echo"));
            self.send(&Request::Echo {
                token: self.token.clone(),
                message: OutgoingMessage::text("ping"),
                tracing_id,
            });
        }
        self.pump(now);
    }

    /// A text frame arrived.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        match ServerFrame::decode(text) {
            Ok(f) => self.handle_frame(now, f),
            Err(e) => self.emit(Event::error(e.into_error())),
        }
    }

    fn handle_frame(&mut self, now: Instant, f: ServerFrame) {
        let tracing = f.tracing_id.clone();
        if let Some(t) = &tracing
            && self.requests.remove(t)
        {
            let result = match f.body {
                ServerBody::Error { message } => Err(error::messaging(f.code, &message, None)),
                ServerBody::GenerateUrlError(e) => {
                    Err(error::messaging(e.error_code, &e.error_message, None))
                }
                ServerBody::TooManyRequests(t) => Err(error::messaging(
                    t.error_code,
                    &t.error_message,
                    Some(Duration::from_secs(t.retry_after)),
                )),
                other => Ok(other),
            };
            self.out.push_back(Output::Reply {
                tracing_id: tracing.expect("checked above"),
                result,
            });
            return;
        }
        match f.body {
            ServerBody::Session(s) => self.on_session(now, s),
            ServerBody::Message(m) => {
                if f.kind == EnvelopeType::Response
                    && m.text.as_deref() == Some("ping")
                    && tracing.as_deref().is_some_and(|t| t.starts_with("echo-"))
                {
                    return; // echo reply
                }
                self.on_message(now, tracing, *m);
            }
            ServerBody::TooManyRequests(t) => {
                // Queue, don't drop: the message goes again after `retryAfter`.
                let wait = Duration::from_secs(t.retry_after.max(1));
                let err = || error::messaging(t.error_code, &t.error_message, Some(wait));
                if let Some(id) = tracing.as_deref().and_then(|t| t.parse().ok()) {
                    self.send_failed(id, err(), now);
                }
                self.emit(Event::error(err()));
                self.pump(now);
            }
            ServerBody::Error { message } => self.on_error(now, tracing, f.code, &message),
            ServerBody::SessionExpired => {
                self.finish(Initiator::System, "session expired");
                self.emit(Event::TokenExpired);
            }
            ServerBody::SessionCleared => self.finish(Initiator::Customer, "session cleared"),
            ServerBody::ConnectionClosed(c) => {
                self.emit(Event::Vendor {
                    vendor: Vendor::Genesys,
                    name: Arc::from("ConnectionClosedEvent"),
                    payload: Arc::new(serde_json::json!({ "reason": c.reason })),
                });
                self.state = MessagingState::Finished;
                self.out.push_back(Output::Close);
            }
            ServerBody::Logout => {
                self.emit(Event::Vendor {
                    vendor: Vendor::Genesys,
                    name: Arc::from("LogoutEvent"),
                    payload: Arc::new(Value::Null),
                });
                self.state = MessagingState::Finished;
                self.out.push_back(Output::Close);
            }
            ServerBody::UploadSuccess(_)
            | ServerBody::UploadFailure(_)
            | ServerBody::PresignedUrl(_)
            | ServerBody::AttachmentDeleted(_)
            | ServerBody::GenerateUrlError(_)
            | ServerBody::Jwt(_) => {
                // Upload events are pushes keyed by attachment id, not by tracing id.
                self.out.push_back(Output::Reply {
                    tracing_id: String::new(),
                    result: Ok(f.body),
                });
            }
            ServerBody::Unknown { class, body } => self.emit(Event::Vendor {
                vendor: Vendor::Genesys,
                name: Arc::from(class.as_str()),
                payload: Arc::new(body),
            }),
        }
    }

    fn finish(&mut self, initiator: Initiator, reason: &str) {
        self.state = MessagingState::Finished;
        if !self.ended {
            self.ended = true;
            self.emit(ended(&self.engagement, initiator, reason));
        }
        self.out.push_back(Output::Close);
    }

    fn on_session(&mut self, now: Instant, s: mw::SessionResponse) {
        if !s.connected {
            self.session = Some(s);
            return;
        }
        let reconnect = self.configured_once;
        self.configured_once = true;
        self.read_only = s.read_only.unwrap_or(false);
        let resumed = s.new_session == Some(false);
        self.session = Some(s);
        // Resuming a session (restart, reconnect) never replays on the socket: check history.
        let backfill = reconnect || resumed;
        self.state = MessagingState::Configured {
            backfilling: backfill,
        };
        if !reconnect && resumed {
            self.started = true;
            self.emit(Event::EngagementStarted {
                engagement: self.engagement.clone(),
                resumed: true,
            });
        }
        if backfill {
            self.out.push_back(Output::Backfill);
        } else {
            self.outbox.on_connected();
            self.pump(now);
        }
    }

    /// The newest history page after a (re)connect: settles the messages that were in
    /// flight at the drop (found there by `customMessageId`: acknowledged; not found: sent
    /// again), reports agent messages missed while away, then releases the outbox.
    pub fn handle_history(&mut self, now: Instant, page: Option<mw::HistoryPage>) {
        let mut entities = page.map(|p| p.entities).unwrap_or_default();
        entities.sort_by_key(|m| {
            m.channel
                .as_ref()
                .and_then(|c| c.time.as_deref())
                .and_then(time::parse_ms)
                .unwrap_or(i64::MAX)
        });
        if self.state == (MessagingState::Configured { backfilling: true }) {
            self.state = MessagingState::Configured { backfilling: false };
        }
        if self.can_send() {
            self.outbox.on_connected();
        }
        if self.can_send() && self.outbox.has_uncertain() {
            let own: Vec<Message> = entities
                .iter()
                .filter(|m| {
                    m.direction == Some(Direction::Inbound) && m.kind != mw::MessageType::Event
                })
                .map(|m| self.own_message(None, m))
                .collect();
            let report = self.outbox.reconcile(&own, now);
            self.reconciled(report);
        }
        for m in entities {
            self.on_message(now, None, m);
        }
        self.pump(now);
    }

    /// One of the guest's own messages as the server shows it.
    fn own_message(&self, tracing: Option<&str>, m: &StructuredMessage) -> Message {
        let client_id = tracing
            .and_then(|t| t.parse().ok())
            .or_else(|| m.meta(CUSTOM_MESSAGE_ID).and_then(|c| c.parse().ok()));
        let content = content_of(m);
        let hidden = m.meta(FILTERED) == Some("true") || self.prefilters.hides(&content);
        Message {
            id: m.id.clone().map(MessageId::from),
            client_id,
            engagement: self.engagement.clone(),
            sender: self.customer.clone(),
            content,
            server_time: sent_at(m),
            local_time: wall_ms(),
            state: DeliveryState::Sent,
            hidden,
        }
    }

    fn on_error(&mut self, now: Instant, tracing: Option<String>, code: i64, message: &str) {
        let err = error::messaging(code, message, None);
        if let Some(id) = tracing
            .as_deref()
            .and_then(|t| t.parse::<ClientMessageId>().ok())
            && self.outbox.get(id).is_some()
        {
            self.send_failed(id, err, now);
            return;
        }
        if matches!(code, 4006 | 4007) {
            self.emit(Event::error(err));
            self.finish(
                Initiator::System,
                if code == 4006 {
                    "session expired"
                } else {
                    "session not found"
                },
            );
            self.emit(Event::TokenExpired);
            return;
        }
        self.emit(Event::error(err));
    }

    fn on_message(&mut self, now: Instant, tracing: Option<String>, m: StructuredMessage) {
        let server_time = sent_at(&m);
        if m.kind == mw::MessageType::Event || (!m.events.is_empty() && m.text.is_none()) {
            self.on_events(now, &m);
            return;
        }
        if let Some(id) = &m.id
            && !self.seen.insert(id.clone())
        {
            return; // duplicate (history backfill, redelivery)
        }
        match m.direction {
            Some(Direction::Inbound) => {
                let msg = self.own_message(tracing.as_deref(), &m);
                match self.outbox.on_echo(&msg, now) {
                    EchoMatch::Confirmed(c) => self.emit(Event::MessageSent(Arc::new(c))),
                    EchoMatch::AlreadyConfirmed(_) => {}
                    // Another device on the same token, or an earlier session: the
                    // transcript dedupes by id.
                    EchoMatch::Unmatched => self.emit(Event::MessageSent(Arc::new(msg))),
                }
            }
            Some(Direction::Outbound) | Some(Direction::Unknown) | None => {
                let sender = self.agent_of(&m);
                if let Some((_, p)) = &self.agent_typing
                    && p.display_name == sender.display_name
                {
                    let participant = p.clone();
                    self.agent_typing = None;
                    self.emit(Event::Typing {
                        engagement: self.engagement.clone(),
                        participant,
                        on: false,
                    });
                }
                let content = content_of(&m);
                let hidden = self.prefilters.hides(&content);
                let msg = Message {
                    id: m.id.clone().map(MessageId::from),
                    client_id: None,
                    engagement: self.engagement.clone(),
                    sender: (*sender).clone(),
                    content,
                    server_time,
                    local_time: wall_ms(),
                    state: DeliveryState::Delivered,
                    hidden,
                };
                self.emit(Event::MessageReceived(Arc::new(msg)));
            }
        }
    }

    fn agent_of(&mut self, m: &StructuredMessage) -> Arc<Participant> {
        let role = match m.originating_entity {
            Some(OriginatingEntity::Bot) => Role::Bot,
            _ => Role::Agent,
        };
        let name = m
            .channel
            .as_ref()
            .and_then(|c| c.from.as_ref())
            .and_then(|f| f.nickname.clone());
        let key = name.clone().unwrap_or_else(|| format!("{role:?}"));
        if let Some(p) = self.agents.get(&key) {
            return p.clone();
        }
        let p = Arc::new(participant(role, Some(&key), name.as_deref()));
        self.agents.insert(key, p.clone());
        if role == Role::Agent && name.is_some() {
            self.emit(Event::ParticipantJoined {
                engagement: self.engagement.clone(),
                participant: p.clone(),
            });
        }
        p
    }

    fn on_events(&mut self, now: Instant, m: &StructuredMessage) {
        let outbound = m.direction != Some(Direction::Inbound);
        for e in &m.events {
            match (e.event_type, outbound) {
                (EventType::Typing, true) => {
                    let sender = self.agent_of(m);
                    let on = e.typing.as_ref().is_none_or(|t| t.kind != TypingType::Off);
                    if on {
                        let d = e
                            .typing
                            .as_ref()
                            .and_then(|t| t.duration)
                            .map_or(AGENT_TYPING_TIMEOUT, Duration::from_millis);
                        self.agent_typing = Some((now + d, sender.clone()));
                    } else {
                        self.agent_typing = None;
                    }
                    self.emit(Event::Typing {
                        engagement: self.engagement.clone(),
                        participant: sender,
                        on,
                    });
                }
                (EventType::Presence, true) => {
                    let kind = e.presence.as_ref().map(|p| p.kind);
                    if kind == Some(PresenceType::Disconnect) {
                        if let Some(id) = &m.id
                            && !self.seen.insert(id.clone())
                        {
                            continue;
                        }
                        if m.meta("readOnly") == Some("true") {
                            self.read_only = true;
                        }
                        for p in std::mem::take(&mut self.agents).into_values() {
                            if p.role == Role::Agent {
                                self.emit(Event::ParticipantLeft {
                                    engagement: self.engagement.clone(),
                                    participant: p,
                                });
                            }
                        }
                        if !self.ended {
                            self.ended = true;
                            let reason = if self.read_only {
                                "disconnected (read-only)"
                            } else {
                                "disconnected"
                            };
                            self.emit(ended(&self.engagement, Initiator::Agent, reason));
                        }
                    } else if kind == Some(PresenceType::Join) {
                        // An agent (or bot) announced on the channel.
                        if let Some(id) = &m.id
                            && !self.seen.insert(id.clone())
                        {
                            continue;
                        }
                        self.agent_of(m);
                    } else {
                        self.emit(Event::Vendor {
                            vendor: Vendor::Genesys,
                            name: Arc::from("Presence"),
                            payload: Arc::new(serde_json::to_value(e).unwrap_or(Value::Null)),
                        });
                    }
                }
                (EventType::Typing | EventType::Presence, false) => {} // own echoes
                _ => self.emit(Event::Vendor {
                    vendor: Vendor::Genesys,
                    name: Arc::from("Event"),
                    payload: Arc::new(serde_json::to_value(e).unwrap_or(Value::Null)),
                }),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Guest chat v2
// ---------------------------------------------------------------------------------------------

/// An HTTP call the guest chat engine asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpCall {
    /// A number to pair the response with.
    pub id: u64,
    /// `GET`, `POST`, `DELETE`.
    pub method: &'static str,
    /// Path and query under the REST base.
    pub path: String,
    /// JSON body.
    pub body: Option<Value>,
    /// What the call is for.
    pub purpose: Purpose,
}

/// What a guest chat HTTP call is for.
#[derive(Clone, Debug, PartialEq)]
pub enum Purpose {
    /// Sending a message.
    Message(ClientMessageId),
    /// Typing.
    Typing,
    /// Leaving (ending) the chat.
    Leave,
    /// Backfilling history after a reconnect.
    Backfill,
}

/// The guest chat v2 protocol engine (one conversation).
#[derive(Debug)]
pub struct GuestEngine {
    conversation: String,
    member: String,
    engagement: EngagementId,
    customer: Participant,
    outbox: Outbox,
    wake: Option<Instant>,
    seen: HashSet<String>,
    last_seen: Option<String>,
    typing: TypingDebouncer,
    agent_typing: HashMap<String, (Instant, Arc<Participant>)>,
    members: HashMap<String, (MemberState, Arc<Participant>)>,
    prefilters: Prefilters,
    ended: bool,
    connected: bool,
    backfilling: bool,
    leaving: bool,
    last_heard: Option<Instant>,
    next_id: u64,
    out: VecDeque<Output>,
}

impl GuestEngine {
    /// An engine for the conversation the create call returned.
    pub fn new(conversation: String, member: String, customer: Participant) -> Self {
        let outbox = Outbox::new(
            Vendor::Genesys,
            EngagementId::from(conversation.as_str()),
            customer.clone(),
            outbox_config(),
        );
        GuestEngine {
            engagement: EngagementId::from(conversation.as_str()),
            conversation,
            member,
            customer,
            outbox,
            wake: None,
            seen: HashSet::new(),
            last_seen: None,
            typing: typing_debouncer(),
            agent_typing: HashMap::new(),
            members: HashMap::new(),
            prefilters: Prefilters::default(),
            ended: false,
            connected: false,
            backfilling: false,
            leaving: false,
            last_heard: None,
            next_id: 0,
            out: VecDeque::new(),
        }
    }

    /// The engagement id (the conversation id).
    pub fn engagement(&self) -> &EngagementId {
        &self.engagement
    }

    /// The guest's member id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Whether the chat ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The agents currently connected.
    pub fn agents(&self) -> Vec<Participant> {
        self.members
            .values()
            .filter(|(s, p)| *s == MemberState::Connected && p.role == Role::Agent)
            .map(|(_, p)| (**p).clone())
            .collect()
    }

    /// The pre-filters.
    pub fn prefilters_mut(&mut self) -> &mut Prefilters {
        &mut self.prefilters
    }

    /// Next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn base(&self) -> String {
        format!("{}/conversations/{}", gw::BASE_PATH, self.conversation)
    }

    fn call(
        &mut self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        purpose: Purpose,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.out.push_back(Output::Http(HttpCall {
            id,
            method,
            path,
            body,
            purpose,
        }));
        id
    }

    /// The event stream opened (first time or after a reconnect).
    pub fn handle_connected(&mut self, now: Instant) {
        let reconnect = self.last_heard.is_some();
        self.connected = true;
        self.last_heard = Some(now);
        if !reconnect {
            self.outbox.on_connected();
            self.pump(now);
        } else {
            self.backfilling = true;
            let q = match &self.last_seen {
                Some(id) => format!("?after={id}&maxResults=100"),
                None => "?maxResults=100".into(),
            };
            let path = format!("{}/messages{q}", self.base());
            self.call("GET", path, None, Purpose::Backfill);
        }
    }

    /// The event stream dropped: sends wait for the reconnect.
    pub fn handle_disconnected(&mut self) {
        self.connected = false;
        self.outbox.on_disconnected();
    }

    /// The JWT was refused (the event stream's upgrade, a REST call): the chat cannot go on.
    pub fn handle_token_expired(&mut self) {
        self.emit(Event::TokenExpired);
        self.end(Initiator::System, "credentials expired");
    }

    /// Restores a chat after an app restart from its history (oldest first). The next
    /// stream connect backfills what arrived after it.
    pub fn restore(&mut self, now: Instant, history: Vec<gw::WebChatMessage>) {
        for m in history {
            self.on_message(now, m);
        }
        self.last_heard = Some(now);
    }

    /// Queues a message in the outbox (`bodyType` standard, or notice for
    /// [`Content::Notice`]); it is posted as pacing allows.
    pub fn send_message(
        &mut self,
        now: Instant,
        content: Content,
        hidden: bool,
    ) -> Result<Message, Error> {
        if self.ended {
            return Err(Error::closed(Vendor::Genesys, "guest chat"));
        }
        let body = Self::body_of(&content)?;
        let n = body.body.as_deref().unwrap_or_default().chars().count();
        if n > GUEST_MAX_CHARS {
            return Err(Error::invalid(
                Vendor::Genesys,
                "content.text",
                format!("{n} characters, more than {GUEST_MAX_CHARS}"),
            ));
        }
        let message = queue(&mut self.outbox, content, hidden, now);
        self.typing.on_sent(now);
        self.pump(now);
        Ok(message)
    }

    fn body_of(content: &Content) -> Result<gw::SendMessageRequest, Error> {
        Ok(match content {
            Content::Text(t) => gw::SendMessageRequest {
                body: Some(t.clone()),
                body_type: Some(BodyType::Standard),
            },
            Content::Notice(n) => gw::SendMessageRequest {
                body: Some(serde_json::json!({"kind": n.kind, "payload": n.payload}).to_string()),
                body_type: Some(BodyType::Notice),
            },
            Content::File(_) => {
                return Err(Error::unsupported(
                    Vendor::Genesys,
                    cc_core::Feature::Attachments,
                ));
            }
            Content::Rich(_) => {
                return Err(rich_from_customer());
            }
        })
    }

    fn pump(&mut self, now: Instant) {
        self.wake = None;
        if !self.connected || self.backfilling || self.ended {
            return;
        }
        for step in drain(&mut self.outbox, &mut self.wake, now) {
            match step {
                Drained::Write(out) => {
                    let path = format!("{}/members/{}/messages", self.base(), self.member);
                    let body = Self::body_of(&out.message.content)
                        .ok()
                        .and_then(|b| serde_json::to_value(&b).ok());
                    self.call("POST", path, body, Purpose::Message(out.client_id()));
                }
                Drained::Settled(report) => self.reconciled(report),
            }
        }
    }

    fn reconciled(&mut self, report: ReconcileReport) {
        for e in settled(&mut self.seen, report) {
            self.emit(e);
        }
    }

    /// Typing started; returns whether a call went out.
    pub fn typing(&mut self, now: Instant) -> bool {
        if self.ended || !self.typing.on_input(now) {
            return false;
        }
        let path = format!("{}/members/{}/typing", self.base(), self.member);
        self.call("POST", path, None, Purpose::Typing);
        true
    }

    /// Leaves the chat (`DELETE members/{self}`).
    pub fn leave(&mut self) -> u64 {
        self.leaving = true;
        let path = format!("{}/members/{}", self.base(), self.member);
        self.call("DELETE", path, None, Purpose::Leave)
    }

    /// The next deadline.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let _ = now;
        let t = self.agent_typing.values().map(|(at, _)| *at).min();
        match (t, self.wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the stream has been silent too long (no heartbeat): the driver reconnects.
    pub fn stream_is_stale(&self, now: Instant) -> bool {
        self.connected
            && self
                .last_heard
                .is_some_and(|h| now.duration_since(h) > GUEST_STREAM_SILENCE)
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .agent_typing
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some((_, p)) = self.agent_typing.remove(&k) {
                self.emit(Event::Typing {
                    engagement: self.engagement.clone(),
                    participant: p,
                    on: false,
                });
            }
        }
        self.pump(now);
    }

    /// The response to an [`HttpCall`]: `Ok(body)` on 2xx, `Err` mapped by the error table.
    pub fn handle_response(&mut self, now: Instant, call: &HttpCall, result: Result<Value, Error>) {
        match (&call.purpose, result) {
            (Purpose::Message(client_id), Ok(v)) => {
                match serde_json::from_value::<gw::WebChatMessage>(v) {
                    Ok(m) => {
                        let time = server_time(m.timestamp.as_deref());
                        self.seen.insert(m.id.clone());
                        self.last_seen = Some(m.id.clone());
                        let id = Some(MessageId::from(m.id));
                        if let Some(msg) = self.outbox.on_acked(*client_id, id, time, now) {
                            self.emit(Event::MessageSent(Arc::new(msg)));
                        }
                    }
                    Err(e) => self.emit(Event::error(Error::protocol(
                        Vendor::Genesys,
                        "guest chat message response",
                        e.to_string(),
                    ))),
                }
            }
            (Purpose::Message(client_id), Err(e)) => {
                if e.kind() == cc_core::ErrorKind::Transport {
                    // The POST may have reached the server: treat it like a drop, and settle it
                    // against the history after the stream reconnects.
                    self.outbox.on_disconnected();
                    self.connected = false;
                    self.out.push_back(Output::Reconnect);
                    self.emit(Event::error(e));
                } else {
                    if matches!(
                        e.vendor_code(),
                        Some("chat.error.conversation.state" | "chat.error.member.state")
                    ) {
                        self.end(Initiator::System, "conversation no longer active");
                    }
                    if e.vendor_code() == Some("credentials.expired") {
                        // The JWT lasts about a day and cannot be refreshed on this API.
                        self.emit(Event::TokenExpired);
                    }
                    match self.outbox.on_send_error(*client_id, e, now) {
                        SendErrorOutcome::Failed(f) => self.emit(f.event()),
                        SendErrorOutcome::Retry(_) | SendErrorOutcome::Unknown => {}
                    }
                }
            }
            (Purpose::Backfill, r) => {
                match r.and_then(|v| {
                    serde_json::from_value::<gw::MessageEntityList>(v).map_err(|e| {
                        Error::protocol(Vendor::Genesys, "guest chat history", e.to_string())
                    })
                }) {
                    Ok(list) => {
                        self.settle(now, &list.entities);
                        for m in list.entities {
                            self.on_message(now, m);
                        }
                    }
                    Err(e) => {
                        self.settle(now, &[]);
                        self.emit(Event::error(e));
                    }
                }
                self.backfilling = false;
            }
            (Purpose::Leave, Ok(_)) => self.end(Initiator::Customer, "customer left"),
            (Purpose::Typing, Ok(_)) => {}
            (_, Err(e)) => {
                let expired = e.vendor_code() == Some("credentials.expired");
                self.emit(Event::error(e));
                if expired {
                    self.emit(Event::TokenExpired);
                }
            }
        }
        self.pump(now);
    }

    /// After a reconnect: messages in flight at the drop are confirmed when the history
    /// shows them (same content, close in time), else sent again.
    fn settle(&mut self, now: Instant, history: &[gw::WebChatMessage]) {
        self.outbox.on_connected();
        if self.outbox.has_uncertain() {
            let own: Vec<Message> = history
                .iter()
                .filter(|m| m.sender.id.as_deref() == Some(self.member.as_str()))
                .filter(|m| matches!(m.body_type, BodyType::Standard | BodyType::Notice))
                .map(|m| self.own_message(m))
                .collect();
            let report = self.outbox.reconcile(&own, now);
            self.reconciled(report);
        }
    }

    fn own_message(&self, m: &gw::WebChatMessage) -> Message {
        let content = match m.body_type {
            BodyType::Notice => notice_of(&m.body),
            _ => Content::Text(m.body.clone()),
        };
        let hidden = self.prefilters.hides(&content);
        Message {
            id: Some(MessageId::from(m.id.clone())),
            client_id: None,
            engagement: self.engagement.clone(),
            sender: self.customer.clone(),
            content,
            server_time: server_time(m.timestamp.as_deref()),
            local_time: wall_ms(),
            state: DeliveryState::Sent,
            hidden,
        }
    }

    fn end(&mut self, initiator: Initiator, reason: &str) {
        if !self.ended {
            self.ended = true;
            for f in self
                .outbox
                .close(Error::closed(Vendor::Genesys, "guest chat"))
            {
                self.emit(f.event());
            }
            self.emit(ended(&self.engagement, initiator, reason));
        }
    }

    /// The guest's own message seen on the stream or in history.
    fn on_own_message(&mut self, now: Instant, m: gw::WebChatMessage) {
        let msg = self.own_message(&m);
        match self.outbox.on_echo(&msg, now) {
            EchoMatch::Confirmed(c) => {
                self.seen.insert(m.id.clone());
                self.last_seen = Some(m.id);
                self.emit(Event::MessageSent(Arc::new(c)));
            }
            EchoMatch::AlreadyConfirmed(_) => {
                self.seen.insert(m.id.clone());
                self.last_seen = Some(m.id);
            }
            EchoMatch::Unmatched => {
                if self.seen.insert(m.id.clone()) {
                    self.last_seen = Some(m.id);
                    self.emit(Event::MessageSent(Arc::new(msg)));
                }
            }
        }
    }

    /// An event-stream text frame arrived.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        self.last_heard = Some(now);
        match StreamEvent::decode(text) {
            Ok(ev) => self.handle_event(now, ev),
            Err(e) => self.emit(Event::error(e.into_error())),
        }
    }

    fn handle_event(&mut self, now: Instant, ev: StreamEvent) {
        match ev {
            StreamEvent::Heartbeat | StreamEvent::Pong => {}
            StreamEvent::Message(m) => self.on_message(now, m),
            StreamEvent::Typing(t) => {
                if t.sender.id.as_deref() == Some(self.member.as_str()) {
                    return; // own typing echo
                }
                let id = t.sender.id.unwrap_or_default();
                let p = self.participant_of(&id);
                self.agent_typing
                    .insert(id, (now + AGENT_TYPING_TIMEOUT, p.clone()));
                self.emit(Event::Typing {
                    engagement: self.engagement.clone(),
                    participant: p,
                    on: true,
                });
            }
            StreamEvent::MemberChange(c) => self.on_member_change(c),
            StreamEvent::Unknown { topic, kind, body } => self.emit(Event::Vendor {
                vendor: Vendor::Genesys,
                name: Arc::from(kind.unwrap_or(topic).as_str()),
                payload: Arc::new(body),
            }),
        }
    }

    fn participant_of(&self, id: &str) -> Arc<Participant> {
        self.members
            .get(id)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| Arc::new(participant(Role::Agent, Some(id), None)))
    }

    fn on_member_change(&mut self, c: gw::MemberChange) {
        let id = c.member.id.clone().unwrap_or_default();
        let state = c.member.state.unwrap_or(MemberState::Unknown);
        if id == self.member {
            if state == MemberState::Disconnected {
                if self.leaving {
                    self.end(Initiator::Customer, "customer left");
                } else {
                    self.end(Initiator::Agent, "guest disconnected");
                }
            }
            return;
        }
        match state {
            MemberState::Connected | MemberState::Alerting => {
                self.out.push_back(Output::FetchMember(id));
            }
            MemberState::Disconnected => {
                if let Some((_, p)) = self.members.remove(&id)
                    && p.role != Role::System
                {
                    self.agent_typing.remove(&id);
                    self.emit(Event::ParticipantLeft {
                        engagement: self.engagement.clone(),
                        participant: p,
                    });
                }
            }
            MemberState::Unknown => {}
        }
    }

    /// A member's details, fetched after a member change.
    pub fn handle_member(&mut self, info: gw::MemberInfo) {
        let Some(id) = info.id.clone() else { return };
        if id == self.member {
            if info.state == Some(MemberState::Disconnected) {
                self.end(Initiator::Agent, "guest disconnected");
            }
            return;
        }
        let role = match info.role {
            Some(MemberRole::Agent) => Role::Agent,
            Some(MemberRole::Customer) => Role::Customer,
            _ => Role::System,
        };
        let state = info.state.unwrap_or(MemberState::Unknown);
        let p = Arc::new(participant(role, Some(&id), info.display_name.as_deref()));
        let before = self.members.get(&id).map(|(s, _)| *s);
        self.members.insert(id.clone(), (state, p.clone()));
        match (role, state, before) {
            (Role::Agent, MemberState::Connected, b) if b != Some(MemberState::Connected) => {
                self.emit(Event::ParticipantJoined {
                    engagement: self.engagement.clone(),
                    participant: p,
                });
            }
            (Role::Agent, MemberState::Alerting, None)
            | (Role::System, MemberState::Connected, None) => {
                self.emit(Event::Queued {
                    engagement: self.engagement.clone(),
                    position: None,
                    expected_wait: None,
                });
            }
            (_, MemberState::Disconnected, Some(_)) => {
                self.members.remove(&id);
                self.emit(Event::ParticipantLeft {
                    engagement: self.engagement.clone(),
                    participant: p,
                });
            }
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, m: gw::WebChatMessage) {
        if m.sender.id.as_deref() == Some(self.member.as_str()) {
            if !matches!(m.body_type, BodyType::Standard | BodyType::Notice) {
                return;
            }
            self.on_own_message(now, m);
            return;
        }
        if !self.seen.insert(m.id.clone()) {
            return;
        }
        self.last_seen = Some(m.id.clone());
        let sender_id = m.sender.id.clone().unwrap_or_default();
        let p = self.participant_of(&sender_id);
        if let Some((_, tp)) = self.agent_typing.remove(&sender_id) {
            self.emit(Event::Typing {
                engagement: self.engagement.clone(),
                participant: tp,
                on: false,
            });
        }
        let _ = now;
        let server_time = server_time(m.timestamp.as_deref());
        let content = match m.body_type {
            BodyType::Standard => Content::Text(m.body.clone()),
            BodyType::Notice => notice_of(&m.body),
            BodyType::MemberJoin
            | BodyType::MemberLeave
            | BodyType::MediaRequest
            | BodyType::Unknown => {
                self.emit(Event::Vendor {
                    vendor: Vendor::Genesys,
                    name: Arc::from(match m.body_type {
                        BodyType::MemberJoin => "member-join",
                        BodyType::MemberLeave => "member-leave",
                        BodyType::MediaRequest => "media-request",
                        _ => "message",
                    }),
                    payload: Arc::new(serde_json::to_value(&m).unwrap_or(Value::Null)),
                });
                return;
            }
        };
        let hidden = self.prefilters.hides(&content);
        let msg = Message {
            id: Some(MessageId::from(m.id)),
            client_id: None,
            engagement: self.engagement.clone(),
            sender: (*p).clone(),
            content,
            server_time,
            local_time: wall_ms(),
            state: DeliveryState::Delivered,
            hidden,
        };
        self.emit(Event::MessageReceived(Arc::new(msg)));
    }
}

#[cfg(test)]
mod tests;

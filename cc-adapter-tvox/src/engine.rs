//! The sans-IO protocol engine of the TVox widget.
//!
//! The engine does no I/O and reads no clock. The driver (`client.rs`) feeds it the
//! connection's life ([`Engine::on_connected`], [`Engine::on_disconnected`]), every text
//! frame ([`Engine::on_text`]), timer expiries ([`Engine::on_timeout`]) and the app's
//! commands, each with the time ([`Now`]); it then drains [`Output`]s (frames to write,
//! events to publish, replies to the app's pending calls) and arms a timer for
//! [`Engine::poll_timeout`].
//!
//! What it implements (`shared/protocols/tvox.md` §3.3, §4):
//!
//! - **Handshake and heartbeat.** Every connection starts with `widget.hello` (carrying the
//!   resume token of the previous one); only then is the link up and `Connected` reported.
//!   A `ping` goes every heartbeat interval; two pings in a row without an answer make the
//!   engine ask the driver to drop the connection ([`Output::Reconnect`]).
//! - **Resume without loss.** After each handshake every open chat re-subscribes its session
//!   monitor and its event monitor with `sinceEventId` (the last event seen), so events
//!   pushed while the link was down are replayed; event ids deduplicate repeats.
//! - **Chat messages, exactly once.** Messages wait in a `cc_chat::Outbox` until the link is
//!   up, the event monitor is in sync and the step is `CONNECTED` (the vendor accepts
//!   `chatSendMessage` only then). The `chat.send` answer acknowledges a message; the
//!   `OUTBOUND` echo on the event monitor carries its vendor id. A message whose answer a
//!   dropped connection swallowed is matched against the replayed echoes, and sent again
//!   only if the server does not show it.
//! - **Session monitor → events.** `QUEUE` → [`Event::Queued`] (with the position), `PLAY` →
//!   a system message with the welcome text, `CONNECTED` → [`Event::ParticipantJoined`]
//!   (and `ParticipantLeft` for an agent replaced or gone back to the queue),
//!   `INACTIVE_TIMEOUT` → [`Event::IdleWarning`], `sessionState: CLOSED` or a
//!   `CLOSED_SESSION` event → [`Event::EngagementEnded`]; `CONNECTING`, `TO_URL`,
//!   `ACTIVE_FROM_TIMEOUT` and `MAX_DURATION_TIMEOUT` have no neutral meaning and become
//!   [`Event::Vendor`] named `tvox.step` with the step as payload.
//! - **Bot handoff.** The turns of a bot conversation are queued before anything else and
//!   sent in order once an agent is connected: the bot's with `notifyGreetingMessage: true`
//!   (the agent sees them as sent by the agent side), the customer's with `false`, as the
//!   vendor's document describes.
//! - **Service status.** One `service.status.subscribe` per (channel, service), kept live
//!   and re-issued after a reconnect; every push updates the cache, goes out as
//!   [`Output::Status`] and as an [`Event::Vendor`] named `tvox.service_status`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cc_chat::{EchoMatch, IncomingDedup, Outbox, OutboxConfig, Poll, Transcript};
use cc_core::{
    BotTurn, ClientMessageId, Content, DeliveryState, EngagementId, EngagementState, Error, Event,
    Feature, Initiator, Message, MessageId, Participant, Receipt, Role, Secret, Timestamp, Vendor,
};
use cc_rtc::{CallCommand, CallMachine, CallSignal};
use serde_json::{Value, json};

use crate::error;
use crate::wire::codec::{
    self, ChatCreate, ChatSend, EventsSubscribed, Hello, HelloResult, SessionSubscribed,
    StatusSubscribed,
};
use crate::wire::{
    Call, CallState, ChannelSession, ChatChannelEventMessage, ChatChannelEventMessageStatus,
    ChatMessageType, Direction, Incoming, MultiChannelState, MultiChannelStepType,
    MultiChannelType, RpcError, RpcId, ServiceStatus, time,
};

const V: Vendor = Vendor::Tvox;

/// Pings without an answer, in a row, after which the link counts as dead.
pub const MISSED_PONGS: u32 = 2;
/// How many event ids each chat remembers for deduplication.
const EVENT_MEMORY: usize = 4096;

/// The time of an input: monotonic for timers, wall clock for message times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For timers.
    pub at: Instant,
    /// For message times and expiry deadlines.
    pub wall: Timestamp,
}

/// What the engine needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The `widget.hello` params (the resume token is filled in per connection). Its
    /// `services_configuration` names the services the widget monitors: a service status
    /// is asked only of those.
    pub hello: Hello,
    /// The heartbeat interval.
    pub heartbeat: Duration,
    /// The outbox's behaviour.
    pub outbox: OutboxConfig,
    /// The customer of chats re-attached by the handshake (`hello.sessions`).
    pub customer: Participant,
    /// How long a call's media may take to come up once TVox says `CONNECTED`.
    pub media_timeout: Duration,
}

/// What a new chat needs.
#[derive(Clone, Debug)]
pub struct StartChat {
    /// The service code.
    pub service: String,
    /// The customer as they appear in the transcript.
    pub customer: Participant,
    /// `chat.create` params beyond the service.
    pub create: ChatCreate,
    /// The bot conversation to replay once an agent is connected.
    pub bot_history: Vec<BotTurn>,
    /// A first message, sent after the bot history.
    pub first_message: Option<String>,
}

/// What the engine asks of the driver, or tells the app.
#[derive(Debug)]
pub enum Output {
    /// Write this text frame on the current connection.
    Send(String),
    /// Publish this event.
    Event(Event),
    /// An app call the driver waits for finished (the token the command returned).
    Reply {
        /// The command's token.
        token: u64,
        /// The result body or the error.
        result: Result<Value, Error>,
    },
    /// The handshake of this connection is done: open the transport's gate.
    Ready(u64),
    /// The link is dead (missed heartbeats): drop the connection and connect again.
    Reconnect,
    /// A video or phone session changed (`video.subscribe` / `call.subscribe` push).
    Media {
        /// `VIDEO` or `PHONE_CALL`.
        channel: MultiChannelType,
        /// The session as pushed.
        session: ChannelSession,
        /// Its state after the `cc_rtc::CallMachine` took the push.
        state: cc_core::CallState,
    },
    /// Media work for one of the session's calls (the engine does no I/O).
    CallMedia {
        /// The call (its TVox session id).
        call: Arc<str>,
        /// What to do.
        op: MediaOp,
        /// The app call waiting for it: the driver answers it with the operation's result
        /// (`HoldOffer` goes back through [`Engine::on_local_offer`] instead).
        token: Option<u64>,
    },
    /// A service status is known or changed.
    Status {
        /// The channel.
        channel: MultiChannelType,
        /// The service.
        service: String,
        /// The status.
        status: ServiceStatus,
    },
}

/// A chat as the app sees it.
#[derive(Clone, Debug)]
pub struct ChatView {
    /// Where it is.
    pub state: EngagementState,
    /// Who takes part.
    pub participants: Vec<Participant>,
    /// The transcript, shared with the engine: publishing a view copies no message.
    pub transcript: SharedTranscript,
}

/// A chat's transcript, written by the engine and read by the chat's handle.
///
/// The engine updates it as messages arrive; a handle takes a snapshot
/// ([`SharedTranscript::messages`]) only when the app asks, so the work per message does
/// not grow with the conversation.
#[derive(Clone, Debug, Default)]
pub struct SharedTranscript(Arc<TranscriptCell>);

#[derive(Debug, Default)]
struct TranscriptCell {
    transcript: Mutex<Transcript>,
    /// Messages copied out by [`SharedTranscript::messages`] so far.
    copied: AtomicU64,
}

impl SharedTranscript {
    fn new(transcript: Transcript) -> SharedTranscript {
        SharedTranscript(Arc::new(TranscriptCell {
            transcript: Mutex::new(transcript),
            copied: AtomicU64::new(0),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Transcript> {
        self.0.transcript.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of every message in order, hidden ones included.
    pub fn messages(&self) -> Vec<Message> {
        let messages = self.lock().messages();
        self.0
            .copied
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        messages
    }

    /// How many messages all snapshots so far have copied (what reading the transcript
    /// cost; publishing views costs none).
    pub fn copied(&self) -> u64 {
        self.0.copied.load(Ordering::Relaxed)
    }

    /// Whether both are the same transcript.
    pub fn same(&self, other: &SharedTranscript) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    Handshake(u64),
    Up(u64),
}

type StatusKey = (MultiChannelType, String);

#[derive(Clone, Debug)]
enum Sub {
    Session(EngagementId),
    Events(EngagementId),
    Status(StatusKey),
    Media(MultiChannelType),
}

#[derive(Debug)]
enum Pending {
    Hello,
    App {
        token: u64,
        method: &'static str,
    },
    Create {
        token: u64,
        plan: Box<StartChat>,
    },
    Send {
        chat: EngagementId,
        client_id: ClientMessageId,
    },
    Typing {
        chat: EngagementId,
    },
    SessionSub {
        chat: EngagementId,
    },
    EventsSub {
        chat: EngagementId,
    },
    StatusSub {
        key: StatusKey,
    },
    MediaSub {
        channel: MultiChannelType,
    },
    CallCreate {
        token: u64,
        plan: Box<StartCall>,
    },
    CallOffer {
        call: Arc<str>,
        hold: Option<u64>,
    },
    CallSignal {
        method: &'static str,
        /// The app call answered with it (a mute, once the agent's UI knows).
        token: Option<u64>,
    },
    CallClose {
        call: Arc<str>,
        channel: MultiChannelType,
        token: Option<u64>,
    },
    Cancel,
    Close {
        chat: EngagementId,
    },
}

#[derive(Debug, Default)]
struct StatusEntry {
    subscription: Option<String>,
    requested: bool,
    status: Option<ServiceStatus>,
    waiting: Vec<u64>,
}

#[derive(Debug, Default)]
struct MediaSub {
    subscription: Option<String>,
    requested: bool,
    waiting: Vec<u64>,
    /// The app asked for the monitor (not only a call of this session).
    app: bool,
    /// A subscription answered before: the next one follows a reconnect.
    renewed: bool,
}

#[derive(Debug)]
struct MediaTrack {
    machine: CallMachine,
    last: Option<CallState>,
}

#[derive(Debug)]
struct Chat {
    id: EngagementId,
    state: EngagementState,
    customer: Participant,
    agent: Option<Participant>,
    /// The step says an agent is connected (`CONNECTED` and the timeout steps after it).
    agent_ready: bool,
    /// The event monitor of the current connection answered.
    synced: bool,
    session_sub: Option<String>,
    events_sub: Option<String>,
    last_event: Option<String>,
    seen_events: IncomingDedup<String>,
    /// The fingerprint ([`session_print`]) of the last session push, so a repeat changes
    /// nothing; a fingerprint rather than the session, which every chat would hold.
    last_session: Option<u64>,
    outbox: Outbox,
    transcript: SharedTranscript,
    greeting: HashSet<ClientMessageId>,
    wake: Option<Instant>,
    typing_sent: bool,
    /// `chat.close` asked, with the token to answer.
    closing: Option<u64>,
    /// Who ends it when the server closes it without saying (timeouts).
    end_hint: Option<(Initiator, &'static str)>,
    /// Re-attached by a new session (`hello.sessions`) and not yet replayed: events the
    /// server stamped before this time (the handshake's server time) are history and fill
    /// the transcript quietly; later ones, or ones at that very time, happened after the
    /// handshake (an agent writing while the widget resumes) and are announced.
    backfill: Option<Timestamp>,
}

/// The engine; see the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    next_id: u64,
    next_ping: u64,
    next_token: u64,
    link: Link,
    resume_token: Option<Secret>,
    /// Shared with the session's handles (`TvoxSession::channels_enabled`).
    channels_enabled: Arc<BTreeMap<String, bool>>,
    /// Shared with the session's handles (a new call's ICE servers).
    ice_servers: Arc<[codec::IceServer]>,
    pending: HashMap<u64, Pending>,
    deferred: VecDeque<(u64, Call)>,
    ping_due: Option<Instant>,
    ping_outstanding: bool,
    missed: u32,
    chats: Vec<Chat>,
    subs: HashMap<String, Sub>,
    statuses: BTreeMap<StatusKey, StatusEntry>,
    media_subs: BTreeMap<MultiChannelType, MediaSub>,
    // The call machinery is in B-trees: empty, they take half the room of a hash map (a
    // chat-only session never fills them).
    media: BTreeMap<String, MediaTrack>,
    calls: BTreeMap<String, calls::CallTrack>,
    /// Calls of this session that ended: later pushes about them are old news.
    ended_calls: BTreeSet<String>,
    dirty: HashSet<EngagementId>,
    out: VecDeque<Output>,
}

/// A fingerprint of a session push: equal sessions have equal prints (a fixed-key hash).
fn session_print(session: &ChannelSession) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut h);
    h.finish()
}

fn transport_lost(operation: &'static str) -> Error {
    Error::transport(V, operation, "the connection dropped before TVox answered")
}

impl Engine {
    /// A disconnected engine.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            next_id: 1,
            next_ping: 1,
            next_token: 1,
            link: Link::Down,
            resume_token: None,
            channels_enabled: Arc::default(),
            ice_servers: Arc::from([]),
            pending: HashMap::new(),
            deferred: VecDeque::new(),
            ping_due: None,
            ping_outstanding: false,
            missed: 0,
            chats: Vec::new(),
            subs: HashMap::new(),
            statuses: BTreeMap::new(),
            media_subs: BTreeMap::new(),
            media: BTreeMap::new(),
            calls: BTreeMap::new(),
            ended_calls: BTreeSet::new(),
            dirty: HashSet::new(),
            out: VecDeque::new(),
        }
    }

    /// Whether the handshake of the current connection is done.
    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    /// `getChannelsEnabled()`: what the last handshake said.
    pub fn channels_enabled(&self) -> &Arc<BTreeMap<String, bool>> {
        &self.channels_enabled
    }

    /// The STUN/TURN servers the last handshake named (for calls).
    pub fn ice_servers(&self) -> &Arc<[codec::IceServer]> {
        &self.ice_servers
    }

    /// The resume token of the last handshake.
    pub fn resume_token(&self) -> Option<&Secret> {
        self.resume_token.as_ref()
    }

    /// Sets the resume token the next handshake sends.
    pub fn set_resume_token(&mut self, token: Option<Secret>) {
        self.resume_token = token;
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.out.pop_front();
        if out.is_none() && self.out.capacity() > 0 {
            // Drained: an idle session keeps no room for the next burst.
            self.out = VecDeque::new();
        }
        out
    }

    /// When [`Engine::on_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.chats
            .iter()
            .filter_map(|c| c.wake)
            .chain(self.ping_due)
            .chain(self.calls.values().filter_map(calls::CallTrack::deadline))
            .min()
    }

    /// The chats whose view changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<EngagementId> {
        self.dirty.drain().collect()
    }

    /// The view of a chat.
    pub fn chat_view(&self, id: &EngagementId) -> Option<ChatView> {
        let c = self.chat(id)?;
        let mut participants = vec![c.customer.clone()];
        participants.extend(c.agent.clone());
        Some(ChatView {
            state: c.state,
            participants,
            transcript: c.transcript.clone(),
        })
    }

    /// The ids of the chats not ended.
    pub fn open_chats(&self) -> Vec<EngagementId> {
        self.chats
            .iter()
            .filter(|c| !gone(c.state))
            .map(|c| c.id.clone())
            .collect()
    }

    fn chat(&self, id: &EngagementId) -> Option<&Chat> {
        self.chats.iter().find(|c| &c.id == id)
    }

    fn chat_index(&self, id: &EngagementId) -> Option<usize> {
        self.chats.iter().position(|c| &c.id == id)
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn emit(&mut self, ev: Event) {
        self.out.push_back(Output::Event(ev));
    }

    fn reply(&mut self, token: u64, result: Result<Value, Error>) {
        self.out.push_back(Output::Reply { token, result });
    }

    /// Sends `call` now when the link is up, else when it is next up.
    fn request(&mut self, call: Call, pending: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        if self.is_up() {
            self.out
                .push_back(Output::Send(codec::encode_request(RpcId::Num(id), &call)));
        } else {
            self.deferred.push_back((id, call));
        }
        id
    }

    /// Sends `call` now; only while the link is up.
    fn request_now(&mut self, call: Call, pending: Pending) -> u64 {
        debug_assert!(self.is_up());
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        self.out
            .push_back(Output::Send(codec::encode_request(RpcId::Num(id), &call)));
        id
    }

    // ---- connection ----

    /// A connection is up: the handshake goes first.
    pub fn on_connected(&mut self, now: Now, connection: u64) {
        self.link = Link::Handshake(connection);
        // A handshake unanswered for as long as a dead heartbeat counts as a dead link.
        self.ping_due = Some(now.at + self.cfg.heartbeat * (MISSED_PONGS + 1));
        let mut hello = self.cfg.hello.clone();
        hello.resume_token = self.resume_token.as_ref().map(|t| t.expose().to_owned());
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, Pending::Hello);
        self.out.push_back(Output::Send(codec::encode_request(
            RpcId::Num(id),
            &Call::Hello(hello),
        )));
    }

    /// The connection dropped: answers that were on their way are lost.
    pub fn on_disconnected(&mut self, _now: Now) {
        self.link = Link::Down;
        self.ping_due = None;
        self.ping_outstanding = false;
        self.missed = 0;
        let deferred: HashSet<u64> = self.deferred.iter().map(|(id, _)| *id).collect();
        let lost: Vec<u64> = self
            .pending
            .keys()
            .copied()
            .filter(|id| !deferred.contains(id))
            .collect();
        for id in lost {
            match self.pending.remove(&id) {
                Some(Pending::App { token, method }) => {
                    self.reply(token, Err(transport_lost(method)));
                }
                Some(Pending::Create { token, .. }) => {
                    self.reply(token, Err(transport_lost("chat.create")));
                }
                Some(Pending::CallCreate { token, plan }) => {
                    let method = if plan.video {
                        "video.create"
                    } else {
                        "call.create"
                    };
                    self.reply(token, Err(transport_lost(method)));
                }
                Some(Pending::CallOffer {
                    hold: Some(token), ..
                }) => {
                    self.reply(token, Err(transport_lost("webrtc.offer")));
                }
                Some(Pending::CallSignal {
                    token: Some(token), ..
                }) => {
                    self.reply(token, Ok(Value::Bool(true)));
                }
                Some(Pending::CallClose {
                    call,
                    channel,
                    token,
                }) => {
                    // The call ended here already; TVox hears of it after the reconnect.
                    if let Some(t) = token {
                        self.reply(t, Ok(Value::Bool(true)));
                    }
                    self.deferred
                        .push_back((id, calls::close_call(&call, &channel)));
                    self.pending.insert(
                        id,
                        Pending::CallClose {
                            call,
                            channel,
                            token: None,
                        },
                    );
                }
                // Re-subscribed, re-sent or reconciled after the next handshake.
                _ => {}
            }
        }
        self.subs.clear();
        for e in self.statuses.values_mut() {
            e.subscription = None;
            e.requested = false;
        }
        for m in self.media_subs.values_mut() {
            m.subscription = None;
            m.requested = false;
        }
        for c in &mut self.chats {
            c.session_sub = None;
            c.events_sub = None;
            c.synced = false;
            c.typing_sent = false;
            c.wake = None;
            if c.outbox.is_connected() {
                c.outbox.on_disconnected();
            }
        }
    }

    /// A text frame arrived.
    pub fn on_text(&mut self, now: Now, text: &str) {
        match codec::decode_incoming(text) {
            Err(e) => self.emit(Event::error(error::from_decode(&e))),
            Ok(Incoming::Response { id, result }) => self.on_response(now, id, result),
            Ok(Incoming::Notify(n)) => self.on_notify(now, n.subscription, n.data),
        }
        self.drive(now);
    }

    /// A timer expired.
    pub fn on_timeout(&mut self, now: Now) {
        if matches!(self.link, Link::Handshake(_)) && self.ping_due.is_some_and(|t| t <= now.at) {
            tracing::debug!("tvox: widget.hello unanswered, reconnecting");
            self.ping_due = None;
            self.out.push_back(Output::Reconnect);
        } else if self.ping_due.is_some_and(|t| t <= now.at) {
            if self.ping_outstanding {
                self.missed += 1;
            }
            if self.missed >= MISSED_PONGS {
                tracing::debug!("tvox: {} pings unanswered, reconnecting", self.missed);
                self.ping_due = None;
                self.out.push_back(Output::Reconnect);
            } else {
                let id = RpcId::Str(format!("hb-{}", self.next_ping));
                self.next_ping += 1;
                self.out.push_back(Output::Send(codec::encode_request(
                    id,
                    &Call::Ping { ts: now.wall.0 },
                )));
                self.ping_outstanding = true;
                self.ping_due = Some(now.at + self.cfg.heartbeat);
            }
        }
        for c in &mut self.chats {
            if c.wake.is_some_and(|t| t <= now.at) {
                c.wake = None;
            }
        }
        self.call_timers(now);
        self.drive(now);
    }

    fn on_response(&mut self, now: Now, id: RpcId, result: Result<Value, RpcError>) {
        let num = match id {
            RpcId::Str(s) if s.starts_with("hb-") => {
                self.ping_outstanding = false;
                self.missed = 0;
                return;
            }
            RpcId::Str(_) => return,
            RpcId::Num(n) => n,
        };
        let Some(pending) = self.pending.remove(&num) else {
            tracing::debug!("tvox: answer to an unknown request {num}");
            return;
        };
        if self.pending.is_empty() {
            // Every request answered: an idle session keeps no empty table.
            self.pending = HashMap::new();
        }
        match pending {
            Pending::Hello => self.on_hello(now, result),
            Pending::App { token, method } => {
                let r = result.map_err(|e| error::from_rpc(method, &e));
                self.reply(token, r);
            }
            Pending::Create { token, plan } => self.on_created(now, token, *plan, result),
            Pending::Send { chat, client_id } => self.on_send_answer(now, &chat, client_id, result),
            Pending::Typing { chat } => {
                if let Err(e) = result {
                    if let Some(i) = self.chat_index(&chat) {
                        self.chats[i].typing_sent = false;
                    }
                    self.emit(Event::error(error::from_rpc("chat.send", &e)));
                }
            }
            Pending::SessionSub { chat } => match result {
                Ok(v) => {
                    match codec::decode_result::<SessionSubscribed>("chat.session.subscribe", v) {
                        Ok(r) => {
                            if let Some(i) = self.chat_index(&chat) {
                                self.subs
                                    .insert(r.subscription.clone(), Sub::Session(chat.clone()));
                                self.chats[i].session_sub = Some(r.subscription);
                                self.apply_session(now, i, r.session);
                            }
                        }
                        Err(e) => self.emit(Event::error(error::from_decode(&e))),
                    }
                }
                Err(e) => self.on_subscribe_error(now, &chat, "chat.session.subscribe", &e),
            },
            Pending::EventsSub { chat } => match result {
                Ok(v) => match codec::decode_result::<EventsSubscribed>("chat.events.subscribe", v)
                {
                    Ok(r) => {
                        if let Some(i) = self.chat_index(&chat) {
                            self.subs
                                .insert(r.subscription.clone(), Sub::Events(chat.clone()));
                            self.chats[i].events_sub = Some(r.subscription);
                            for ev in r.events {
                                self.apply_event(now, i, ev);
                            }
                            self.chats[i].synced = true;
                            self.chats[i].backfill = None;
                        }
                    }
                    Err(e) => self.emit(Event::error(error::from_decode(&e))),
                },
                Err(e) => self.on_subscribe_error(now, &chat, "chat.events.subscribe", &e),
            },
            Pending::StatusSub { key } => self.on_status_subscribed(key, result),
            Pending::MediaSub { channel } => self.on_media_subscribed(now, channel, result),
            Pending::CallCreate { token, plan } => self.on_call_created(now, token, *plan, result),
            Pending::CallOffer { call, hold } => self.on_offer_answered(now, &call, hold, result),
            Pending::CallSignal { method, token } => {
                if let Err(e) = result {
                    self.emit(Event::error(error::from_rpc(method, &e)));
                }
                // The media did its part already: the operation stands either way.
                if let Some(t) = token {
                    self.reply(t, Ok(Value::Bool(true)));
                }
            }
            Pending::CallClose { call, token, .. } => self.on_call_closed(&call, token, result),
            Pending::Cancel => {}
            Pending::Close { chat } => {
                let token = self
                    .chat_index(&chat)
                    .and_then(|i| self.chats[i].closing.take());
                match result {
                    Err(e) if e.code != error::SESSION_CLOSED => {
                        let err = error::from_rpc("chat.close", &e);
                        match token {
                            Some(t) => self.reply(t, Err(err)),
                            None => self.emit(Event::error(err)),
                        }
                    }
                    _ => {
                        if let Some(i) = self.chat_index(&chat) {
                            self.end_chat(now, i, Initiator::Customer, None);
                        }
                        if let Some(t) = token {
                            self.reply(t, Ok(Value::Bool(true)));
                        }
                    }
                }
            }
        }
    }

    fn on_hello(&mut self, now: Now, result: Result<Value, RpcError>) {
        let Link::Handshake(connection) = self.link else {
            return;
        };
        let hello = match result {
            Ok(v) => match codec::decode_result::<HelloResult>("widget.hello", v) {
                Ok(h) => h,
                Err(e) => {
                    self.emit(Event::error(error::from_decode(&e)));
                    return;
                }
            },
            Err(e) => {
                self.emit(Event::error(error::from_rpc("widget.hello", &e)));
                return;
            }
        };
        // Where the history of a resumed chat ends; the local clock if the server is silent.
        let resumed_at = hello
            .server_time
            .as_deref()
            .and_then(time::parse)
            .unwrap_or(now.wall);
        self.resume_token = Some(Secret::new(hello.resume_token));
        self.channels_enabled = Arc::new(hello.channels_enabled);
        self.ice_servers = Arc::from(hello.ice_servers);
        self.link = Link::Up(connection);
        self.ping_due = Some(now.at + self.cfg.heartbeat);
        self.ping_outstanding = false;
        self.missed = 0;
        self.out.push_back(Output::Ready(connection));
        // Chats of an earlier session of this widget (an app restart) come back first.
        for session in hello.sessions {
            let id = EngagementId::from(session.id.clone());
            if self.chat_index(&id).is_some()
                || session.session_state == Some(MultiChannelState::Closed)
            {
                continue;
            }
            let outbox = Outbox::new(
                V,
                id.clone(),
                self.cfg.customer.clone(),
                self.cfg.outbox.clone(),
            );
            let customer = self.cfg.customer.clone();
            self.add_chat(
                id.clone(),
                customer,
                outbox,
                Transcript::new(),
                HashSet::new(),
            );
            let i = self.chats.len() - 1;
            self.chats[i].backfill = Some(resumed_at);
            self.emit(Event::EngagementStarted {
                engagement: id,
                resumed: true,
            });
        }
        self.emit(Event::Connection(cc_core::ConnectionState::Connected));
        // Re-attach every open chat before anything queued meanwhile.
        for i in 0..self.chats.len() {
            if !gone(self.chats[i].state) {
                self.subscribe_chat(i);
            }
        }
        // Statuses asked before this handshake are deferred already; renew the others.
        let keys: Vec<StatusKey> = self
            .statuses
            .iter()
            .filter(|(_, e)| !e.requested)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.subscribe_status(key);
        }
        let media: Vec<MultiChannelType> = self
            .media_subs
            .iter()
            .filter(|(_, m)| !m.requested)
            .map(|(c, _)| c.clone())
            .collect();
        for channel in media {
            self.subscribe_media(channel);
        }
        while let Some((id, call)) = self.deferred.pop_front() {
            self.out
                .push_back(Output::Send(codec::encode_request(RpcId::Num(id), &call)));
        }
        for i in 0..self.chats.len() {
            if self.chats[i].closing.is_some() && !gone(self.chats[i].state) {
                let chat = self.chats[i].id.clone();
                self.request_now(
                    Call::ChatClose {
                        session_id: chat.to_string(),
                    },
                    Pending::Close { chat },
                );
            }
        }
    }

    fn subscribe_chat(&mut self, i: usize) {
        let chat = self.chats[i].id.clone();
        let since = self.chats[i].last_event.clone();
        self.request_now(
            Call::ChatSessionSubscribe {
                session_id: chat.to_string(),
            },
            Pending::SessionSub { chat: chat.clone() },
        );
        self.request_now(
            Call::ChatEventsSubscribe {
                session_id: chat.to_string(),
                since_event_id: since,
            },
            Pending::EventsSub { chat },
        );
    }

    fn on_subscribe_error(&mut self, now: Now, chat: &EngagementId, method: &str, e: &RpcError) {
        let Some(i) = self.chat_index(chat) else {
            return;
        };
        if e.code == error::SESSION_NOT_FOUND || e.code == error::SESSION_CLOSED {
            self.end_chat(
                now,
                i,
                Initiator::System,
                Some(format!("{} ({method})", error::code_name(e.code))),
            );
        } else {
            self.emit(Event::error(error::from_rpc(method, e)));
        }
    }

    // ---- pushes ----

    fn on_notify(&mut self, now: Now, subscription: String, data: Value) {
        let Some(sub) = self.subs.get(&subscription).cloned() else {
            tracing::debug!("tvox: push on an unknown subscription");
            return;
        };
        match sub {
            Sub::Session(chat) => {
                match codec::decode_data::<ChannelSession>("chat session", data) {
                    Ok(s) => {
                        if let Some(i) = self.chat_index(&chat) {
                            self.apply_session(now, i, s);
                        }
                    }
                    Err(e) => self.emit(Event::error(error::from_decode(&e))),
                }
            }
            Sub::Events(chat) => {
                match codec::decode_data::<ChatChannelEventMessage>("chat event", data) {
                    Ok(ev) => {
                        if let Some(i) = self.chat_index(&chat) {
                            self.apply_event(now, i, ev);
                        }
                    }
                    Err(e) => self.emit(Event::error(error::from_decode(&e))),
                }
            }
            Sub::Media(channel) => match codec::decode_call_push(data) {
                Ok(codec::CallPush::Session(session)) => {
                    let session = *session;
                    if self.calls.contains_key(&session.id) {
                        self.apply_call_session(now, &channel, session);
                    } else if self.ended_calls.contains(&session.id) {
                        tracing::debug!("tvox: push about a call that ended here");
                    } else {
                        self.apply_media(channel, session);
                    }
                }
                Ok(codec::CallPush::Signal(signal)) => self.on_call_signal(now, signal),
                Err(e) => self.emit(Event::error(error::from_decode(&e))),
            },
            Sub::Status(key) => match codec::decode_data::<ServiceStatus>("service status", data) {
                Ok(s) => self.set_status(key, s),
                Err(e) => self.emit(Event::error(error::from_decode(&e))),
            },
        }
    }

    fn step_event(&mut self, chat: &EngagementId, session: &ChannelSession) {
        let payload = json!({
            "engagement": chat.as_str(),
            "step": session.step,
        });
        self.emit(Event::Vendor {
            vendor: V,
            name: Arc::from("tvox.step"),
            payload: Arc::new(payload),
        });
    }

    fn apply_session(&mut self, now: Now, i: usize, session: ChannelSession) {
        if gone(self.chats[i].state) {
            return;
        }
        let print = session_print(&session);
        if self.chats[i].last_session == Some(print) {
            return;
        }
        self.chats[i].last_session = Some(print);
        let id = self.chats[i].id.clone();
        self.dirty.insert(id.clone());
        if session.session_state == Some(MultiChannelState::Closed) {
            let (initiator, reason) = self.chats[i]
                .end_hint
                .map(|(who, why)| (who, Some(why.to_owned())))
                .unwrap_or((Initiator::Unknown, None));
            let initiator = if self.chats[i].closing.is_some() {
                Initiator::Customer
            } else {
                initiator
            };
            self.end_chat(now, i, initiator, reason);
            return;
        }
        let Some(step) = session.step.clone() else {
            return;
        };
        let Some(kind) = step.step_type.clone() else {
            return;
        };
        match kind {
            MultiChannelStepType::Queue => {
                self.agent_gone(i);
                self.chats[i].state = EngagementState::Queued;
                self.emit(Event::Queued {
                    engagement: id,
                    position: step.queue_position,
                    expected_wait: None,
                });
            }
            MultiChannelStepType::Play => {
                if self.chats[i].state == EngagementState::Starting {
                    self.chats[i].state = EngagementState::Queued;
                }
                if let Some(text) = step.welcome_message.filter(|t| !t.trim().is_empty()) {
                    let mid = MessageId::from(format!("{id}:step:{}", step.step.unwrap_or(0)));
                    if !self.chats[i].transcript.lock().contains(&mid) {
                        let msg = Message {
                            id: Some(mid),
                            client_id: None,
                            engagement: id.clone(),
                            sender: Participant::new(Role::System),
                            content: Content::Text(text),
                            server_time: session.time.as_deref().and_then(time::parse),
                            local_time: now.wall,
                            state: DeliveryState::Delivered,
                            hidden: false,
                        };
                        self.chats[i].transcript.lock().upsert(msg.clone());
                        self.emit(Event::MessageReceived(Arc::new(msg)));
                    }
                }
            }
            MultiChannelStepType::Connected => {
                let agent = Participant::new(Role::Agent);
                let agent = match &step.agent_name {
                    Some(n) => agent.with_name(n.clone()),
                    None => agent,
                };
                let same = self.chats[i]
                    .agent
                    .as_ref()
                    .is_some_and(|a| a.display_name == agent.display_name);
                if !same {
                    self.agent_gone(i);
                    self.chats[i].agent = Some(agent.clone());
                    self.chats[i].state = EngagementState::Active;
                    self.emit(Event::ParticipantJoined {
                        engagement: id,
                        participant: Arc::new(agent),
                    });
                }
                self.chats[i].state = EngagementState::Active;
                self.chats[i].agent_ready = true;
                self.chats[i].end_hint = None;
            }
            MultiChannelStepType::InactiveTimeout => {
                let grace = step
                    .inactivity_expire_datetime
                    .map(|at| {
                        Duration::from_millis(
                            u64::try_from(at.saturating_sub(now.wall.0)).unwrap_or(0),
                        )
                    })
                    .unwrap_or_default();
                self.chats[i].end_hint = Some((Initiator::System, "inactivity timeout"));
                self.emit(Event::IdleWarning {
                    engagement: Some(id),
                    grace,
                });
            }
            MultiChannelStepType::ActiveFromTimeout => {
                self.chats[i].end_hint = None;
                self.step_event(&id, &session);
            }
            MultiChannelStepType::MaxDurationTimeout => {
                self.chats[i].end_hint = Some((Initiator::System, "maximum duration reached"));
                self.step_event(&id, &session);
            }
            MultiChannelStepType::Connecting
            | MultiChannelStepType::ToUrl
            | MultiChannelStepType::Unknown(_) => self.step_event(&id, &session),
        }
    }

    /// The agent is no longer connected (back to the queue, replaced).
    fn agent_gone(&mut self, i: usize) {
        self.chats[i].agent_ready = false;
        if let Some(agent) = self.chats[i].agent.take() {
            let engagement = self.chats[i].id.clone();
            self.emit(Event::ParticipantLeft {
                engagement,
                participant: Arc::new(agent),
            });
        }
    }

    fn apply_event(&mut self, now: Now, i: usize, ev: ChatChannelEventMessage) {
        if let Some(eid) = &ev.id {
            if !self.chats[i].seen_events.insert(eid.clone()) {
                return;
            }
            self.chats[i].last_event = Some(eid.clone());
        }
        if gone(self.chats[i].state) {
            return;
        }
        let id = self.chats[i].id.clone();
        let inbound = ev.direction == Some(Direction::Inbound);
        match ev.message_type.clone().unwrap_or(ChatMessageType::Message) {
            ChatMessageType::OpenSession => {}
            ChatMessageType::ClosedSession => {
                let initiator = if self.chats[i].closing.is_some() {
                    Initiator::Customer
                } else if let Some((who, _)) = self.chats[i].end_hint {
                    who
                } else if inbound {
                    Initiator::Agent
                } else {
                    Initiator::Customer
                };
                let reason = self.chats[i].end_hint.map(|(_, why)| why.to_owned());
                self.end_chat(now, i, initiator, reason);
            }
            ChatMessageType::Message => {
                let status = ev
                    .status
                    .clone()
                    .unwrap_or(ChatChannelEventMessageStatus::Wrote);
                match status {
                    ChatChannelEventMessageStatus::Wrote => self.message_event(now, i, ev),
                    ChatChannelEventMessageStatus::Composing
                    | ChatChannelEventMessageStatus::Idle => {
                        let at = ev.created_at.as_deref().and_then(time::parse);
                        if inbound && !self.replayed(i, at) {
                            let participant = self.chats[i]
                                .agent
                                .clone()
                                .unwrap_or_else(|| Participant::new(Role::Agent));
                            self.emit(Event::Typing {
                                engagement: id,
                                participant: Arc::new(participant),
                                on: status == ChatChannelEventMessageStatus::Composing,
                            });
                        }
                    }
                    ChatChannelEventMessageStatus::Unknown(_) => self.unknown_event(&id, &ev),
                }
            }
            ChatMessageType::Unknown(_) => self.unknown_event(&id, &ev),
        }
    }

    /// Whether an event stamped `at` is history replayed to a resumed chat (filled in
    /// quietly) rather than news. An event without a time cannot be placed and counts as
    /// history while the replay lasts.
    fn replayed(&self, i: usize, at: Option<Timestamp>) -> bool {
        self.chats[i]
            .backfill
            .is_some_and(|cutoff| at.is_none_or(|t| t < cutoff))
    }

    fn unknown_event(&mut self, id: &EngagementId, ev: &ChatChannelEventMessage) {
        let mut payload = serde_json::to_value(ev).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut payload {
            m.insert("engagement".into(), Value::String(id.to_string()));
        }
        self.emit(Event::Vendor {
            vendor: V,
            name: Arc::from("tvox.chat_event"),
            payload: Arc::new(payload),
        });
    }

    fn message_event(&mut self, now: Now, i: usize, ev: ChatChannelEventMessage) {
        let id = self.chats[i].id.clone();
        let server_time = ev.created_at.as_deref().and_then(time::parse);
        let text = ev.message.unwrap_or_default();
        if ev.direction == Some(Direction::Outbound) {
            let echo = Message {
                id: ev.id.map(MessageId::from),
                client_id: None,
                engagement: id,
                sender: self.chats[i].customer.clone(),
                content: Content::Text(text),
                server_time,
                local_time: now.wall,
                state: DeliveryState::Sent,
                hidden: false,
            };
            match self.chats[i].outbox.on_echo(&echo, now.at) {
                EchoMatch::Confirmed(m) => {
                    let m = self.greeting_role(i, m);
                    self.chats[i].transcript.lock().upsert(m.clone());
                    self.emit(Event::MessageSent(Arc::new(m)));
                }
                EchoMatch::AlreadyConfirmed(m) => {
                    let m = self.greeting_role(i, m);
                    self.chats[i].transcript.lock().upsert(m);
                }
                EchoMatch::Unmatched => {
                    // Sent by this customer elsewhere (another tab, an earlier session).
                    let quiet = self.replayed(i, server_time);
                    if self.chats[i].transcript.lock().upsert(echo.clone())
                        == cc_chat::Upsert::Inserted
                        && !quiet
                    {
                        self.emit(Event::MessageReceived(Arc::new(echo)));
                    }
                }
            }
        } else {
            let sender = self.chats[i]
                .agent
                .clone()
                .unwrap_or_else(|| Participant::new(Role::Agent));
            let msg = Message {
                id: ev.id.map(MessageId::from),
                client_id: None,
                engagement: id,
                sender,
                content: Content::Text(text),
                server_time,
                local_time: now.wall,
                state: DeliveryState::Delivered,
                hidden: false,
            };
            let quiet = self.replayed(i, server_time);
            if self.chats[i].transcript.lock().upsert(msg.clone()) == cc_chat::Upsert::Inserted
                && !quiet
            {
                self.emit(Event::MessageReceived(Arc::new(msg)));
            }
        }
        self.dirty.insert(self.chats[i].id.clone());
    }

    /// Bot turns replayed as greeting messages show the bot as their sender.
    fn greeting_role(&self, i: usize, mut m: Message) -> Message {
        if m.client_id
            .is_some_and(|c| self.chats[i].greeting.contains(&c))
        {
            m.sender = Participant::new(Role::Bot);
        }
        m
    }

    fn end_chat(&mut self, _now: Now, i: usize, initiator: Initiator, reason: Option<String>) {
        if self.chats[i].state == EngagementState::Ended {
            return;
        }
        let id = self.chats[i].id.clone();
        self.chats[i].state = EngagementState::Ended;
        self.chats[i].agent_ready = false;
        self.chats[i].wake = None;
        self.dirty.insert(id.clone());
        self.emit(Event::EngagementEnded {
            engagement: id,
            initiator,
            reason: reason.map(Arc::from),
        });
        let failures = self.chats[i].outbox.close(Error::closed(V, "engagement"));
        for f in failures {
            self.chats[i].transcript.lock().set_state(
                None,
                Some(f.client_id()),
                f.message.state.clone(),
            );
            self.emit(f.event());
        }
        // stopNotification: both monitors.
        let subs: Vec<String> = [
            self.chats[i].session_sub.take(),
            self.chats[i].events_sub.take(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for s in subs {
            self.subs.remove(&s);
            if self.is_up() {
                self.request_now(Call::Cancel { subscription: s }, Pending::Cancel);
            }
        }
    }

    // ---- chat messages ----

    fn on_send_answer(
        &mut self,
        now: Now,
        chat: &EngagementId,
        client_id: ClientMessageId,
        result: Result<Value, RpcError>,
    ) {
        let Some(i) = self.chat_index(chat) else {
            return;
        };
        match result {
            Ok(_) => {
                if let Some(m) = self.chats[i].outbox.on_acked(client_id, None, None, now.at) {
                    let m = self.greeting_role(i, m);
                    self.chats[i].transcript.lock().upsert(m.clone());
                    self.emit(Event::MessageSent(Arc::new(m)));
                }
            }
            Err(e) if e.code == error::NOT_CONNECTED => {
                // The server no longer sees an agent: hold everything until the next
                // CONNECTED step (applied even if it repeats the last one), then reconcile
                // what it shows.
                self.chats[i].agent_ready = false;
                self.chats[i].last_session = None;
            }
            Err(e) => {
                let err = error::from_rpc("chat.send", &e);
                if let cc_chat::SendErrorOutcome::Failed(f) =
                    self.chats[i].outbox.on_send_error(client_id, err, now.at)
                {
                    self.chats[i].transcript.lock().set_state(
                        None,
                        Some(f.client_id()),
                        f.message.state.clone(),
                    );
                    self.emit(f.event());
                }
            }
        }
        self.dirty.insert(chat.clone());
    }

    /// Lets each chat's outbox write what may go now.
    fn drive(&mut self, now: Now) {
        let up = self.is_up();
        for i in 0..self.chats.len() {
            let c = &mut self.chats[i];
            let ready = up && c.synced && c.agent_ready && !gone(c.state);
            if ready && !c.outbox.is_connected() {
                c.outbox.on_connected();
            } else if !ready && c.outbox.is_connected() {
                c.outbox.on_disconnected();
            }
            if !ready {
                continue;
            }
            loop {
                match self.chats[i].outbox.poll(now.at) {
                    Poll::Send(out) => {
                        let cid = out.client_id();
                        let text = match &out.message.content {
                            Content::Text(t) => t.clone(),
                            other => other.as_text().unwrap_or_default().to_owned(),
                        };
                        let greeting = self.chats[i].greeting.contains(&cid);
                        let chat = self.chats[i].id.clone();
                        self.request_now(
                            Call::ChatSend(ChatSend {
                                session_id: chat.to_string(),
                                message: text,
                                status: ChatChannelEventMessageStatus::Wrote,
                                notify_greeting_message: greeting,
                            }),
                            Pending::Send {
                                chat,
                                client_id: cid,
                            },
                        );
                        self.chats[i].outbox.on_written(cid, now.at);
                        // A message clears the customer's typing indicator at the agent.
                        self.chats[i].typing_sent = false;
                    }
                    Poll::WaitUntil(t) => {
                        self.chats[i].wake = Some(t);
                        break;
                    }
                    Poll::Reconcile => {
                        let seen: Vec<Message> = self.chats[i]
                            .transcript
                            .lock()
                            .iter()
                            .filter(|m| m.sender.role == Role::Customer && m.client_id.is_none())
                            .cloned()
                            .collect();
                        let report = self.chats[i].outbox.reconcile(&seen, now.at);
                        for m in report.confirmed {
                            let m = self.greeting_role(i, m);
                            self.chats[i].transcript.lock().upsert(m.clone());
                            self.emit(Event::MessageSent(Arc::new(m)));
                        }
                        for f in report.failed {
                            self.chats[i].transcript.lock().set_state(
                                None,
                                Some(f.client_id()),
                                f.message.state.clone(),
                            );
                            self.emit(f.event());
                        }
                    }
                    Poll::Idle => {
                        self.chats[i].wake = None;
                        break;
                    }
                }
            }
        }
    }

    // ---- commands ----

    /// `createChatChannelSession`; the reply is `{"sessionId": …}`. Returns the token.
    pub fn start_chat(&mut self, _now: Now, plan: StartChat) -> u64 {
        let token = self.token();
        let call = Call::ChatCreate(plan.create.clone());
        self.request(
            call,
            Pending::Create {
                token,
                plan: Box::new(plan),
            },
        );
        token
    }

    fn add_chat(
        &mut self,
        id: EngagementId,
        customer: Participant,
        outbox: Outbox,
        transcript: Transcript,
        greeting: HashSet<ClientMessageId>,
    ) {
        self.dirty.insert(id.clone());
        // A session mostly holds one chat, and a `Chat` is large: the first push would
        // reserve room for four.
        if self.chats.capacity() == 0 {
            self.chats.reserve_exact(1);
        }
        self.chats.push(Chat {
            id,
            state: EngagementState::Starting,
            customer,
            agent: None,
            agent_ready: false,
            synced: false,
            session_sub: None,
            events_sub: None,
            last_event: None,
            seen_events: IncomingDedup::new(EVENT_MEMORY),
            last_session: None,
            outbox,
            transcript: SharedTranscript::new(transcript),
            greeting,
            wake: None,
            typing_sent: false,
            closing: None,
            end_hint: None,
            backfill: None,
        });
    }

    fn on_created(
        &mut self,
        now: Now,
        token: u64,
        plan: StartChat,
        result: Result<Value, RpcError>,
    ) {
        let session = match result {
            Err(e) => return self.reply(token, Err(error::from_rpc("chat.create", &e))),
            Ok(v) => match codec::decode_result::<ChannelSession>("chat.create", v) {
                Ok(s) => s,
                Err(e) => return self.reply(token, Err(error::from_decode(&e))),
            },
        };
        let id = EngagementId::from(session.id.clone());
        let mut outbox = Outbox::new(
            V,
            id.clone(),
            plan.customer.clone(),
            self.cfg.outbox.clone(),
        );
        let mut transcript = Transcript::new();
        let mut greeting = HashSet::new();
        for turn in &plan.bot_history {
            let m = outbox.push(Content::text(turn.text.clone()), turn.time, now.at);
            if turn.role != Role::Customer {
                if let Some(cid) = m.client_id {
                    greeting.insert(cid);
                }
                let mut shown = m;
                shown.sender = Participant::new(Role::Bot);
                transcript.upsert(shown);
            } else {
                transcript.upsert(m);
            }
        }
        if let Some(first) = plan.first_message.filter(|t| !t.trim().is_empty()) {
            let m = outbox.push(Content::text(first), now.wall, now.at);
            transcript.upsert(m);
        }
        self.add_chat(id.clone(), plan.customer, outbox, transcript, greeting);
        self.emit(Event::EngagementStarted {
            engagement: id.clone(),
            resumed: false,
        });
        let i = self.chats.len() - 1;
        self.apply_session(now, i, session);
        if self.is_up() && !gone(self.chats[i].state) {
            self.subscribe_chat(i);
        }
        self.reply(token, Ok(json!({ "sessionId": id.as_str() })));
    }

    /// Queues a message; it goes once an agent is connected. Returns it as recorded.
    pub fn send(
        &mut self,
        now: Now,
        chat: &EngagementId,
        content: Content,
    ) -> Result<Message, Error> {
        let i = self.chat_index(chat).ok_or_else(|| unknown_chat(chat))?;
        if gone(self.chats[i].state) {
            return Err(Error::closed(V, "engagement"));
        }
        match &content {
            Content::Text(t) if t.trim().is_empty() => {
                return Err(Error::invalid(V, "content.text", "empty message"));
            }
            Content::Text(_) => {}
            Content::File(_) => return Err(Error::unsupported(V, Feature::Attachments)),
            Content::Rich(_) => return Err(Error::unsupported(V, Feature::RichContent)),
            Content::Notice(_) => return Err(Error::unsupported(V, Feature::CustomNotices)),
        }
        let m = self.chats[i].outbox.push(content, now.wall, now.at);
        self.chats[i].transcript.lock().upsert(m.clone());
        self.dirty.insert(chat.clone());
        self.drive(now);
        Ok(self.chats[i]
            .outbox
            .get(m.client_id.expect("outbox messages carry a client id"))
            .cloned()
            .unwrap_or(m))
    }

    /// Sends the customer's typing state (`COMPOSING` / `IDLE`); only with a connected agent.
    pub fn typing(&mut self, _now: Now, chat: &EngagementId, on: bool) -> Result<(), Error> {
        let i = self.chat_index(chat).ok_or_else(|| unknown_chat(chat))?;
        let c = &self.chats[i];
        if gone(c.state) {
            return Err(Error::closed(V, "engagement"));
        }
        if !self.is_up() {
            return Err(Error::transport(V, "typing", "not connected to TVox"));
        }
        if !c.agent_ready {
            return Err(Error::Rejected {
                vendor: V,
                code: error::NOT_CONNECTED.to_string(),
                message: "typing goes to an agent: none is connected yet".into(),
                retry_after: None,
            });
        }
        if c.typing_sent == on {
            return Ok(());
        }
        self.chats[i].typing_sent = on;
        let status = if on {
            ChatChannelEventMessageStatus::Composing
        } else {
            ChatChannelEventMessageStatus::Idle
        };
        self.request_now(
            Call::ChatSend(ChatSend {
                session_id: chat.to_string(),
                message: String::new(),
                status,
                notify_greeting_message: false,
            }),
            Pending::Typing { chat: chat.clone() },
        );
        Ok(())
    }

    /// `chatChannelReceivedMessage` / `chatChannelReadMessage`. Returns the token.
    pub fn mark(
        &mut self,
        _now: Now,
        chat: &EngagementId,
        message: &MessageId,
        receipt: Receipt,
    ) -> Result<u64, Error> {
        self.chat_index(chat).ok_or_else(|| unknown_chat(chat))?;
        let (session_id, message_id) = (chat.to_string(), message.to_string());
        let (call, method) = match receipt {
            Receipt::Delivered => (
                Call::ChatReceived {
                    session_id,
                    message_id,
                },
                "chat.received",
            ),
            Receipt::Read => (
                Call::ChatRead {
                    session_id,
                    message_id,
                },
                "chat.read",
            ),
        };
        Ok(self.app_call(call, method))
    }

    /// `chatChannelSessionClose`. Returns the token.
    pub fn close_chat(&mut self, _now: Now, chat: &EngagementId) -> Result<u64, Error> {
        let i = self.chat_index(chat).ok_or_else(|| unknown_chat(chat))?;
        let token = self.token();
        if self.chats[i].state == EngagementState::Ended {
            self.reply(token, Ok(Value::Bool(true)));
            return Ok(token);
        }
        if self.chats[i].closing.is_some() {
            return Err(Error::invalid(V, "engagement", "already closing"));
        }
        self.chats[i].closing = Some(token);
        self.request(
            Call::ChatClose {
                session_id: chat.to_string(),
            },
            Pending::Close { chat: chat.clone() },
        );
        Ok(token)
    }

    /// Detaches from a chat without closing it: both monitors are cancelled and the chat is
    /// no longer re-attached after reconnects; a later session presenting this widget's
    /// resume token finds it again (`hello.sessions`). Messages still waiting fail.
    pub fn leave(&mut self, _now: Now, chat: &EngagementId) -> Result<(), Error> {
        let i = self.chat_index(chat).ok_or_else(|| unknown_chat(chat))?;
        if gone(self.chats[i].state) {
            return Err(Error::closed(V, "engagement"));
        }
        self.chats[i].state = EngagementState::Detached;
        self.chats[i].agent_ready = false;
        self.chats[i].wake = None;
        self.dirty.insert(chat.clone());
        let failures = self.chats[i]
            .outbox
            .close(Error::closed(V, "engagement (left)"));
        for f in failures {
            self.chats[i].transcript.lock().set_state(
                None,
                Some(f.client_id()),
                f.message.state.clone(),
            );
            self.emit(f.event());
        }
        let subs: Vec<String> = [
            self.chats[i].session_sub.take(),
            self.chats[i].events_sub.take(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for s in subs {
            self.subs.remove(&s);
            if self.is_up() {
                self.request_now(Call::Cancel { subscription: s }, Pending::Cancel);
            }
        }
        Ok(())
    }

    /// A call whose answer goes to the app unchanged (visit URI, channel choice, recap,
    /// receipts, video/call sessions). Returns the token.
    pub fn app_call(&mut self, call: Call, method: &'static str) -> u64 {
        let token = self.token();
        self.request(call, Pending::App { token, method });
        token
    }

    /// `getServiceStatusForChannel`: the status now (from the live subscription when there
    /// is one). Returns the token; the reply is the wire `ServiceStatus`.
    pub fn service_status(&mut self, channel: MultiChannelType, service: String) -> u64 {
        let token = self.token();
        let key = (channel, service);
        let monitored = self
            .cfg
            .hello
            .services_configuration
            .iter()
            .any(|c| c.channel == key.0 && c.services.iter().any(|s| s.code == key.1));
        if !monitored {
            self.reply(
                token,
                Err(Error::invalid(
                    V,
                    "query.queue",
                    format!(
                        "service {:?} on channel {} is not monitored (tvox.services)",
                        key.1, key.0
                    ),
                )),
            );
            return token;
        }
        let entry = self.statuses.entry(key.clone()).or_default();
        if entry.subscription.is_some()
            && let Some(s) = &entry.status
        {
            let v = serde_json::to_value(s).unwrap_or(Value::Null);
            self.reply(token, Ok(v));
            return token;
        }
        entry.waiting.push(token);
        if !entry.requested {
            self.subscribe_status(key);
        }
        token
    }

    fn subscribe_status(&mut self, key: StatusKey) {
        if let Some(e) = self.statuses.get_mut(&key) {
            e.requested = true;
        }
        self.request(
            Call::StatusSubscribe {
                service: key.1.clone(),
                channel: key.0.clone(),
            },
            Pending::StatusSub { key },
        );
    }

    fn on_status_subscribed(&mut self, key: StatusKey, result: Result<Value, RpcError>) {
        let parsed = match result {
            Ok(v) => codec::decode_result::<StatusSubscribed>("service.status.subscribe", v)
                .map_err(|e| error::from_decode(&e)),
            Err(e) => Err(error::from_rpc("service.status.subscribe", &e)),
        };
        match parsed {
            Ok(r) => {
                self.subs
                    .insert(r.subscription.clone(), Sub::Status(key.clone()));
                if let Some(e) = self.statuses.get_mut(&key) {
                    e.subscription = Some(r.subscription);
                }
                self.set_status(key, r.status);
            }
            Err(err) => {
                let waiting = self
                    .statuses
                    .remove(&key)
                    .map(|e| e.waiting)
                    .unwrap_or_default();
                if waiting.is_empty() {
                    self.emit(Event::error(err));
                } else {
                    let err = Arc::new(err);
                    for t in waiting {
                        self.reply(t, Err(clone_error(&err)));
                    }
                }
            }
        }
    }

    fn set_status(&mut self, key: StatusKey, status: ServiceStatus) {
        let Some(entry) = self.statuses.get_mut(&key) else {
            return;
        };
        let changed = entry.status.as_ref() != Some(&status);
        entry.status = Some(status.clone());
        let waiting = std::mem::take(&mut entry.waiting);
        let value = serde_json::to_value(&status).unwrap_or(Value::Null);
        for t in waiting {
            self.reply(t, Ok(value.clone()));
        }
        if changed {
            self.out.push_back(Output::Status {
                channel: key.0.clone(),
                service: key.1.clone(),
                status,
            });
            self.emit(Event::Vendor {
                vendor: V,
                name: Arc::from("tvox.service_status"),
                payload: Arc::new(value),
            });
        }
    }

    /// `videoChannelSessionMonitor` / `callChannelSessionMonitor`: subscribes the
    /// widget-wide monitor of `channel` (`VIDEO` or `PHONE_CALL`), kept across reconnects
    /// until [`Engine::media_monitor_stop`]. Returns the token (answered once subscribed).
    pub fn media_monitor(&mut self, channel: MultiChannelType) -> u64 {
        let token = self.token();
        let entry = self.media_subs.entry(channel.clone()).or_default();
        entry.app = true;
        if entry.subscription.is_some() {
            self.reply(token, Ok(Value::Bool(true)));
            return token;
        }
        entry.waiting.push(token);
        if !entry.requested {
            self.subscribe_media(channel);
        }
        token
    }

    /// `…ChannelSessionMonitorStop`. Returns the token.
    pub fn media_monitor_stop(&mut self, channel: &MultiChannelType) -> u64 {
        let token = self.token();
        if let Some(m) = self.media_subs.get_mut(channel) {
            m.app = false;
        }
        // The session's own calls keep the subscription until they end.
        let in_use = self.calls.values().any(|c| &c.channel == channel);
        if !in_use && let Some(m) = self.media_subs.remove(channel) {
            for t in m.waiting {
                self.reply(t, Err(Error::closed(V, "call monitor")));
            }
            if let Some(sub) = m.subscription {
                self.subs.remove(&sub);
                if self.is_up() {
                    self.request_now(Call::Cancel { subscription: sub }, Pending::Cancel);
                }
            }
        }
        self.reply(token, Ok(Value::Bool(true)));
        token
    }

    fn subscribe_media(&mut self, channel: MultiChannelType) {
        if let Some(m) = self.media_subs.get_mut(&channel) {
            m.requested = true;
        }
        let call = if channel == MultiChannelType::Video {
            Call::VideoSubscribe {}
        } else {
            Call::CallSubscribe {}
        };
        self.request(call, Pending::MediaSub { channel });
    }

    fn on_media_subscribed(
        &mut self,
        now: Now,
        channel: MultiChannelType,
        result: Result<Value, RpcError>,
    ) {
        let method = if channel == MultiChannelType::Video {
            "video.subscribe"
        } else {
            "call.subscribe"
        };
        let parsed = match result {
            Ok(v) => codec::decode_result::<codec::Subscribed>(method, v)
                .map_err(|e| error::from_decode(&e)),
            Err(e) => Err(error::from_rpc(method, &e)),
        };
        let Some(entry) = self.media_subs.get_mut(&channel) else {
            // Stopped meanwhile: cancel what the server just made.
            if let Ok(r) = parsed
                && self.is_up()
            {
                self.request_now(
                    Call::Cancel {
                        subscription: r.subscription,
                    },
                    Pending::Cancel,
                );
            }
            return;
        };
        let waiting = std::mem::take(&mut entry.waiting);
        match parsed {
            Ok(r) => {
                entry.subscription = Some(r.subscription.clone());
                let renewed = std::mem::replace(&mut entry.renewed, true);
                self.subs
                    .insert(r.subscription, Sub::Media(channel.clone()));
                for t in waiting {
                    self.reply(t, Ok(Value::Bool(true)));
                }
                if renewed {
                    // After a reconnect: what became of the calls meanwhile.
                    for session in r.sessions {
                        if self.calls.contains_key(&session.id) {
                            self.apply_call_session(now, &channel, session);
                        } else if self.media.contains_key(&session.id) {
                            self.apply_media(channel.clone(), session);
                        }
                    }
                }
            }
            Err(err) => {
                entry.requested = false;
                if waiting.is_empty() {
                    self.emit(Event::error(err));
                } else {
                    let err = Arc::new(err);
                    for t in waiting {
                        self.reply(t, Err(clone_error(&err)));
                    }
                }
            }
        }
    }

    fn apply_media(&mut self, channel: MultiChannelType, session: ChannelSession) {
        let video = channel == MultiChannelType::Video;
        let track = self.media.entry(session.id.clone()).or_insert_with(|| {
            let mut machine = CallMachine::new(V, video);
            // Created by the widget or offered by TVox: either way the session exists, as
            // after a dial (its offer is the calls work's: no media here yet).
            let _ = machine.command(CallCommand::Dial);
            MediaTrack {
                machine,
                last: None,
            }
        });
        if let Some(state) = &session.state {
            let resumed = track.last == Some(CallState::Hold)
                && matches!(state, CallState::Connected | CallState::Conferenced);
            let signal = if resumed {
                Some(CallSignal::RemoteHold(false))
            } else {
                call_signal(state)
            };
            if let Some(signal) = signal {
                track.machine.signal(signal);
            }
            track.last = Some(state.clone());
        }
        if session.session_state == Some(MultiChannelState::Closed)
            && !matches!(track.machine.state(), cc_core::CallState::Ended { .. })
        {
            track.machine.signal(CallSignal::RemoteHangup {
                reason: Arc::from("CLOSED"),
            });
        }
        let state = track.machine.state().clone();
        if matches!(state, cc_core::CallState::Ended { .. }) {
            self.media.remove(&session.id);
        }
        let mut payload = serde_json::to_value(&session).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut payload {
            m.insert("channel".into(), Value::String(channel.to_string()));
        }
        self.emit(Event::Vendor {
            vendor: V,
            name: Arc::from("tvox.media_session"),
            payload: Arc::new(payload),
        });
        self.out.push_back(Output::Media {
            channel,
            session,
            state,
        });
    }

    /// The cached status of a (channel, service), if subscribed.
    pub fn cached_status(
        &self,
        channel: &MultiChannelType,
        service: &str,
    ) -> Option<&ServiceStatus> {
        self.statuses
            .get(&(channel.clone(), service.to_owned()))
            .and_then(|e| e.status.as_ref())
    }
}

/// Whether a chat is out of this session's hands: ended, or left with `leave`.
fn gone(state: EngagementState) -> bool {
    matches!(state, EngagementState::Ended | EngagementState::Detached)
}

fn unknown_chat(chat: &EngagementId) -> Error {
    Error::invalid(V, "engagement", format!("unknown chat {chat}"))
}

/// Copies an error for several waiters (the error type is not `Clone`).
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Rejected {
            vendor,
            code,
            message,
            retry_after,
        } => Error::Rejected {
            vendor: *vendor,
            code: code.clone(),
            message: message.clone(),
            retry_after: *retry_after,
        },
        Error::InvalidInput {
            vendor,
            field,
            reason,
        } => Error::InvalidInput {
            vendor: *vendor,
            field: field.clone(),
            reason: reason.clone(),
        },
        Error::Protocol {
            vendor,
            frame,
            reason,
        } => Error::Protocol {
            vendor: *vendor,
            frame: frame.clone(),
            reason: reason.clone(),
        },
        Error::Unsupported { vendor, feature } => Error::unsupported(*vendor, *feature),
        Error::Closed { vendor, what } => Error::closed(*vendor, what),
        other => Error::transport(V, "service status", other.to_string()),
    }
}

/// The neutral availability of a wire status: `ACTIVE` → open, `OUT_OF_SERVICE` → out of
/// service, `OVERTIME` → closed by calendar; a channel or service not `ENABLED` is out of
/// service whatever the status says; `FAILED` and unknown values are unknown.
pub fn to_service_status(s: &ServiceStatus) -> cc_core::ServiceStatus {
    use crate::wire::{ConfigurationStatus as C, ServiceStatusValue as S};
    use cc_core::Availability as A;
    let not_enabled = |c: &Option<C>| matches!(c, Some(c) if *c != C::Enabled);
    let availability =
        if not_enabled(&s.channel_configuration) || not_enabled(&s.service_configuration) {
            A::OutOfService
        } else {
            match &s.status {
                Some(S::Active) => A::Open,
                Some(S::OutOfService) => A::OutOfService,
                Some(S::Overtime) => A::ClosedByCalendar,
                _ => A::Unknown,
            }
        };
    cc_core::ServiceStatus {
        availability,
        ..cc_core::ServiceStatus::UNKNOWN
    }
}

/// The signal a video/call session's `CallState` gives `cc_rtc::CallMachine` (for the
/// calls work: media and `CallSession` are not offered yet). `NEW_OUTBOUND` is the
/// widget's own request being processed, `NEW_INBOUND` a call from TVox ringing,
/// `CONFERENCED` a connected call, `IDLE` the end.
pub fn call_signal(state: &CallState) -> Option<CallSignal> {
    match state {
        CallState::NewOutbound => Some(CallSignal::Trying),
        CallState::NewInbound => Some(CallSignal::Ringing),
        CallState::Connected | CallState::Conferenced => Some(CallSignal::Answered),
        CallState::Hold => Some(CallSignal::RemoteHold(true)),
        CallState::Idle => Some(CallSignal::RemoteHangup {
            reason: Arc::from("IDLE"),
        }),
        CallState::Unknown(_) => None,
    }
}

mod calls;
pub use calls::{MediaOp, StartCall, end_reason};

#[cfg(test)]
mod tests;

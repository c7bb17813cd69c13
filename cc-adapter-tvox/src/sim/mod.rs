//! A local simulator of the TVox widget server, speaking the PROPOSED protocol of
//! `shared/protocols/tvox.md` §3 with the behaviour of §4–5, for tests and for app
//! developers without a TVox.
//!
//! One server on `127.0.0.1:<port>` (plain `ws`) serves the widget socket
//! `/apps/widget/api/ws` (subprotocol `tvox-widget.v1`) and a stub of the widget bundle
//! `/apps/widget/dist/bundle/loader.js`. It reuses the crate's [`crate::wire`] types, so
//! client and simulator share one codec. It keeps:
//!
//! - **clients**: `widget.hello` first on every socket, resume tokens, the services each
//!   client monitors; a socket silent for 3 heartbeat intervals is dropped;
//! - **a directory** of services per channel with their configuration, the agents logged
//!   in and an optional weekly calendar (UTC windows): the status is `OVERTIME` outside
//!   the calendar, `OUT_OF_SERVICE` without agents, else `ACTIVE`; every change is pushed
//!   live to the `service.status.subscribe` subscribers;
//! - **chats**: `QUEUE` on creation, then whatever the agent side does
//!   ([`cc_testkit::SimControl`] and the extra methods here: [`Simulator::play`],
//!   [`Simulator::to_url`]); events with ids, replayed after `sinceEventId`; sending only
//!   while an agent is connected (error 1007 otherwise); greeting messages recorded as such;
//!   receipts and recaps recorded;
//! - **timers**: inactivity (`INACTIVE_TIMEOUT` with `inactivityExpireDatetime`, closed at
//!   expiry unless there is activity, which gives `ACTIVE_FROM_TIMEOUT`), maximum duration
//!   (`MAX_DURATION_TIMEOUT`, then closed);
//! - **video and phone calls**: created `NEW_OUTBOUND`, pushed to `video.subscribe` /
//!   `call.subscribe`; once the client's `webrtc.offer` arrives the far end plays the
//!   script [`SimControl::set_call_answer`] chose (see [`calls`]): a media peer on
//!   127.0.0.1 (`cc_rtc::media::MediaSession` with a 440 Hz tone and a recording sink)
//!   answers, or the call ends busy / unanswered; [`Simulator::set_call_state`] plays the
//!   agent (hold with a re-offer, resume, hang-up);
//! - **faults**: dropping every socket, a restart that forgets clients but keeps chats,
//!   [`Simulator::mute_connections`] (the current sockets go silent toward the client, as a
//!   half-open link: heartbeats go unanswered and pushes are lost), malformed frames.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_adapter_tvox::sim::{SimOptions, Simulator};
//! let sim = Simulator::start(SimOptions::default()).await?;
//! println!("TVox simulator at {}", sim.base_url());
//! let config = sim.cc_config(); // vendor = "tvox", url = http://127.0.0.1:<port>
//! let session = cc_adapter_tvox::connect(config).await?;
//! # drop(session); Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use cc_core::{Error, Feature, OpeningHours, Result, Timestamp, Vendor, Weekday};
use cc_testkit::{
    CallAnswer, Direction as FrameDirection, FarEndCall, Frame, Received, SimChat, SimControl,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::TvoxConfig;
use crate::error as codes;
use crate::wire::codec::{
    self, EventsSubscribed, HelloResult, IceServer, MediaCreated, PingResult, SessionSubscribed,
    StatusSubscribed,
};
use crate::wire::{
    Call, CallState, ChannelServicesConfiguration, ChannelSession, ChatChannelEventMessage,
    ChatChannelEventMessageStatus, ChatMessageType, ConfigurationStatus, Direction,
    MultiChannelState, MultiChannelStep, MultiChannelStepType, MultiChannelType, RpcError, RpcId,
    ServiceConfiguration, ServiceStatus, ServiceStatusValue, TrickleIcePolicy, WebrtcConfig, time,
};

const V: Vendor = Vendor::Tvox;

pub mod calls;

/// One service of the simulator's directory.
#[derive(Clone, Debug)]
pub struct SimService {
    /// The service code.
    pub code: String,
    /// The channel.
    pub channel: MultiChannelType,
    /// How it is configured.
    pub configuration: ConfigurationStatus,
    /// Agents logged in (0 = `OUT_OF_SERVICE`).
    pub agents_logged_in: u32,
    /// Opening hours in UTC; `None` = always open.
    pub calendar: Option<OpeningHours>,
}

impl SimService {
    /// An enabled service with one agent logged in and no calendar.
    pub fn new(channel: MultiChannelType, code: impl Into<String>) -> Self {
        SimService {
            code: code.into(),
            channel,
            configuration: ConfigurationStatus::Enabled,
            agents_logged_in: 1,
            calendar: None,
        }
    }
}

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Port to listen on (0 picks a free one). The address is always 127.0.0.1.
    pub port: u16,
    /// The heartbeat interval clients use; a socket silent for 3 of them is dropped.
    pub heartbeat: Duration,
    /// Inactivity before `INACTIVE_TIMEOUT` (PROPOSED default 300 s).
    pub inactivity_timeout: Duration,
    /// Grace between `INACTIVE_TIMEOUT` and the close (PROPOSED default 60 s).
    pub inactivity_grace: Duration,
    /// Longest chat from `CONNECTED` (PROPOSED default 3600 s).
    pub max_duration: Duration,
    /// The directory.
    pub services: Vec<SimService>,
    /// Channel configurations; a channel not listed is `ENABLED`.
    pub channels: BTreeMap<String, ConfigurationStatus>,
    /// Whether the MAIL channel is configured for tickets (recaps).
    pub mail_configured: bool,
    /// How often timers and calendars are checked.
    pub tick: Duration,
    /// The STUN/TURN servers the handshake names (none by default: the far end is on
    /// loopback and needs none).
    pub ice_servers: Vec<IceServer>,
    /// How long the agent's phone rings before the far end answers (`Answer`).
    pub answer_after: Duration,
    /// How long it rings before TVox gives up (`NoAnswer`).
    pub no_answer_after: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            heartbeat: Duration::from_millis(5000),
            inactivity_timeout: Duration::from_secs(300),
            inactivity_grace: Duration::from_secs(60),
            max_duration: Duration::from_secs(3600),
            services: vec![
                SimService::new(MultiChannelType::Chat, "support"),
                SimService::new(MultiChannelType::Chat, "sales"),
                SimService::new(MultiChannelType::Video, "support"),
                SimService::new(MultiChannelType::PhoneCall, "support"),
            ],
            channels: BTreeMap::new(),
            mail_configured: true,
            tick: Duration::from_millis(20),
            ice_servers: Vec::new(),
            answer_after: Duration::from_millis(200),
            no_answer_after: Duration::from_millis(1000),
        }
    }
}

/// A message of a chat as the simulator stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimMessage {
    /// The event id.
    pub id: String,
    /// The text.
    pub text: String,
    /// `OUTBOUND` = from the customer.
    pub direction: Direction,
    /// Sent with `notifyGreetingMessage` (shown to the agent as the agent side's).
    pub greeting: bool,
}

#[derive(Debug)]
enum SockCmd {
    Text(String),
    Drop,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Status(MultiChannelType, String),
    Session(usize),
    Events(usize),
    Video,
    Call,
}

#[derive(Debug)]
struct Sock {
    id: u64,
    tx: mpsc::UnboundedSender<SockCmd>,
    hello: bool,
    token: Option<String>,
    monitored: Vec<(MultiChannelType, String)>,
    webrtc: bool,
    trickle: Option<TrickleIcePolicy>,
    last_seen: Instant,
    muted: bool,
    subs: BTreeMap<String, Target>,
}

#[derive(Debug)]
struct ChatRec {
    id: String,
    /// The resume token of the widget that owns it (the last to subscribe to it).
    owner: Option<String>,
    service: String,
    customer_name: Option<String>,
    state: MultiChannelState,
    step_no: i64,
    step: MultiChannelStep,
    events: Vec<ChatChannelEventMessage>,
    received: Vec<Received>,
    log: Vec<SimMessage>,
    agent: Option<String>,
    last_activity: Instant,
    connected_since: Option<Instant>,
    inactive_until: Option<Instant>,
}

impl ChatRec {
    fn session(&self) -> ChannelSession {
        ChannelSession {
            id: self.id.clone(),
            service: Some(self.service.clone()),
            session_state: Some(self.state.clone()),
            step: Some(self.step.clone()),
            ..ChannelSession::default()
        }
    }
}

#[derive(Debug)]
struct MediaRec {
    id: String,
    channel: MultiChannelType,
    service: String,
    state: CallState,
    start: String,
    /// The resume token of the widget that created it.
    owner: Option<String>,
    /// The creating widget's trickle policy (how the far end sends its candidates).
    trickle: Option<TrickleIcePolicy>,
    /// `closeReason` of the `IDLE` push.
    close_reason: Option<String>,
    /// The far end's side of the call, once the client offered.
    far: Option<calls::FarEnd>,
}

#[derive(Debug, Default)]
struct State {
    frames: cc_testkit::FrameLog,
    socks: Vec<Sock>,
    next_sock: u64,
    next_sub: u64,
    next_event: u64,
    chats: Vec<ChatRec>,
    unseen: VecDeque<usize>,
    services: Vec<SimService>,
    channels: BTreeMap<String, ConfigurationStatus>,
    statuses: BTreeMap<(MultiChannelType, String), ServiceStatus>,
    clients: HashMap<String, String>,
    visits: Vec<Value>,
    identifiers: Vec<(MultiChannelType, String)>,
    recaps: Vec<(String, String)>,
    cancels: Vec<String>,
    media: Vec<MediaRec>,
    call_answer: CallAnswer,
    /// How long the far end rings before it answers, when set
    /// ([`SimControl::set_ring_time`]); else `SimOptions::answer_after`.
    ring: Option<Duration>,
    /// The newest call whose offer reached the far end.
    last_call: Option<usize>,
    clock: Option<Timestamp>,
    seq: i64,
}

impl State {
    fn wall(&mut self) -> Timestamp {
        if let Some(t) = self.clock {
            return t;
        }
        // Strictly increasing, so events of one millisecond keep their order.
        let now = Timestamp::now().0;
        self.seq = self.seq.max(now - 1) + 1;
        Timestamp(self.seq)
    }

    fn record(&mut self, direction: FrameDirection, text: &str) {
        let body = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        self.frames.push(Frame {
            direction,
            channel: "ws".to_owned(),
            body,
        });
    }

    fn send(&mut self, sock: usize, text: String) {
        if self.socks[sock].muted {
            return;
        }
        self.record(FrameDirection::ServerToClient, &text);
        let _ = self.socks[sock].tx.send(SockCmd::Text(text));
    }

    fn sock_index(&self, id: u64) -> Option<usize> {
        self.socks.iter().position(|s| s.id == id)
    }

    /// Pushes `data` on every subscription `pick` accepts.
    fn push(&mut self, pick: impl Fn(&Target) -> bool, data: &Value) {
        let mut out = Vec::new();
        for (i, s) in self.socks.iter().enumerate() {
            for (sub, t) in &s.subs {
                if pick(t) {
                    out.push((i, codec::encode_notify(sub, data)));
                }
            }
        }
        for (i, text) in out {
            self.send(i, text);
        }
    }

    fn push_session(&mut self, chat: usize) {
        let data = serde_json::to_value(self.chats[chat].session()).expect("serializable");
        self.push(|t| *t == Target::Session(chat), &data);
    }

    fn set_step(&mut self, chat: usize, mut step: MultiChannelStep) {
        let c = &mut self.chats[chat];
        c.step_no += 1;
        step.step = Some(c.step_no);
        c.step = step;
        self.push_session(chat);
    }

    fn add_event(&mut self, chat: usize, mut ev: ChatChannelEventMessage) -> String {
        self.next_event += 1;
        let id = format!("ev-{}", self.next_event);
        ev.id = Some(id.clone());
        ev.session_id = Some(self.chats[chat].id.clone());
        ev.created_at = Some(time::format(self.wall()));
        self.chats[chat].events.push(ev.clone());
        let data = serde_json::to_value(&ev).expect("serializable");
        self.push(|t| *t == Target::Events(chat), &data);
        id
    }

    fn channel_config(&self, channel: &MultiChannelType) -> ConfigurationStatus {
        self.channels
            .get(channel.as_str())
            .cloned()
            .unwrap_or(ConfigurationStatus::Enabled)
    }

    fn status_of(&mut self, channel: &MultiChannelType, code: &str) -> ServiceStatus {
        let wall = self.wall();
        let channel_configuration = self.channel_config(channel);
        let svc = self
            .services
            .iter()
            .find(|s| &s.channel == channel && s.code == code);
        let (service_configuration, status) = match svc {
            None => (ConfigurationStatus::NotFound, ServiceStatusValue::Failed),
            Some(s) => {
                let open = s.calendar.as_ref().is_none_or(|c| calendar_open(c, wall));
                let status = if !open {
                    ServiceStatusValue::Overtime
                } else if s.agents_logged_in == 0 {
                    ServiceStatusValue::OutOfService
                } else {
                    ServiceStatusValue::Active
                };
                (s.configuration.clone(), status)
            }
        };
        ServiceStatus {
            channel_configuration: Some(channel_configuration),
            channel_id: Some(channel.clone()),
            service: Some(code.to_owned()),
            service_configuration: Some(service_configuration),
            status: Some(status),
        }
    }

    /// Recomputes every subscribed status and pushes the changes.
    fn refresh_statuses(&mut self) {
        let keys: Vec<(MultiChannelType, String)> = self
            .socks
            .iter()
            .flat_map(|s| s.subs.values())
            .filter_map(|t| match t {
                Target::Status(c, s) => Some((c.clone(), s.clone())),
                _ => None,
            })
            .collect();
        for key in keys {
            let now = self.status_of(&key.0, &key.1);
            if self.statuses.get(&key) != Some(&now) {
                self.statuses.insert(key.clone(), now.clone());
                let data = serde_json::to_value(&now).expect("serializable");
                self.push(
                    |t| matches!(t, Target::Status(c, s) if *c == key.0 && *s == key.1),
                    &data,
                );
            }
        }
    }

    fn activity(&mut self, chat: usize) {
        let now = Instant::now();
        self.chats[chat].last_activity = now;
        if self.chats[chat].inactive_until.take().is_some() {
            let agent = self.chats[chat].agent.clone();
            self.set_step(
                chat,
                MultiChannelStep {
                    step_type: Some(MultiChannelStepType::ActiveFromTimeout),
                    ..MultiChannelStep::default()
                },
            );
            self.set_step(
                chat,
                MultiChannelStep {
                    step_type: Some(MultiChannelStepType::Connected),
                    agent_name: agent,
                    ..MultiChannelStep::default()
                },
            );
        }
    }

    /// Closes a chat: the `CLOSED_SESSION` event, then the session `CLOSED`.
    fn close(&mut self, chat: usize, direction: Direction) {
        if self.chats[chat].state == MultiChannelState::Closed {
            return;
        }
        self.add_event(
            chat,
            ChatChannelEventMessage {
                message_type: Some(ChatMessageType::ClosedSession),
                direction: Some(direction),
                ..ChatChannelEventMessage::default()
            },
        );
        let c = &mut self.chats[chat];
        c.state = MultiChannelState::Closed;
        c.agent = None;
        c.inactive_until = None;
        c.connected_since = None;
        self.push_session(chat);
    }

    fn connect_agent(&mut self, chat: usize, agent: &str) {
        self.set_step(
            chat,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::Connecting),
                ..MultiChannelStep::default()
            },
        );
        let c = &mut self.chats[chat];
        c.agent = Some(agent.to_owned());
        c.connected_since = Some(Instant::now());
        c.last_activity = Instant::now();
        c.inactive_until = None;
        self.set_step(
            chat,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::Connected),
                agent_name: Some(agent.to_owned()),
                ..MultiChannelStep::default()
            },
        );
    }

    fn chat_index(&self, chat: &SimChat) -> Result<usize> {
        self.chats
            .iter()
            .position(|c| c.id == chat.id)
            .ok_or_else(|| Error::invalid(V, "chat", format!("unknown chat {}", chat.id)))
    }

    fn open_chat(&self, chat: &SimChat) -> Result<usize> {
        let i = self.chat_index(chat)?;
        if self.chats[i].state == MultiChannelState::Closed {
            return Err(Error::closed(V, "chat"));
        }
        Ok(i)
    }
}

fn weekday_of(days_since_epoch: i64) -> Weekday {
    // 1970-01-01 was a Thursday.
    match (days_since_epoch + 3).rem_euclid(7) {
        0 => Weekday::Mon,
        1 => Weekday::Tue,
        2 => Weekday::Wed,
        3 => Weekday::Thu,
        4 => Weekday::Fri,
        5 => Weekday::Sat,
        _ => Weekday::Sun,
    }
}

/// Whether `at` falls in a window of `calendar` (windows in UTC).
pub fn calendar_open(calendar: &OpeningHours, at: Timestamp) -> bool {
    let secs = at.0.div_euclid(1000);
    let day = weekday_of(secs.div_euclid(86_400));
    let minute = u16::try_from(secs.rem_euclid(86_400) / 60).unwrap_or(0);
    calendar
        .windows
        .iter()
        .any(|w| w.day == day && (w.open_minute..w.close_minute).contains(&minute))
}

#[derive(Debug)]
struct Inner {
    opts: SimOptions,
    addr: SocketAddr,
    state: Mutex<State>,
    chat_started: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running simulator; dropping it (or [`Simulator::shutdown`]) stops the server.
#[derive(Debug)]
pub struct Simulator {
    inner: Arc<Inner>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:<options.port>`.
    pub async fn start(options: SimOptions) -> Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        let state = State {
            services: options.services.clone(),
            channels: options.channels.clone(),
            ..State::default()
        };
        let inner = Arc::new(Inner {
            opts: options,
            addr,
            state: Mutex::new(state),
            chat_started: Notify::new(),
        });
        let app = Router::new()
            .route(codec::WS_PATH, get(upgrade))
            .route(
                "/apps/widget/dist/bundle/loader.js",
                get(|| async { "/* TVox widget bundle: not served by the simulator */" }),
            )
            .with_state(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        // Small frames go out at once (answers, pushes), not after the client's delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        tokio::spawn(sweeper(Arc::downgrade(&inner)));
        Ok(Simulator {
            inner,
            stop: Mutex::new(Some(tx)),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:<port>`: the `url` to configure the adapter with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The options it runs with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.opts
    }

    /// A `[tvox]` section for `base_url` (the simulator's, or a proxy's in front of it):
    /// every directory service monitored, the first CHAT service the default, the
    /// simulator's heartbeat.
    pub fn config_for(&self, base_url: &str) -> TvoxConfig {
        let mut c = TvoxConfig::new(base_url);
        c.heartbeat_interval_ms = u64::try_from(self.inner.opts.heartbeat.as_millis())
            .unwrap_or(5000)
            .max(50);
        let mut by_channel: Vec<ChannelServicesConfiguration> = Vec::new();
        for s in &self.inner.opts.services {
            let entry = ServiceConfiguration {
                code: s.code.clone(),
                description: None,
            };
            match by_channel.iter_mut().find(|c| c.channel == s.channel) {
                Some(c) => c.services.push(entry),
                None => by_channel.push(ChannelServicesConfiguration {
                    channel: s.channel.clone(),
                    services: vec![entry],
                }),
            }
        }
        c.default_service = self
            .inner
            .opts
            .services
            .iter()
            .find(|s| s.channel == MultiChannelType::Chat)
            .map(|s| s.code.clone());
        c.services = by_channel;
        // Calls: WebRTC on, media on loopback like the far end.
        c.webrtc = Some(WebrtcConfig {
            enabled: true,
            trickle_ice_policy: None,
            ice_gather_policy: None,
        });
        c.calls.bind = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        c
    }

    /// [`Simulator::config_for`] the simulator's own address.
    pub fn config(&self) -> TvoxConfig {
        self.config_for(&self.base_url())
    }

    /// A ready-to-use `cc_core::Config` (`vendor = "tvox"`) pointing at the simulator.
    pub fn cc_config(&self) -> cc_core::Config {
        cc_core::Config::new(V, self.config()).expect("the section serializes")
    }

    /// Stops the server and drops every connection.
    pub fn shutdown(&self) {
        self.drop_all();
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    fn drop_all(&self) {
        let mut st = self.inner.lock();
        for s in st.socks.drain(..) {
            let _ = s.tx.send(SockCmd::Drop);
        }
    }

    /// The current sockets go silent toward the client (a half-open link): answers,
    /// heartbeats and pushes to them are lost, what the client sends still arrives. New
    /// sockets are not affected.
    pub fn mute_connections(&self) {
        for s in &mut self.inner.lock().socks {
            s.muted = true;
        }
    }

    /// Restarts losing every chat and client (a server without persistence): connections
    /// drop, and re-subscriptions to the old chats fail with `SESSION_NOT_FOUND` (1005).
    pub fn restart_forgetting_chats(&self) {
        let mut st = self.inner.lock();
        for s in st.socks.drain(..) {
            let _ = s.tx.send(SockCmd::Drop);
        }
        st.clients.clear();
        st.statuses.clear();
        st.chats.clear();
        st.unseen.clear();
    }

    /// How many client sockets are open.
    pub fn connections(&self) -> usize {
        self.inner.lock().socks.len()
    }

    /// Plays a message to the customer: a `PLAY` step with `welcomeMessage`.
    pub fn play(&self, chat: &SimChat, welcome: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.set_step(
            i,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::Play),
                welcome_message: Some(welcome.to_owned()),
                ..MultiChannelStep::default()
            },
        );
        Ok(())
    }

    /// Asks the page to go to `uri`: a `TO_URL` step.
    pub fn to_url(&self, chat: &SimChat, uri: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.set_step(
            i,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::ToUrl),
                uri: Some(uri.to_owned()),
                ..MultiChannelStep::default()
            },
        );
        Ok(())
    }

    /// Sets the agents logged in to a service (0 → `OUT_OF_SERVICE`); pushed live.
    pub fn set_agents(&self, channel: MultiChannelType, code: &str, agents: u32) -> Result<()> {
        let mut st = self.inner.lock();
        let s = st
            .services
            .iter_mut()
            .find(|s| s.channel == channel && s.code == code)
            .ok_or_else(|| Error::invalid(V, "service", format!("unknown service {code}")))?;
        s.agents_logged_in = agents;
        st.refresh_statuses();
        Ok(())
    }

    /// Sets a service's calendar (`None` = always open); pushed live.
    pub fn set_calendar(
        &self,
        channel: MultiChannelType,
        code: &str,
        calendar: Option<OpeningHours>,
    ) -> Result<()> {
        let mut st = self.inner.lock();
        let s = st
            .services
            .iter_mut()
            .find(|s| s.channel == channel && s.code == code)
            .ok_or_else(|| Error::invalid(V, "service", format!("unknown service {code}")))?;
        s.calendar = calendar;
        st.refresh_statuses();
        Ok(())
    }

    /// Pins the clock calendars are read with (`None` = the system clock).
    pub fn set_clock(&self, at: Option<Timestamp>) {
        let mut st = self.inner.lock();
        st.clock = at;
        st.refresh_statuses();
    }

    /// Every message of a chat, in order, with its greeting flag.
    pub fn messages(&self, chat: &SimChat) -> Result<Vec<SimMessage>> {
        let st = self.inner.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].log.clone())
    }

    /// The `widget.visitUri` params received, in order.
    pub fn visits(&self) -> Vec<Value> {
        self.inner.lock().visits.clone()
    }

    /// The `widget.customerIdentifier` choices received, in order.
    pub fn identifiers(&self) -> Vec<(MultiChannelType, String)> {
        self.inner.lock().identifiers.clone()
    }

    /// The recaps asked: (session id, mail).
    pub fn recaps(&self) -> Vec<(String, String)> {
        self.inner.lock().recaps.clone()
    }

    /// Every subscription the clients cancelled.
    pub fn cancelled(&self) -> Vec<String> {
        self.inner.lock().cancels.clone()
    }

    /// The video and phone sessions: (id, channel, service, state).
    pub fn media_sessions(&self) -> Vec<(String, MultiChannelType, String, CallState)> {
        self.inner
            .lock()
            .media
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.channel.clone(),
                    m.service.clone(),
                    m.state.clone(),
                )
            })
            .collect()
    }

    /// Moves a video or phone session to `state` (`IDLE` closes it) and pushes it.
    ///
    /// For a call the far end answered, the agent's side acts as TVox's media would:
    /// `HOLD` re-offers `a=sendonly` first (the client answers with `webrtc.answer`), the
    /// `CONNECTED` after it re-offers `a=sendrecv`; `IDLE` is the agent hanging up
    /// (`closeReason: NORMAL_CLEARING`).
    pub fn set_call_state(&self, session_id: &str, state: CallState) -> Result<()> {
        let mut st = self.inner.lock();
        calls::agent_sets_state(&mut st, session_id, state)
    }
}

fn media_state(st: &mut State, session_id: &str, state: CallState) -> Result<()> {
    media_push(st, session_id, state, None)
}

/// Moves a video or phone session to `state` and pushes it, with `step` when given.
fn media_push(
    st: &mut State,
    session_id: &str,
    state: CallState,
    step: Option<MultiChannelStepType>,
) -> Result<()> {
    let wall = st.wall();
    let m = st
        .media
        .iter_mut()
        .find(|m| m.id == session_id)
        .ok_or_else(|| Error::invalid(V, "session_id", format!("unknown session {session_id}")))?;
    m.state = state;
    let session = m.session(wall, step);
    let data = serde_json::to_value(session).expect("serializable");
    calls::push_call(st, session_id, &data);
    Ok(())
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn sweeper(inner: std::sync::Weak<Inner>) {
    let tick = match inner.upgrade() {
        Some(i) => i.opts.tick.max(Duration::from_millis(1)),
        None => return,
    };
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let opts = &inner.opts;
        let mut st = inner.lock();
        let now = Instant::now();
        // Clients that stopped pinging.
        let silent = opts.heartbeat * 3;
        let dead: Vec<u64> = st
            .socks
            .iter()
            .filter(|s| now.saturating_duration_since(s.last_seen) > silent)
            .map(|s| s.id)
            .collect();
        for id in dead {
            if let Some(i) = st.sock_index(id) {
                let s = st.socks.remove(i);
                let _ = s.tx.send(SockCmd::Drop);
            }
        }
        // Chat timers.
        for i in 0..st.chats.len() {
            let c = &st.chats[i];
            if c.state == MultiChannelState::Closed || c.agent.is_none() {
                continue;
            }
            if c.connected_since
                .is_some_and(|t| now.saturating_duration_since(t) >= opts.max_duration)
            {
                st.set_step(
                    i,
                    MultiChannelStep {
                        step_type: Some(MultiChannelStepType::MaxDurationTimeout),
                        ..MultiChannelStep::default()
                    },
                );
                st.close(i, Direction::Inbound);
                continue;
            }
            if let Some(until) = c.inactive_until {
                if now >= until {
                    st.close(i, Direction::Inbound);
                }
                continue;
            }
            if now.saturating_duration_since(c.last_activity) >= opts.inactivity_timeout {
                let expire = st.wall().0
                    + i64::try_from(opts.inactivity_grace.as_millis()).unwrap_or(i64::MAX);
                st.chats[i].inactive_until = Some(now + opts.inactivity_grace);
                st.set_step(
                    i,
                    MultiChannelStep {
                        step_type: Some(MultiChannelStepType::InactiveTimeout),
                        inactivity_expire_datetime: Some(expire),
                        ..MultiChannelStep::default()
                    },
                );
            }
        }
        st.refresh_statuses();
    }
}

async fn upgrade(AxState(inner): AxState<Arc<Inner>>, ws: WebSocketUpgrade) -> impl IntoResponse {
    // 4 KiB read buffers, not tungstenite's 128 KiB: a simulator may hold thousands.
    ws.protocols([codec::SUBPROTOCOL])
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| run_socket(inner, socket))
}

async fn run_socket(inner: Arc<Inner>, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = inner.lock();
        st.next_sock += 1;
        let id = st.next_sock;
        st.socks.push(Sock {
            id,
            tx,
            hello: false,
            token: None,
            monitored: Vec::new(),
            webrtc: false,
            trickle: None,
            last_seen: Instant::now(),
            muted: false,
            subs: BTreeMap::new(),
        });
        id
    };
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(SockCmd::Text(t)) => {
                    if sink.send(WsMessage::Text(t.into())).await.is_err() { break; }
                }
                Some(SockCmd::Drop) | None => break,
            },
            msg = stream.next() => match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    if !handle_text(&inner, id, t.as_str()) { break; }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut st = inner.lock();
    if let Some(i) = st.sock_index(id) {
        st.socks.remove(i);
    }
}

fn rpc_error(code: i64, message: impl Into<String>) -> RpcError {
    RpcError {
        code,
        message: message.into(),
        data: None,
    }
}

/// Handles one client frame; false closes the socket (`widget.bye`).
fn handle_text(inner: &Arc<Inner>, sock_id: u64, text: &str) -> bool {
    let mut st = inner.lock();
    st.record(FrameDirection::ClientToServer, text);
    let Some(sock) = st.sock_index(sock_id) else {
        return false;
    };
    st.socks[sock].last_seen = Instant::now();
    let req = match codec::decode_request(text) {
        Ok(r) => r,
        Err((id, e)) => {
            st.send(sock, codec::encode_error(id.as_ref(), &e));
            return true;
        }
    };
    let id = req.id.clone();
    if !st.socks[sock].hello && !matches!(req.call, Call::Hello(_) | Call::Ping { .. }) {
        st.send(
            sock,
            codec::encode_error(Some(&id), &rpc_error(-32600, "widget.hello first")),
        );
        return true;
    }
    let mut started = false;
    let result = dispatch(inner, &mut st, sock, &id, req.call, &mut started);
    let keep = !matches!(result, Ok(Reply::Bye));
    match result {
        Ok(Reply::Sent | Reply::Bye) => {}
        Err(e) => st.send(sock, codec::encode_error(Some(&id), &e)),
    }
    drop(st);
    if started {
        inner.chat_started.notify_one();
    }
    keep
}

enum Reply {
    Sent,
    Bye,
}

fn ok(st: &mut State, sock: usize, id: &RpcId, v: &impl serde::Serialize) -> Reply {
    st.send(sock, codec::encode_result(id, v));
    Reply::Sent
}

fn find_chat(st: &State, session_id: &str) -> std::result::Result<usize, RpcError> {
    st.chats
        .iter()
        .position(|c| c.id == session_id)
        .ok_or_else(|| rpc_error(codes::SESSION_NOT_FOUND, "session not found"))
}

fn open_chat(st: &State, session_id: &str) -> std::result::Result<usize, RpcError> {
    let i = find_chat(st, session_id)?;
    if st.chats[i].state == MultiChannelState::Closed {
        return Err(rpc_error(codes::SESSION_CLOSED, "session closed"));
    }
    Ok(i)
}

fn new_sub(st: &mut State, sock: usize, target: Target) -> String {
    st.next_sub += 1;
    let sub = format!("sub-{}", st.next_sub);
    st.socks[sock].subs.insert(sub.clone(), target);
    sub
}

/// Checks that a contact may be created on `service` of `channel`.
fn check_service(
    st: &mut State,
    channel: &MultiChannelType,
    service: &str,
) -> std::result::Result<(), RpcError> {
    match st.channel_config(channel) {
        ConfigurationStatus::Enabled => {}
        ConfigurationStatus::NoLicense => {
            return Err(rpc_error(
                codes::NO_LICENSE,
                format!("no license for {channel}"),
            ));
        }
        other => {
            return Err(rpc_error(
                codes::CHANNEL_DISABLED,
                format!("channel {channel} is {other}"),
            ));
        }
    }
    let status = st.status_of(channel, service);
    match status.service_configuration {
        Some(ConfigurationStatus::Enabled) => {}
        Some(ConfigurationStatus::NotFound) => {
            return Err(rpc_error(
                codes::SERVICE_NOT_FOUND,
                format!("no service {service:?} on {channel}"),
            ));
        }
        Some(ConfigurationStatus::NoLicense) => {
            return Err(rpc_error(
                codes::NO_LICENSE,
                format!("no license for {service}"),
            ));
        }
        other => {
            return Err(rpc_error(
                codes::CHANNEL_DISABLED,
                format!("service {service} is {other:?}"),
            ));
        }
    }
    match status.status {
        Some(ServiceStatusValue::Active) => Ok(()),
        other => Err(rpc_error(
            codes::SERVICE_UNAVAILABLE,
            format!(
                "service {service} is {}",
                other.map(|s| s.to_string()).unwrap_or_default()
            ),
        )),
    }
}

fn dispatch(
    inner: &Arc<Inner>,
    st: &mut State,
    sock: usize,
    id: &RpcId,
    call: Call,
    started: &mut bool,
) -> std::result::Result<Reply, RpcError> {
    match call {
        Call::Hello(h) => {
            let client_id = uuid::Uuid::new_v4().to_string();
            let token = match h.resume_token.filter(|t| st.clients.contains_key(t)) {
                Some(t) => t,
                None => uuid::Uuid::new_v4().to_string(),
            };
            // `known` below: whether the token named an earlier connection.
            let token_was_known = st.clients.contains_key(&token);
            let known = token_was_known;
            st.clients.insert(token.clone(), client_id.clone());
            let sessions = if known {
                st.chats
                    .iter()
                    .filter(|c| {
                        c.state == MultiChannelState::Active && c.owner.as_ref() == Some(&token)
                    })
                    .map(ChatRec::session)
                    .collect()
            } else {
                Vec::new()
            };
            let s = &mut st.socks[sock];
            s.hello = true;
            s.token = Some(token.clone());
            s.webrtc = h.webrtc.as_ref().is_some_and(|w| w.enabled);
            s.trickle = h.webrtc.as_ref().and_then(|w| w.trickle_ice_policy.clone());
            s.monitored = h
                .services_configuration
                .iter()
                .flat_map(|c| {
                    c.services
                        .iter()
                        .map(|s| (c.channel.clone(), s.code.clone()))
                })
                .collect();
            let channels_enabled = MultiChannelType::KNOWN
                .iter()
                .map(|c| {
                    (
                        c.as_str().to_owned(),
                        st.channel_config(c) == ConfigurationStatus::Enabled,
                    )
                })
                .collect();
            let wall = st.wall();
            let result = HelloResult {
                client_id,
                resume_token: token,
                channels_enabled,
                server_time: Some(time::format(wall)),
                ice_servers: inner.opts.ice_servers.clone(),
                sessions,
            };
            Ok(ok(st, sock, id, &result))
        }
        Call::Bye {} => {
            ok(st, sock, id, &true);
            Ok(Reply::Bye)
        }
        Call::Ping { ts } => {
            let wall = st.wall();
            Ok(ok(
                st,
                sock,
                id,
                &PingResult {
                    ts,
                    server_time: Some(time::format(wall)),
                },
            ))
        }
        Call::VisitUri {
            linkable_uri,
            uri,
            uri_display,
        } => {
            st.visits.push(json!({
                "linkableUri": linkable_uri, "uri": uri, "uriDisplay": uri_display,
            }));
            Ok(ok(st, sock, id, &true))
        }
        Call::CustomerIdentifier { channel, service } => {
            st.identifiers.push((channel, service));
            Ok(ok(st, sock, id, &true))
        }
        Call::StatusSubscribe { service, channel } => {
            if !st.socks[sock]
                .monitored
                .contains(&(channel.clone(), service.clone()))
            {
                return Err(rpc_error(
                    codes::SERVICE_UNMONITORED,
                    format!("service {service} on {channel} is not monitored"),
                ));
            }
            let status = st.status_of(&channel, &service);
            st.statuses
                .insert((channel.clone(), service.clone()), status.clone());
            let subscription = new_sub(st, sock, Target::Status(channel, service));
            Ok(ok(
                st,
                sock,
                id,
                &StatusSubscribed {
                    subscription,
                    status,
                },
            ))
        }
        Call::Cancel { subscription } => {
            st.socks[sock].subs.remove(&subscription);
            st.cancels.push(subscription);
            Ok(ok(st, sock, id, &true))
        }
        Call::ChatCreate(c) => {
            check_service(st, &MultiChannelType::Chat, &c.service)?;
            let waiting = st
                .chats
                .iter()
                .filter(|c| c.state == MultiChannelState::Active && c.agent.is_none())
                .count();
            let name = c.customer_display_name.clone().or_else(|| {
                c.customer_info
                    .as_ref()
                    .map(|i| i.customer_display_name.clone())
            });
            let owner = st.socks[sock].token.clone();
            st.chats.push(ChatRec {
                id: uuid::Uuid::new_v4().to_string(),
                owner,
                service: c.service,
                customer_name: name,
                state: MultiChannelState::Active,
                step_no: 1,
                step: MultiChannelStep {
                    step: Some(1),
                    step_type: Some(MultiChannelStepType::Queue),
                    queue_position: Some(u32::try_from(waiting + 1).unwrap_or(u32::MAX)),
                    ..MultiChannelStep::default()
                },
                events: Vec::new(),
                received: Vec::new(),
                log: Vec::new(),
                agent: None,
                last_activity: Instant::now(),
                connected_since: None,
                inactive_until: None,
            });
            let i = st.chats.len() - 1;
            st.add_event(
                i,
                ChatChannelEventMessage {
                    message_type: Some(ChatMessageType::OpenSession),
                    direction: Some(Direction::Outbound),
                    ..ChatChannelEventMessage::default()
                },
            );
            st.unseen.push_back(i);
            *started = true;
            let session = st.chats[i].session();
            Ok(ok(st, sock, id, &session))
        }
        Call::ChatSessionSubscribe { session_id } => {
            let i = find_chat(st, &session_id)?;
            st.chats[i].owner = st.socks[sock].token.clone();
            let subscription = new_sub(st, sock, Target::Session(i));
            let session = st.chats[i].session();
            Ok(ok(
                st,
                sock,
                id,
                &SessionSubscribed {
                    subscription,
                    session,
                },
            ))
        }
        Call::ChatEventsSubscribe {
            session_id,
            since_event_id,
        } => {
            let i = find_chat(st, &session_id)?;
            let events = &st.chats[i].events;
            let from = match &since_event_id {
                Some(since) => events
                    .iter()
                    .position(|e| e.id.as_ref() == Some(since))
                    .map_or(0, |p| p + 1),
                None => 0,
            };
            let events = events[from..].to_vec();
            let subscription = new_sub(st, sock, Target::Events(i));
            Ok(ok(
                st,
                sock,
                id,
                &EventsSubscribed {
                    subscription,
                    events,
                },
            ))
        }
        Call::ChatSend(s) => {
            let i = open_chat(st, &s.session_id)?;
            if st.chats[i].agent.is_none() {
                return Err(rpc_error(codes::NOT_CONNECTED, "no agent connected yet"));
            }
            ok(st, sock, id, &true);
            match s.status {
                ChatChannelEventMessageStatus::Wrote => {
                    st.chats[i].received.push(Received::Text {
                        text: s.message.clone(),
                        hidden: false,
                    });
                    let ev = st.add_event(
                        i,
                        ChatChannelEventMessage {
                            message: Some(s.message.clone()),
                            message_type: Some(ChatMessageType::Message),
                            status: Some(ChatChannelEventMessageStatus::Wrote),
                            direction: Some(Direction::Outbound),
                            ..ChatChannelEventMessage::default()
                        },
                    );
                    st.chats[i].log.push(SimMessage {
                        id: ev,
                        text: s.message,
                        direction: Direction::Outbound,
                        greeting: s.notify_greeting_message,
                    });
                    st.activity(i);
                }
                status => {
                    st.chats[i].received.push(Received::Typing {
                        on: status == ChatChannelEventMessageStatus::Composing,
                    });
                    st.add_event(
                        i,
                        ChatChannelEventMessage {
                            message_type: Some(ChatMessageType::Message),
                            status: Some(status),
                            direction: Some(Direction::Outbound),
                            ..ChatChannelEventMessage::default()
                        },
                    );
                }
            }
            Ok(Reply::Sent)
        }
        Call::ChatReceived {
            session_id,
            message_id,
        } => receipt(st, sock, id, &session_id, message_id, "delivered"),
        Call::ChatRead {
            session_id,
            message_id,
        } => receipt(st, sock, id, &session_id, message_id, "read"),
        Call::ChatRecap { session_id, mail } => {
            find_chat(st, &session_id)?;
            if !inner.opts.mail_configured
                || st.channel_config(&MultiChannelType::Mail) != ConfigurationStatus::Enabled
            {
                return Err(rpc_error(
                    codes::MAIL_NOT_CONFIGURED,
                    "the MAIL channel is not configured for tickets",
                ));
            }
            st.recaps.push((session_id, mail));
            Ok(ok(st, sock, id, &true))
        }
        Call::ChatClose { session_id } => {
            let i = open_chat(st, &session_id)?;
            ok(st, sock, id, &true);
            st.chats[i].received.push(Received::Ended);
            st.close(i, Direction::Outbound);
            Ok(Reply::Sent)
        }
        Call::VideoCreate(m) => create_media(st, sock, id, MultiChannelType::Video, m),
        Call::CallCreate(m) => create_media(st, sock, id, MultiChannelType::PhoneCall, m),
        Call::VideoClose { session_id } | Call::CallClose { session_id } => {
            calls::close(st, sock, id, &session_id)
        }
        Call::VideoSubscribe {} => calls::subscribe(st, sock, id, MultiChannelType::Video),
        Call::CallSubscribe {} => calls::subscribe(st, sock, id, MultiChannelType::PhoneCall),
        Call::WebrtcOffer(d) => calls::offer(inner, st, sock, id, d),
        Call::WebrtcAnswer(d) => calls::answer(st, sock, id, d),
        Call::WebrtcCandidate(c) => calls::candidate(st, sock, id, c),
        Call::WebrtcMediaState(m) => calls::media_state(st, sock, id, m),
    }
}

fn receipt(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    session_id: &str,
    message_id: String,
    state: &str,
) -> std::result::Result<Reply, RpcError> {
    let i = find_chat(st, session_id)?;
    let known = st.chats[i].events.iter().any(|e| {
        e.id.as_deref() == Some(message_id.as_str()) && e.direction == Some(Direction::Inbound)
    });
    if !known {
        return Err(rpc_error(
            -32602,
            format!("no inbound message {message_id}"),
        ));
    }
    st.chats[i].received.push(Received::Receipt {
        message_id,
        state: state.to_owned(),
    });
    Ok(ok(st, sock, id, &true))
}

fn create_media(
    st: &mut State,
    sock: usize,
    id: &RpcId,
    channel: MultiChannelType,
    m: codec::MediaCreate,
) -> std::result::Result<Reply, RpcError> {
    if !st.socks[sock].webrtc {
        return Err(rpc_error(
            codes::WEBRTC_DISABLED,
            "server.webrtc is not enabled for this widget",
        ));
    }
    if st.call_answer == CallAnswer::Refuse {
        return Err(rpc_error(
            codes::WEBRTC_DISABLED,
            "WebRTC calls are disabled on this TVox",
        ));
    }
    check_service(st, &channel, &m.service)?;
    let session_id = uuid::Uuid::new_v4().to_string();
    let wall = st.wall();
    let owner = st.socks[sock].token.clone();
    let trickle = st.socks[sock].trickle.clone();
    st.media.push(MediaRec {
        id: session_id.clone(),
        channel,
        service: m.service,
        state: CallState::NewOutbound,
        start: time::format(wall),
        owner,
        trickle,
        close_reason: None,
        far: None,
    });
    ok(
        st,
        sock,
        id,
        &MediaCreated {
            session_id: session_id.clone(),
        },
    );
    media_state(st, &session_id, CallState::NewOutbound)
        .map_err(|e| rpc_error(-32603, e.to_string()))?;
    Ok(Reply::Sent)
}

#[cc_core::async_trait]
impl SimControl for Simulator {
    fn vendor(&self) -> Vendor {
        V
    }

    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat> {
        cc_testkit::wait_notified(
            V,
            &self.inner.chat_started,
            timeout,
            "wait for a chat",
            || {
                let mut st = self.inner.lock();
                let i = st.unseen.pop_front()?;
                let c = &st.chats[i];
                Some(SimChat {
                    id: c.id.clone(),
                    customer_name: c.customer_name.clone(),
                })
            },
        )
        .await
    }

    async fn queue(
        &self,
        chat: &SimChat,
        position: u32,
        _expected_wait: Option<Duration>,
    ) -> Result<()> {
        // TVox has no expected wait on the wire: only the position travels.
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.chats[i].agent = None;
        st.set_step(
            i,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::Queue),
                queue_position: Some(position),
                ..MultiChannelStep::default()
            },
        );
        Ok(())
    }

    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.connect_agent(i, agent);
        Ok(())
    }

    async fn agent_typing(&self, chat: &SimChat, on: bool) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        let status = if on {
            ChatChannelEventMessageStatus::Composing
        } else {
            ChatChannelEventMessageStatus::Idle
        };
        st.add_event(
            i,
            ChatChannelEventMessage {
                message_type: Some(ChatMessageType::Message),
                status: Some(status),
                direction: Some(Direction::Inbound),
                ..ChatChannelEventMessage::default()
            },
        );
        Ok(())
    }

    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.activity(i);
        let id = st.add_event(
            i,
            ChatChannelEventMessage {
                message: Some(text.to_owned()),
                message_type: Some(ChatMessageType::Message),
                status: Some(ChatChannelEventMessageStatus::Wrote),
                direction: Some(Direction::Inbound),
                ..ChatChannelEventMessage::default()
            },
        );
        st.chats[i].log.push(SimMessage {
            id: id.clone(),
            text: text.to_owned(),
            direction: Direction::Inbound,
            greeting: false,
        });
        Ok(id)
    }

    async fn agent_sends_file(
        &self,
        _chat: &SimChat,
        _name: &str,
        _mime_type: &str,
        _bytes: &[u8],
    ) -> Result<String> {
        // The widget's chat events carry text only.
        Err(Error::unsupported(V, Feature::AttachmentsIn))
    }

    async fn agent_reads(&self, _chat: &SimChat) -> Result<()> {
        // TVox reports no read receipts to the widget.
        Err(Error::unsupported(V, Feature::ReadReceipts))
    }

    async fn agent_leaves(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.chats[i].agent = None;
        st.chats[i].connected_since = None;
        st.chats[i].inactive_until = None;
        st.set_step(
            i,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::Queue),
                queue_position: Some(1),
                ..MultiChannelStep::default()
            },
        );
        Ok(())
    }

    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.connect_agent(i, to_agent);
        Ok(())
    }

    async fn agent_ends(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        st.close(i, Direction::Inbound);
        Ok(())
    }

    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>> {
        let st = self.inner.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].received.clone())
    }

    async fn idle_warning(&self, chat: &SimChat, grace: Duration) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.open_chat(chat)?;
        // From the real time (or the fixed clock): `wall()` runs ahead of it by a millisecond
        // per event within one millisecond, and the deadline would give more than `grace`.
        let now = st.clock.unwrap_or_else(Timestamp::now).0;
        let expire = now.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        st.chats[i].inactive_until = Some(Instant::now() + grace);
        st.set_step(
            i,
            MultiChannelStep {
                step_type: Some(MultiChannelStepType::InactiveTimeout),
                inactivity_expire_datetime: Some(expire),
                ..MultiChannelStep::default()
            },
        );
        Ok(())
    }

    async fn drop_connections(&self) -> Result<()> {
        self.drop_all();
        Ok(())
    }

    async fn expire_token(&self) -> Result<()> {
        // The widget connects anonymously: there is no token to expire.
        Err(Error::unsupported(V, Feature::TokenRefresh))
    }

    async fn restart(&self) -> Result<()> {
        // Connections drop and the clients' resume tokens are forgotten; chats survive.
        let mut st = self.inner.lock();
        for s in st.socks.drain(..) {
            let _ = s.tx.send(SockCmd::Drop);
        }
        st.clients.clear();
        st.statuses.clear();
        Ok(())
    }

    async fn send_malformed(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.chat_index(chat)?;
        // A chat event whose messageType is not a string.
        st.push(
            |t| *t == Target::Events(i),
            &json!({"id": "malformed", "messageType": 42, "direction": "INBOUND"}),
        );
        Ok(())
    }

    fn frames(&self) -> Vec<Frame> {
        self.inner.lock().frames.to_vec()
    }

    async fn set_call_answer(&self, answer: CallAnswer) -> Result<()> {
        self.inner.lock().call_answer = answer;
        Ok(())
    }

    async fn set_ring_time(&self, ring: Duration) -> Result<()> {
        self.inner.lock().ring = Some(ring);
        Ok(())
    }

    async fn far_end_call(&self) -> Result<Option<FarEndCall>> {
        let st = self.inner.lock();
        Ok(st
            .last_call
            .and_then(|i| st.media.get(i))
            .and_then(|m| m.far.as_ref())
            .map(calls::FarEnd::view))
    }
}

/// The simulator entry for tools (`cc-cli sim`, `cc-cli demo`, `cc-cli load`): one
/// transport, `widget`.
pub const SIM: cc_testkit::SimEntry = cc_testkit::SimEntry {
    vendor: V,
    transports: &["widget"],
    start: start_entry,
};

fn start_entry(start: cc_testkit::SimStart) -> cc_testkit::StartSimFuture {
    Box::pin(async move {
        if let Some(other) = start.transport.as_deref().filter(|t| *t != "widget") {
            return Err(Error::invalid(
                V,
                "transport",
                format!("`{other}`: the simulator serves `widget`"),
            ));
        }
        let sim = Simulator::start(SimOptions {
            port: start.port,
            ..SimOptions::default()
        })
        .await?;
        // A local simulator comes back at once: retry every 250 ms rather than the
        // vendor's default 10 s, so tools see a reconnect within a step.
        let mut section = sim.config();
        section.retry.interval_ms = 250;
        let config = cc_core::Config::new(V, section)?;
        let addr = sim.addr();
        Ok(cc_testkit::RunningSim {
            control: Arc::new(sim),
            config,
            addr,
            transport: "widget",
        })
    })
}

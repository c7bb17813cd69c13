//! The Genesys [`Session`] and [`cc_core::Engagement`]: thin async drivers around the sans-IO
//! engines, on top of `cc-transport` (reconnecting WebSocket, HTTP) and `cc-chat`
//! (transcript).
//!
//! One driver task per session owns the engine. The app's calls reach it as commands over a
//! channel; socket events, HTTP completions and the engine's deadline are the other inputs.
//! Before an event is published, the engagement's shared view (state, participants,
//! transcript) is updated, so an app that sees the event also sees its effect.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cc_chat::{Transcript, Upsert};
use cc_core::Engagement as _;
use cc_core::{
    Capabilities, ChatRequest, Content, DeliveryState, EngagementId, EngagementState, Error, Event,
    EventBus, EventStream, Feature, HistoryPage, HistoryPager, Initiator, Message, MessageId,
    Participant, Result, Role, Secret, SentMessage, Session, Timestamp, Upload, Vendor,
};
use cc_transport::{
    BackoffPolicy, HeaderMap, HeaderValue, Heartbeat, HttpClient, HttpConfig, Method, TlsConfig,
    UrlProvider, WsClient, WsConfig, WsEvent, WsHandle,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{GenesysConfig, Transport};
use crate::engine::{self, GuestEngine, HttpCall, MessagingEngine, Output, Purpose};
use crate::wire::guest as gw;
use crate::wire::messaging::{self as mw, Request, ServerBody};
use crate::wire::{WireToken, time};
use crate::{capabilities_for, error};

const V: Vendor = Vendor::Genesys;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the app can keep to resume after a restart: put it in `genesys.session_token`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuestResume {
    conversation_id: String,
    member_id: String,
    jwt: String,
    event_stream_uri: String,
}

/// A one-way 128-bit digest (two FNV-1a passes) naming the engagement of a web messaging
/// token without revealing it.
fn digest(token: &str) -> String {
    let mut out = String::from("wm-");
    for seed in [0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142] {
        let mut h = seed;
        for b in token.bytes().chain(*b"cc-genesys") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The engagement's shared view, updated by the driver before events go out.
#[derive(Debug)]
struct View {
    state: EngagementState,
    participants: Vec<Participant>,
    agents_seen: BTreeMap<String, AgentRecord>,
    transcript: Transcript,
    started: Timestamp,
    ended: Option<Timestamp>,
}

/// One agent who took part (`getAgents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    /// The agent's name.
    pub name: Option<String>,
    /// Whether the agent is connected now.
    pub connected: bool,
    /// When the agent connected.
    pub connected_time: Timestamp,
    /// When the agent disconnected.
    pub disconnected_time: Option<Timestamp>,
}

/// Chat statistics (`getStats`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatStats {
    /// When the chat started.
    pub start_time: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// How long it lasted (so far).
    pub duration: Duration,
    /// Every agent who took part.
    pub agents: Vec<AgentRecord>,
}

enum Cmd {
    Start(BTreeMap<String, String>, oneshot::Sender<Result<()>>),
    Send {
        content: Content,
        hidden: bool,
        reply: oneshot::Sender<Result<Message>>,
    },
    Typing(oneshot::Sender<Result<()>>),
    Request(
        Box<dyn FnOnce(WireToken, Option<String>) -> Request + Send>,
        oneshot::Sender<Result<ServerBody>>,
    ),
    AwaitUpload(String, oneshot::Sender<Result<ServerBody>>),
    History(Option<mw::HistoryPage>),
    HttpDone(HttpCall, Result<Value>),
    Member(gw::MemberInfo),
    End(oneshot::Sender<Result<()>>),
    Prefilter(Vec<String>, oneshot::Sender<Result<Vec<String>>>),
    Context(BTreeMap<String, String>),
    KeepAlive(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

/// The sending side of a driver's command channel. Commands travel boxed, so the channel's
/// preallocated block holds pointers rather than 250-byte commands (an idle session keeps
/// one block).
#[derive(Clone)]
struct CmdTx(mpsc::UnboundedSender<Box<Cmd>>);

impl CmdTx {
    fn send(&self, cmd: Cmd) -> std::result::Result<(), mpsc::error::SendError<Box<Cmd>>> {
        self.0.send(Box::new(cmd))
    }
}

fn cmd_channel() -> (CmdTx, mpsc::UnboundedReceiver<Box<Cmd>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (CmdTx(tx), rx)
}

struct Shared {
    config: GenesysConfig,
    caps: Mutex<Capabilities>,
    bus: EventBus,
    http: HttpClient,
    customer: Mutex<Participant>,
    engagement: Mutex<Option<Arc<GenesysEngagement>>>,
    cmd: Mutex<Option<CmdTx>>,
    resume: Mutex<Option<Secret>>,
    tls: TlsConfig,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Genesys session: one guest, one transport. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GenesysSession {
    shared: Arc<Shared>,
}

/// One Genesys chat. Cheap to clone.
#[derive(Clone)]
pub struct GenesysEngagement {
    id: EngagementId,
    transport: Transport,
    view: Arc<Mutex<View>>,
    session: Arc<Shared>,
}

impl fmt::Debug for GenesysEngagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysEngagement")
            .field("id", &self.id)
            .field("transport", &self.transport)
            .field("state", &self.state())
            .finish()
    }
}

impl GenesysSession {
    /// Connects a session for `config`. Web messaging opens the socket and configures the
    /// session (resuming it when `session_token` is set); guest chat connects when a chat
    /// starts, or resumes the chat in `session_token` now.
    pub async fn connect(
        config: GenesysConfig,
        tls: &cc_core::TlsSettings,
    ) -> Result<GenesysSession> {
        config.validate()?;
        let endpoints = config.endpoints()?;
        let tls = TlsConfig::from_settings(V, tls)?;
        let base = url::Url::parse(&endpoints.rest)
            .map_err(|e| Error::invalid(V, "genesys.base_url", e.to_string()))?;
        let mut http_cfg = HttpConfig::new(V, base)
            .with_tls(tls.clone())
            .with_timeout(Duration::from_secs(16))
            .with_error_mapper(|_v: Vendor, r: &cc_transport::ErrorResponse<'_>| {
                let body =
                    gw::ErrorBody::decode(&String::from_utf8_lossy(r.body)).unwrap_or_default();
                error::guest(r.status.as_u16(), &body, r.retry_after)
            });
        if let Some(o) = &config.origin
            && let Ok(v) = HeaderValue::from_str(o)
        {
            http_cfg.headers.insert("origin", v);
        }
        let http = HttpClient::new(http_cfg)?;
        let shared = Arc::new(Shared {
            caps: Mutex::new(capabilities_for(config.transport)),
            bus: EventBus::default(),
            http,
            customer: Mutex::new(Participant::new(Role::Customer)),
            engagement: Mutex::new(None),
            cmd: Mutex::new(None),
            resume: Mutex::new(None),
            tls,
            config,
        });
        let session = GenesysSession { shared };
        match session.shared.config.transport {
            Transport::WebMessaging => session.connect_messaging(&endpoints.messaging_ws).await?,
            Transport::GuestChatV2 => {
                if let Some(token) = session.shared.config.session_token.clone() {
                    session.resume_guest(&token).await?;
                }
            }
        }
        Ok(session)
    }

    /// What to keep to resume after an app restart (set it as `genesys.session_token`):
    /// the web messaging session token, or the guest chat's conversation, member and JWT.
    pub fn resume_token(&self) -> Option<Secret> {
        lock(&self.shared.resume).clone()
    }

    /// The session's chat with its Genesys extensions (`addPrefilter`, `getAgents`, …).
    pub fn current_engagement(&self) -> Option<Arc<GenesysEngagement>> {
        lock(&self.shared.engagement).clone()
    }

    /// `verifySession`: whether a chat is active in this session.
    pub fn verify_session(&self) -> bool {
        lock(&self.shared.engagement).as_ref().is_some_and(|e| {
            !matches!(
                e.state(),
                EngagementState::Ended | EngagementState::Detached
            )
        })
    }

    fn cmd(&self) -> Result<CmdTx> {
        lock(&self.shared.cmd)
            .clone()
            .ok_or_else(|| Error::closed(V, "session"))
    }

    /// Applies `ev` to the engagement's view, then publishes it unless it changed nothing.
    fn publish(&self, ev: &Event) {
        let eng = lock(&self.shared.engagement).clone();
        if apply(eng.as_ref(), ev) {
            self.shared.bus.emit(ev.clone());
        }
    }

    fn new_engagement(&self, id: EngagementId) -> Arc<GenesysEngagement> {
        let e = Arc::new(GenesysEngagement {
            id,
            transport: self.shared.config.transport,
            view: Arc::new(Mutex::new(View {
                state: EngagementState::Starting,
                participants: vec![lock(&self.shared.customer).clone()],
                agents_seen: BTreeMap::new(),
                transcript: Transcript::new(),
                started: Timestamp::now(),
                ended: None,
            })),
            session: self.shared.clone(),
        });
        *lock(&self.shared.engagement) = Some(e.clone());
        e
    }

    async fn connect_messaging(&self, ws_url: &str) -> Result<()> {
        let token = match &self.shared.config.session_token {
            Some(t) => t.expose().to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        *lock(&self.shared.resume) = Some(Secret::new(token.clone()));
        let url = url::Url::parse(ws_url)
            .map_err(|e| Error::invalid(V, "genesys.base_url", e.to_string()))?;
        let mut ws = WsConfig::new(V, UrlProvider::fixed(url));
        ws.tls = self.shared.tls.clone();
        // The official transport retries every 5 s for up to 5 min; the first retry goes
        // sooner, since a dropped socket is usually transient.
        ws.backoff = BackoffPolicy::table(vec![Duration::from_millis(250), Duration::from_secs(5)])
            .with_max_elapsed(BackoffPolicy::genesys_web_messaging().max_elapsed);
        ws.heartbeats = vec![Heartbeat::ping(Duration::from_secs(15))];
        ws.reconnect_after_server_close = true;
        if let Some(o) = &self.shared.config.origin
            && let Ok(v) = HeaderValue::from_str(o)
        {
            ws.headers.insert("origin", v);
        }
        let (handle, events) = WsClient::connect(ws);
        let id = EngagementId::from(digest(&token));
        let engine = MessagingEngine::new(
            WireToken::from(token),
            self.shared.config.deployment_id.clone(),
            id.clone(),
            lock(&self.shared.customer).clone(),
        );
        let (tx, rx) = cmd_channel();
        *lock(&self.shared.cmd) = Some(tx.clone());
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = MessagingDriver {
            session: self.clone(),
            engine,
            ws: handle.clone(),
            cmd_tx: tx,
            pending: HashMap::new(),
            uploads: HashMap::new(),
            ready: Some(ready_tx),
            id,
            end_waiter: None,
        };
        tokio::spawn(drive(Box::new(driver), self.clone(), handle, events, rx));
        let result = match tokio::time::timeout(CONNECT_TIMEOUT, ready_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::closed(V, "session")),
            Err(_) => Err(Error::Timeout {
                vendor: V,
                operation: "configureSession",
                after: CONNECT_TIMEOUT,
            }),
        };
        if result.is_err() {
            // Stop the driver (and its reconnecting socket) of a session that never came up.
            let (done, _) = oneshot::channel();
            if let Ok(tx) = self.cmd() {
                let _ = tx.send(Cmd::Shutdown(done));
            }
            *lock(&self.shared.cmd) = None;
        }
        result
    }

    async fn start_guest(&self, request: &ChatRequest) -> Result<Arc<GenesysEngagement>> {
        let c = &self.shared.config;
        let r = &request.routing;
        let mut custom = c.user_data.clone();
        custom.extend(request.customer.attributes.clone());
        custom.extend(request.context.clone());
        if let Some(s) = &request.subject {
            custom.insert("subject".into(), s.clone());
        }
        let body = gw::CreateConversationRequest {
            organization_id: c.org_id.clone(),
            deployment_id: Some(c.deployment_id.clone()),
            routing_target: Some(gw::RoutingTarget {
                target_type: "QUEUE".into(),
                target_address: r
                    .target
                    .clone()
                    .or_else(|| c.routing.target_address.clone())
                    .unwrap_or_default(),
                skills: if r.skills.is_empty() {
                    c.routing.skills.clone()
                } else {
                    r.skills.clone()
                },
                language: r.language.clone().or_else(|| c.routing.language.clone()),
                priority: r.priority.or(c.routing.priority),
            }),
            member_info: Some(gw::MemberInfo {
                display_name: Some(
                    request
                        .customer
                        .display_name()
                        .unwrap_or_else(|| "Guest".into()),
                ),
                first_name: request.customer.first_name.clone(),
                last_name: request.customer.last_name.clone(),
                email: request.customer.email.clone(),
                phone_number: request.customer.phone.clone(),
                custom_fields: custom,
                ..gw::MemberInfo::default()
            }),
            member_auth_token: None,
            journey_context: None,
        };
        let resp: gw::CreateConversationResponse = self
            .shared
            .http
            .request(Method::POST, &format!("{}/conversations", gw::BASE_PATH))
            .json(&body)
            .send_json()
            .await?;
        let resume = GuestResume {
            conversation_id: resp.id.clone(),
            member_id: resp.member.id.clone().unwrap_or_default(),
            jwt: resp.jwt.expose().to_owned(),
            event_stream_uri: resp.event_stream_uri.expose().to_owned(),
        };
        self.run_guest(resume, false).await
    }

    async fn resume_guest(&self, token: &Secret) -> Result<()> {
        let resume: GuestResume = serde_json::from_str(token.expose()).map_err(|e| {
            Error::invalid(
                V,
                "genesys.session_token",
                format!("not a guest chat resume token: {e}"),
            )
        })?;
        self.run_guest(resume, true).await.map(|_| ())
    }

    async fn run_guest(
        &self,
        resume: GuestResume,
        resumed: bool,
    ) -> Result<Arc<GenesysEngagement>> {
        self.shared
            .http
            .set_bearer(Some(Secret::new(resume.jwt.clone())));
        let mut customer = lock(&self.shared.customer).clone();
        customer.id = Some(Arc::from(resume.member_id.as_str()));
        *lock(&self.shared.customer) = customer.clone();
        *lock(&self.shared.resume) = Some(Secret::new(
            serde_json::to_string(&resume).unwrap_or_default(),
        ));
        let mut engine = GuestEngine::new(
            resume.conversation_id.clone(),
            resume.member_id.clone(),
            customer,
        );
        let mut backlog = Vec::new();
        if resumed {
            let me: gw::MemberInfo = self
                .shared
                .http
                .get_json(&format!(
                    "{}/conversations/{}/members/{}",
                    gw::BASE_PATH,
                    resume.conversation_id,
                    resume.member_id
                ))
                .await?;
            if me.state != Some(gw::MemberState::Connected) {
                return Err(Error::Rejected {
                    vendor: V,
                    code: "restoreFailed".into(),
                    message: "the guest is no longer connected to this conversation".into(),
                    retry_after: None,
                });
            }
            // The whole transcript, oldest first, 100 at a time.
            let mut after: Option<String> = None;
            loop {
                let mut path = format!(
                    "{}/conversations/{}/messages?maxResults=100",
                    gw::BASE_PATH,
                    resume.conversation_id
                );
                if let Some(a) = &after {
                    path.push_str(&format!("&after={a}"));
                }
                let page: gw::MessageEntityList = self.shared.http.get_json(&path).await?;
                let last = page.entities.last().map(|m| m.id.clone());
                let more = page.next.is_some() && last.is_some();
                backlog.extend(page.entities);
                if !more {
                    break;
                }
                after = last;
            }
        }
        let id = engine.engagement().clone();
        let eng = self.new_engagement(id.clone());
        let url = url::Url::parse(&resume.event_stream_uri)
            .map_err(|e| Error::protocol(V, "eventStreamUri", e.to_string()))?;
        let mut ws = WsConfig::new(V, UrlProvider::fixed(url));
        ws.tls = self.shared.tls.clone();
        ws.backoff = BackoffPolicy::genesys_guest_chat();
        ws.dead_after = Some(engine::GUEST_STREAM_SILENCE);
        let (handle, events) = WsClient::connect(ws);
        let (tx, rx) = cmd_channel();
        *lock(&self.shared.cmd) = Some(tx.clone());
        let (http_tx, http_rx) = mpsc::unbounded_channel::<Box<HttpJob>>();
        tokio::spawn(http_worker(self.shared.http.clone(), http_rx, tx));
        {
            let mut v = lock(&eng.view);
            v.state = EngagementState::Queued;
        }
        self.shared.bus.emit(Event::EngagementStarted {
            engagement: id.clone(),
            resumed,
        });
        if resumed {
            engine.restore(Instant::now().into_std(), backlog);
        } else {
            self.shared.bus.emit(Event::Queued {
                engagement: id.clone(),
                position: None,
                expected_wait: None,
            });
        }
        let driver = GuestDriver {
            session: self.clone(),
            engine,
            ws: handle.clone(),
            http: http_tx,
            id,
            end_waiter: None,
        };
        tokio::spawn(drive(Box::new(driver), self.clone(), handle, events, rx));
        Ok(eng)
    }
}

enum HttpJob {
    Call(HttpCall),
    Member(String),
}

async fn http_worker(http: HttpClient, mut rx: mpsc::UnboundedReceiver<Box<HttpJob>>, back: CmdTx) {
    // One worker: calls go out in the order the engine made them (message order). Each job's
    // future is boxed: an HTTP request's state is large, and inline it would be held by this
    // task for the whole life of the chat, idle or not.
    while let Some(job) = rx.recv().await {
        let Some(cmd) = Box::pin(http_job(&http, *job)).await else {
            continue;
        };
        if back.send(cmd).is_err() {
            return;
        }
    }
}

/// Performs one job; returns what to tell the engine.
async fn http_job(http: &HttpClient, job: HttpJob) -> Option<Cmd> {
    match job {
        HttpJob::Call(call) => {
            let method = match call.method {
                "GET" => Method::GET,
                "DELETE" => Method::DELETE,
                _ => Method::POST,
            };
            let mut req = http.request(method, &call.path);
            if let Some(b) = &call.body {
                req = req.json(b);
            } else if call.method != "GET" {
                req = req.header("content-type", "application/json");
            }
            let result = match req.send().await {
                Ok(r) if r.body.is_empty() => Ok(Value::Null),
                Ok(r) => r.json::<Value>(),
                Err(e) => Err(e),
            };
            Some(Cmd::HttpDone(call, result))
        }
        HttpJob::Member(path) => http
            .get_json::<gw::MemberInfo>(&path)
            .await
            .ok()
            .map(Cmd::Member),
    }
}

/// Puts a message the outbox just took into the transcript, as pending.
fn record_pending(session: &GenesysSession, r: &Result<Message>) {
    if let (Ok(m), Some(eng)) = (r, lock(&session.shared.engagement).as_ref()) {
        lock(&eng.view).transcript.upsert(m.clone());
    }
}

/// Applies an event to the engagement's view; returns whether to publish it.
fn apply(eng: Option<&Arc<GenesysEngagement>>, ev: &Event) -> bool {
    let Some(eng) = eng else { return true };
    let mut v = lock(&eng.view);
    match ev {
        Event::EngagementStarted { .. } if v.state == EngagementState::Starting => {
            v.state = EngagementState::Queued;
        }
        Event::ParticipantJoined { participant, .. } => {
            v.state = EngagementState::Active;
            if !v
                .participants
                .iter()
                .any(|p| p.id == participant.id && p.display_name == participant.display_name)
            {
                v.participants.push((**participant).clone());
            }
            let key = participant.id.as_deref().unwrap_or_default().to_owned();
            v.agents_seen.insert(
                key,
                AgentRecord {
                    name: participant.display_name.clone(),
                    connected: true,
                    connected_time: Timestamp::now(),
                    disconnected_time: None,
                },
            );
        }
        Event::ParticipantLeft { participant, .. } => {
            v.participants
                .retain(|p| !(p.id == participant.id && p.role == participant.role));
            if let Some(a) = v
                .agents_seen
                .get_mut(participant.id.as_deref().unwrap_or_default())
            {
                a.connected = false;
                a.disconnected_time = Some(Timestamp::now());
            }
        }
        Event::EngagementEnded { .. } => {
            v.state = EngagementState::Ended;
            v.ended = Some(Timestamp::now());
            let ended = v.ended;
            for a in v.agents_seen.values_mut() {
                if a.connected {
                    a.connected = false;
                    a.disconnected_time = ended;
                }
            }
        }
        Event::MessageReceived(m) | Event::MessageSent(m) => {
            if matches!(ev, Event::MessageReceived(_))
                && m.sender.role == Role::Agent
                && v.state == EngagementState::Queued
            {
                v.state = EngagementState::Active;
            }
            return v.transcript.upsert((**m).clone()) != Upsert::Unchanged;
        }
        Event::MessageFailed {
            client_id, error, ..
        } => {
            v.transcript.set_state(
                None,
                Some(*client_id),
                DeliveryState::Failed {
                    reason: error.to_string(),
                    retryable: error.is_retryable(),
                },
            );
        }
        _ => {}
    }
    true
}

/// One API's side of a session's driver task: what [`drive`] calls on each wake-up.
trait Driver: Send {
    /// Runs an app command; returns true to stop.
    async fn command(&mut self, cmd: Cmd) -> bool;
    /// Acts on everything the engine has output; returns the engine's next deadline.
    async fn flush(&mut self) -> Option<std::time::Instant>;
    /// A socket event (its connection state already published) for the engine.
    fn socket(&mut self, ev: WsEvent);
    /// The engine's deadline passed.
    fn timer(&mut self);
}

/// The loop of a session's driver task: socket events, app commands and the engine's
/// deadline in, the engine's outputs acted on after each (and once before the first, for
/// what a restored chat already has). It publishes the socket's connection state and marks
/// a new connection ready. It ends when the socket closes, the commands stop or a command
/// says so; then the socket closes and the session takes no more commands.
///
/// Boxed: the driver (engine included) lives in one allocation, not copied into the task's
/// future.
async fn drive<D: Driver>(
    mut d: Box<D>,
    session: GenesysSession,
    ws: WsHandle,
    mut events: cc_transport::WsEvents,
    mut rx: mpsc::UnboundedReceiver<Box<Cmd>>,
) {
    let mut deadline = d.flush().await;
    loop {
        let wake = deadline.map(Instant::from_std);
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                if let Some(state) = ev.connection_state() {
                    session.shared.bus.emit(Event::Connection(state));
                }
                match ev {
                    WsEvent::Closed => break,
                    WsEvent::Connected { connection, .. } => ws.ready(connection),
                    _ => {}
                }
                d.socket(ev);
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                if Box::pin(d.command(*cmd)).await { break; }
            }
            _ = async { tokio::time::sleep_until(wake.expect("checked")).await }, if wake.is_some() => {
                d.timer();
            }
        }
        // Boxed, like the command above: the driver future stays small while idle.
        deadline = Box::pin(d.flush()).await;
    }
    let _ = ws.close().await;
    *lock(&session.shared.cmd) = None;
}

struct MessagingDriver {
    session: GenesysSession,
    engine: MessagingEngine,
    ws: WsHandle,
    cmd_tx: CmdTx,
    pending: HashMap<String, oneshot::Sender<Result<ServerBody>>>,
    uploads: HashMap<String, oneshot::Sender<Result<ServerBody>>>,
    ready: Option<oneshot::Sender<Result<()>>>,
    id: EngagementId,
    end_waiter: Option<oneshot::Sender<Result<()>>>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver for MessagingDriver {
    fn socket(&mut self, ev: WsEvent) {
        match ev {
            WsEvent::Connected { .. } => self.engine.handle_connected(now()),
            WsEvent::Text(t) => self.engine.handle_text(now(), &t),
            WsEvent::Disconnected { .. } => self.engine.handle_disconnected(now()),
            WsEvent::GaveUp { reason, .. } => {
                self.engine.handle_disconnected(now());
                if let Some(r) = self.ready.take() {
                    let _ = r.send(Err(Error::transport(V, "connect", reason.to_string())));
                }
            }
            _ => {}
        }
    }

    async fn command(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Start(attrs, reply) => {
                if !matches!(
                    self.engine.state(),
                    engine::MessagingState::Configured { .. }
                ) {
                    let _ = reply.send(Err(Error::closed(V, "web messaging socket")));
                } else {
                    self.engine.start(now(), attrs);
                    let _ = reply.send(Ok(()));
                }
            }
            Cmd::Send {
                content,
                hidden,
                reply,
            } => {
                let r = self.engine.send_message(now(), content, hidden);
                record_pending(&self.session, &r);
                let _ = reply.send(r);
            }
            Cmd::Typing(reply) => {
                self.engine.typing(now());
                let _ = reply.send(Ok(()));
            }
            Cmd::Request(make, reply) => match self.engine.request(make) {
                Ok(id) => {
                    self.pending.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::AwaitUpload(id, reply) => {
                self.uploads.insert(id, reply);
            }
            Cmd::History(page) => self.engine.handle_history(now(), page),
            Cmd::End(reply) => match self.engine.clear() {
                Ok(()) => self.end_waiter = Some(reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Prefilter(p, reply) => {
                let _ = reply.send(self.engine.prefilters_mut().add(&p));
            }
            Cmd::Context(c) => self.engine.set_custom_attributes(c),
            Cmd::KeepAlive(reply) => {
                let r = self
                    .engine
                    .request(|token, tracing_id| Request::Echo {
                        token,
                        message: mw::OutgoingMessage::text("ping"),
                        tracing_id,
                    })
                    .map(|_| ());
                let _ = reply.send(r);
            }
            Cmd::Shutdown(done) => {
                let _ = self.ws.close().await;
                let _ = done.send(());
                return true;
            }
            Cmd::HttpDone(..) | Cmd::Member(_) => {}
        }
        false
    }

    async fn flush(&mut self) -> Option<std::time::Instant> {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Send(text) => {
                    // A failed write is recovered after the reconnect (history check).
                    let _ = self.ws.send_now(text).await;
                }
                Output::Event(ev) => self.publish(ev),
                Output::Reply { tracing_id, result } => {
                    if tracing_id.is_empty() {
                        self.upload_event(result);
                    } else if let Some(tx) = self.pending.remove(&tracing_id) {
                        let _ = tx.send(result);
                    }
                }
                Output::Backfill => self.backfill(),
                Output::Close => {
                    let _ = self.ws.close().await;
                }
                Output::Http(_) | Output::FetchMember(_) | Output::Reconnect => {}
            }
        }
        if let Some(r) = self.ready.take() {
            match self.engine.state() {
                engine::MessagingState::Configured { .. } => {
                    // The effective upload limit is the deployment's.
                    let kb = self
                        .engine
                        .session()
                        .and_then(|s| s.allowed_media.as_ref())
                        .and_then(|m| m.inbound.as_ref())
                        .and_then(|i| i.max_file_size_k_b);
                    if let Some(kb) = kb {
                        lock(&self.session.shared.caps).attachment_max_bytes = Some(kb * 1024);
                    }
                    if self
                        .engine
                        .session()
                        .is_some_and(|s| s.new_session == Some(false))
                    {
                        let e = self.session.new_engagement(self.id.clone());
                        lock(&e.view).state = EngagementState::Queued;
                    }
                    let _ = r.send(Ok(()));
                }
                engine::MessagingState::Finished => {
                    let _ = r.send(Err(Error::Auth {
                        vendor: V,
                        code: Some("4007".into()),
                        message: "the session token is no longer valid".into(),
                    }));
                }
                _ => self.ready = Some(r),
            }
        }
        self.engine.poll_timeout(now())
    }

    fn timer(&mut self) {
        self.engine.handle_timeout(now());
    }
}

impl MessagingDriver {
    fn upload_event(&mut self, result: Result<ServerBody>) {
        let id = match &result {
            Ok(ServerBody::UploadSuccess(u)) => u.attachment_id.clone(),
            Ok(ServerBody::UploadFailure(u)) => u.attachment_id.clone(),
            _ => return,
        };
        if let Some(tx) = self.uploads.remove(&id) {
            let _ = tx.send(result);
        }
    }

    fn publish(&mut self, ev: Event) {
        let is_end = matches!(
            ev,
            Event::EngagementEnded {
                initiator: Initiator::Customer,
                ..
            }
        );
        let is_err = matches!(&ev, Event::Error(e) if e.vendor_code() == Some("403"));
        self.session.publish(&ev);
        if let Some(w) = self.end_waiter.take() {
            if is_end {
                let _ = w.send(Ok(()));
            } else if is_err {
                let _ = w.send(Err(match ev {
                    Event::Error(e) => error::messaging(403, &e.to_string(), None),
                    _ => unreachable!("checked"),
                }));
            } else {
                self.end_waiter = Some(w);
            }
        }
    }

    fn backfill(&self) {
        let tx = self.cmd_tx.clone();
        let http = self.session.shared.http.clone();
        let size = self.session.shared.config.page_size();
        tokio::spawn(async move {
            let page = fetch_history(&tx, &http, size, 1).await;
            if let Err(e) = &page {
                tracing::warn!(error = %e, "genesys: history backfill failed");
            }
            let _ = tx.send(Cmd::History(page.ok()));
        });
    }
}

async fn request(
    tx: &CmdTx,
    make: impl FnOnce(WireToken, Option<String>) -> Request + Send + 'static,
) -> Result<ServerBody> {
    let (rtx, rrx) = oneshot::channel();
    tx.send(Cmd::Request(Box::new(make), rtx))
        .map_err(|_| Error::closed(V, "session"))?;
    match tokio::time::timeout(REPLY_TIMEOUT, rrx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Error::closed(V, "session")),
        Err(_) => Err(Error::Timeout {
            vendor: V,
            operation: "web messaging request",
            after: REPLY_TIMEOUT,
        }),
    }
}

async fn fetch_history(
    tx: &CmdTx,
    http: &HttpClient,
    size: u32,
    number: u32,
) -> Result<mw::HistoryPage> {
    let jwt = match request(tx, |token, tracing_id| Request::GetJwt {
        token,
        tracing_id,
    })
    .await?
    {
        ServerBody::Jwt(j) => j.jwt,
        other => {
            return Err(Error::protocol(
                V,
                "getJwt reply",
                format!("unexpected {other:?}"),
            ));
        }
    };
    let resp = http
        .request(Method::GET, "/api/v2/webmessaging/messages")
        .query(&[
            ("pageSize", size.to_string()),
            ("pageNumber", number.to_string()),
        ])
        .header("authorization", &format!("Bearer {}", jwt.expose()))
        .send()
        .await?;
    mw::HistoryPage::decode(&String::from_utf8_lossy(&resp.body)).map_err(|e| e.into_error())
}

struct GuestDriver {
    session: GenesysSession,
    engine: GuestEngine,
    ws: WsHandle,
    http: mpsc::UnboundedSender<Box<HttpJob>>,
    id: EngagementId,
    end_waiter: Option<oneshot::Sender<Result<()>>>,
}

impl Driver for GuestDriver {
    fn socket(&mut self, ev: WsEvent) {
        match ev {
            WsEvent::Connected { .. } => self.engine.handle_connected(now()),
            WsEvent::Text(t) => self.engine.handle_text(now(), &t),
            WsEvent::Disconnected { .. } => self.engine.handle_disconnected(),
            WsEvent::GaveUp { reason, .. } => {
                self.engine.handle_disconnected();
                if let cc_transport::Disconnect::Error(e) = &reason
                    && e.kind() == cc_core::ErrorKind::Auth
                {
                    // The stream is authenticated by the JWT in its URI.
                    self.engine.handle_token_expired();
                }
            }
            _ => {}
        }
    }

    async fn command(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Send {
                content,
                hidden,
                reply,
            } => {
                let r = self.engine.send_message(now(), content, hidden);
                record_pending(&self.session, &r);
                let _ = reply.send(r);
            }
            Cmd::Typing(reply) => {
                self.engine.typing(now());
                let _ = reply.send(Ok(()));
            }
            Cmd::HttpDone(call, result) => self.engine.handle_response(now(), &call, result),
            Cmd::Member(m) => self.engine.handle_member(m),
            Cmd::End(reply) => {
                self.engine.leave();
                self.end_waiter = Some(reply);
            }
            Cmd::Prefilter(p, reply) => {
                let _ = reply.send(self.engine.prefilters_mut().add(&p));
            }
            Cmd::Shutdown(done) => {
                let _ = self.ws.close().await;
                let _ = done.send(());
                return true;
            }
            Cmd::Start(_, reply) => {
                let _ = reply.send(Err(Error::invalid(
                    V,
                    "request",
                    "a chat is already active in this session",
                )));
            }
            Cmd::Request(_, reply) | Cmd::AwaitUpload(_, reply) => {
                let _ = reply.send(Err(Error::unsupported(V, Feature::Attachments)));
            }
            Cmd::KeepAlive(reply) => {
                let _ = reply.send(Err(Error::unsupported(V, Feature::KeepAlive)));
            }
            Cmd::History(_) | Cmd::Context(_) => {}
        }
        false
    }

    async fn flush(&mut self) -> Option<std::time::Instant> {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Http(call) => {
                    let failed = call.purpose == Purpose::Leave;
                    if self.http.send(Box::new(HttpJob::Call(call))).is_err()
                        && failed
                        && let Some(w) = self.end_waiter.take()
                    {
                        let _ = w.send(Err(Error::closed(V, "guest chat")));
                    }
                }
                Output::FetchMember(id) => {
                    let path = format!("{}/conversations/{}/members/{id}", gw::BASE_PATH, self.id);
                    let _ = self.http.send(Box::new(HttpJob::Member(path)));
                }
                Output::Event(ev) => {
                    let ended = matches!(ev, Event::EngagementEnded { .. });
                    let leave_failed = matches!(&ev, Event::Error(_)) && self.end_waiter.is_some();
                    self.session.publish(&ev);
                    if ended && let Some(w) = self.end_waiter.take() {
                        let _ = w.send(Ok(()));
                    }
                    if leave_failed
                        && let (Some(w), Event::Error(e)) = (self.end_waiter.take(), &ev)
                    {
                        let _ = w.send(Err(Error::Rejected {
                            vendor: V,
                            code: e.vendor_code().unwrap_or("leave").to_owned(),
                            message: e.to_string(),
                            retry_after: e.retry_after(),
                        }));
                    }
                    if ended {
                        // The stream has nothing more to say: stop reconnecting it.
                        let _ = self.ws.close().await;
                    }
                }
                Output::Reconnect => self.ws.reconnect(),
                Output::Send(_) | Output::Reply { .. } | Output::Backfill | Output::Close => {}
            }
        }
        self.engine.poll_timeout(now())
    }

    fn timer(&mut self) {
        self.engine.handle_timeout(now());
    }
}

#[cc_core::async_trait]
impl Session for GenesysSession {
    fn resume_settings(&self) -> Option<Secret> {
        let token = self.resume_token()?;
        Some(Secret::new(
            serde_json::json!({ "session_token": token.expose() }).to_string(),
        ))
    }

    fn vendor(&self) -> Vendor {
        V
    }

    fn capabilities(&self) -> Capabilities {
        *lock(&self.shared.caps)
    }

    fn events(&self) -> EventStream {
        self.shared.bus.subscribe()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn cc_core::Engagement>> {
        if self.verify_session() {
            return Err(Error::invalid(
                V,
                "request",
                "a chat is already active in this session",
            ));
        }
        if !request.bot_history.is_empty() {
            return Err(Error::unsupported(V, Feature::BotHistoryHandoff));
        }
        *lock(&self.shared.customer) = request.customer.participant();
        match self.shared.config.transport {
            Transport::GuestChatV2 => {
                let eng = self.start_guest(&request).await?;
                if let Some(first) = request.first_message {
                    eng.send(Content::Text(first)).await?;
                }
                Ok(eng)
            }
            Transport::WebMessaging => {
                let mut attrs = self.shared.config.user_data.clone();
                let c = &request.customer;
                for (k, v) in [
                    ("nickname", &c.nickname),
                    ("firstName", &c.first_name),
                    ("lastName", &c.last_name),
                    ("email", &c.email),
                    ("phoneNumber", &c.phone),
                    ("subject", &request.subject),
                ] {
                    if let Some(v) = v {
                        attrs.insert(k.to_owned(), v.clone());
                    }
                }
                attrs.extend(c.attributes.clone());
                attrs.extend(request.context.clone());
                let tx = self.cmd()?;
                let id = EngagementId::from(digest(
                    lock(&self.shared.resume)
                        .as_ref()
                        .map(Secret::expose)
                        .unwrap_or_default(),
                ));
                let eng = self.new_engagement(id.clone());
                let (rtx, rrx) = oneshot::channel();
                tx.send(Cmd::Start(attrs, rtx))
                    .map_err(|_| Error::closed(V, "session"))?;
                rrx.await.map_err(|_| Error::closed(V, "session"))??;
                lock(&eng.view).state = EngagementState::Queued;
                self.shared.bus.emit(Event::EngagementStarted {
                    engagement: id.clone(),
                    resumed: false,
                });
                self.shared.bus.emit(Event::Queued {
                    engagement: id,
                    position: None,
                    expected_wait: None,
                });
                if let Some(first) = request.first_message {
                    eng.send(Content::Text(first)).await?;
                }
                Ok(eng)
            }
        }
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn cc_core::Engagement>>> {
        Ok(lock(&self.shared.engagement)
            .iter()
            .filter(|e| e.state() != EngagementState::Ended)
            .map(|e| e.clone() as Arc<dyn cc_core::Engagement>)
            .collect())
    }

    async fn keep_alive(&self) -> Result<()> {
        if self.shared.config.transport != Transport::WebMessaging {
            return Err(Error::unsupported(V, Feature::KeepAlive));
        }
        let (rtx, rrx) = oneshot::channel();
        self.cmd()?
            .send(Cmd::KeepAlive(rtx))
            .map_err(|_| Error::closed(V, "session"))?;
        rrx.await.map_err(|_| Error::closed(V, "session"))?
    }

    async fn shutdown(&self) -> Result<()> {
        let Ok(tx) = self.cmd() else { return Ok(()) };
        let (rtx, rrx) = oneshot::channel();
        if tx.send(Cmd::Shutdown(rtx)).is_ok() {
            let _ = rrx.await;
        }
        if let Some(e) = lock(&self.shared.engagement).as_ref() {
            let mut v = lock(&e.view);
            if v.state != EngagementState::Ended {
                v.state = EngagementState::Detached;
            }
        }
        self.shared.bus.emit(Event::ShutDown {
            reason: Arc::from("shutdown"),
        });
        Ok(())
    }
}

impl GenesysEngagement {
    fn cmd(&self) -> Result<CmdTx> {
        lock(&self.session.cmd)
            .clone()
            .ok_or_else(|| Error::closed(V, "engagement"))
    }

    fn check_open(&self) -> Result<()> {
        match self.state() {
            EngagementState::Ended => Err(Error::closed(V, "engagement")),
            EngagementState::Detached => Err(Error::closed(V, "engagement (detached)")),
            _ => Ok(()),
        }
    }

    async fn push(&self, content: Content, hidden: bool) -> Result<SentMessage> {
        self.check_open()?;
        let (rtx, rrx) = oneshot::channel();
        self.cmd()?
            .send(Cmd::Send {
                content,
                hidden,
                reply: rtx,
            })
            .map_err(|_| Error::closed(V, "engagement"))?;
        let message = rrx.await.map_err(|_| Error::closed(V, "engagement"))??;
        Ok(cc_chat::sent_message(&message))
    }

    /// `addPrefilter`: messages matching any of these regular expressions are kept out of
    /// the visible transcript (they still go on the wire). Returns every registered filter.
    pub async fn add_prefilter(&self, patterns: &[&str]) -> Result<Vec<String>> {
        let (rtx, rrx) = oneshot::channel();
        self.cmd()?
            .send(Cmd::Prefilter(
                patterns.iter().map(|s| (*s).to_owned()).collect(),
                rtx,
            ))
            .map_err(|_| Error::closed(V, "engagement"))?;
        rrx.await.map_err(|_| Error::closed(V, "engagement"))?
    }

    /// `getAgents`: every agent who took part, with connect and disconnect times.
    pub fn agents(&self) -> Vec<AgentRecord> {
        lock(&self.view).agents_seen.values().cloned().collect()
    }

    /// `getAgents` from the server (guest chat: `GET .../members?excludeDisconnectedMembers=true`,
    /// the connected members with role `AGENT`); web messaging has no member list, so it
    /// answers from the agents seen on the channel.
    pub async fn fetch_agents(&self) -> Result<Vec<Participant>> {
        if self.transport != Transport::GuestChatV2 {
            return Ok(self
                .agents()
                .into_iter()
                .filter(|a| a.connected)
                .map(|a| {
                    let mut p = Participant::new(Role::Agent);
                    p.display_name = a.name;
                    p
                })
                .collect());
        }
        let path = format!(
            "{}/conversations/{}/members?pageSize=25&pageNumber=1&excludeDisconnectedMembers=true",
            gw::BASE_PATH,
            self.id
        );
        let list: gw::MemberEntityList = self.session.http.get_json(&path).await?;
        Ok(list
            .entities
            .into_iter()
            .filter(|m| m.role == Some(gw::MemberRole::Agent))
            .map(|m| {
                let mut p = Participant::new(Role::Agent);
                p.id = m.id.map(|id| Arc::from(id.as_str()));
                p.display_name = m.display_name;
                p
            })
            .collect())
    }

    /// `getStats`: start, end, duration and agents.
    pub fn stats(&self) -> ChatStats {
        let v = lock(&self.view);
        let end = v.ended.unwrap_or_else(Timestamp::now);
        ChatStats {
            start_time: v.started,
            end_time: v.ended,
            duration: end.abs_diff(v.started),
            agents: v.agents_seen.values().cloned().collect(),
        }
    }

    /// `getSessionData`: what resumes this chat after a restart (`genesys.session_token`).
    pub fn session_data(&self) -> Option<Secret> {
        lock(&self.session.resume).clone()
    }

    /// `downloadFile`: the bytes of a file an agent sent (web messaging).
    pub async fn download(&self, attachment: &cc_core::Attachment) -> Result<Vec<u8>> {
        if self.transport != Transport::WebMessaging {
            return Err(Error::unsupported(V, Feature::AttachmentsIn));
        }
        let url = attachment
            .url
            .as_deref()
            .ok_or_else(|| Error::invalid(V, "attachment.url", "the file has no download URL"))?;
        let resp = self.session.http.request(Method::GET, url).send().await?;
        Ok(resp.body.to_vec())
    }
}

#[cc_core::async_trait]
impl cc_core::Engagement for GenesysEngagement {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> EngagementId {
        self.id.clone()
    }

    fn state(&self) -> EngagementState {
        lock(&self.view).state
    }

    fn participants(&self) -> Vec<Participant> {
        lock(&self.view).participants.clone()
    }

    fn events(&self) -> EventStream {
        self.session.bus.subscribe_engagement(self.id.clone())
    }

    fn transcript(&self) -> Vec<Message> {
        lock(&self.view).transcript.visible()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        if let Content::File(_) = content {
            return Err(Error::invalid(V, "content", "send files with upload()"));
        }
        self.push(content, false).await
    }

    async fn send_hidden(&self, content: Content) -> Result<SentMessage> {
        self.push(content, true).await
    }

    async fn typing(&self, on: bool) -> Result<()> {
        self.check_open()?;
        if !on {
            // Neither transport has a typing-stop frame: the agent's indicator times out.
            return Ok(());
        }
        let (rtx, rrx) = oneshot::channel();
        self.cmd()?
            .send(Cmd::Typing(rtx))
            .map_err(|_| Error::closed(V, "engagement"))?;
        rrx.await.map_err(|_| Error::closed(V, "engagement"))?
    }

    async fn history(&self, page_size: u32) -> Result<Box<dyn HistoryPager>> {
        if page_size == 0 || page_size > 100 {
            return Err(Error::invalid(V, "page_size", "1 to 100"));
        }
        Ok(Box::new(Pager {
            eng: self.clone(),
            size: page_size,
            older: None,
            newer: None,
            started: false,
        }))
    }

    async fn upload(&self, file: Upload) -> Result<SentMessage> {
        if self.transport != Transport::WebMessaging {
            return Err(Error::unsupported(V, Feature::Attachments));
        }
        self.check_open()?;
        let max = lock(&self.session.caps)
            .attachment_max_bytes
            .unwrap_or(u64::MAX);
        let size = file.bytes.len() as u64;
        if size == 0 || size > max {
            return Err(Error::invalid(
                V,
                "file.bytes",
                format!("{size} bytes; 1 to {max} accepted"),
            ));
        }
        let tx = self.cmd()?;
        let attachment_id = uuid::Uuid::new_v4().to_string();
        let (name, mime) = (file.name.clone(), file.mime_type.clone());
        let aid = attachment_id.clone();
        let reply = request(&tx, move |token, tracing_id| Request::OnAttachment {
            token,
            attachment_id: aid,
            file_name: name,
            file_type: mime,
            file_size: size,
            file_md5: None,
            errors_as_json: Some(true),
            tracing_id,
        })
        .await?;
        let ServerBody::PresignedUrl(p) = reply else {
            return Err(Error::protocol(
                V,
                "onAttachment reply",
                format!("unexpected {reply:?}"),
            ));
        };
        let (utx, urx) = oneshot::channel();
        tx.send(Cmd::AwaitUpload(attachment_id.clone(), utx))
            .map_err(|_| Error::closed(V, "engagement"))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &p.headers {
            if let (Ok(k), Ok(v)) = (
                cc_transport::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(k, v);
            }
        }
        self.session
            .http
            .put_bytes(
                &p.url,
                &file.mime_type,
                headers,
                bytes::Bytes::copy_from_slice(&file.bytes),
            )
            .await?;
        let done = match tokio::time::timeout(REPLY_TIMEOUT, urx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(Error::closed(V, "engagement")),
            Err(_) => {
                return Err(Error::Timeout {
                    vendor: V,
                    operation: "upload",
                    after: REPLY_TIMEOUT,
                });
            }
        };
        let url = match done {
            ServerBody::UploadSuccess(u) => u.download_url,
            ServerBody::UploadFailure(f) => {
                return Err(error::messaging(f.error_code, &f.error_message, None));
            }
            other => {
                return Err(Error::protocol(
                    V,
                    "upload event",
                    format!("unexpected {other:?}"),
                ));
            }
        };
        let content = Content::File(cc_core::Attachment {
            id: Some(attachment_id),
            name: file.name,
            mime_type: file.mime_type,
            size: Some(size),
            url: Some(url),
        });
        self.push(content, false).await
    }

    async fn set_context(&self, context: BTreeMap<String, String>) -> Result<()> {
        if self.transport != Transport::WebMessaging {
            return Err(Error::unsupported(V, Feature::SetContext));
        }
        self.cmd()?
            .send(Cmd::Context(context))
            .map_err(|_| Error::closed(V, "engagement"))
    }

    async fn end(&self, _reason: Option<String>) -> Result<()> {
        self.check_open()?;
        let (rtx, rrx) = oneshot::channel();
        self.cmd()?
            .send(Cmd::End(rtx))
            .map_err(|_| Error::closed(V, "engagement"))?;
        match tokio::time::timeout(REPLY_TIMEOUT, rrx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::closed(V, "engagement")),
            Err(_) => Err(Error::Timeout {
                vendor: V,
                operation: "end chat",
                after: REPLY_TIMEOUT,
            }),
        }
    }

    async fn leave(&self) -> Result<()> {
        self.check_open()?;
        let tx = self.cmd()?;
        let (rtx, rrx) = oneshot::channel();
        if tx.send(Cmd::Shutdown(rtx)).is_ok() {
            let _ = rrx.await;
        }
        lock(&self.view).state = EngagementState::Detached;
        Ok(())
    }
}

/// The history pager: web messaging pages by number (page 1 newest), guest chat by message id.
#[derive(Debug)]
struct Pager {
    eng: GenesysEngagement,
    size: u32,
    older: Option<String>,
    newer: Option<String>,
    started: bool,
}

impl Pager {
    fn wm_page(&self, page: mw::HistoryPage, number: u32) -> HistoryPage {
        let customer = lock(&self.eng.session.customer).clone();
        let mut messages: Vec<Message> = page
            .entities
            .iter()
            .filter(|m| m.kind != mw::MessageType::Event)
            .map(|m| {
                let inbound = m.direction == Some(mw::Direction::Inbound);
                let mut sender = if inbound {
                    customer.clone()
                } else {
                    Participant::new(Role::Agent)
                };
                if !inbound {
                    sender.display_name = m
                        .channel
                        .as_ref()
                        .and_then(|c| c.from.as_ref())
                        .and_then(|f| f.nickname.clone());
                }
                Message {
                    id: m.id.clone().map(MessageId::from),
                    client_id: m
                        .meta(engine::CUSTOM_MESSAGE_ID)
                        .and_then(|c| c.parse().ok()),
                    engagement: self.eng.id.clone(),
                    sender,
                    content: engine::content_of(m),
                    server_time: m
                        .channel
                        .as_ref()
                        .and_then(|c| c.time.as_deref())
                        .and_then(time::parse_ms)
                        .map(Timestamp),
                    local_time: Timestamp::now(),
                    state: if inbound {
                        DeliveryState::Sent
                    } else {
                        DeliveryState::Delivered
                    },
                    hidden: m.meta(engine::FILTERED) == Some("true"),
                }
            })
            .collect();
        messages.sort_by_key(Message::sort_time);
        HistoryPage {
            messages,
            has_older: number < page.page_count,
            has_newer: number > 1,
        }
    }

    fn guest_page(&self, list: gw::MessageEntityList) -> HistoryPage {
        let me = lock(&self.eng.session.customer).clone();
        let mut entities = list.entities;
        entities.retain(|m| matches!(m.body_type, gw::BodyType::Standard | gw::BodyType::Notice));
        let messages = entities
            .iter()
            .map(|m| {
                let mine = m.sender.id.as_deref() == me.id.as_deref();
                Message {
                    id: Some(MessageId::from(m.id.clone())),
                    client_id: None,
                    engagement: self.eng.id.clone(),
                    sender: if mine {
                        me.clone()
                    } else {
                        Participant::new(Role::Agent)
                            .with_id(m.sender.id.clone().unwrap_or_default())
                    },
                    content: Content::Text(m.body.clone()),
                    server_time: m
                        .timestamp
                        .as_deref()
                        .and_then(time::parse_ms)
                        .map(Timestamp),
                    local_time: Timestamp::now(),
                    state: if mine {
                        DeliveryState::Sent
                    } else {
                        DeliveryState::Delivered
                    },
                    hidden: false,
                }
            })
            .collect();
        HistoryPage {
            messages,
            has_older: list.previous_page.is_some(),
            has_newer: list.next.is_some(),
        }
    }

    async fn wm(&mut self, older: bool) -> Result<Option<HistoryPage>> {
        let current: u32 = if older {
            self.older.as_deref()
        } else {
            self.newer.as_deref()
        }
        .and_then(|s| s.parse().ok())
        .unwrap_or(if self.started { 0 } else { 1 });
        if current == 0 {
            return Ok(None);
        }
        let tx = self.eng.cmd()?;
        let page = fetch_history(&tx, &self.eng.session.http, self.size, current).await?;
        let count = page.page_count;
        let out = self.wm_page(page, current);
        self.started = true;
        self.older = Some(if current < count {
            (current + 1).to_string()
        } else {
            "0".into()
        });
        self.newer = Some(if current > 1 {
            (current - 1).to_string()
        } else {
            "0".into()
        });
        Ok(Some(out))
    }

    async fn guest(&mut self, older: bool) -> Result<Option<HistoryPage>> {
        let base = format!(
            "{}/conversations/{}/messages?maxResults={}",
            gw::BASE_PATH,
            self.eng.id,
            self.size
        );
        let path = match (self.started, older) {
            (false, _) => format!("{base}&sortOrder=descending"),
            (true, true) => match &self.older {
                Some(id) => format!("{base}&before={id}"),
                None => return Ok(None),
            },
            (true, false) => match &self.newer {
                Some(id) => format!("{base}&after={id}"),
                None => return Ok(None),
            },
        };
        let mut list: gw::MessageEntityList = self.eng.session.http.get_json(&path).await?;
        if !self.started {
            // The newest page came newest first; older/newer links are built from ids.
            list.entities.reverse();
        }
        self.started = true;
        let first = list.entities.first().map(|m| m.id.clone());
        let last = list.entities.last().map(|m| m.id.clone());
        let page = self.guest_page(list);
        if older || self.older.is_none() {
            self.older = if page.has_older || (!older && first.is_some()) {
                first
            } else {
                None
            };
        }
        if !older {
            self.newer = if page.has_newer { last } else { None };
        }
        Ok(Some(page))
    }
}

#[cc_core::async_trait]
impl HistoryPager for Pager {
    async fn previous_page(&mut self) -> Result<Option<HistoryPage>> {
        match self.eng.transport {
            Transport::WebMessaging => self.wm(true).await,
            Transport::GuestChatV2 => self.guest(true).await,
        }
    }

    async fn next_page(&mut self) -> Result<Option<HistoryPage>> {
        if !self.started {
            return self.previous_page().await;
        }
        match self.eng.transport {
            Transport::WebMessaging => self.wm(false).await,
            Transport::GuestChatV2 => self.guest(false).await,
        }
    }
}

//! [`AvayaSession`] and [`AvayaEngagement`]: the `cc_core` traits on top of the
//! [`Engine`], `cc-transport`'s HTTP client and `cc-chat`'s outbox and transcript.
//!
//! One driver task per session runs the long poll (`GET …/sessions/{id}/events`, at most
//! one at a time, aborted after 40 s, sent again at once when its connection fails), the
//! engine's timers, and every engagement's outbox,
//! one message at a time so the agent sees them in order. Each reconnecting poll (a retry
//! attempt, the first poll after a new token or a manual retry) has the disconnection probe
//! sent along: the server holds a poll with nothing to send,
//! the probe it answers at once, so the stream is back as soon as the server is. Messages
//! sent while the stream is down wait in the outbox; after the stream is back, messages whose fate a failure left
//! uncertain are reconciled against the server's history before anything is sent again, so
//! each reaches the server exactly once. A send that fails on its connection while the
//! stream is up is reconciled the same way a second later.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use cc_chat::{EchoMatch, IncomingDedup, Outbox, OutboxConfig, Poll, Transcript, Upsert};
use cc_core::{
    Capabilities, ChatRequest, Content, DeliveryState, Engagement, EngagementId, EngagementState,
    Error, ErrorKind, Event, EventBus, EventStream, Feature, HistoryPage, HistoryPager, Initiator,
    Message, MessageId, Participant, Result, Role, Secret, SentMessage, Session, Timestamp,
    TlsSettings, Vendor,
};
use cc_transport::{HttpClient, HttpConfig, Method, TlsConfig};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{self, AvayaConfig, token_expiry};
use crate::engine::{Engine, Output, PollFailure, Stream, Timers};
use crate::wire::{self, ParticipantType, ServerEvent, WireEngagement, WireMessage, paths};
use crate::{CAPABILITIES, VENDOR, error};

/// The body of a poll reply.
type Bytes = Vec<u8>;

/// The largest history page the server serves.
pub const HISTORY_PAGE_MAX: u32 = 50;
/// The client aborts a long poll after this long.
pub const POLL_ABORT: Duration = Duration::from_secs(40);
/// Disconnection probes after a server error.
const PROBES: usize = 3;
/// After a send or a reconciliation failed on the connection while the event stream is up,
/// the outbox reconciles again this much later, rather than when the next poll answers (which
/// the server holds up to 25 s when it has nothing to send).
const RECHECK: Duration = Duration::from_secs(1);

/// The session's clock: tokio's clock plus an offset that only moves forward.
///
/// Every timer of the session (idle, grace, reconnection, token reminders) reads this clock.
/// Apps use [`Clock::new`] and never touch it. The simulator's `idle_warning` and tests move
/// it with [`Clock::advance`], which is what passing real time would do, without waiting:
/// the vendor's idle timer runs in the client, so that is the only honest way to make it fire
/// during a short test (see the crate docs).
#[derive(Clone, Debug)]
pub struct Clock {
    offset: Arc<watch::Sender<Duration>>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Tokio's clock, no offset.
    pub fn new() -> Self {
        Clock {
            offset: Arc::new(watch::channel(Duration::ZERO).0),
        }
    }

    /// The offset added so far.
    pub fn offset(&self) -> Duration {
        *self.offset.borrow()
    }

    /// Now, monotonic.
    pub fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std() + self.offset()
    }

    /// Now, wall clock, in Unix milliseconds.
    pub fn wall_ms(&self) -> i64 {
        Timestamp::from(SystemTime::now() + self.offset()).0
    }

    /// Moves the clock forward by `d`; every session on it re-checks its timers.
    pub fn advance(&self, d: Duration) {
        self.offset.send_modify(|o| *o += d);
    }

    fn subscribe(&self) -> watch::Receiver<Duration> {
        self.offset.subscribe()
    }

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        let real = deadline.checked_sub(self.offset()).unwrap_or(deadline);
        tokio::time::sleep_until(tokio::time::Instant::from_std(real))
    }
}

/// The local status of an engagement (`EngagementStatus` of the vendor's SDK, plus our own
/// `Detached`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Active,
    Terminating,
    Terminated,
    Detached,
}

#[derive(Debug)]
struct Eng {
    id: EngagementId,
    dialog_id: String,
    status: Status,
    participants: Vec<wire::WireParticipant>,
    had_agent: bool,
    outbox: Outbox,
    transcript: Transcript,
    delivered: IncomingDedup<String>,
    /// The messages the event stream announced (`MessageReceived`), by server id. A joined
    /// engagement reads its history in the background while the stream runs, so a message
    /// may be in the transcript before its event arrives; the event announces it all the same.
    announced: IncomingDedup<String>,
    /// The outbox was stopped by a failed send; it reopens with the next good poll, or at
    /// `recheck` if the stream is up then.
    held: bool,
    /// When a held outbox reconciles without waiting for the next poll's answer.
    recheck: Option<Instant>,
}

impl Eng {
    fn new(id: EngagementId, dialog_id: String, me: &Participant) -> Self {
        Eng {
            outbox: Outbox::new(VENDOR, id.clone(), me.clone(), outbox_config()),
            id,
            dialog_id,
            status: Status::Pending,
            participants: Vec::new(),
            had_agent: false,
            transcript: Transcript::new(),
            delivered: IncomingDedup::new(512),
            announced: IncomingDedup::new(512),
            held: false,
            recheck: None,
        }
    }

    fn tracked(&self) -> bool {
        matches!(
            self.status,
            Status::Pending | Status::Active | Status::Terminating
        )
    }

    fn state(&self) -> EngagementState {
        match self.status {
            Status::Pending => EngagementState::Starting,
            Status::Active if self.has_agent() => EngagementState::Active,
            Status::Active => EngagementState::Queued,
            Status::Terminating | Status::Terminated => EngagementState::Ended,
            Status::Detached => EngagementState::Detached,
        }
    }

    fn has_agent(&self) -> bool {
        self.participants.iter().any(|p| {
            matches!(
                p.participant_type,
                ParticipantType::Agent | ParticipantType::Supervisor | ParticipantType::Bot
            )
        })
    }
}

fn outbox_config() -> OutboxConfig {
    OutboxConfig {
        max_attempts: 5,
        echo_window: Duration::from_secs(60),
        retry_backoff: Duration::from_secs(1),
        ..OutboxConfig::default()
    }
}

#[derive(Debug)]
struct State {
    engine: Engine,
    engs: Vec<Eng>,
    cursor: Option<String>,
    seen: IncomingDedup<String>,
    gone: bool,
    /// Events for engagements not known yet (see [`replay_orphans`]).
    orphans: Vec<ServerEvent>,
}

impl State {
    fn eng(&mut self, id: &str) -> Option<&mut Eng> {
        self.engs.iter_mut().find(|e| e.id.as_str() == id)
    }
}

struct Inner {
    cfg: AvayaConfig,
    http: HttpClient,
    bus: EventBus,
    clock: Clock,
    session_id: String,
    context: wire::WireSession,
    me: Participant,
    state: Mutex<State>,
    wake: Notify,
    stop: CancellationToken,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvayaSession")
            .field("session_id", &self.session_id)
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: Event) {
        self.bus.emit(e);
    }

    fn alive(&self, st: &State) -> Result<()> {
        if st.gone || st.engine.ended() {
            Err(Error::closed(VENDOR, "session"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct Owner {
    stop: CancellationToken,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One AXP Chat SDK session (the vendor's `init` … `shutdown`). Cheap to clone; the driver
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct AvayaSession {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl fmt::Debug for AvayaSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

fn http_for(cfg: &AvayaConfig, tls: &TlsSettings) -> Result<HttpClient> {
    let mut headers = cc_transport::HeaderMap::new();
    let mut key = cc_transport::HeaderValue::from_str(cfg.appkey.expose())
        .map_err(|_| Error::invalid(VENDOR, "avaya.appkey", "not a valid header value"))?;
    key.set_sensitive(true);
    headers.insert(wire::APPKEY_HEADER, key);
    let mut http = HttpConfig::new(VENDOR, cfg.base_url()?)
        .with_bearer(cfg.token.clone())
        .with_tls(TlsConfig::from_settings(VENDOR, tls)?)
        .with_error_mapper(error::from_response);
    http.headers = headers;
    HttpClient::new(http)
}

fn check_live(token: &Secret, wall_ms: i64, field: &'static str) -> Result<i64> {
    let exp = token_expiry(token).map_err(|r| Error::invalid(VENDOR, field, r))?;
    if exp.saturating_mul(1000) <= wall_ms {
        return Err(Error::invalid(
            VENDOR,
            field,
            "JWT Token should be live (it expired)",
        ));
    }
    Ok(exp)
}

impl AvayaSession {
    /// Creates (or, with `session_id`, resumes) a session and returns once it is ready, as
    /// the vendor's `init` does.
    pub async fn connect(cfg: AvayaConfig, tls: &TlsSettings) -> Result<Self> {
        Self::connect_with_clock(cfg, tls, Clock::new()).await
    }

    /// [`AvayaSession::connect`] on a given [`Clock`].
    pub async fn connect_with_clock(
        cfg: AvayaConfig,
        tls: &TlsSettings,
        clock: Clock,
    ) -> Result<Self> {
        cfg.validate()?;
        let exp = check_live(&cfg.token, clock.wall_ms(), "avaya.token")?;
        let http = http_for(&cfg, tls)?;
        let session: wire::WireSession = match &cfg.session_id {
            Some(id) => http.get_json(&paths::session(id)).await?,
            None => {
                let body = wire::CreateSessionRequest {
                    display_name: cfg.display_name.clone(),
                    client_type: "web".to_owned(),
                    session_parameters: cfg.session_parameters.clone(),
                };
                http.post_json(paths::SESSIONS, &body).await?
            }
        };
        let now = clock.now();
        let timers = Timers {
            idle: cfg.idle_timeout(),
            grace: cfg.grace(),
            reconnection: cfg.reconnection_timeout(),
        };
        let mut engine = Engine::new(timers, now);
        let early = engine.set_token(now, clock.wall_ms(), exp);
        let mut me = Participant::new(Role::Customer);
        me.display_name = session.display_name.clone().or(cfg.display_name.clone());
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            http,
            bus: EventBus::default(),
            clock,
            session_id: session.session_id.clone(),
            context: session.clone(),
            me: me.clone(),
            state: Mutex::new(State {
                engine,
                engs: Vec::new(),
                cursor: None,
                seen: IncomingDedup::new(1024),
                gone: false,
                orphans: Vec::new(),
            }),
            cfg,
            wake: Notify::new(),
            stop: stop.clone(),
        });
        {
            let mut st = inner.lock();
            for w in &session.engagements {
                if let Some(d) = w.dialog() {
                    let mut e = Eng::new(w.engagement_id.as_str().into(), d.dialog_id.clone(), &me);
                    e.status = Status::Detached;
                    e.participants = others(d);
                    st.engs.push(e);
                }
            }
        }
        inner.emit(Event::Vendor {
            vendor: VENDOR,
            name: Arc::from("INITIALIZED"),
            payload: Arc::new(serde_json::to_value(&session).unwrap_or_default()),
        });
        let s = AvayaSession {
            inner: inner.clone(),
            _owner: Arc::new(Owner { stop }),
        };
        handle_outputs(&inner, early).await;
        tokio::spawn(drive(inner));
        Ok(s)
    }

    /// The server session id: keep it to resume with `AvayaConfig::session_id` (what the
    /// vendor's SDK keeps in `sessionStorage`).
    pub fn session_id(&self) -> &str {
        &self.inner.session_id
    }

    /// The user context the server returned when the session was created or resumed
    /// (the SDK's `INITIALIZED` payload): the customer's name, session parameters, and every
    /// ongoing engagement of the customer at that time.
    pub fn user_context(&self) -> &wire::WireSession {
        &self.inner.context
    }

    /// The session's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// `retryConnection()`: after the reconnection timeout, tries the event stream once
    /// more; while retrying, cuts the back-off wait short. Refused (ACS-318) otherwise.
    pub fn retry_connection(&self) -> Result<()> {
        let now = self.inner.clock.now();
        let out = self.inner.lock().engine.retry_connection(now)?;
        emit_plain(&self.inner, out);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The customer's ongoing engagements as the server lists them now (`GET sessions/{id}`),
    /// without joining any: what the SDK's `getEngagements()` reads. [`Session::engagements`]
    /// joins them as well.
    pub async fn list_engagements(&self) -> Result<Vec<WireEngagement>> {
        self.inner.alive(&self.inner.lock())?;
        let session: wire::WireSession = self
            .inner
            .http
            .get_json(&paths::session(&self.inner.session_id))
            .await?;
        Ok(session.engagements)
    }

    /// `GET engagements/{id}`: the server's view of one engagement of the customer.
    pub async fn fetch_engagement(&self, id: &EngagementId) -> Result<WireEngagement> {
        self.inner.alive(&self.inner.lock())?;
        self.inner
            .http
            .get_json(&paths::engagement(id.as_str()))
            .await
    }

    /// The engagement handle for `id`, if this session knows it (the SDK's local
    /// `getEngagementById`).
    pub fn engagement(&self, id: &EngagementId) -> Option<AvayaEngagement> {
        let st = self.inner.lock();
        st.engs
            .iter()
            .any(|e| &e.id == id)
            .then(|| AvayaEngagement {
                inner: self.inner.clone(),
                id: id.clone(),
            })
    }

    async fn join(&self, w: &WireEngagement) -> Result<()> {
        let Some(d) = w.dialog() else {
            return Err(Error::protocol(VENDOR, "engagement", "no dialog"));
        };
        let id = EngagementId::from(w.engagement_id.as_str());
        let body = wire::JoinRequest {
            dialog_id: d.dialog_id.clone(),
            session_id: self.inner.session_id.clone(),
        };
        // PENDING before the call: the server's events may overtake its reply.
        let previous = {
            let mut st = self.inner.lock();
            let me = self.inner.me.clone();
            if st.eng(id.as_str()).is_none() {
                st.engs.push(Eng::new(id.clone(), d.dialog_id.clone(), &me));
            }
            let e = st.eng(id.as_str()).expect("just inserted");
            std::mem::replace(&mut e.status, Status::Pending)
        };
        let joined: Result<WireEngagement> = self
            .inner
            .http
            .post_json(&paths::join(&w.engagement_id), &body)
            .await;
        let now = self.inner.clock.now();
        let wall = Timestamp(self.inner.clock.wall_ms());
        let out = {
            let mut st = self.inner.lock();
            let joined = match joined {
                Ok(j) => j,
                Err(e) => {
                    if let Some(eng) = st.eng(id.as_str())
                        && eng.status == Status::Pending
                    {
                        eng.status = previous;
                    }
                    return Err(e);
                }
            };
            st.engine.activity(now);
            let e = st.eng(id.as_str()).expect("inserted above");
            if let Some(jd) = joined.dialog() {
                for p in others(jd) {
                    if !e
                        .participants
                        .iter()
                        .any(|x| x.participant_id == p.participant_id)
                    {
                        e.participants.push(p);
                    }
                }
                e.had_agent |= e.has_agent();
            }
            self.inner.emit(Event::EngagementStarted {
                engagement: id.clone(),
                resumed: true,
            });
            replay_orphans(&self.inner, &mut st, id.as_str(), now, wall);
            st.engine.start_stream()
        };
        emit_plain(&self.inner, out);
        self.inner.wake.notify_one();
        tokio::spawn(load_history(self.inner.clone(), id, d.dialog_id.clone()));
        Ok(())
    }
}

/// The participants of a dialog other than customers.
fn others(d: &wire::WireDialog) -> Vec<wire::WireParticipant> {
    d.participants
        .iter()
        .filter(|p| p.participant_type != ParticipantType::Customer)
        .cloned()
        .collect()
}

/// Fills a joined engagement's transcript from the server's history, in the background.
///
/// The pages come newest first; the messages go into the transcript oldest first, so that
/// messages with the same server time (millisecond) keep their order.
async fn load_history(inner: Arc<Inner>, id: EngagementId, dialog_id: String) {
    let mut url = history_path(&inner, id.as_str(), &dialog_id);
    let mut newest_first: Vec<WireMessage> = Vec::new();
    for _ in 0..20 {
        let page: wire::MessagesPage = match inner.http.get_json(&url).await {
            Ok(p) => p,
            Err(e) => {
                inner.emit(Event::error(e));
                break;
            }
        };
        let last = page.links.next.is_empty() || page.messages.is_empty();
        newest_first.extend(page.messages);
        if last {
            break;
        }
        url = page.links.next;
    }
    let wall = Timestamp(inner.clock.wall_ms());
    let mut st = inner.lock();
    let Some(eng) = st.eng(id.as_str()) else {
        return;
    };
    for m in newest_first.iter().rev() {
        eng.transcript.upsert(to_message(m, wall));
    }
}

fn history_path(inner: &Inner, id: &str, dialog_id: &str) -> String {
    format!(
        "{}?sessionId={}&dialogId={}&pageSize={HISTORY_PAGE_MAX}&pageNumber=1&orderBy=DSC",
        paths::messages(id),
        inner.session_id,
        dialog_id
    )
}

/// A REST message as a neutral one.
fn to_message(m: &WireMessage, local: Timestamp) -> Message {
    let customer = m.participant_type == ParticipantType::Customer;
    Message {
        id: Some(MessageId::from(m.message_id.as_str())),
        client_id: None,
        engagement: EngagementId::from(m.engagement_id.as_str()),
        sender: m.sender().to_participant(),
        content: Content::Text(m.body.text().unwrap_or_default().to_owned()),
        server_time: wire::timestamp(m.received_at.as_deref()),
        local_time: local,
        state: if customer {
            DeliveryState::Sent
        } else {
            DeliveryState::Delivered
        },
        hidden: false,
    }
}

/// Emits the events of `out` and applies outbox changes; `Shutdown` and `SessionGone` are
/// handled by [`handle_outputs`].
fn emit_plain(inner: &Inner, out: Vec<Output>) {
    for o in out {
        match o {
            Output::Emit(e) => inner.emit(e),
            Output::StreamUp => {
                let mut st = inner.lock();
                for e in st.engs.iter_mut().filter(|e| e.status == Status::Active) {
                    e.held = false;
                    e.outbox.on_connected();
                }
            }
            Output::StreamDown => {
                let mut st = inner.lock();
                for e in &mut st.engs {
                    e.outbox.on_disconnected();
                }
            }
            Output::Shutdown(_) | Output::SessionGone => {}
        }
    }
}

async fn handle_outputs(inner: &Arc<Inner>, out: Vec<Output>) {
    let mut shutdown = None;
    let mut gone = false;
    for o in &out {
        match o {
            Output::Shutdown(r) => shutdown = Some(*r),
            Output::SessionGone => gone = true,
            _ => {}
        }
    }
    emit_plain(inner, out);
    if let Some(reason) = shutdown {
        finish(inner, reason, true).await;
    }
    if gone {
        inner.lock().gone = true;
        finish(inner, "CLIENT_SESSION_INVALIDATED", false).await;
    }
}

/// Ends the session locally (and on the server with `delete`): engagements are detached
/// (they go on at the vendor), pending messages fail, `ShutDown` is emitted.
async fn finish(inner: &Arc<Inner>, reason: &'static str, delete: bool) {
    let failures = {
        let mut st = inner.lock();
        st.engine.shutdown();
        let mut failures = Vec::new();
        for e in &mut st.engs {
            if e.tracked() {
                e.status = Status::Detached;
            }
            failures.extend(e.outbox.close(Error::closed(VENDOR, "session")));
        }
        failures
    };
    for f in failures {
        inner.emit(f.event());
    }
    if delete {
        let path = format!("{}?reason={reason}", paths::session(&inner.session_id));
        if let Err(e) = inner.http.request(Method::DELETE, &path).send().await {
            tracing::debug!(error = %e, "avaya: DELETE session failed; shutting down locally");
        }
    }
    inner.emit(vendor("SHUTDOWN", json!({ "reason": reason })));
    inner.emit(Event::ShutDown {
        reason: Arc::from(reason),
    });
    inner.stop.cancel();
}

type PollFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes>> + Send>>;

fn poll_request(inner: &Arc<Inner>, cursor: Option<String>) -> PollFuture {
    let http = inner.http.clone();
    let mut path = paths::events(&inner.session_id);
    if let Some(c) = cursor {
        path.push_str("?lastEventId=");
        path.push_str(&url_encode(&c));
    }
    Box::pin(async move {
        let poll = || http.request(Method::GET, &path).timeout(POLL_ABORT).send();
        let r = match poll().await {
            // The connection failed under the request (say the server closed a pooled
            // connection as it was reused). A poll reads and acknowledges nothing the
            // next one does not (the same `lastEventId`), so it is sent again at once; only
            // a second failure is the stream's.
            Err(e) if e.kind() == ErrorKind::Transport => poll().await,
            r => r,
        };
        r.map(|r| r.body.to_vec())
    })
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// How a poll error reads to the engine.
fn classify(e: &Error) -> PollFailure {
    match e {
        Error::Auth { code, .. } if code.as_deref() == Some("ACS-305") => PollFailure::Unauthorized,
        Error::Auth { .. } => PollFailure::Forbidden,
        Error::Closed {
            what: "session", ..
        } => PollFailure::SessionNotFound,
        Error::Rejected { message, .. } => {
            let status = message
                .strip_prefix("HTTP ")
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            match status {
                500 => PollFailure::ServerError,
                501 => PollFailure::NotImplemented,
                s => PollFailure::Unexpected(s),
            }
        }
        _ => PollFailure::Network,
    }
}

/// The disconnection probe: up to three immediate GETs with `x-route-request`; any 200,
/// 401 or 403 means the server is up.
async fn probe_says_up(inner: &Arc<Inner>) -> bool {
    for _ in 0..PROBES {
        let r = inner
            .http
            .request(Method::GET, &paths::events(&inner.session_id))
            .header(wire::ROUTE_HEADER, &inner.session_id)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match r {
            Ok(_) => return true,
            Err(Error::Auth { .. }) => return true,
            Err(_) => {}
        }
    }
    false
}

type ProbeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// The disconnection probe sent along with a reconnecting poll ([`Engine::reconnecting`]):
/// one GET of the events URL with `x-route-request`, which the server answers at once;
/// `true` on a 200.
///
/// The poll cannot tell that the server is back before the server answers it, and with
/// nothing queued the server holds it for its hold time (up to 25 s), while the messages
/// queued during the outage wait for the stream and their echoes are the very events that
/// would end the hold. The probe's answer ends the reconnection instead
/// ([`Engine::probe_ok`]).
fn attempt_probe(inner: &Arc<Inner>) -> ProbeFuture {
    let http = inner.http.clone();
    let path = paths::events(&inner.session_id);
    let route = inner.session_id.clone();
    Box::pin(async move {
        http.request(Method::GET, &path)
            .header(wire::ROUTE_HEADER, &route)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .is_ok()
    })
}

/// The session's driver: long poll, timers, outboxes.
async fn drive(inner: Arc<Inner>) {
    let mut poll: Option<PollFuture> = None;
    let mut probe: Option<ProbeFuture> = None;
    let mut clock_rx = inner.clock.subscribe();
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        let now = inner.clock.now();
        let due = {
            let mut st = inner.lock();
            match st.engine.next_timeout() {
                Some(t) if t <= now => st.engine.on_timeout(now),
                _ => Vec::new(),
            }
        };
        if !due.is_empty() {
            handle_outputs(&inner, due).await;
            continue;
        }
        let outbox_wait = run_outboxes(&inner).await;
        if inner.stop.is_cancelled() {
            return;
        }
        let now = inner.clock.now();
        if poll.is_none() {
            let start = {
                let mut st = inner.lock();
                if st.engine.poll_due(now) {
                    let out = st.engine.begin_poll(now);
                    Some((out, st.cursor.clone(), st.engine.reconnecting()))
                } else {
                    None
                }
            };
            if let Some((out, cursor, attempt)) = start {
                emit_plain(&inner, out);
                poll = Some(poll_request(&inner, cursor));
                probe = attempt.then(|| attempt_probe(&inner));
            }
        }
        let deadline = {
            let st = inner.lock();
            [st.engine.next_timeout(), outbox_wait]
                .into_iter()
                .flatten()
                .min()
        };
        let sleep = inner
            .clock
            .sleep_until(deadline.unwrap_or(now + Duration::from_secs(3600)));
        tokio::select! {
            () = inner.stop.cancelled() => return,
            r = async { poll.as_mut().expect("guarded").await }, if poll.is_some() => {
                poll = None;
                // The attempt's own answer decides; a probe still on its way is moot.
                probe = None;
                on_poll(&inner, r).await;
            }
            up = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                probe = None;
                if up {
                    let now = inner.clock.now();
                    let out = inner.lock().engine.probe_ok(now);
                    emit_plain(&inner, out);
                }
            }
            () = sleep => {}
            () = inner.wake.notified() => {}
            r = clock_rx.changed() => {
                if r.is_err() { return; }
            }
        }
    }
}

async fn on_poll(inner: &Arc<Inner>, r: Result<Bytes>) {
    let now = inner.clock.now();
    match r {
        Ok(body) => {
            let out = inner.lock().engine.poll_ok(now);
            emit_plain(inner, out);
            {
                let mut st = inner.lock();
                let active = st.engine.stream() == Stream::Connected;
                for e in st
                    .engs
                    .iter_mut()
                    .filter(|e| e.held && e.status == Status::Active)
                {
                    if active {
                        e.held = false;
                        e.outbox.on_connected();
                    }
                }
            }
            match wire::decode_events(&body) {
                Ok(items) => handle_batch(inner, items),
                Err(e) => inner.emit(Event::error(e)),
            }
        }
        Err(e) => {
            let failure = classify(&e);
            if matches!(
                failure,
                PollFailure::ServerError | PollFailure::NotImplemented | PollFailure::Unexpected(_)
            ) && probe_says_up(inner).await
            {
                return;
            }
            let out = inner.lock().engine.poll_failed(now, failure);
            handle_outputs(inner, out).await;
        }
    }
}

fn handle_batch(inner: &Arc<Inner>, items: Vec<wire::Decoded>) {
    let now = inner.clock.now();
    let wall = Timestamp(inner.clock.wall_ms());
    let mut stop = Vec::new();
    {
        let mut st = inner.lock();
        st.cursor = items.iter().rev().find_map(|d| d.event_id.clone());
        for d in items {
            if let Some(id) = &d.event_id
                && !st.seen.insert(id.clone())
            {
                continue;
            }
            match d.event {
                Ok(ev) => apply_event(inner, &mut st, ev, now, wall),
                Err(e) => inner.emit(Event::error(e)),
            }
        }
        if !st.engs.iter().any(Eng::tracked) {
            stop = st.engine.stop_stream(now);
        }
    }
    emit_plain(inner, stop);
    inner.wake.notify_one();
}

fn vendor(name: &str, payload: serde_json::Value) -> Event {
    Event::Vendor {
        vendor: VENDOR,
        name: Arc::from(name),
        payload: Arc::new(payload),
    }
}

fn is_me(inner: &Inner, session_id: Option<&str>) -> bool {
    session_id.is_none_or(|s| s == inner.session_id)
}

/// Applies one server event to the state, emitting what it means.
/// The engagement an event is about.
fn engagement_of(ev: &ServerEvent) -> Option<&str> {
    match ev {
        ServerEvent::Message(m) => Some(&m.engagement_id),
        ServerEvent::ParticipantAdded(p) | ServerEvent::ParticipantDisconnected(p) => {
            Some(&p.engagement_id)
        }
        ServerEvent::EngagementError(e) => Some(&e.engagement_id),
        ServerEvent::EngagementCreated(_) | ServerEvent::Unknown { .. } => None,
    }
}

/// Events about engagements not known yet are kept this long (count), for the reply of the
/// call that creates or joins them, which the events may overtake.
const ORPHANS_MAX: usize = 256;

/// Applies the kept events of a newly known engagement, in arrival order.
fn replay_orphans(inner: &Inner, st: &mut State, id: &str, now: Instant, wall: Timestamp) {
    let (mine, rest): (Vec<ServerEvent>, Vec<ServerEvent>) = std::mem::take(&mut st.orphans)
        .into_iter()
        .partition(|e| engagement_of(e) == Some(id));
    st.orphans = rest;
    for ev in mine {
        apply_event(inner, st, ev, now, wall);
    }
}

fn apply_event(inner: &Inner, st: &mut State, ev: ServerEvent, now: Instant, wall: Timestamp) {
    if let Some(id) = engagement_of(&ev)
        && st.eng(id).is_none()
    {
        // An engagement being created or joined right now: keep the event for it.
        if st.orphans.len() == ORPHANS_MAX {
            st.orphans.remove(0);
        }
        st.orphans.push(ev);
        return;
    }
    let stream_up = st.engine.stream() == Stream::Connected;
    match ev {
        ServerEvent::Message(m) => {
            let Some(eng) = st.eng(&m.engagement_id) else {
                return;
            };
            let Some(text) = m.message.body.text() else {
                inner.emit(vendor(
                    "MESSAGE",
                    serde_json::to_value(&m).unwrap_or_default(),
                ));
                return;
            };
            let customer = m.participant.participant_type == ParticipantType::Customer;
            let msg = Message {
                id: Some(MessageId::from(m.message.message_id.as_str())),
                client_id: None,
                engagement: eng.id.clone(),
                sender: m.participant.to_participant(),
                content: Content::Text(text.to_owned()),
                server_time: wire::timestamp(m.message.received_at.as_deref()),
                local_time: wall,
                state: if customer {
                    DeliveryState::Sent
                } else {
                    DeliveryState::Delivered
                },
                hidden: false,
            };
            if customer {
                // The server's echo of a customer message is its delivery receipt.
                let (merged, client_id) = match eng.outbox.on_echo(&msg, now) {
                    EchoMatch::Confirmed(c) => {
                        eng.transcript.upsert(c.clone());
                        inner.emit(Event::MessageSent(Arc::new(c.clone())));
                        (c.clone(), c.client_id)
                    }
                    EchoMatch::AlreadyConfirmed(c) => {
                        eng.transcript.upsert(c.clone());
                        (c.clone(), c.client_id)
                    }
                    EchoMatch::Unmatched => {
                        // Sent from another session of the same customer.
                        announce(inner, eng, &m.message.message_id, msg.clone());
                        (msg.clone(), None)
                    }
                };
                if eng.delivered.insert(m.message.message_id.clone()) {
                    let id = merged
                        .id
                        .unwrap_or_else(|| MessageId::from(m.message.message_id.as_str()));
                    let client_id =
                        client_id.or_else(|| eng.transcript.get(&id).and_then(|t| t.client_id));
                    eng.transcript
                        .set_state(Some(&id), client_id, DeliveryState::Delivered);
                    inner.emit(Event::MessageDelivered {
                        engagement: eng.id.clone(),
                        id: Some(id),
                        client_id,
                    });
                }
            } else {
                announce(inner, eng, &m.message.message_id, msg);
            }
        }
        ServerEvent::ParticipantAdded(p) => {
            let Some(eng) = st.eng(&p.engagement_id) else {
                return;
            };
            if p.participant.participant_type == ParticipantType::Customer {
                if !is_me(inner, p.session_id.as_deref()) || eng.status != Status::Pending {
                    return;
                }
                eng.status = Status::Active;
                inner.emit(vendor(
                    "ENGAGEMENT_ACTIVE",
                    json!({ "engagementId": p.engagement_id, "dialogId": p.dialog_id }),
                ));
                if !eng.has_agent() {
                    inner.emit(Event::Queued {
                        engagement: eng.id.clone(),
                        position: None,
                        expected_wait: None,
                    });
                }
                if stream_up {
                    eng.outbox.on_connected();
                }
            } else {
                let pid = &p.participant.participant_id;
                if eng.participants.iter().any(|x| &x.participant_id == pid) {
                    return;
                }
                eng.participants.push(p.participant.clone());
                eng.had_agent |= eng.has_agent();
                inner.emit(Event::ParticipantJoined {
                    engagement: eng.id.clone(),
                    participant: Arc::new(p.participant.to_participant()),
                });
            }
        }
        ServerEvent::ParticipantDisconnected(p) => {
            let Some(eng) = st.eng(&p.engagement_id) else {
                return;
            };
            if p.participant.participant_type == ParticipantType::Customer {
                if !is_me(inner, p.session_id.as_deref()) || !eng.tracked() {
                    return;
                }
                let initiator = if eng.status == Status::Terminating {
                    Initiator::Customer
                } else if eng.had_agent {
                    Initiator::Agent
                } else {
                    Initiator::System
                };
                eng.status = Status::Terminated;
                let failures = eng.outbox.close(Error::closed(VENDOR, "engagement"));
                inner.emit(vendor(
                    "ENGAGEMENT_TERMINATED",
                    json!({ "engagementId": p.engagement_id, "dialogId": p.dialog_id }),
                ));
                inner.emit(Event::EngagementEnded {
                    engagement: eng.id.clone(),
                    initiator,
                    reason: None,
                });
                for f in failures {
                    inner.emit(f.event());
                }
            } else {
                let pid = p.participant.participant_id.clone();
                eng.participants.retain(|x| x.participant_id != pid);
                inner.emit(Event::ParticipantLeft {
                    engagement: eng.id.clone(),
                    participant: Arc::new(p.participant.to_participant()),
                });
            }
        }
        ServerEvent::EngagementCreated(c) => {
            inner.emit(vendor(
                "ENGAGEMENT_CREATED",
                serde_json::to_value(&c).unwrap_or_default(),
            ));
        }
        ServerEvent::EngagementError(e) => {
            let Some(eng) = st.eng(&e.engagement_id) else {
                return;
            };
            eng.status = Status::Terminated;
            let failures = eng.outbox.close(Error::closed(VENDOR, "engagement"));
            inner.emit(vendor(
                "ENGAGEMENT_ERROR",
                serde_json::to_value(&e).unwrap_or_default(),
            ));
            inner.emit(Event::error(Error::Rejected {
                vendor: VENDOR,
                code: "ENGAGEMENT_ERROR".to_owned(),
                message: format!("{}: {}", e.error.title, e.error.detail),
                retry_after: None,
            }));
            inner.emit(Event::EngagementEnded {
                engagement: eng.id.clone(),
                initiator: Initiator::System,
                reason: Some(Arc::from(e.error.title.as_str())),
            });
            for f in failures {
                inner.emit(f.event());
            }
        }
        ServerEvent::Unknown { event_type, raw } => {
            inner.emit(vendor(&event_type, raw));
        }
    }
}

/// A message the event stream delivered: into the transcript, and announced
/// (`MessageReceived`) unless it was announced before. Being in the transcript already does
/// not count: the history read of a joined engagement may have put it there first.
fn announce(inner: &Inner, eng: &mut Eng, server_id: &str, msg: Message) {
    let inserted = eng.transcript.upsert(msg.clone()) == Upsert::Inserted;
    let first = eng.announced.insert(server_id.to_owned());
    if inserted || first {
        inner.emit(Event::MessageReceived(Arc::new(msg)));
    }
}

enum Job {
    Send(EngagementId, String, Box<cc_chat::Outgoing>),
    Reconcile(EngagementId, String),
}

/// Runs every outbox until nothing is due; returns the earliest instant one waits for.
async fn run_outboxes(inner: &Arc<Inner>) -> Option<Instant> {
    loop {
        if inner.stop.is_cancelled() {
            return None;
        }
        let now = inner.clock.now();
        let mut wait: Option<Instant> = None;
        let job = {
            let mut st = inner.lock();
            let up = st.engine.stream() == Stream::Connected;
            let mut job = None;
            for e in st.engs.iter_mut().filter(|e| e.status == Status::Active) {
                if e.held
                    && let Some(t) = e.recheck
                {
                    if !up {
                        // The stream's own recovery reopens it.
                        e.recheck = None;
                    } else if now >= t {
                        e.held = false;
                        e.recheck = None;
                        e.outbox.on_connected();
                    } else {
                        wait = Some(wait.map_or(t, |w| w.min(t)));
                        continue;
                    }
                }
                match e.outbox.poll(now) {
                    Poll::Send(out) => {
                        job = Some(Job::Send(e.id.clone(), e.dialog_id.clone(), Box::new(out)));
                        break;
                    }
                    Poll::Reconcile => {
                        job = Some(Job::Reconcile(e.id.clone(), e.dialog_id.clone()));
                        break;
                    }
                    Poll::WaitUntil(t) => wait = Some(wait.map_or(t, |w| w.min(t))),
                    Poll::Idle => {}
                }
            }
            job
        };
        match job {
            None => return wait,
            Some(Job::Send(id, dialog, out)) => send_one(inner, &id, dialog, *out).await,
            Some(Job::Reconcile(id, dialog)) => reconcile(inner, &id, &dialog).await,
        }
    }
}

async fn send_one(inner: &Arc<Inner>, id: &EngagementId, dialog: String, out: cc_chat::Outgoing) {
    let cid = out.client_id();
    let text = match &out.message.content {
        Content::Text(t) => t.clone(),
        _ => String::new(),
    };
    let body = wire::SendMessageRequest {
        dialog_id: dialog,
        session_id: inner.session_id.clone(),
        parent_message_id: None,
        body: wire::MessageBody::plain(text),
    };
    let r: Result<WireMessage> = inner
        .http
        .post_json(&paths::messages(id.as_str()), &body)
        .await;
    let now = inner.clock.now();
    let mut st = inner.lock();
    let Some(eng) = st.eng(id.as_str()) else {
        return;
    };
    match r {
        Ok(m) => {
            eng.outbox.on_written(cid, now);
            let time = wire::timestamp(m.received_at.as_deref());
            if let Some(c) =
                eng.outbox
                    .on_acked(cid, Some(MessageId::from(m.message_id.as_str())), time, now)
            {
                eng.transcript.upsert(c.clone());
                inner.emit(Event::MessageSent(Arc::new(c)));
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::Auth
            ) =>
        {
            // Unknown fate (or a token to renew): hold, and reconcile once the stream is up.
            hold(eng, now, e.kind() != ErrorKind::Auth);
        }
        Err(Error::Closed { .. }) => {
            eng.status = Status::Terminated;
            let failures = eng.outbox.close(Error::closed(VENDOR, "engagement"));
            inner.emit(Event::EngagementEnded {
                engagement: eng.id.clone(),
                initiator: Initiator::System,
                reason: Some(Arc::from("Engagement doesn't exist")),
            });
            for f in failures {
                inner.emit(f.event());
            }
        }
        Err(e) => {
            if let cc_chat::SendErrorOutcome::Failed(f) = eng.outbox.on_send_error(cid, e, now) {
                inner.emit(f.event());
            }
        }
    }
}

async fn reconcile(inner: &Arc<Inner>, id: &EngagementId, dialog: &str) {
    let r: Result<wire::MessagesPage> = inner
        .http
        .get_json(&history_path(inner, id.as_str(), dialog))
        .await;
    let now = inner.clock.now();
    let wall = Timestamp(inner.clock.wall_ms());
    let mut st = inner.lock();
    let Some(eng) = st.eng(id.as_str()) else {
        return;
    };
    match r {
        Ok(page) => {
            let seen: Vec<Message> = page
                .messages
                .iter()
                .filter(|m| m.participant_type == ParticipantType::Customer)
                .map(|m| to_message(m, wall))
                .collect();
            let report = eng.outbox.reconcile(&seen, now);
            for c in report.confirmed {
                eng.transcript.upsert(c.clone());
                inner.emit(Event::MessageSent(Arc::new(c)));
            }
            for f in report.failed {
                inner.emit(f.event());
            }
        }
        Err(e) => hold(eng, now, e.kind() != ErrorKind::Auth),
    }
}

/// Stops `eng`'s outbox after a failure that leaves the fate of a message unknown: it
/// reconciles with the server's history before anything is sent again, once the stream is
/// up, or (`recheck`, for a failed connection rather than a refused token) [`RECHECK`] from
/// `now` if the stream is still up then: one connection failing, say one the server closed
/// while the client reused it, is no outage.
fn hold(eng: &mut Eng, now: Instant, recheck: bool) {
    eng.outbox.on_disconnected();
    eng.held = true;
    eng.recheck = recheck.then_some(now + RECHECK);
}

#[async_trait]
impl Session for AvayaSession {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        self.inner.alive(&self.inner.lock())?;
        if !request.bot_history.is_empty() {
            return Err(Error::unsupported(VENDOR, Feature::BotHistoryHandoff));
        }
        let mut params = request.context.clone();
        if let Some(s) = &request.subject {
            params
                .entry("subject".to_owned())
                .or_insert_with(|| s.clone());
        }
        config::check_mapped_data(&params, "context")?;
        if let Some(first) = &request.first_message {
            config::check_text(first, "first_message")?;
        }
        let body = wire::CreateEngagementRequest {
            session_id: self.inner.session_id.clone(),
            engagement_parameters: params,
        };
        let w: WireEngagement = self.inner.http.post_json(paths::ENGAGEMENTS, &body).await?;
        let Some(d) = w.dialog() else {
            return Err(Error::protocol(VENDOR, "engagement", "no dialog"));
        };
        let id = EngagementId::from(w.engagement_id.as_str());
        let now = self.inner.clock.now();
        let out = {
            let mut st = self.inner.lock();
            st.engine.activity(now);
            let mut e = Eng::new(id.clone(), d.dialog_id.clone(), &self.inner.me);
            e.participants = others(d);
            if let Some(text) = &request.first_message {
                let m = e.outbox.push(
                    Content::text(text.clone()),
                    Timestamp(self.inner.clock.wall_ms()),
                    now,
                );
                e.transcript.upsert(m);
            }
            st.engs.push(e);
            let wall = Timestamp(self.inner.clock.wall_ms());
            self.inner.emit(Event::EngagementStarted {
                engagement: id.clone(),
                resumed: false,
            });
            replay_orphans(&self.inner, &mut st, id.as_str(), now, wall);
            st.engine.start_stream()
        };
        emit_plain(&self.inner, out);
        self.inner.wake.notify_one();
        Ok(Arc::new(AvayaEngagement {
            inner: self.inner.clone(),
            id,
        }))
    }

    /// Every ongoing engagement of the customer, across sessions: the server's list is read
    /// again, and those this session has not joined yet are joined (with their history
    /// loaded into the transcript in the background).
    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        self.inner.alive(&self.inner.lock())?;
        let session: wire::WireSession = self
            .inner
            .http
            .get_json(&paths::session(&self.inner.session_id))
            .await?;
        let listed: Vec<&str> = session
            .engagements
            .iter()
            .map(|e| e.engagement_id.as_str())
            .collect();
        {
            let mut st = self.inner.lock();
            for e in st.engs.iter_mut() {
                if e.status == Status::Active && !listed.contains(&e.id.as_str()) {
                    // No longer listed by the server: terminated, as the vendor's SDK does.
                    e.status = Status::Terminated;
                    for f in e.outbox.close(Error::closed(VENDOR, "engagement")) {
                        self.inner.emit(f.event());
                    }
                }
            }
        }
        for w in &session.engagements {
            let joined = {
                let mut st = self.inner.lock();
                st.eng(&w.engagement_id).is_some_and(|e| e.tracked())
            };
            if !joined {
                self.join(w).await?;
            }
        }
        let st = self.inner.lock();
        Ok(st
            .engs
            .iter()
            .filter(|e| e.tracked())
            .map(|e| {
                Arc::new(AvayaEngagement {
                    inner: self.inner.clone(),
                    id: e.id.clone(),
                }) as Arc<dyn Engagement>
            })
            .collect())
    }

    async fn start_call(
        &self,
        request: cc_core::CallRequest,
    ) -> Result<Arc<dyn cc_core::CallSession>> {
        Err(error::no_calls(request.video))
    }

    async fn set_token(&self, token: Secret) -> Result<()> {
        self.inner.alive(&self.inner.lock())?;
        let exp = check_live(&token, self.inner.clock.wall_ms(), "token")?;
        self.inner.http.set_bearer(Some(token));
        let now = self.inner.clock.now();
        let out = {
            let mut st = self.inner.lock();
            st.engine.set_token(now, self.inner.clock.wall_ms(), exp)
        };
        handle_outputs(&self.inner, out).await;
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn keep_alive(&self) -> Result<()> {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        self.inner.alive(&st)?;
        st.engine.activity(now);
        drop(st);
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn shutdown(&self) -> Result<()> {
        if self.inner.lock().engine.ended() {
            return Ok(());
        }
        finish(&self.inner, "USER_CLOSED", true).await;
        Ok(())
    }
}

/// One engagement (chat) of an [`AvayaSession`].
#[derive(Clone)]
pub struct AvayaEngagement {
    inner: Arc<Inner>,
    id: EngagementId,
}

impl fmt::Debug for AvayaEngagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvayaEngagement")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

impl AvayaEngagement {
    fn with<T>(&self, f: impl FnOnce(&mut Eng) -> T) -> Option<T> {
        let mut st = self.inner.lock();
        st.eng(self.id.as_str()).map(f)
    }

    fn dialog(&self) -> Result<String> {
        self.with(|e| e.dialog_id.clone())
            .ok_or_else(|| Error::closed(VENDOR, "engagement"))
    }
}

#[async_trait]
impl Engagement for AvayaEngagement {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    fn id(&self) -> EngagementId {
        self.id.clone()
    }

    fn state(&self) -> EngagementState {
        self.with(|e| e.state()).unwrap_or(EngagementState::Ended)
    }

    fn participants(&self) -> Vec<Participant> {
        self.with(|e| {
            let mut v = vec![self.inner.me.clone()];
            v.extend(
                e.participants
                    .iter()
                    .map(wire::WireParticipant::to_participant),
            );
            v
        })
        .unwrap_or_default()
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe_engagement(self.id.clone())
    }

    fn transcript(&self) -> Vec<Message> {
        self.with(|e| e.transcript.messages()).unwrap_or_default()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        let text = match &content {
            Content::Text(t) => t.clone(),
            Content::File(_) => return Err(Error::unsupported(VENDOR, Feature::Attachments)),
            Content::Rich(_) => return Err(Error::unsupported(VENDOR, Feature::RichContent)),
            Content::Notice(_) => return Err(Error::unsupported(VENDOR, Feature::CustomNotices)),
        };
        config::check_text(&text, "content.text")?;
        let now = self.inner.clock.now();
        let wall = Timestamp(self.inner.clock.wall_ms());
        let sent = {
            let mut st = self.inner.lock();
            self.inner.alive(&st)?;
            st.engine.activity(now);
            let e = st
                .eng(self.id.as_str())
                .ok_or_else(|| Error::closed(VENDOR, "engagement"))?;
            if !matches!(e.status, Status::Pending | Status::Active) {
                return Err(Error::closed(VENDOR, "engagement"));
            }
            let m = e.outbox.push(Content::Text(text), wall, now);
            e.transcript.upsert(m.clone());
            cc_chat::sent_message(&m)
        };
        self.inner.wake.notify_one();
        Ok(sent)
    }

    async fn history(&self, page_size: u32) -> Result<Box<dyn HistoryPager>> {
        if page_size == 0 || page_size > HISTORY_PAGE_MAX {
            return Err(Error::invalid(
                VENDOR,
                "page_size",
                format!("{page_size} is outside 1..={HISTORY_PAGE_MAX}"),
            ));
        }
        let dialog = self.dialog()?;
        let mut pager = AvayaPager {
            inner: self.inner.clone(),
            page_size: page_size as usize,
            loaded: Vec::new(),
            ids: std::collections::HashSet::new(),
            next: Some(history_path(&self.inner, self.id.as_str(), &dialog)),
            max_index: None,
            shown: Vec::new(),
        };
        pager.fetch().await?;
        Ok(Box::new(pager))
    }

    async fn end(&self, reason: Option<String>) -> Result<()> {
        let (dialog, status) = self
            .with(|e| (e.dialog_id.clone(), e.status))
            .ok_or_else(|| Error::closed(VENDOR, "engagement"))?;
        match status {
            Status::Active => {}
            Status::Pending => return Err(error::from_acs("ACS-313", "disconnect")),
            _ => return Err(Error::closed(VENDOR, "engagement")),
        }
        let reason = match reason.as_deref() {
            Some(r @ ("USER_CLOSED" | "USER_INACTIVE" | "SYSTEM_CLOSED")) => r.to_owned(),
            _ => "USER_CLOSED".to_owned(),
        };
        let body = wire::DisconnectRequest {
            dialog_id: dialog,
            session_id: self.inner.session_id.clone(),
            reason: Some(reason),
        };
        // TERMINATING before the call: the server's events may overtake its reply.
        let now = self.inner.clock.now();
        {
            let mut st = self.inner.lock();
            st.engine.activity(now);
            if let Some(e) = st.eng(self.id.as_str()) {
                e.status = Status::Terminating;
            }
        }
        let r = self
            .inner
            .http
            .request(Method::POST, &paths::disconnect(self.id.as_str()))
            .json(&body)
            .send()
            .await;
        if let Err(e) = r {
            if let Some(eng) = self.inner.lock().eng(self.id.as_str())
                && eng.status == Status::Terminating
            {
                eng.status = Status::Active;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Detaches: the chat goes on at the vendor (another session can join it); this session
    /// stops following it.
    async fn leave(&self) -> Result<()> {
        let now = self.inner.clock.now();
        let (failures, out) = {
            let mut st = self.inner.lock();
            let e = st
                .eng(self.id.as_str())
                .ok_or_else(|| Error::closed(VENDOR, "engagement"))?;
            if !e.tracked() {
                return Err(Error::closed(VENDOR, "engagement"));
            }
            e.status = Status::Detached;
            let failures = e.outbox.close(Error::closed(VENDOR, "engagement"));
            let out = if st.engs.iter().any(Eng::tracked) {
                Vec::new()
            } else {
                st.engine.stop_stream(now)
            };
            (failures, out)
        };
        for f in failures {
            self.inner.emit(f.event());
        }
        emit_plain(&self.inner, out);
        Ok(())
    }
}

/// History pages of one engagement, from the first message to the last one at the time the
/// pager was made; newer messages (arriving as events) are left out, as in the vendor's
/// `PageIterator`. Pages are fetched 50 at a time (newest first) and sliced locally.
struct AvayaPager {
    inner: Arc<Inner>,
    page_size: usize,
    /// Newest first.
    loaded: Vec<Message>,
    ids: std::collections::HashSet<String>,
    next: Option<String>,
    max_index: Option<u64>,
    /// The pages shown, as `(start, end)` into `loaded`, newest page first.
    shown: Vec<(usize, usize)>,
}

impl fmt::Debug for AvayaPager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvayaPager")
            .field("page_size", &self.page_size)
            .field("loaded", &self.loaded.len())
            .finish_non_exhaustive()
    }
}

impl AvayaPager {
    async fn fetch(&mut self) -> Result<()> {
        let Some(url) = self.next.take() else {
            return Ok(());
        };
        let page: wire::MessagesPage = self.inner.http.get_json(&url).await?;
        let wall = Timestamp(self.inner.clock.wall_ms());
        if self.max_index.is_none() {
            self.max_index = Some(
                page.messages
                    .iter()
                    .filter_map(|m| m.message_index)
                    .max()
                    .unwrap_or(0),
            );
        }
        let max = self.max_index.unwrap_or(u64::MAX);
        for m in &page.messages {
            if m.message_index.is_some_and(|i| i > max) || !self.ids.insert(m.message_id.clone()) {
                continue;
            }
            self.loaded.push(to_message(m, wall));
        }
        if !page.links.next.is_empty() && !page.messages.is_empty() {
            self.next = Some(page.links.next);
        }
        Ok(())
    }

    fn page(&self, (start, end): (usize, usize)) -> HistoryPage {
        let mut messages: Vec<Message> = self.loaded[start..end].to_vec();
        messages.reverse();
        HistoryPage {
            messages,
            has_older: end < self.loaded.len() || self.next.is_some(),
            has_newer: start > 0,
        }
    }
}

#[async_trait]
impl HistoryPager for AvayaPager {
    async fn previous_page(&mut self) -> Result<Option<HistoryPage>> {
        let start = self.shown.last().map_or(0, |p| p.1);
        while self.loaded.len() < start + self.page_size && self.next.is_some() {
            self.fetch().await?;
        }
        let end = (start + self.page_size).min(self.loaded.len());
        if end <= start {
            return Ok(None);
        }
        self.shown.push((start, end));
        Ok(Some(self.page((start, end))))
    }

    async fn next_page(&mut self) -> Result<Option<HistoryPage>> {
        if self.shown.len() < 2 {
            return Ok(None);
        }
        self.shown.pop();
        Ok(self.shown.last().map(|p| self.page(*p)))
    }
}

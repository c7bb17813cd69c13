//! A local simulator of both Genesys guest transports, for tests and for app developers
//! without a Genesys org.
//!
//! One server on `127.0.0.1:<port>` (plain `http`/`ws`) serves:
//!
//! - Web Messaging: `GET /v1?deploymentId=…` (WebSocket, every `action`), the history REST
//!   call `GET /api/v2/webmessaging/messages`, presigned uploads (`PUT /uploads/{id}`),
//!   downloads (`GET /downloads/{id}`) and the deployment config
//!   (`GET /webdeployments/v1/deployments/{id}/config.json`);
//! - guest chat v2: every `/api/v2/webchat/guest/...` path and the JWT event stream
//!   `GET /chat/jwt/{jwt}`.
//!
//! The agent side is driven through [`cc_testkit::SimControl`] (and a few extra methods
//! such as [`Simulator::agent_says_out_of_order`]). Everything goes to the client over the
//! vendor protocol, with the same paths, field names, envelopes, heartbeats and error codes
//! as the protocol notes give. URLs handed to the client (event stream, uploads, files) are
//! built from the request's `Host`, so a client behind a proxy stays behind it.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_adapter_genesys::sim::{SimOptions, Simulator};
//! let sim = Simulator::start(SimOptions::default()).await?;
//! println!("web messaging at {}", sim.base_url());
//! # Ok(()) }
//! ```

mod guest;
mod messaging;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::routing::{get, post, put};
use cc_core::{Error, Feature, Result, Vendor};
use cc_testkit::{Direction, Frame, Received, SimChat, SimControl};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::wire::messaging::StructuredMessage;
use crate::wire::{guest as gw, time};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Port to listen on (0 picks a free one). The address is always 127.0.0.1.
    pub port: u16,
    /// The deployment id (web messaging) / deployment key (guest chat) it accepts.
    pub deployment_id: String,
    /// The organization id guest chat accepts.
    pub org_id: String,
    /// Guest chat heartbeat interval (`channel.metadata`).
    pub heartbeat: Duration,
    /// Web messaging: an unknown deployment fails the upgrade with HTTP 403 (true) or gets a
    /// `class:"string"` 403 reply to `configureSession` (false).
    pub reject_unknown_deployment_on_upgrade: bool,
    /// Web messaging: typing indicators enabled in the deployment (else 403).
    pub typing_enabled: bool,
    /// Web messaging: Presence `Clear` allowed (`conversationClear.enabled`; else 403).
    pub clear_enabled: bool,
    /// Web messaging: the agent's disconnect makes the session read-only.
    pub read_only_disconnect: bool,
    /// Longest text (both transports).
    pub max_chars: usize,
    /// Web messaging `onMessage` per session per second.
    pub messages_per_second: usize,
    /// Web messaging `retryAfter` of a rate-limit reply, in seconds.
    pub retry_after_secs: u64,
    /// Web messaging upload limit, in KB.
    pub max_file_size_kb: u64,
    /// Web messaging custom attributes limit, in bytes.
    pub max_custom_data_bytes: u64,
    /// Serve `https`/`wss` with a throw-away certificate for 127.0.0.1, signed by a
    /// throw-away CA ([`Simulator::ca_pem`]; give it to the client as `tls.ca_pem`).
    pub tls: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            deployment_id: "sim-deployment".into(),
            org_id: "sim-org".into(),
            heartbeat: Duration::from_secs(30),
            reject_unknown_deployment_on_upgrade: false,
            typing_enabled: true,
            clear_enabled: true,
            read_only_disconnect: false,
            max_chars: 4000,
            messages_per_second: 2,
            retry_after_secs: 1,
            max_file_size_kb: 10240,
            max_custom_data_bytes: 2048,
            tls: false,
        }
    }
}

#[derive(Debug)]
pub(crate) enum SockCmd {
    Text(String),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Send a close frame and end.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A web messaging socket, before and after `configureSession`.
    Wm(Option<String>),
    /// A guest chat event stream of chat index.
    Guest(usize),
}

#[derive(Debug)]
pub(crate) struct Socket {
    id: u64,
    owner: Owner,
    tx: mpsc::UnboundedSender<SockCmd>,
}

#[derive(Debug)]
pub(crate) struct WmSession {
    pub(crate) chat: Option<usize>,
    pub(crate) read_only: bool,
    pub(crate) expired: bool,
    pub(crate) sent: VecDeque<tokio::time::Instant>,
    pub(crate) history: Vec<StructuredMessage>,
}

#[derive(Debug)]
pub(crate) struct GuestChat {
    pub(crate) member: String,
    pub(crate) members: Vec<gw::MemberInfo>,
    pub(crate) messages: Vec<gw::WebChatMessage>,
    pub(crate) attached: bool,
}

#[derive(Debug)]
pub(crate) enum ChatKind {
    Wm { token: String },
    Guest(GuestChat),
}

#[derive(Debug)]
pub(crate) struct Chat {
    pub(crate) id: String,
    pub(crate) customer_name: Option<String>,
    pub(crate) received: Vec<Received>,
    pub(crate) agent: Option<(String, String)>,
    pub(crate) acd: Option<String>,
    pub(crate) kind: ChatKind,
}

#[derive(Debug)]
pub(crate) struct Upload {
    pub(crate) token: String,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) size: u64,
    pub(crate) tagging: String,
    pub(crate) done: bool,
}

#[derive(Debug)]
pub(crate) struct File {
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum JwtOwner {
    Wm(String),
    Guest(usize),
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) frames: cc_testkit::FrameLog,
    pub(crate) chats: Vec<Chat>,
    pub(crate) unseen: VecDeque<usize>,
    pub(crate) sessions: HashMap<String, WmSession>,
    pub(crate) jwts: HashMap<String, JwtOwner>,
    pub(crate) expired_jwts: std::collections::HashSet<String>,
    pub(crate) uploads: HashMap<String, Upload>,
    pub(crate) files: HashMap<String, File>,
    pub(crate) sockets: Vec<Socket>,
    pub(crate) next_socket: u64,
    pub(crate) fail_next: VecDeque<u16>,
    pub(crate) host: Option<String>,
    pub(crate) seq: u64,
    pub(crate) scheme: &'static str,
}

impl State {
    fn empty() -> State {
        State {
            frames: cc_testkit::FrameLog::default(),
            chats: Vec::new(),
            unseen: VecDeque::new(),
            sessions: HashMap::new(),
            jwts: HashMap::new(),
            expired_jwts: Default::default(),
            uploads: HashMap::new(),
            files: HashMap::new(),
            sockets: Vec::new(),
            next_socket: 0,
            fail_next: VecDeque::new(),
            host: None,
            seq: 0,
            scheme: "http",
        }
    }

    pub(crate) fn record(&mut self, direction: Direction, channel: impl Into<String>, body: &str) {
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        self.frames.push(Frame {
            direction,
            channel: channel.into(),
            body,
        });
    }

    pub(crate) fn record_json(
        &mut self,
        direction: Direction,
        channel: impl Into<String>,
        body: Value,
    ) {
        self.frames.push(Frame {
            direction,
            channel: channel.into(),
            body,
        });
    }

    /// Sends `text` to every socket `pick` accepts, recording it once.
    pub(crate) fn push(&mut self, pick: impl Fn(&Owner) -> bool, text: String, record: bool) {
        if record {
            self.record(Direction::ServerToClient, "ws", &text);
        }
        for s in &self.sockets {
            if pick(&s.owner) {
                let _ = s.tx.send(SockCmd::Text(text.clone()));
            }
        }
    }

    pub(crate) fn push_token(&mut self, token: &str, text: String) {
        self.push(
            |o| matches!(o, Owner::Wm(Some(t)) if t == token),
            text,
            true,
        );
    }

    pub(crate) fn push_guest(&mut self, chat: usize, text: String) {
        self.push(|o| *o == Owner::Guest(chat), text, true);
    }

    pub(crate) fn new_chat(&mut self, chat: Chat) -> usize {
        self.chats.push(chat);
        self.chats.len() - 1
    }

    pub(crate) fn now_ms(&mut self) -> i64 {
        // Strictly increasing, so messages created in one millisecond keep their order.
        let now = cc_core::Timestamp::now().unix_ms();
        self.seq = self.seq.max(now as u64 - 1) + 1;
        self.seq as i64
    }

    pub(crate) fn base(&self, fallback: SocketAddr) -> String {
        format!(
            "{}://{}",
            self.scheme,
            self.host.clone().unwrap_or_else(|| fallback.to_string())
        )
    }

    /// The WebSocket form of [`State::base`].
    pub(crate) fn ws_base(&self, fallback: SocketAddr) -> String {
        let base = self.base(fallback);
        match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => base.replacen("http://", "ws://", 1),
        }
    }

    fn chat_index(&self, chat: &SimChat) -> Result<usize> {
        self.chats
            .iter()
            .position(|c| c.id == chat.id)
            .ok_or_else(|| {
                Error::invalid(Vendor::Genesys, "chat", format!("unknown chat {}", chat.id))
            })
    }
}

/// Shared by the server and the control handle.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) opts: SimOptions,
    pub(crate) addr: SocketAddr,
    pub(crate) state: Mutex<State>,
    pub(crate) chat_started: Notify,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running simulator; dropping it (or [`Simulator::shutdown`]) stops the server.
#[derive(Debug)]
pub struct Simulator {
    inner: Arc<Inner>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    ca_pem: Option<String>,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1:<options.port>`.
    pub async fn start(options: SimOptions) -> Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| Error::transport(Vendor::Genesys, "simulator bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::transport(Vendor::Genesys, "simulator bind", e))?;
        let pki = if options.tls {
            Some(tls::Pki::new()?)
        } else {
            None
        };
        let inner = Arc::new(Inner {
            opts: options,
            addr,
            state: Mutex::new(State {
                scheme: if pki.is_some() { "https" } else { "http" },
                ..State::empty()
            }),
            chat_started: Notify::new(),
        });
        let app = router(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = rx.await;
        };
        let ca_pem = pki.as_ref().map(|p| p.ca_pem.clone());
        match pki {
            None => {
                // Frames go out as they come: without TCP_NODELAY a push sent while the
                // previous one is unacknowledged waits for the client's delayed ACK (40 ms).
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await;
                });
            }
            Some(pki) => {
                let listener = tls::TlsListener::new(listener, pki.server_config);
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await;
                });
            }
        }
        Ok(Simulator {
            inner,
            stop: Mutex::new(Some(tx)),
            ca_pem,
        })
    }

    /// The PEM of the throw-away CA that signed the certificate, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:<port>` (`https` with TLS): the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.inner.addr)
    }

    /// The options it runs with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.opts
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
        for s in st.sockets.drain(..) {
            let _ = s.tx.send(SockCmd::Drop);
        }
    }

    /// The next `n` guest chat REST calls fail with `status` (429 carries `Retry-After: 1`).
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut st = self.inner.lock();
        st.fail_next.extend(std::iter::repeat_n(status, n));
    }

    /// The agent writes two messages delivered in swapped order: `second` arrives first,
    /// with a later `channel.time` / `timestamp` than `first` (ordering is not guaranteed).
    pub fn agent_says_out_of_order(
        &self,
        chat: &SimChat,
        first: &str,
        second: &str,
    ) -> Result<(String, String)> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_says_swapped(&self.inner, st, i, first, second),
            |st, i| guest::agent_says_swapped(st, i, first, second),
        )
    }

    /// Runs the Web Messaging (`wm`) or the guest chat side of an action on `chat`, by the
    /// transport the chat came over, with the state locked.
    fn by_transport<T>(
        &self,
        chat: &SimChat,
        wm: impl FnOnce(&mut State, usize) -> Result<T>,
        guest: impl FnOnce(&mut State, usize) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.inner.lock();
        let i = st.chat_index(chat)?;
        match st.chats[i].kind {
            ChatKind::Wm { .. } => wm(&mut st, i),
            ChatKind::Guest(_) => guest(&mut st, i),
        }
    }

    /// Every chat's id, oldest first.
    pub fn chats(&self) -> Vec<SimChat> {
        self.inner
            .lock()
            .chats
            .iter()
            .map(|c| SimChat {
                id: c.id.clone(),
                customer_name: c.customer_name.clone(),
            })
            .collect()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn router(inner: Arc<Inner>) -> Router {
    let g = "/api/v2/webchat/guest/conversations";
    Router::new()
        .route("/v1", get(messaging::upgrade))
        .route("/api/v2/webmessaging/messages", get(messaging::history))
        .route("/uploads/{id}", put(messaging::upload))
        .route("/downloads/{id}", get(messaging::download))
        .route(
            "/webdeployments/v1/deployments/{id}/config.json",
            get(messaging::deployment_config),
        )
        .route("/chat/jwt/{jwt}", get(guest::upgrade))
        .route(g, post(guest::create))
        .route(&format!("{g}/{{cid}}/members"), get(guest::members))
        .route(
            &format!("{g}/{{cid}}/members/{{mid}}"),
            get(guest::member).delete(guest::leave),
        )
        .route(
            &format!("{g}/{{cid}}/members/{{mid}}/messages"),
            post(guest::send_message),
        )
        .route(
            &format!("{g}/{{cid}}/members/{{mid}}/typing"),
            post(guest::typing),
        )
        .route(&format!("{g}/{{cid}}/messages"), get(guest::messages))
        .route(
            &format!("{g}/{{cid}}/messages/{{msg}}"),
            get(guest::message),
        )
        .with_state(inner)
}

/// Registers a socket and runs it: `on_text` handles each client text frame.
pub(crate) async fn run_socket(
    inner: Arc<Inner>,
    socket: WebSocket,
    owner: Owner,
    on_open: impl FnOnce(&Arc<Inner>, u64),
    on_text: impl Fn(&Arc<Inner>, u64, &str) + Send,
    heartbeat: Option<(Duration, String)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = inner.lock();
        st.next_socket += 1;
        let id = st.next_socket;
        st.sockets.push(Socket {
            id,
            owner,
            tx: tx.clone(),
        });
        id
    };
    on_open(&inner, id);
    let (mut sink, mut stream) = socket.split();
    let mut beat = heartbeat.as_ref().map(|(every, _)| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + *every, *every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(SockCmd::Text(t)) => {
                    if sink.send(WsMessage::Text(t.into())).await.is_err() { break; }
                }
                Some(SockCmd::Close) => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    break;
                }
                Some(SockCmd::Drop) | None => break,
            },
            msg = stream.next() => match msg {
                Some(Ok(WsMessage::Text(t))) => on_text(&inner, id, t.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = async { beat.as_mut().expect("checked").tick().await }, if beat.is_some() => {
                if let Some((_, text)) = &heartbeat
                    && sink.send(WsMessage::Text(text.clone().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    inner.lock().sockets.retain(|s| s.id != id);
}

pub(crate) fn set_owner(inner: &Inner, socket: u64, owner: Owner) {
    let mut st = inner.lock();
    if let Some(s) = st.sockets.iter_mut().find(|s| s.id == socket) {
        s.owner = owner;
    }
}

pub(crate) fn send_to(st: &State, socket: u64, text: String) {
    if let Some(s) = st.sockets.iter().find(|s| s.id == socket) {
        let _ = s.tx.send(SockCmd::Text(text));
    }
}

pub(crate) fn close_socket(st: &State, socket: u64) {
    if let Some(s) = st.sockets.iter().find(|s| s.id == socket) {
        let _ = s.tx.send(SockCmd::Close);
    }
}

/// An RS256-looking JWT (the signature is random bytes: nothing verifies it).
pub(crate) fn make_jwt(claims: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"alg": "RS256", "kid": "sim", "typ": "JWT"});
    let sig: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(sig)
    )
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn iso(ms: i64) -> String {
    time::format_ms(ms)
}

#[cc_core::async_trait]
impl SimControl for Simulator {
    fn vendor(&self) -> Vendor {
        Vendor::Genesys
    }

    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat> {
        cc_testkit::wait_notified(
            Vendor::Genesys,
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

    /// Guest chat: an ACD member connects (the "dummy agent" while queued). Web Messaging
    /// has no queue events: the conversation waits from its first message, nothing is sent.
    /// Neither transport has a queue position or an expected wait.
    async fn queue(
        &self,
        chat: &SimChat,
        _position: u32,
        _expected_wait: Option<Duration>,
    ) -> Result<()> {
        self.by_transport(chat, |_, _| Ok(()), guest::queue)
    }

    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_joins(st, i, agent),
            |st, i| guest::agent_joins(st, i, agent),
        )
    }

    async fn agent_typing(&self, chat: &SimChat, on: bool) -> Result<()> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_typing(st, i, on),
            |st, i| guest::agent_typing(st, i, on),
        )
    }

    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_says(st, i, text),
            |st, i| guest::agent_says(st, i, text),
        )
    }

    async fn agent_sends_file(
        &self,
        chat: &SimChat,
        name: &str,
        mime_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        self.by_transport(
            chat,
            |st, i| {
                let base = st.base(self.inner.addr);
                messaging::agent_sends_file(st, i, &base, name, mime_type, bytes)
            },
            |_, _| Err(Error::unsupported(Vendor::Genesys, Feature::AttachmentsIn)),
        )
    }

    async fn agent_reads(&self, _chat: &SimChat) -> Result<()> {
        Err(Error::unsupported(Vendor::Genesys, Feature::ReadReceipts))
    }

    async fn agent_leaves(&self, chat: &SimChat) -> Result<()> {
        self.by_transport(
            chat,
            |_, _| {
                Err(Error::Rejected {
                    vendor: Vendor::Genesys,
                    code: "sim".into(),
                    message: "Web Messaging has no agent-left event on the guest channel".into(),
                    retry_after: None,
                })
            },
            guest::agent_leaves,
        )
    }

    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_joins(st, i, to_agent),
            |st, i| {
                guest::agent_leaves(st, i)?;
                guest::agent_joins(st, i, to_agent)
            },
        )
    }

    async fn agent_ends(&self, chat: &SimChat) -> Result<()> {
        self.by_transport(
            chat,
            |st, i| messaging::agent_ends(&self.inner.opts, st, i),
            guest::agent_ends,
        )
    }

    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>> {
        let st = self.inner.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].received.clone())
    }

    async fn idle_warning(&self, _chat: &SimChat, _grace: Duration) -> Result<()> {
        Err(Error::unsupported(Vendor::Genesys, Feature::IdleWarning))
    }

    async fn drop_connections(&self) -> Result<()> {
        self.drop_all();
        Ok(())
    }

    /// Web Messaging: every session expires (`SessionExpiredEvent`, then 4006 on configure).
    /// Guest chat: every JWT expires (401 `credentials.expired`, the stream closes).
    async fn expire_token(&self) -> Result<()> {
        let mut st = self.inner.lock();
        let tokens: Vec<String> = st.sessions.keys().cloned().collect();
        for t in tokens {
            if let Some(s) = st.sessions.get_mut(&t) {
                s.expired = true;
            }
            let frame = crate::wire::messaging::ServerFrame {
                kind: crate::wire::messaging::EnvelopeType::Message,
                code: 200,
                tracing_id: None,
                body: crate::wire::messaging::ServerBody::SessionExpired,
            };
            st.push_token(&t, frame.to_json());
        }
        let jwts: Vec<String> = st.jwts.keys().cloned().collect();
        st.expired_jwts.extend(jwts);
        for s in &st.sockets {
            if matches!(s.owner, Owner::Guest(_)) {
                let _ = s.tx.send(SockCmd::Close);
            }
        }
        Ok(())
    }

    async fn restart(&self) -> Result<()> {
        self.drop_all();
        Ok(())
    }

    async fn send_malformed(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.inner.lock();
        let i = st.chat_index(chat)?;
        match &st.chats[i].kind {
            ChatKind::Wm { token } => {
                let token = token.clone();
                st.push_token(
                    &token,
                    r#"{"type":"message","class":"StructuredMessage","code":200,"body":{"id":"#
                        .into(),
                );
            }
            ChatKind::Guest(_) => {
                let id = st.chats[i].id.clone();
                st.push_guest(i, format!(r#"{{"topicName":"v2.conversations.chats.{id}.messages","eventBody":{{"id":"#));
            }
        }
        Ok(())
    }

    fn frames(&self) -> Vec<Frame> {
        self.inner.lock().frames.to_vec()
    }
}

/// The simulator entry for tools (`cc-cli sim`, `cc-cli demo`): starts the simulator on
/// 127.0.0.1 and gives a client configuration for the chosen transport.
pub const SIM: cc_testkit::SimEntry = cc_testkit::SimEntry {
    vendor: Vendor::Genesys,
    transports: &["web-messaging", "guest-chat-v2"],
    start: start_entry,
};

fn start_entry(start: cc_testkit::SimStart) -> cc_testkit::StartSimFuture {
    Box::pin(async move {
        let transport = match start.transport.as_deref() {
            None | Some("web-messaging") => "web-messaging",
            Some("guest-chat-v2") => "guest-chat-v2",
            Some(other) => {
                return Err(Error::invalid(
                    Vendor::Genesys,
                    "transport",
                    format!("`{other}`: one of web-messaging, guest-chat-v2"),
                ));
            }
        };
        let opts = SimOptions {
            port: start.port,
            ..SimOptions::default()
        };
        let sim = Simulator::start(opts.clone()).await?;
        let mut section = serde_json::json!({
            "transport": transport,
            "base_url": sim.base_url(),
            "deployment_id": opts.deployment_id,
        });
        if transport == "guest-chat-v2" {
            section["org_id"] = Value::String(opts.org_id.clone());
            section["routing"] = serde_json::json!({ "target_address": "Support" });
        }
        let config = cc_core::Config::new(Vendor::Genesys, section)?;
        let addr = sim.addr();
        Ok(cc_testkit::RunningSim {
            control: Arc::new(sim),
            config,
            addr,
            transport,
        })
    })
}

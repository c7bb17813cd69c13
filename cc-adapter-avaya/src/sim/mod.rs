//! A local simulator of the AXP Chat SDK server side (axum), implementing
//! [`cc_testkit::SimControl`].
//!
//! It serves the paths, headers, bodies, event types and error bodies of
//! `shared/protocols/avaya.md` §3 under `/sdk/digital/chat/v1/integrations/{integrationId}/`,
//! on plain `http` at `127.0.0.1:<port>`:
//!
//! - **Auth**: every call needs `appkey` (403 otherwise) and `Authorization: Bearer jwt.…`,
//!   a JWT the simulator issued (HS256, claims `iss`, `sub` = customer, `integrationId`,
//!   `exp`, `jti`); expired, revoked or foreign tokens get 401 problem+json.
//!   [`Simulator::issue_token`] mints tokens (lifetime [`SimOptions::token_ttl`]).
//! - **Backend token endpoint** (§3.7 step 2): `POST /api/digital/chat/v1/accounts/{account}/tokens`
//!   mints a token for any `customerId` ([`customer_config`] uses it to give each synthetic
//!   customer of a load test its own identity). The OAuth step before it is not simulated.
//! - **Sessions** per customer (`sub`); engagements are shared by every session of the same
//!   customer, so a second session can join. A session unused for
//!   [`SimOptions::session_expiry`] is forgotten: its events answer 404 `Session not found`.
//! - **Long poll**: one queue per session with increasing `eventId`s; `lastEventId` acks
//!   everything up to it, unacknowledged events are sent again, a poll with nothing to send
//!   waits up to [`SimOptions::hold`] and answers `[]`. A disconnection probe (header
//!   `x-route-request`) is answered at once.
//! - **Messages**: 1..=4096 characters, ids and `messageIndex` assigned, every customer
//!   message echoed as a `MESSAGE` event with a `CUSTOMER` participant, history newest first
//!   with `pageSize` ≤ 50, `pageNumber` and absolute `links.next`.
//!
//! The server listens behind its own [`cc_testkit::Proxy`], so
//! [`SimControl::drop_connections`] resets every TCP connection as a real failure would,
//! and refuses new ones for [`DROP_OUTAGE`].
//! [`Simulator::addr`] is where clients connect; [`Simulator::config`] gives a ready
//! `cc_core::Config`.

mod server;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cc_core::{Error, Feature, Result, Secret, Vendor};
use cc_testkit::{Frame, Proxy, Received, SimChat, SimControl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, oneshot, watch};

use crate::client::Clock;
use crate::wire::{
    self, ParticipantEvent, ParticipantType, ServerEvent, WireMessage, WireParticipant,
};
use crate::{AvayaConfig, VENDOR};

/// The account id of the simulator's backend token endpoint by default.
pub const SIM_ACCOUNT_ID: &str = "SIMACC";

/// How the simulator runs.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The port on 127.0.0.1 clients connect to (0 picks one).
    pub port: u16,
    /// The integration id in the paths.
    pub integration_id: String,
    /// The application key clients must send.
    pub appkey: String,
    /// The customer the default tokens are for (the JWT `sub`).
    pub customer_id: String,
    /// The account of the backend token endpoint
    /// (`POST /api/digital/chat/v1/accounts/{account_id}/tokens`, six letters).
    pub account_id: String,
    /// The lifetime of issued tokens (the real backend allows 15..=60 minutes).
    pub token_ttl: Duration,
    /// How long a poll with nothing to send is held open.
    pub hold: Duration,
    /// A session without requests for this long is forgotten.
    pub session_expiry: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            integration_id: "3f0c3a52-8d1e-4c55-9a51-0f7a3c1d2e4b".to_owned(),
            appkey: "sim-appkey".to_owned(),
            customer_id: "conformance-customer".to_owned(),
            account_id: SIM_ACCOUNT_ID.to_owned(),
            token_ttl: Duration::from_secs(3600),
            hold: Duration::from_secs(25),
            session_expiry: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) integration_id: String,
    pub(crate) exp: i64,
    pub(crate) jti: String,
}

#[derive(Debug)]
pub(crate) struct SimSession {
    pub(crate) customer: String,
    pub(crate) display_name: Option<String>,
    pub(crate) parameters: std::collections::BTreeMap<String, String>,
    pub(crate) queue: Vec<(u64, Value)>,
    pub(crate) last_seen: tokio::time::Instant,
    /// Wakes this session's held polls when an event is queued for it (and only them: one
    /// notifier for every session would wake thousands of polls for each event).
    pub(crate) wake: Arc<Notify>,
}

#[derive(Debug)]
pub(crate) struct Chat {
    pub(crate) id: String,
    pub(crate) dialog: String,
    pub(crate) customer: String,
    pub(crate) customer_name: Option<String>,
    /// Agents, bots, system: everyone but customers.
    pub(crate) others: Vec<WireParticipant>,
    /// Sessions joined, with the customer participant of each.
    pub(crate) sessions: Vec<(String, WireParticipant)>,
    pub(crate) messages: Vec<WireMessage>,
    pub(crate) received: Vec<Received>,
    pub(crate) ended: bool,
    pub(crate) returned: bool,
    pub(crate) created_at: String,
}

/// The simulator's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) sessions: HashMap<String, SimSession>,
    pub(crate) chats: Vec<Chat>,
    pub(crate) next_event: u64,
    pub(crate) revoked: HashSet<String>,
    pub(crate) issued: Vec<String>,
    pub(crate) fail_polls: usize,
    pub(crate) fail_status: u16,
    pub(crate) fail_probes: usize,
    /// Polls whose connection breaks instead of an answer ([`Simulator::break_polls`]).
    pub(crate) break_polls: usize,
    /// Message sends whose connection breaks ([`Simulator::break_sends`]).
    pub(crate) break_sends: usize,
    /// Whether a broken send took the message first.
    pub(crate) break_sends_after: bool,
    pub(crate) frames: cc_testkit::FrameLog,
    pub(crate) deleted: Vec<(String, Option<String>)>,
    /// When the expired sessions were last swept out.
    pub(crate) last_sweep: Option<tokio::time::Instant>,
}

impl State {
    /// Queues `ev` for `session`.
    pub(crate) fn push(&mut self, session: &str, ev: &ServerEvent) {
        self.next_event += 1;
        let id = self.next_event;
        if let Some(s) = self.sessions.get_mut(session) {
            s.queue.push((id, ev.to_json(&id.to_string())));
            s.wake.notify_waiters();
        }
    }

    /// Queues a raw event for `session`.
    pub(crate) fn push_raw(&mut self, session: &str, mut v: Value) {
        self.next_event += 1;
        let id = self.next_event;
        v["eventId"] = Value::String(id.to_string());
        if let Some(s) = self.sessions.get_mut(session) {
            s.queue.push((id, v));
            s.wake.notify_waiters();
        }
    }

    /// Queues `ev` for every session of the chat.
    pub(crate) fn broadcast(&mut self, chat: usize, ev: &ServerEvent) {
        let sessions: Vec<String> = self.chats[chat]
            .sessions
            .iter()
            .map(|s| s.0.clone())
            .collect();
        for s in sessions {
            self.push(&s, ev);
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    cc_core::Timestamp::now().to_rfc3339()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Shared by the server and the control handle.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) opts: SimOptions,
    pub(crate) state: Mutex<State>,
    /// Wakes every held poll, for what concerns them all (revoked tokens, forgotten
    /// sessions, injected failures); a queued event wakes its session's polls only
    /// ([`SimSession::wake`]).
    pub(crate) events: Notify,
    pub(crate) chat_started: Notify,
    pub(crate) secret: Vec<u8>,
    pub(crate) clients: Mutex<Vec<(Clock, Duration, Duration)>>,
    /// While `true`, history reads wait ([`Simulator::hold_history`]).
    pub(crate) history_held: watch::Sender<bool>,
    /// While `true`, polls wait before sending anything ([`Simulator::hold_events`]).
    pub(crate) events_held: watch::Sender<bool>,
}

/// Waits until `gate` is open (`false`).
pub(crate) async fn pass(gate: &watch::Sender<bool>) {
    let mut rx = gate.subscribe();
    // The sender lives as long as the simulator: an error means it is going away.
    let _ = rx.wait_for(|held| !held).await;
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn mint(&self, customer: &str, ttl: Duration) -> Result<Secret> {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + ttl.as_secs();
        let jti = new_id();
        self.lock().issued.push(jti.clone());
        let claims = Claims {
            iss: "https://cc.avayacloud.com".to_owned(),
            sub: customer.to_owned(),
            integration_id: self.opts.integration_id.clone(),
            exp: i64::try_from(exp).unwrap_or(i64::MAX),
            jti,
        };
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| Error::invalid(VENDOR, "token", e.to_string()))?;
        Ok(Secret::new(format!("jwt.{jwt}")))
    }

    /// Checks a bearer token: the claims, or the 401 detail.
    pub(crate) fn check_token(&self, bearer: &str) -> std::result::Result<Claims, String> {
        let Some(jwt) = bearer.strip_prefix("jwt.") else {
            return Err("the token is not an AXP token".to_owned());
        };
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims = HashSet::new();
        let data = jsonwebtoken::decode::<Claims>(
            jwt,
            &jsonwebtoken::DecodingKey::from_secret(&self.secret),
            &v,
        )
        .map_err(|e| format!("invalid token: {e}"))?;
        let c = data.claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if c.exp <= now {
            return Err("JWT expired".to_owned());
        }
        if self.lock().revoked.contains(&c.jti) {
            return Err("JWT expired".to_owned());
        }
        Ok(c)
    }
}

/// How long the server stays unreachable after [`SimControl::drop_connections`] (and
/// `restart`). A long-poll client has a poll open nearly all the time, but not in the few
/// milliseconds between two polls: a bare reset of the open connections would then find
/// nothing to reset, the next poll would open a new connection, and the drop would go
/// unseen. A real failure lasts a moment; a request during it fails too. Far shorter than
/// the client's first back-off (1 s and more).
pub const DROP_OUTAGE: Duration = Duration::from_millis(250);

/// The listen backlog of the simulator's socket. The default (128, as the standard library
/// uses) overflows when thousands of load-test customers connect at once while the machine is
/// busy, and an overflowing queue with SYN cookies on ends in connections reset after they
/// seemed open. The kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// A listener on `127.0.0.1:port` with [`BACKLOG`].
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(BACKLOG)
}

/// The running simulator; dropping it stops the server.
#[derive(Debug)]
pub struct Simulator {
    inner: Arc<Inner>,
    proxy: Option<Proxy>,
    server_addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Simulator {
    /// Starts a simulator; clients connect to [`Simulator::addr`].
    pub async fn start(options: SimOptions) -> Result<Simulator> {
        // With a fixed port the server listens there itself; with port 0 it sits behind its
        // own fault proxy (which picks the port), so connections can be reset.
        let listener =
            listen(options.port).map_err(|e| Error::transport(VENDOR, "simulator bind", e))?;
        let server_addr = listener
            .local_addr()
            .map_err(|e| Error::transport(VENDOR, "simulator bind", e))?;
        let fixed = options.port != 0;
        let inner = Arc::new(Inner {
            opts: options,
            state: Mutex::new(State::default()),
            events: Notify::new(),
            chat_started: Notify::new(),
            secret: uuid::Uuid::new_v4().as_bytes().to_vec(),
            clients: Mutex::new(Vec::new()),
            history_held: watch::channel(false).0,
            events_held: watch::channel(false).0,
        });
        let app = server::router(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        // Answers go out as they come: without TCP_NODELAY one written while the previous
        // is unacknowledged waits for the client's delayed ACK (40 ms).
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
        let proxy = if fixed {
            None
        } else {
            Some(
                Proxy::start(server_addr)
                    .await
                    .map_err(|e| Error::transport(VENDOR, "simulator bind", e))?,
            )
        };
        Ok(Simulator {
            inner,
            proxy,
            server_addr,
            _stop: tx,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.as_ref().map_or(self.server_addr, Proxy::addr)
    }

    /// Resets every connection and refuses new ones for [`DROP_OUTAGE`], in the background.
    fn cut(&self) -> Result<()> {
        match &self.proxy {
            Some(p) => {
                p.set_down(true);
                let p = p.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(DROP_OUTAGE).await;
                    p.set_down(false);
                });
                Ok(())
            }
            None => Err(Error::invalid(
                VENDOR,
                "port",
                "a simulator on a fixed port cannot reset connections (start it with port 0)",
            )),
        }
    }

    /// `http://127.0.0.1:<port>`: the `host_url` to configure the adapter with.
    pub fn host_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The options it runs with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.opts
    }

    /// A token for `customer`, valid for [`SimOptions::token_ttl`].
    pub fn issue_token_for(&self, customer: &str) -> Result<Secret> {
        self.inner.mint(customer, self.inner.opts.token_ttl)
    }

    /// A token for `customer` valid for `ttl` (short ones for expiry tests).
    pub fn issue_token_with_ttl(&self, customer: &str, ttl: Duration) -> Result<Secret> {
        self.inner.mint(customer, ttl)
    }

    /// A client configuration for the default customer, pointing at this simulator.
    pub fn client_config(&self) -> Result<AvayaConfig> {
        let mut c = AvayaConfig::new(
            self.host_url(),
            self.inner.opts.integration_id.clone(),
            Secret::new(self.inner.opts.appkey.clone()),
            self.issue_token_for(&self.inner.opts.customer_id)?,
        );
        c.display_name = Some("Casey".to_owned());
        Ok(c)
    }

    /// The same as a `cc_core::Config` for `cc_sdk::connect`.
    pub fn config(&self) -> Result<cc_core::Config> {
        cc_core::Config::new(VENDOR, self.client_config()?)
    }

    /// Links a client's clock, idle timeout and grace, so [`SimControl::idle_warning`] can
    /// let that much idle time pass for it (Avaya's idle timer runs in the client).
    pub fn link_client(&self, clock: Clock, idle: Duration, grace: Duration) {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((clock, idle, grace));
    }

    /// Forgets every session now, as the server does after its session expiry: the next
    /// poll answers 404 `Session not found`.
    pub fn forget_sessions(&self) {
        self.inner.lock().sessions.clear();
        self.inner.events.notify_waiters();
    }

    /// The next `n` polls answer `status` (problem+json); with `probes_too`, the three
    /// disconnection probes after each of them fail the same way, so the client sees the
    /// server as down.
    pub fn fail_polls(&self, n: usize, status: u16, probes_too: bool) {
        let mut st = self.inner.lock();
        st.fail_polls = n;
        st.fail_status = status;
        st.fail_probes = if probes_too { 3 * n } else { 0 };
        drop(st);
        self.inner.events.notify_waiters();
    }

    /// The next `n` long polls (not probes) get their connection broken instead of an
    /// answer (the reply starts, then the connection drops), as when the server closes a
    /// pooled connection the client is reusing.
    pub fn break_polls(&self, n: usize) {
        self.inner.lock().break_polls = n;
    }

    /// The next `n` message sends (`POST …/engagements/{id}/messages`) get their connection
    /// broken: with `after_taking`, once the message is taken (and echoed), else before, so
    /// the client cannot tell which happened.
    pub fn break_sends(&self, n: usize, after_taking: bool) {
        let mut st = self.inner.lock();
        st.break_sends = n;
        st.break_sends_after = after_taking;
    }

    /// While `held`, history reads (`GET …/engagements/{id}/messages`) wait; released, they
    /// answer with the history as it is then, as a slow server would.
    pub fn hold_history(&self, held: bool) {
        self.inner.history_held.send_replace(held);
    }

    /// While `held`, long polls send nothing (events queue up); released, they answer with
    /// everything queued then, as a slow server or network would. Probes still answer.
    pub fn hold_events(&self, held: bool) {
        self.inner.events_held.send_replace(held);
    }

    /// How many disconnection probes (`x-route-request`) the simulator got.
    pub fn probes(&self) -> usize {
        self.inner
            .lock()
            .frames
            .iter()
            .filter(|f| f.channel.ends_with("(probe)"))
            .count()
    }

    /// The `(session id, reason)` of every session deleted so far.
    pub fn deleted_sessions(&self) -> Vec<(String, Option<String>)> {
        self.inner.lock().deleted.clone()
    }

    /// Ends the engagement with `ENGAGEMENT_ERROR`.
    pub fn engagement_error(&self, chat: &SimChat, title: &str, detail: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = index(&st, chat)?;
        st.chats[i].ended = true;
        let ev = ServerEvent::EngagementError(wire::EngagementErrorEvent {
            engagement_id: st.chats[i].id.clone(),
            dialog_id: st.chats[i].dialog.clone(),
            event_date: Some(now_rfc3339()),
            error: wire::EngagementErrorBody {
                kind: "https://docs.avayacloud.com/errors/engagement".to_owned(),
                title: title.to_owned(),
                detail: detail.to_owned(),
            },
        });
        st.broadcast(i, &ev);
        Ok(())
    }

    fn agent_event(
        &self,
        chat: &SimChat,
        f: impl FnOnce(&mut State, usize) -> Result<String>,
    ) -> Result<String> {
        let mut st = self.inner.lock();
        let i = index(&st, chat)?;
        f(&mut st, i)
    }
}

fn index(st: &State, chat: &SimChat) -> Result<usize> {
    st.chats
        .iter()
        .position(|c| c.id == chat.id)
        .ok_or_else(|| Error::invalid(VENDOR, "chat", format!("unknown chat {}", chat.id)))
}

fn participant_event(
    st: &State,
    i: usize,
    p: &WireParticipant,
    session: Option<String>,
) -> ParticipantEvent {
    ParticipantEvent {
        engagement_id: st.chats[i].id.clone(),
        dialog_id: st.chats[i].dialog.clone(),
        event_date: Some(now_rfc3339()),
        participant: p.clone(),
        session_id: session,
    }
}

/// Adds a message from `who` to chat `i` and sends it to every session.
pub(crate) fn post_message(
    st: &mut State,
    i: usize,
    who: &WireParticipant,
    text: &str,
    format: &str,
) -> WireMessage {
    let chat = &st.chats[i];
    let now = now_rfc3339();
    let mut body = wire::MessageBody::plain(text);
    if let Some(t) = &mut body.element_text {
        t.text_format = format.to_owned();
    }
    let m = WireMessage {
        message_id: new_id(),
        dialog_id: chat.dialog.clone(),
        engagement_id: chat.id.clone(),
        message_index: Some(chat.messages.len() as u64 + 1),
        parent_message_id: None,
        body,
        sender_participant_id: who.participant_id.clone(),
        participant_type: who.participant_type,
        display_name: who.display_name.clone(),
        received_at: Some(now.clone()),
        last_updated_at: Some(now.clone()),
    };
    st.chats[i].messages.push(m.clone());
    let ev = ServerEvent::Message(wire::MessageEvent {
        engagement_id: m.engagement_id.clone(),
        dialog_id: m.dialog_id.clone(),
        event_date: Some(now),
        message: wire::EventMessage {
            message_id: m.message_id.clone(),
            parent_message_id: None,
            message_index: m.message_index,
            received_at: m.received_at.clone(),
            last_updated_at: m.last_updated_at.clone(),
            body: m.body.clone(),
        },
        participant: who.clone(),
    });
    st.broadcast(i, &ev);
    m
}

#[async_trait]
impl SimControl for Simulator {
    fn vendor(&self) -> Vendor {
        VENDOR
    }

    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.chat_started.notified();
            {
                let mut st = self.inner.lock();
                if let Some(c) = st.chats.iter_mut().find(|c| !c.returned) {
                    c.returned = true;
                    return Ok(SimChat {
                        id: c.id.clone(),
                        customer_name: c.customer_name.clone(),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Timeout {
                    vendor: VENDOR,
                    operation: "wait for chat",
                    after: timeout,
                });
            }
        }
    }

    /// AXP has no queue event: the engagement waits for an agent once the customer is in.
    /// The simulator posts what a routing flow shows then, a `SYSTEM` message.
    async fn queue(
        &self,
        chat: &SimChat,
        position: u32,
        expected_wait: Option<Duration>,
    ) -> Result<()> {
        self.agent_event(chat, |st, i| {
            let system = WireParticipant {
                participant_id: "system".to_owned(),
                participant_type: ParticipantType::System,
                display_name: Some("System".to_owned()),
            };
            let mut text = format!("You are number {position} in the queue.");
            if let Some(w) = expected_wait {
                text.push_str(&format!(" Expected wait: {} s.", w.as_secs()));
            }
            Ok(post_message(st, i, &system, &text, "PLAINTEXT").message_id)
        })
        .map(|_| ())
    }

    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()> {
        self.agent_event(chat, |st, i| {
            let p = WireParticipant {
                participant_id: new_id(),
                participant_type: ParticipantType::Agent,
                display_name: Some(agent.to_owned()),
            };
            st.chats[i].others.push(p.clone());
            let ev = ServerEvent::ParticipantAdded(participant_event(st, i, &p, None));
            st.broadcast(i, &ev);
            Ok(String::new())
        })
        .map(|_| ())
    }

    async fn agent_typing(&self, _chat: &SimChat, _on: bool) -> Result<()> {
        Err(Error::unsupported(VENDOR, Feature::TypingIn))
    }

    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String> {
        self.agent_event(chat, |st, i| {
            let agent = st.chats[i]
                .others
                .iter()
                .find(|p| p.participant_type == ParticipantType::Agent)
                .cloned()
                .ok_or_else(|| Error::invalid(VENDOR, "chat", "no agent in the chat"))?;
            Ok(post_message(st, i, &agent, text, "PLAINTEXT").message_id)
        })
    }

    async fn agent_sends_file(
        &self,
        _c: &SimChat,
        _n: &str,
        _m: &str,
        _b: &[u8],
    ) -> Result<String> {
        Err(Error::unsupported(VENDOR, Feature::AttachmentsIn))
    }

    async fn agent_reads(&self, _chat: &SimChat) -> Result<()> {
        Err(Error::unsupported(VENDOR, Feature::ReadReceipts))
    }

    async fn agent_leaves(&self, chat: &SimChat) -> Result<()> {
        self.agent_event(chat, |st, i| {
            if let Some(pos) = st.chats[i]
                .others
                .iter()
                .position(|p| p.participant_type == ParticipantType::Agent)
            {
                let p = st.chats[i].others.remove(pos);
                let ev = ServerEvent::ParticipantDisconnected(participant_event(st, i, &p, None));
                st.broadcast(i, &ev);
            }
            Ok(String::new())
        })
        .map(|_| ())
    }

    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()> {
        self.agent_leaves(chat).await?;
        self.agent_joins(chat, to_agent).await
    }

    async fn agent_ends(&self, chat: &SimChat) -> Result<()> {
        self.agent_event(chat, |st, i| {
            let others = std::mem::take(&mut st.chats[i].others);
            for p in &others {
                let ev = ServerEvent::ParticipantDisconnected(participant_event(st, i, p, None));
                st.broadcast(i, &ev);
            }
            let sessions = st.chats[i].sessions.clone();
            for (s, p) in &sessions {
                let ev = ServerEvent::ParticipantDisconnected(participant_event(
                    st,
                    i,
                    p,
                    Some(s.clone()),
                ));
                st.push(s, &ev);
            }
            st.chats[i].sessions.clear();
            st.chats[i].ended = true;
            Ok(String::new())
        })
        .map(|_| ())
    }

    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>> {
        let st = self.inner.lock();
        let i = index(&st, chat)?;
        Ok(st.chats[i].received.clone())
    }

    /// Avaya's idle timer runs in the client; the server sends nothing. The simulator lets
    /// the idle timeout pass for every linked client ([`Simulator::link_client`]) by moving
    /// its clock, so the client's own timer fires with its configured grace, which must be
    /// `grace`.
    async fn idle_warning(&self, _chat: &SimChat, grace: Duration) -> Result<()> {
        let clients = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if clients.is_empty() {
            return Err(Error::invalid(
                VENDOR,
                "idle_warning",
                "no client linked (Simulator::link_client): the idle timer is the client's",
            ));
        }
        for (clock, idle, client_grace) in clients {
            if client_grace != grace {
                return Err(Error::invalid(
                    VENDOR,
                    "grace",
                    format!("the client's idle_shutdown_grace is {client_grace:?}, not {grace:?}"),
                ));
            }
            clock.advance(idle);
        }
        Ok(())
    }

    async fn drop_connections(&self) -> Result<()> {
        self.cut()
    }

    /// Every token issued so far is refused from now on (401 `JWT expired`), held polls
    /// included.
    async fn expire_token(&self) -> Result<()> {
        {
            let mut st = self.inner.lock();
            let issued = std::mem::take(&mut st.issued);
            st.revoked.extend(issued);
        }
        self.inner.events.notify_waiters();
        Ok(())
    }

    async fn issue_token(&self) -> Result<Secret> {
        self.inner
            .mint(&self.inner.opts.customer_id, self.inner.opts.token_ttl)
    }

    async fn restart(&self) -> Result<()> {
        self.cut()
    }

    async fn send_malformed(&self, chat: &SimChat) -> Result<()> {
        {
            let mut st = self.inner.lock();
            let i = index(&st, chat)?;
            let id = st.chats[i].id.clone();
            let sessions: Vec<String> = st.chats[i].sessions.iter().map(|s| s.0.clone()).collect();
            for s in sessions {
                st.push_raw(
                    &s,
                    serde_json::json!({ "eventType": "MESSAGE", "engagementId": id, "message": 42 }),
                );
            }
        }
        Ok(())
    }

    fn frames(&self) -> Vec<Frame> {
        self.inner.lock().frames.to_vec()
    }
}

/// A configuration like `config` (one for a simulator with the default account) for the
/// customer `customer_id`, with a token minted by the simulator's backend token endpoint
/// (`POST /api/digital/chat/v1/accounts/{account}/tokens`, §3.7), as a customer's web
/// backend would mint it.
///
/// The AXP server knows a customer by the JWT's `sub`, and every session of one customer
/// sees every ongoing engagement of that customer: load tests must give each synthetic
/// customer its own token, or they measure one customer with thousands of chats.
pub async fn customer_config(
    config: &cc_core::Config,
    customer_id: &str,
) -> Result<cc_core::Config> {
    let c = AvayaConfig::from_config(config)?;
    let host = c
        .host_url
        .clone()
        .ok_or_else(|| Error::invalid(VENDOR, "avaya.host_url", "a simulator's host URL"))?;
    let base = url::Url::parse(&host)
        .map_err(|e| Error::invalid(VENDOR, "avaya.host_url", e.to_string()))?;
    let mut http = cc_transport::HttpConfig::new(VENDOR, base)
        .with_tls(cc_transport::TlsConfig::from_settings(VENDOR, &config.tls)?);
    let mut key = cc_transport::HeaderValue::from_str(c.appkey.expose())
        .map_err(|_| Error::invalid(VENDOR, "avaya.appkey", "not a valid header value"))?;
    key.set_sensitive(true);
    http.headers.insert(wire::APPKEY_HEADER, key);
    let http = cc_transport::HttpClient::new(http)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Minted {
        jwt_token: String,
    }
    let minted: Minted = http
        .post_json(
            &format!("/api/digital/chat/v1/accounts/{SIM_ACCOUNT_ID}/tokens"),
            &serde_json::json!({
                "integrationId": c.integration_id,
                "customerId": customer_id,
                "ttl": 60,
            }),
        )
        .await?;
    let mut c = c;
    c.token = Secret::new(minted.jwt_token);
    let mut out = cc_core::Config::new(VENDOR, c)?;
    out.tls = config.tls.clone();
    Ok(out)
}

/// The simulator entry for tools (`cc-cli sim`, `cc-cli demo`).
pub const SIM: cc_testkit::SimEntry = cc_testkit::SimEntry {
    vendor: VENDOR,
    transports: &[crate::TRANSPORT],
    start: start_entry,
};

fn start_entry(start: cc_testkit::SimStart) -> cc_testkit::StartSimFuture {
    Box::pin(async move {
        if let Some(t) = start.transport.as_deref()
            && t != crate::TRANSPORT
        {
            return Err(Error::invalid(
                VENDOR,
                "transport",
                format!("`{t}`: the only one is {}", crate::TRANSPORT),
            ));
        }
        let sim = Simulator::start(SimOptions {
            port: start.port,
            ..SimOptions::default()
        })
        .await?;
        let config = sim.config()?;
        let addr = sim.addr();
        Ok(cc_testkit::RunningSim {
            control: Arc::new(sim),
            config,
            addr,
            transport: crate::TRANSPORT,
        })
    })
}

//! A local simulator of both Tetherfi transports (axum), implementing
//! [`cc_testkit::SimControl`].
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_adapter_tetherfi::sim::{SimOptions, Simulator};
//! use cc_adapter_tetherfi::Transport;
//! let sim = Simulator::start(SimOptions::default()).await?;
//! let config = sim.cc_config(Transport::Dwr);   // a cc_core::Config pointing at it
//! let session = cc_adapter_tetherfi::connect(config).await?;
//! # let _ = session; Ok(()) }
//! ```
//!
//! It listens on `127.0.0.1:<port>` ([`Simulator::addr`], [`Simulator::base_url`]) and
//! serves, under the DWR root (default `/tetherfi/livechat`): `call/plaincall/*.dwr`
//! (`__System.generateId`, `checkHeartbeat`, `pageUnloaded`, every `__textchat` method,
//! `__clientlog.Log`), `call/plainpoll/*.dwr` (long polls held up to
//! [`SimOptions::poll_hold`], pushes numbered per page and re-sent until the page's
//! `nextReverseAjaxIndex` passes them), `status`, `CaptchaImageServlet`, `upload`,
//! `download`; and the chat proxy on `/ws-chat-proxy/ws/chat`. One browser session
//! (`JSESSIONID` cookie, or the proxy's session token) holds its chats and its pages (DWR
//! script sessions or proxy connections); every push is forked to each attached page.
//! `Close` detaches a page; with no page left a timer ([`SimOptions::close_end_after`])
//! ends the chats unless an `Open` comes first. `SendMessage` with a sequence number seen
//! before answers the first `mid` and is not delivered again.
//!
//! Calls: the CSO side of §3.8 (see `av.rs`): `configs` for `avtstatus`, then the answer
//! [`SimControl::set_call_answer`] asks for, with a far-end `cc_rtc::media::MediaSession` on
//! 127.0.0.1 (440 Hz tone, recording sink; test pattern and counting sink for video);
//! [`SimControl::far_end_call`] reports its counts; [`Simulator::agent_holds_call`],
//! [`Simulator::agent_reoffers_hold`], [`Simulator::agent_ends_call`] and
//! [`Simulator::request_av`] act as the CSO.
//!
//! Faults: [`SimControl::drop_connections`] and [`SimControl::restart`] reset every open
//! connection and refuse new ones for [`SimOptions::outage`] (chats survive);
//! [`Simulator::end_session_silently`] ends a chat without telling anyone, so `IsValid`
//! answers false after the outage.

mod av;
mod entry;
mod net;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cc_core::{Config, Error, Feature, Result, Secret, Vendor};
use cc_testkit::{CallAnswer, Direction, FarEndCall, Frame, Received, SimChat, SimControl};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::{TetherfiConfig, Transport};
use crate::wire::av::AvSignal;
use crate::wire::{AgentInfo, OpenedSession, Push, QueueInfo, TransRecord};

pub use entry::SIM;

const V: Vendor = Vendor::Tetherfi;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Port to listen on (0 picks a free one). The address is always 127.0.0.1.
    pub port: u16,
    /// The DWR root (default `/tetherfi/livechat`).
    pub root: String,
    /// The longest a poll is held before an empty answer (must beat the client's 9 s).
    pub poll_hold: Duration,
    /// The pause a poll's callback asks for, in milliseconds.
    pub poll_pause_ms: u64,
    /// How long [`SimControl::drop_connections`] / [`SimControl::restart`] refuse connections.
    pub outage: Duration,
    /// How long after the last page's `Close` the chats end.
    pub close_end_after: Duration,
    /// The captcha answer `Start` requires, when set.
    pub captcha: Option<String>,
    /// The most chats open at once (`MaxConcurrentSessionCountReached` beyond).
    pub max_concurrent: usize,
    /// Push the audio/video `configs` when an agent joins, and not in answer to `avtstatus`
    /// (another way a server may behave; default false: in answer to `avtstatus`).
    pub av_configs_on_join: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            root: "/tetherfi/livechat".to_owned(),
            poll_hold: Duration::from_secs(5),
            poll_pause_ms: 0,
            outage: Duration::from_millis(800),
            close_end_after: Duration::from_secs(60),
            captcha: None,
            max_concurrent: 100,
            av_configs_on_join: false,
        }
    }
}

/// What the status endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimStatus {
    /// `ONLINE`.
    Online,
    /// `OFFLINE (<message>)`.
    Offline(String),
    /// This HTTP status.
    Http(u16),
}

/// A queued item for one DWR page.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Push(Push),
    Raw(String),
}

pub(crate) struct Page {
    /// DWR: pushes not yet acknowledged, with their index.
    pub(crate) queue: Vec<(u64, Item)>,
    pub(crate) next_index: u64,
    pub(crate) attached: bool,
    /// Chat proxy: the connection's outgoing frames.
    pub(crate) ws: Option<mpsc::UnboundedSender<String>>,
    /// Wakes this page's held poll when a push is queued (only this page's: a push to one
    /// customer must not wake every poll the server holds).
    pub(crate) wake: Arc<Notify>,
}

pub(crate) struct Browser {
    pub(crate) pages: HashMap<String, Page>,
    pub(crate) multichat: bool,
    /// `clientSeq` → `mid`, so a repeated send is not delivered twice.
    pub(crate) seqs: HashMap<(String, u64), String>,
    pub(crate) invalid: bool,
    pub(crate) ended_by_timer: bool,
    pub(crate) close_generation: u64,
    pub(crate) token: Option<String>,
}

/// A chat as the simulator keeps it.
pub(crate) struct ChatRec {
    pub(crate) sid: String,
    pub(crate) tchatid: String,
    pub(crate) browser: String,
    pub(crate) customer_name: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) agents: Vec<(String, String)>,
    pub(crate) trans: Vec<TransRecord>,
    pub(crate) received: Vec<Received>,
    pub(crate) ended: bool,
    pub(crate) returned: bool,
    pub(crate) details: Value,
    pub(crate) va_session: Value,
    pub(crate) acks: Vec<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) browsers: HashMap<String, Browser>,
    pub(crate) chats: Vec<ChatRec>,
    pub(crate) frames: cc_testkit::FrameLog,
    pub(crate) next_id: u64,
    pub(crate) status: Option<SimStatus>,
    pub(crate) fail_next_start: Option<String>,
    pub(crate) logs: Vec<(String, String, String)>,
    pub(crate) files: HashMap<String, Vec<u8>>,
    pub(crate) tokens: Vec<String>,
    /// How the CSO side treats the next calls.
    pub(crate) call_answer: CallAnswer,
    /// How long the CSO rings before answering; `None` is the default ring.
    pub(crate) ring: Option<std::time::Duration>,
    /// Every call, oldest first.
    pub(crate) calls: Vec<av::SimCall>,
}

impl State {
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    pub(crate) fn long_id(&mut self) -> String {
        self.next_id += 1;
        uuid::Uuid::new_v4().simple().to_string()
    }

    pub(crate) fn record(&mut self, direction: Direction, channel: &str, body: Value) {
        self.frames.push(Frame {
            direction,
            channel: channel.to_owned(),
            body,
        });
    }

    pub(crate) fn browser(&mut self, id: &str) -> &mut Browser {
        self.browsers
            .entry(id.to_owned())
            .or_insert_with(|| Browser {
                pages: HashMap::new(),
                multichat: false,
                seqs: HashMap::new(),
                invalid: false,
                ended_by_timer: false,
                close_generation: 0,
                token: None,
            })
    }

    /// Sends `push` to every attached page of the chat's browser session (but `except`).
    pub(crate) fn push(&mut self, chat: usize, push: Push, except: Option<&str>) {
        let browser = self.chats[chat].browser.clone();
        self.push_browser(&browser, Item::Push(push), except);
    }

    pub(crate) fn push_browser(&mut self, browser: &str, item: Item, except: Option<&str>) {
        let multichat = self.browser(browser).multichat;
        let mut frames = Vec::new();
        let b = self.browser(browser);
        for (id, page) in &mut b.pages {
            if !page.attached || Some(id.as_str()) == except {
                continue;
            }
            push_page(page, &item, multichat, &mut frames);
        }
        for f in frames {
            self.record(Direction::ServerToClient, f.0, f.1);
        }
    }

    pub(crate) fn chat_index(&self, chat: &SimChat) -> Result<usize> {
        self.chats
            .iter()
            .position(|c| c.sid == chat.id)
            .ok_or_else(|| Error::invalid(V, "chat", format!("no chat {}", chat.id)))
    }

    pub(crate) fn opened(&self, i: usize) -> OpenedSession {
        let c = &self.chats[i];
        OpenedSession {
            sid_webapi: c.sid.clone(),
            sid_tchat: c.tchatid.clone(),
            agents: c
                .agents
                .iter()
                .map(|(name, id)| AgentInfo {
                    name: name.clone(),
                    id: id.clone(),
                    index: 0,
                })
                .collect(),
            trans: c.trans.clone(),
            client_id: c.client_id.clone(),
        }
    }
}

/// Puts an item on one page: queued for DWR, sent at once for the chat proxy.
pub(crate) fn push_page(
    page: &mut Page,
    item: &Item,
    multichat: bool,
    frames: &mut Vec<(&'static str, Value)>,
) {
    if let Some(ws) = &page.ws {
        let text = match item {
            Item::Push(p) => crate::wire::ws::encode_push(p).to_string(),
            Item::Raw(r) => r.clone(),
        };
        frames.push((
            "ws",
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone())),
        ));
        let _ = ws.send(text);
        return;
    }
    let item = match item {
        Item::Push(p) if !multichat => Item::Push(strip_sid(p.clone())),
        other => other.clone(),
    };
    let script = match &item {
        Item::Push(p) => crate::wire::dwr::encode_push(p),
        Item::Raw(r) => r.clone(),
    };
    frames.push(("push", Value::String(script)));
    let index = page.next_index;
    page.next_index += 1;
    page.queue.push((index, item));
    page.wake.notify_one();
}

/// Single-chat DWR pushes carry no `Sid` (nor `clientId`).
fn strip_sid(mut p: Push) -> Push {
    match &mut p {
        Push::StartSuccess { client_id, .. }
        | Push::StartFailed { client_id, .. }
        | Push::RemoteUserConnected { client_id, .. } => *client_id = None,
        Push::ServersideEnd { sid, .. }
        | Push::ClientsideEnd { sid, .. }
        | Push::CallbackAutoRegistered { sid, .. }
        | Push::CallbackRequestStatus { sid, .. }
        | Push::CallQueued { sid, .. }
        | Push::MessageReceived { sid, .. }
        | Push::AppMessageReceived { sid, .. }
        | Push::Echo { sid, .. }
        | Push::TypingStateChanged { sid, .. }
        | Push::ConferenceUserLeft { sid, .. }
        | Push::HistoryReceived { sid, .. }
        | Push::Accepted { sid, .. } => *sid = None,
        _ => {}
    }
    p
}

pub(crate) struct Shared {
    pub(crate) opts: SimOptions,
    pub(crate) addr: SocketAddr,
    state: Mutex<State>,
    pub(crate) chat_started: Notify,
    pub(crate) net: Arc<net::Net>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The simulator. Stops when dropped.
pub struct Simulator {
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}

impl Simulator {
    /// Starts on `127.0.0.1:<options.port>`.
    pub async fn start(options: SimOptions) -> Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        let net = Arc::new(net::Net::new());
        let shared = Arc::new(Shared {
            opts: options,
            addr,
            state: Mutex::new(State {
                status: Some(SimStatus::Online),
                ..State::default()
            }),
            chat_started: Notify::new(),
            net: net.clone(),
        });
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let listener = net::SimListener::new(listener, net);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator {
            shared,
            stop: Mutex::new(Some(tx)),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>`: the `base_url` to configure the adapter with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// An adapter configuration pointing at the simulator, with short timers for tests.
    pub fn config(&self, transport: Transport) -> TetherfiConfig {
        let mut c = TetherfiConfig::new(self.base_url(), transport);
        c.dwr_root.clone_from(&self.shared.opts.root);
        c.poll_retry_ms = 200;
        c.request_timeout_ms = 5_000;
        c.calls.bind = std::net::Ipv4Addr::LOCALHOST.into();
        c
    }

    /// A ready-to-use `cc_core::Config` for [`Simulator::config`].
    pub fn cc_config(&self, transport: Transport) -> Config {
        let c = self.config(transport);
        Config::from_value(json!({
            "vendor": "tetherfi",
            "tetherfi": {
                "base_url": c.base_url,
                "transport": transport.name(),
                "dwr_root": c.dwr_root,
                "poll_retry_ms": c.poll_retry_ms,
                "request_timeout_ms": c.request_timeout_ms,
                "calls": { "bind": c.calls.bind.to_string() },
            }
        }))
        .expect("a valid configuration")
    }

    /// Sets what the status endpoint answers.
    pub fn set_status(&self, status: SimStatus) {
        self.shared.lock().status = Some(status);
    }

    /// The next `Start` fails with `code` (any §2.5 `OnStartFailed` code).
    pub fn fail_next_start(&self, code: &str) {
        self.shared.lock().fail_next_start = Some(code.to_owned());
    }

    /// Records a callback instead of the chat: `OnCallbackAutoRegistered(reason)`.
    pub fn system_notification(&self, chat: &SimChat, reason: &str) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let sid = Some(chat.id.clone());
        st.push(
            i,
            Push::CallbackAutoRegistered {
                reason: reason.to_owned(),
                sid,
            },
            None,
        );
        drop(st);
        Ok(())
    }

    /// The CSO recorded a callback: `OnCallbackRequestStatus(false, success)`.
    pub fn callback_status(&self, chat: &SimChat, success: bool) -> Result<()> {
        self.push_to(
            chat,
            Push::CallbackRequestStatus {
                is_customer_req: false,
                status: json!(success),
                sid: Some(chat.id.clone()),
            },
        )
    }

    /// The agent sends an app message (JSON with a `type`).
    pub fn agent_app_message(&self, chat: &SimChat, message: Value) -> Result<String> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let id = st.id("m");
        let agent = st.chats[i]
            .agents
            .last()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        st.push(
            i,
            Push::AppMessageReceived {
                agent,
                msg: message.to_string(),
                id: id.clone(),
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(id)
    }

    /// The CSO holds (`avcontrol {value: "muteaudio"}`) or resumes (`unmuteaudio`) the chat's
    /// call.
    pub fn agent_holds_call(&self, chat: &SimChat, on: bool) -> Result<()> {
        let value = if on { "muteaudio" } else { "unmuteaudio" };
        self.av_signal(
            chat,
            &AvSignal::AvControl {
                value: value.to_owned(),
            },
        )
    }

    /// The CSO's media holds (`offer` with `a=sendonly`) or resumes (`a=sendrecv`): a re-offer
    /// the client answers.
    pub fn agent_reoffers_hold(&self, chat: &SimChat, on: bool) -> Result<()> {
        let mut st = self.shared.lock();
        st.chat_index(chat)?;
        av::reoffer_hold(&mut st, &chat.id, on)?;
        drop(st);
        Ok(())
    }

    /// The CSO ends the chat's call (`endav {reason}`); the chat goes on.
    pub fn agent_ends_call(&self, chat: &SimChat, reason: &str) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        av::push_signal(
            &mut st,
            i,
            &AvSignal::EndAv {
                reason: reason.to_owned(),
            },
        );
        av::chat_ended(&mut st, &chat.id);
        drop(st);
        Ok(())
    }

    /// The CSO asks the customer for a call (`requestav {param}`, `audio` or `video`).
    pub fn request_av(&self, chat: &SimChat, avtype: &str) -> Result<()> {
        self.av_signal(
            chat,
            &AvSignal::RequestAv {
                param: avtype.to_owned(),
            },
        )
    }

    /// Any signalling message from the CSO side (tests of malformed or unusual input use
    /// [`Simulator::agent_app_message`]).
    pub fn av_signal(&self, chat: &SimChat, signal: &AvSignal) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        av::push_signal(&mut st, i, signal);
        drop(st);
        Ok(())
    }

    /// The number of calls the far end has seen (ended ones included).
    pub fn call_count(&self) -> usize {
        self.shared.lock().calls.len()
    }

    /// An `OnInternalServerError(code)` to the chat's pages.
    pub fn internal_error(&self, chat: &SimChat, code: &str) -> Result<()> {
        self.push_to(
            chat,
            Push::InternalError {
                code: code.to_owned(),
            },
        )
    }

    fn push_to(&self, chat: &SimChat, push: Push) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        st.push(i, push, None);
        drop(st);
        Ok(())
    }

    /// Ends the chat without telling the client, and forgets its browser session, so the
    /// next `IsValid` answers false (the session was lost while offline).
    pub fn end_session_silently(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        st.chats[i].ended = true;
        av::chat_ended(&mut st, &chat.id);
        let b = st.chats[i].browser.clone();
        st.browser(&b).invalid = true;
        Ok(())
    }

    /// The `SessionDetails` and `VaSession` the chat was started with.
    pub fn start_details(&self, chat: &SimChat) -> Result<(Value, Value)> {
        let st = self.shared.lock();
        let i = st.chat_index(chat)?;
        Ok((st.chats[i].details.clone(), st.chats[i].va_session.clone()))
    }

    /// The message ids the client acknowledged (`Ack`) in the chat.
    pub fn acks(&self, chat: &SimChat) -> Result<Vec<String>> {
        let st = self.shared.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].acks.clone())
    }

    /// The `slog` lines received: `(type, unit, msg)`.
    pub fn logs(&self) -> Vec<(String, String, String)> {
        self.shared.lock().logs.clone()
    }

    /// Whether the chat has ended on the server.
    pub fn is_ended(&self, chat: &SimChat) -> Result<bool> {
        let st = self.shared.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].ended)
    }

    fn outage(&self) {
        self.shared.net.kill(self.shared.opts.outage);
    }
}

#[cc_core::async_trait]
impl SimControl for Simulator {
    fn vendor(&self) -> Vendor {
        V
    }

    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat> {
        cc_testkit::wait_notified(
            V,
            &self.shared.chat_started,
            timeout,
            "wait for a chat",
            || {
                let mut st = self.shared.lock();
                let c = st.chats.iter_mut().rev().find(|c| !c.returned)?;
                c.returned = true;
                Some(SimChat {
                    id: c.sid.clone(),
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
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let short = st.id("q");
        st.push(
            i,
            Push::CallQueued {
                info: QueueInfo {
                    vdn: "5001".into(),
                    position: Some(position),
                    short_sid: short,
                    to: "sip:chat@tmac".into(),
                    server: "127.0.0.1".into(),
                    queue_type: "chat".into(),
                },
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(())
    }

    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let id = st.id("agent-");
        let time = cc_core::Timestamp::now().unix_ms();
        let c = &mut st.chats[i];
        c.agents.push((agent.to_owned(), id.clone()));
        c.trans.push(TransRecord {
            kind: "connect".into(),
            by: None,
            msg: None,
            name: Some(agent.to_owned()),
            id: Some(id.clone()),
            time: Some(time),
        });
        let client_id = c.client_id.clone();
        st.push(
            i,
            Push::RemoteUserConnected {
                name: agent.to_owned(),
                agent_id: id,
                session_id: chat.id.clone(),
                client_id,
            },
            None,
        );
        if self.shared.opts.av_configs_on_join {
            let configs = av::configs_for(&st);
            av::push_signal(&mut st, i, &AvSignal::Configs(configs));
        }
        drop(st);
        Ok(())
    }

    async fn agent_typing(&self, chat: &SimChat, on: bool) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let agent = st.chats[i]
            .agents
            .last()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        st.push(
            i,
            Push::TypingStateChanged {
                agent,
                state: if on { 0 } else { 1 },
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(())
    }

    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let id = st.id("m");
        let time = cc_core::Timestamp::now().unix_ms();
        let c = &mut st.chats[i];
        let agent = c.agents.last().map(|a| a.0.clone()).unwrap_or_default();
        c.trans.push(TransRecord {
            kind: "msg".into(),
            by: Some("a".into()),
            msg: Some(crate::wire::url_encode(text)),
            name: Some(agent.clone()),
            id: Some(id.clone()),
            time: Some(time),
        });
        st.push(
            i,
            Push::MessageReceived {
                agent,
                msg: text.to_owned(),
                id: id.clone(),
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(id)
    }

    async fn agent_sends_file(
        &self,
        _chat: &SimChat,
        _name: &str,
        _mime_type: &str,
        _bytes: &[u8],
    ) -> Result<String> {
        Err(Error::unsupported(V, Feature::AttachmentsIn))
    }

    async fn agent_reads(&self, _chat: &SimChat) -> Result<()> {
        Err(Error::unsupported(V, Feature::ReadReceipts))
    }

    async fn agent_leaves(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let Some((agent, id)) = st.chats[i].agents.pop() else {
            return Err(Error::invalid(V, "chat", "no agent in the chat"));
        };
        let time = cc_core::Timestamp::now().unix_ms();
        st.chats[i].trans.push(TransRecord {
            kind: "disconnect".into(),
            by: None,
            msg: None,
            name: Some(agent.clone()),
            id: Some(id),
            time: Some(time),
        });
        st.push(
            i,
            Push::ConferenceUserLeft {
                agent,
                msg: "left the conversation".into(),
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(())
    }

    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()> {
        {
            let mut st = self.shared.lock();
            let i = st.chat_index(chat)?;
            st.chats[i].agents.clear();
        }
        self.agent_joins(chat, to_agent).await
    }

    async fn agent_ends(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        st.chats[i].ended = true;
        av::chat_ended(&mut st, &chat.id);
        st.push(
            i,
            Push::ServersideEnd {
                reason: None,
                sid: Some(chat.id.clone()),
            },
            None,
        );
        drop(st);
        Ok(())
    }

    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>> {
        let st = self.shared.lock();
        let i = st.chat_index(chat)?;
        Ok(st.chats[i].received.clone())
    }

    async fn idle_warning(&self, _chat: &SimChat, _grace: Duration) -> Result<()> {
        Err(Error::unsupported(V, Feature::IdleWarning))
    }

    async fn drop_connections(&self) -> Result<()> {
        self.outage();
        Ok(())
    }

    async fn expire_token(&self) -> Result<()> {
        Err(Error::unsupported(V, Feature::TokenRefresh))
    }

    async fn issue_token(&self) -> Result<Secret> {
        Err(Error::unsupported(V, Feature::TokenRefresh))
    }

    async fn restart(&self) -> Result<()> {
        self.outage();
        Ok(())
    }

    async fn send_malformed(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.shared.lock();
        let i = st.chat_index(chat)?;
        let browser = st.chats[i].browser.clone();
        let multichat = st.browser(&browser).multichat;
        let mut frames = Vec::new();
        for page in st.browser(&browser).pages.values_mut() {
            if !page.attached {
                continue;
            }
            let raw = if page.ws.is_some() {
                r#"{"type":"text","user":"Alex Agent","content":"#.to_owned()
            } else {
                r#"__textchat.OnMessageReceived("Alex Agent","unterminated"#.to_owned()
            };
            push_page(page, &Item::Raw(raw), multichat, &mut frames);
        }
        for f in frames {
            st.record(Direction::ServerToClient, f.0, f.1);
        }
        drop(st);
        Ok(())
    }

    fn frames(&self) -> Vec<Frame> {
        self.shared.lock().frames.to_vec()
    }

    async fn set_call_answer(&self, answer: CallAnswer) -> Result<()> {
        self.shared.lock().call_answer = answer;
        Ok(())
    }

    async fn set_ring_time(&self, ring: std::time::Duration) -> Result<()> {
        self.shared.lock().ring = Some(ring);
        Ok(())
    }

    async fn far_end_call(&self) -> Result<Option<FarEndCall>> {
        Ok(self.shared.lock().calls.last().map(av::SimCall::view))
    }
}

//! A local simulator of the Expertflow CX customer side: the web channel manager's Socket.IO
//! server (socketioxide: Engine.IO v4 polling and the upgrade to WebSocket, as the vendor's
//! browser client uses, or WebSocket only; at `/web-channel-manager/socket.io/` and at the
//! library default `/socket.io/`) and the REST services under a deployment's URL
//! layout (`/web-channel-manager`, `/ccm`, `/file-engine`, `/conversation-manager/…`,
//! `/unified-admin`, `/business-calendar`), on one 127.0.0.1 listener. It implements
//! [`cc_testkit::SimControl`], so a test plays the agent.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_adapter_expertflow::sim::{SimOptions, Simulator};
//! let sim = Simulator::start(SimOptions::default()).await?;
//! println!("serving on {}", sim.base_url());
//! let config = sim.config("customer-1"); // a ready cc_core::Config pointing at it
//! let session = cc_adapter_expertflow::connect(config).await?;
//! # Ok(()) }
//! ```
//!
//! Behaviour (`shared/protocols/expertflow.md` §7): CONNECT without both identities is
//! refused (CONNECT_ERROR); on connect `TOKEN_GENERATED`, then anything queued for the
//! customer while no socket was connected; `CHAT_REQUESTED` → `CHANNEL_SESSION_STARTED`;
//! customer messages are acked `{code:200}` and echoed as full CIM messages; typing and read
//! receipts go to the agent side; `CHAT_RESUMED` answers `{isChatAvailable, data: history}`;
//! `CHAT_ENDED` is answered with `CHAT_ENDED`. A newer socket of the same customer takes
//! over and the older gets `SESSION_REPLACED` and a server disconnect.

mod cut;
mod entry;
mod rest;
mod switch;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use cc_core::{Config, Error, Feature, Result, Vendor};
use cc_testkit::{CallAnswer, Direction, FarEndCall, Frame, Received, SimChat, SimControl};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::{Notify, watch};

use crate::ExpertflowConfig;

use crate::wire::{
    Body, ChannelData, ChatRequested, CimMessage, Envelope, Header, Sender, WireAttachment, event,
};
pub use entry::SIM;
pub use switch::{AGENT_EXTENSION, DIALLING_URI, EXTENSION, PASSWORD, SIP_DOMAIN};

const V: Vendor = Vendor::Expertflow;

/// How to start the simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// The service identifier it serves.
    pub service_identifier: String,
    /// The widget identifier of `widget-configs`.
    pub widget_identifier: String,
    /// Whether REST calls other than the pre-connection ones (widget configs, forms,
    /// calendar) need `Authorization: Bearer <TOKEN_GENERATED token>`.
    pub require_bearer: bool,
    /// Whether customer messages are echoed back as CIM messages.
    pub echo: bool,
    /// Whether a live conversation is pushed as `CONVERSATION_RESUMED` on connect (widget 5.x).
    pub push_conversation_resumed: bool,
    /// Largest upload, in bytes (413 above).
    pub max_upload_bytes: usize,
    /// Opening hours every day, in UTC minutes `[open, close)`.
    pub business_hours: (u16, u16),
    /// Whether the widget config carries the `webRtc` block (the switch's address and the
    /// extension), i.e. whether calls are set up.
    pub web_rtc: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            service_identifier: "5155".to_owned(),
            widget_identifier: "web".to_owned(),
            require_bearer: true,
            echo: true,
            push_conversation_resumed: false,
            max_upload_bytes: 5 << 20,
            business_hours: (0, 1440),
            web_rtc: true,
        }
    }
}

type Key = (String, String);

#[derive(Debug)]
struct ChatRec {
    key: Key,
    customer: Value,
    history: Vec<CimMessage>,
    received: Vec<Received>,
    ended: bool,
    /// How many customer messages the agent has read.
    read_upto: usize,
}

#[derive(Debug, Default)]
pub(crate) struct SimState {
    chats: HashMap<String, ChatRec>,
    live: HashMap<Key, String>,
    sockets: HashMap<Key, SocketRef>,
    pending: HashMap<Key, Vec<(String, Value)>>,
    new_chats: VecDeque<SimChat>,
    frames: cc_testkit::FrameLog,
    tokens: Vec<String>,
    seq: u64,
    files: HashMap<String, (String, Vec<u8>)>,
    conversation_data: HashMap<String, serde_json::Map<String, Value>>,
    customer_data: HashMap<String, Value>,
    activities: Vec<Value>,
    callbacks: Vec<Value>,
    fail_next_chat_request: Option<u16>,
}

pub(crate) struct Shared {
    opts: SimOptions,
    base: String,
    state: Mutex<SimState>,
    chat_ready: Notify,
    cutter: cut::Cutter,
    switch: switch::Switch,
    /// `ws://127.0.0.1:<port>`: the switch (`wssFs`).
    switch_url: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The running simulator; stops when dropped.
#[derive(Clone, Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    switch_addr: SocketAddr,
    _task: Arc<TaskGuard>,
    _switch_task: Arc<TaskGuard>,
}

#[derive(Debug)]
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn now_ms() -> i64 {
    cc_core::Timestamp::now().unix_ms()
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, direction: Direction, channel: impl Into<String>, body: Value) {
        self.lock().frames.push(Frame {
            direction,
            channel: channel.into(),
            body,
        });
    }

    fn next_id(st: &mut SimState) -> String {
        st.seq += 1;
        format!("65f1a2b3{:016x}", st.seq)
    }

    fn new_token(&self) -> String {
        let mut st = self.lock();
        st.seq += 1;
        let t = format!(
            "eyJhbGciOiJub25lIn0.eyJzaW0iOiJleHBlcnRmbG93In0.t{:08x}",
            st.seq
        );
        st.tokens.push(t.clone());
        t
    }

    pub(crate) fn bearer_ok(&self, header: Option<&str>) -> bool {
        if !self.opts.require_bearer {
            return true;
        }
        let Some(t) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        self.lock().tokens.iter().any(|x| x == t)
    }

    /// Sends an event to the customer's current socket, or holds it until one connects.
    fn to_customer(&self, st: &mut SimState, key: &Key, name: &str, payload: Value) {
        st.frames.push(Frame {
            direction: Direction::ServerToClient,
            channel: "ws".to_owned(),
            body: json!([name, payload]),
        });
        let sent = st
            .sockets
            .get(key)
            .is_some_and(|s| s.emit(name, &payload).is_ok());
        if !sent {
            st.pending
                .entry(key.clone())
                .or_default()
                .push((name.to_owned(), payload));
        }
    }

    fn cim(
        st: &mut SimState,
        chat_key: &Key,
        conv: &str,
        customer: &Value,
        sender: Sender,
        body: Body,
    ) -> CimMessage {
        let mut extra = serde_json::Map::new();
        extra.insert("language".to_owned(), json!({}));
        extra.insert("securityInfo".to_owned(), json!({}));
        extra.insert("stamps".to_owned(), json!([]));
        extra.insert("entities".to_owned(), json!({}));
        extra.insert(
            "channelSessionId".to_owned(),
            Value::from(format!("cs-{conv}")),
        );
        let mut cd = serde_json::Map::new();
        cd.insert("requestPriority".to_owned(), json!(0));
        cd.insert("additionalAttributes".to_owned(), json!([]));
        CimMessage {
            id: Some(Self::next_id(st)),
            header: Header {
                sender: Some(sender),
                channel_data: Some(ChannelData {
                    channel_customer_identifier: Some(chat_key.1.clone()),
                    service_identifier: Some(chat_key.0.clone()),
                    extra: cd,
                }),
                conversation_id: Some(conv.to_owned()),
                timestamp: Some(Value::from(now_ms())),
                intent: None,
                original_message_id: None,
                customer: Some(customer.clone()),
                extra,
            },
            body,
        }
    }

    fn agent_sender(name: &str) -> Sender {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        Sender {
            id: Some(format!(
                "agent-{}",
                name.to_ascii_lowercase().replace(' ', "-")
            )),
            kind: Some("AGENT".to_owned()),
            sender_name: Some(name.to_owned()),
            additional_detail: Some(json!({"firstName": first, "lastName": last})),
        }
    }

    fn system_sender() -> Sender {
        Sender {
            id: Some("ccm".to_owned()),
            kind: Some("SYSTEM".to_owned()),
            sender_name: Some("SYSTEM".to_owned()),
            additional_detail: None,
        }
    }

    /// Sends a CIM message of the chat to its customer (and keeps it in the history when it
    /// is a conversation message).
    fn send_cim(&self, chat_id: &str, sender: Sender, body: Body, keep: bool) -> Result<String> {
        let mut st = self.lock();
        let (key, customer) = {
            let c = st.chats.get(chat_id).ok_or_else(|| unknown_chat(chat_id))?;
            (c.key.clone(), c.customer.clone())
        };
        let cim = Self::cim(&mut st, &key, chat_id, &customer, sender, body);
        let id = cim.id.clone().unwrap_or_default();
        if keep && let Some(c) = st.chats.get_mut(chat_id) {
            c.history.push(cim.clone());
        }
        let v = serde_json::to_value(&cim).unwrap_or_default();
        self.to_customer(&mut st, &key, event::MESSAGE_RECEIVED, v);
        Ok(id)
    }
}

fn unknown_chat(id: &str) -> Error {
    Error::invalid(V, "chat", format!("the simulator has no chat {id}"))
}

fn key_of(auth: &Value) -> Option<Key> {
    let s = auth.get("serviceIdentifier")?.as_str()?.trim();
    let c = auth.get("channelCustomerIdentifier")?.as_str()?.trim();
    (!s.is_empty() && !c.is_empty()).then(|| (s.to_owned(), c.to_owned()))
}

#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Checks the CONNECT's auth and readies the socket: its key and its event handlers.
///
/// This runs before socketioxide writes the CONNECT reply, whereas the connect handler runs
/// as a task of its own after it. A client may emit the moment it reads the reply (the
/// widget emits `CHAT_RESUMED` at once), and socketioxide drops events that arrive before
/// the socket has a handler for them; so the handlers are in place here, as a Node server's
/// synchronous `connection` handler has them before any event is read.
async fn auth_middleware(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(sh): State<Arc<Shared>>,
) -> std::result::Result<(), Refused> {
    let auth = auth.unwrap_or(Value::Null);
    let Some(key) = key_of(&auth) else {
        return Err(Refused(
            "serviceIdentifier and channelCustomerIdentifier are required",
        ));
    };
    sh.record(Direction::ClientToServer, "ws", json!(["CONNECT", auth]));
    s.extensions.insert(key);
    s.on(event::CHAT_REQUESTED, on_chat_requested);
    s.on(event::MESSAGE_RECEIVED, on_message);
    s.on(event::CHAT_RESUMED, on_chat_resumed);
    s.on(event::CHAT_ENDED, on_chat_ended);
    s.on_disconnect(async |s: SocketRef, State(sh): State<Arc<Shared>>| {
        if let Some(key) = socket_key(&s) {
            let mut st = sh.lock();
            if st.sockets.get(&key).is_some_and(|x| x.id == s.id) {
                st.sockets.remove(&key);
            }
        }
    });
    Ok(())
}

fn socket_key(s: &SocketRef) -> Option<Key> {
    s.extensions.get::<Key>()
}

/// The namespace connected (the CONNECT reply is out; the handlers are set by
/// [`auth_middleware`]): the socket becomes the customer's current one, gets its token and
/// what was held for it.
async fn on_connect(s: SocketRef, State(sh): State<Arc<Shared>>) {
    let Some(key) = socket_key(&s) else {
        return;
    };
    let token = sh.new_token();
    {
        let mut st = sh.lock();
        if let Some(old) = st.sockets.insert(key.clone(), s.clone())
            && old.id != s.id
        {
            let _ = old.emit(
                event::SESSION_REPLACED,
                &json!({"reason": "another session took over"}),
            );
            st.frames.push(Frame {
                direction: Direction::ServerToClient,
                channel: "ws".to_owned(),
                body: json!([event::SESSION_REPLACED, {"reason": "another session took over"}]),
            });
            let _ = old.disconnect();
        }
        st.frames.push(Frame {
            direction: Direction::ServerToClient,
            channel: "ws".to_owned(),
            body: json!([event::TOKEN_GENERATED, token]),
        });
        let _ = s.emit(event::TOKEN_GENERATED, &token);
        if sh.opts.push_conversation_resumed
            && let Some(conv) = st.live.get(&key).cloned()
            && let Some(chat) = st.chats.get(&conv)
            && !chat.history.is_empty()
        {
            let payload = json!({ "history": chat.history });
            sh.to_customer(&mut st, &key, event::CONVERSATION_RESUMED, payload);
        }
        let pending = st.pending.remove(&key).unwrap_or_default();
        for (name, payload) in pending {
            if s.emit(name.as_str(), &payload).is_err() {
                st.pending
                    .entry(key.clone())
                    .or_default()
                    .push((name, payload));
            }
        }
    }
}

async fn on_chat_requested(
    s: SocketRef,
    TryData(data): TryData<Value>,
    State(sh): State<Arc<Shared>>,
) {
    let data = data.unwrap_or(Value::Null);
    sh.record(
        Direction::ClientToServer,
        "ws",
        json!([event::CHAT_REQUESTED, data]),
    );
    let Some(key) = socket_key(&s) else {
        return;
    };
    let mut st = sh.lock();
    let req: Option<ChatRequested> = serde_json::from_value(data).ok();
    let valid = req.as_ref().is_some_and(|r| {
        r.service_identifier == key.0
            && r.channel_customer_identifier == key.1
            && r.web_channel_data()
                .and_then(|w| w.pointer("/browserDeviceInfo/deviceType"))
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty())
    });
    let scripted = st.fail_next_chat_request.take();
    if !valid || scripted.is_some() {
        let code = scripted.unwrap_or(400);
        sh.to_customer(
            &mut st,
            &key,
            event::ERRORS,
            json!({"task": "CHAT_REQUESTED", "code": code}),
        );
        return;
    }
    let req = req.expect("validated");
    let existing = st.live.get(&key).cloned();
    let conv = match existing {
        Some(c) => c,
        None => {
            let conv = Shared::next_id(&mut st);
            let wcd = req.web_channel_data().cloned().unwrap_or(Value::Null);
            let attr = |k: &str| -> Option<String> {
                wcd.pointer("/formData/attributes")?
                    .as_array()?
                    .iter()
                    .find(|a| a.get("key").and_then(Value::as_str) == Some(k))?
                    .get("value")?
                    .as_str()
                    .map(str::to_owned)
            };
            let name = match (attr("firstName"), attr("lastName")) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(f), None) => Some(f),
                (None, l) => l,
            };
            let customer = json!({
                "_id": format!("cust-{}", key.1),
                "firstName": name.clone().unwrap_or_else(|| key.1.clone()),
                "phoneNumber": [],
                "isAnonymous": name.is_none(),
            });
            st.chats.insert(
                conv.clone(),
                ChatRec {
                    key: key.clone(),
                    customer,
                    history: Vec::new(),
                    received: Vec::new(),
                    ended: false,
                    read_upto: 0,
                },
            );
            st.live.insert(key.clone(), conv.clone());
            st.new_chats.push_back(SimChat {
                id: conv.clone(),
                customer_name: name,
            });
            sh.chat_ready.notify_waiters();
            conv
        }
    };
    let customer = st
        .chats
        .get(&conv)
        .map(|c| c.customer.clone())
        .unwrap_or_default();
    let cim = Shared::cim(
        &mut st,
        &key,
        &conv,
        &customer,
        Shared::system_sender(),
        Body::notification("CHANNEL_SESSION_STARTED"),
    );
    if let Some(chat) = st.chats.get_mut(&conv)
        && chat.history.is_empty()
    {
        chat.history.push(cim.clone());
    }
    let v = serde_json::to_value(&cim).unwrap_or_default();
    sh.to_customer(&mut st, &key, event::CHANNEL_SESSION_STARTED, v);
}

async fn on_message(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(sh): State<Arc<Shared>>,
) {
    let data = data.unwrap_or(Value::Null);
    sh.record(
        Direction::ClientToServer,
        "ws",
        json!([event::MESSAGE_RECEIVED, data]),
    );
    let Some(key) = socket_key(&s) else {
        return;
    };
    let Ok(env) = serde_json::from_value::<Envelope>(data) else {
        let _ = ack.send(&json!({"code": 400, "message": "invalid message"}));
        return;
    };
    let mut st = sh.lock();
    let Some(conv) = st.live.get(&key).cloned() else {
        let _ = ack.send(&json!({"code": 404, "message": "no active chat"}));
        return;
    };
    let _ = ack.send(&json!({"code": 200, "message": "message sent"}));
    st.frames.push(Frame {
        direction: Direction::ServerToClient,
        channel: "ws".to_owned(),
        body: json!(["ack", {"code": 200, "message": "message sent"}]),
    });
    let body = env.body.clone();
    let received = match body.kind.as_str() {
        "NOTIFICATION" => match body.notification_type.as_deref() {
            Some("TYPING_STARTED") => Some(Received::Typing { on: true }),
            Some("TYPING_STOPPED") => Some(Received::Typing { on: false }),
            Some(other) => Some(Received::Notice {
                kind: other.to_owned(),
            }),
            None => None,
        },
        "DELIVERYNOTIFICATION" => Some(Received::Receipt {
            message_id: body.message_id.clone().unwrap_or_default(),
            state: body.status.clone().unwrap_or_default().to_ascii_lowercase(),
        }),
        "PLAIN" => Some(Received::Text {
            text: body.markdown_text.clone().unwrap_or_default(),
            hidden: false,
        }),
        "FORM_DATA" => Some(Received::Notice {
            kind: "FORM_DATA".to_owned(),
        }),
        _ => {
            let name = body
                .additional_details
                .as_ref()
                .and_then(|d| d.get("fileName"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .or_else(|| body.caption.clone())
                .unwrap_or_default();
            Some(Received::File {
                name,
                size: body.attachment.as_ref().and_then(|a| a.size).unwrap_or(0),
            })
        }
    };
    let conversational = !matches!(body.kind.as_str(), "NOTIFICATION" | "DELIVERYNOTIFICATION");
    if let Some(chat) = st.chats.get_mut(&conv)
        && let Some(r) = received
    {
        chat.received.push(r);
    }
    if conversational {
        let customer = st
            .chats
            .get(&conv)
            .map(|c| c.customer.clone())
            .unwrap_or_default();
        let sender = Sender {
            id: Some(key.1.clone()),
            kind: Some("CUSTOMER".to_owned()),
            sender_name: env
                .header
                .sender
                .as_ref()
                .and_then(|s| s.sender_name.clone()),
            additional_detail: None,
        };
        let cim = Shared::cim(&mut st, &key, &conv, &customer, sender, body);
        if let Some(chat) = st.chats.get_mut(&conv) {
            chat.history.push(cim.clone());
        }
        if sh.opts.echo {
            let v = serde_json::to_value(&cim).unwrap_or_default();
            sh.to_customer(&mut st, &key, event::MESSAGE_RECEIVED, v);
        }
    }
}

async fn on_chat_resumed(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(sh): State<Arc<Shared>>,
) {
    let data = data.unwrap_or(Value::Null);
    sh.record(
        Direction::ClientToServer,
        "ws",
        json!([event::CHAT_RESUMED, data]),
    );
    let Some(key) = socket_key(&s) else {
        return;
    };
    let st = sh.lock();
    let reply = match st.live.get(&key).and_then(|c| st.chats.get(c)) {
        Some(chat) => json!({"isChatAvailable": true, "data": chat.history}),
        None => json!({"isChatAvailable": false, "data": []}),
    };
    drop(st);
    sh.record(Direction::ServerToClient, "ws", json!(["ack", reply]));
    let _ = ack.send(&reply);
}

async fn on_chat_ended(s: SocketRef, TryData(data): TryData<Value>, State(sh): State<Arc<Shared>>) {
    let data = data.unwrap_or(Value::Null);
    sh.record(
        Direction::ClientToServer,
        "ws",
        json!([event::CHAT_ENDED, data]),
    );
    let Some(key) = socket_key(&s) else {
        return;
    };
    let mut st = sh.lock();
    let Some(conv) = st.live.remove(&key) else {
        return;
    };
    if let Some(chat) = st.chats.get_mut(&conv) {
        chat.ended = true;
        chat.received.push(Received::Ended);
    }
    sh.to_customer(
        &mut st,
        &key,
        event::CHAT_ENDED,
        json!({"conversationId": conv, "reason": "customer ended the chat"}),
    );
}

impl Simulator {
    /// Starts the simulator on 127.0.0.1.
    pub async fn start(opts: SimOptions) -> Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::transport(V, "simulator bind", e))?;
        // The EF switch listens on a port of its own (the vendor's `wssFs`, port 7443).
        let switch_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::transport(V, "simulator switch bind", e))?;
        let switch_addr = switch_listener
            .local_addr()
            .map_err(|e| Error::transport(V, "simulator switch bind", e))?;
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            opts,
            base: format!("http://{addr}"),
            state: Mutex::new(SimState::default()),
            chat_ready: Notify::new(),
            cutter: cut::Cutter(cut_tx),
            switch: switch::Switch::default(),
            switch_url: format!("ws://{switch_addr}"),
        });
        shared.switch.set_host(switch_addr);
        let switch_task = tokio::spawn(switch::serve(Arc::clone(&shared), switch_listener));
        // The deployment path, and the library default for a socket URL at the root.
        let (layer, io) = SocketIo::builder()
            .req_path("/web-channel-manager/socket.io")
            .with_state(Arc::clone(&shared))
            .build_layer();
        io.ns("/", on_connect.with(auth_middleware));
        let (root_layer, root_io) = SocketIo::builder()
            .req_path("/socket.io")
            .with_state(Arc::clone(&shared))
            .build_layer();
        root_io.ns("/", on_connect.with(auth_middleware));
        let app = rest::router(Arc::clone(&shared))
            .layer(layer)
            .layer(root_layer);
        let listener = cut::CutListener {
            inner: listener,
            cuts: cut_rx,
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Simulator {
            shared,
            addr,
            switch_addr,
            _task: Arc::new(TaskGuard(task)),
            _switch_task: Arc::new(TaskGuard(switch_task)),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The switch's listening address (SIP over WebSocket).
    pub fn switch_addr(&self) -> SocketAddr {
        self.switch_addr
    }

    /// `ws://127.0.0.1:<port>`: the switch's URL, as the widget config's `wssFs` gives it.
    pub fn switch_url(&self) -> String {
        self.shared.switch_url.clone()
    }

    /// The `X-` headers of the newest call's INVITE, in wire order.
    pub fn call_headers(&self) -> Vec<(String, String)> {
        self.shared.switch.invite_headers()
    }

    /// The newest call's SIP Call-ID (the vendor client's `dialog.id`).
    pub fn call_dialog_id(&self) -> Option<String> {
        self.shared.switch.call_id()
    }

    /// The far end hangs up the answered call (`BYE`; with `reason`, a `Reason` header
    /// text and `X-Call-Dropped-Custom-Reason`).
    pub fn far_end_hangup(&self, reason: Option<&str>) -> Result<()> {
        self.shared.switch.hangup(&self.shared, reason)
    }

    /// The far end holds (`a=sendonly` re-INVITE) or resumes (`a=sendrecv`) the call.
    pub fn far_end_hold(&self, on: bool) -> Result<()> {
        self.shared.switch.far_end_hold(&self.shared, on)
    }

    /// Drops every connection to the switch (not the chat's); clients reconnect and register
    /// again, and calls follow them to the new connection.
    pub fn drop_switch_connections(&self) {
        self.shared.switch.drop_connections();
    }

    /// The switch ends the newest call through the side channel: `MESSAGE`
    /// `{event: "MEDIA_SERVER_CALL_END", dialog: {id}, reasonCode}`.
    pub fn switch_ends_call(&self, reason_code: &str) -> Result<()> {
        self.shared.switch.side_message(
            &self.shared,
            "MEDIA_SERVER_CALL_END",
            json!({"reasonCode": reason_code}),
        )
    }

    /// The switch sends a side-channel `MESSAGE` with `body` as it is (e.g. one that is not
    /// JSON).
    pub fn send_switch_message(&self, body: &str) -> Result<()> {
        self.shared.switch.raw_message(&self.shared, body)
    }

    /// The agent's side sends `agentDetails` (its extension) for the newest call.
    pub fn send_agent_details(&self) -> Result<()> {
        self.shared.switch.side_message(
            &self.shared,
            "agentDetails",
            json!({"dialog": {"agentExt": switch::AGENT_EXTENSION, "callType": "OUT"}}),
        )
    }

    /// `http://127.0.0.1:<port>`: the deployment's base URL.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// A client configuration for `customer` against `base_url` (the simulator's, or a
    /// proxy's in front of it), with short reconnect delays and timeouts for tests.
    pub fn client_config(&self, base_url: &str, customer: &str) -> ExpertflowConfig {
        let mut c = ExpertflowConfig::new(
            base_url,
            self.shared.opts.service_identifier.clone(),
            customer,
        );
        c.widget_identifier = self.shared.opts.widget_identifier.clone();
        c.reconnect_initial_ms = 50;
        c.reconnect_max_ms = 200;
        c.timeout_ms = 5_000;
        c.calls.media_bind = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        c.calls.switch_reconnect_ms = 100;
        c
    }

    /// A ready `cc_core::Config` for `customer` pointing at the simulator.
    pub fn config(&self, customer: &str) -> Config {
        Config::new(V, self.client_config(&self.base_url(), customer))
            .expect("a serializable section")
    }

    /// Makes the next `CHAT_REQUESTED` fail with `ERRORS {task, code}`.
    pub fn fail_next_chat_request(&self, code: u16) {
        self.shared.lock().fail_next_chat_request = Some(code);
    }

    /// Ends the chat for customer inactivity (`CHANNEL_SESSION_EXPIRED`).
    pub fn expire_chat(&self, chat: &SimChat) -> Result<()> {
        self.end_chat(chat, event::CHANNEL_SESSION_EXPIRED)
    }

    /// Disconnects every socket from the server side (packet `41`: the client does not
    /// reconnect).
    pub fn server_disconnect(&self) {
        let st = self.shared.lock();
        for s in st.sockets.values() {
            let _ = s.clone().disconnect();
        }
    }

    /// The agent edits an earlier message (`intent UPDATE`).
    pub fn agent_edits(&self, chat: &SimChat, message_id: &str, text: &str) -> Result<String> {
        let mut st = self.shared.lock();
        let (key, customer) = {
            let c = st
                .chats
                .get(&chat.id)
                .ok_or_else(|| unknown_chat(&chat.id))?;
            (c.key.clone(), c.customer.clone())
        };
        let mut cim = Shared::cim(
            &mut st,
            &key,
            &chat.id,
            &customer,
            Shared::agent_sender("Alex Agent"),
            Body::plain(text),
        );
        cim.header.intent = Some("UPDATE".to_owned());
        cim.header.original_message_id = Some(message_id.to_owned());
        let id = cim.id.clone().unwrap_or_default();
        if let Some(c) = st.chats.get_mut(&chat.id) {
            c.history.push(cim.clone());
        }
        let v = serde_json::to_value(&cim).unwrap_or_default();
        self.shared
            .to_customer(&mut st, &key, event::MESSAGE_RECEIVED, v);
        Ok(id)
    }

    /// Activities posted to `/conversation-manager/activities`, in order.
    pub fn activities(&self) -> Vec<Value> {
        self.shared.lock().activities.clone()
    }

    /// Callback requests received, in order.
    pub fn callbacks(&self) -> Vec<Value> {
        self.shared.lock().callbacks.clone()
    }

    fn end_chat(&self, chat: &SimChat, name: &str) -> Result<()> {
        let mut st = self.shared.lock();
        let (key, customer) = {
            let c = st
                .chats
                .get_mut(&chat.id)
                .ok_or_else(|| unknown_chat(&chat.id))?;
            c.ended = true;
            (c.key.clone(), c.customer.clone())
        };
        if st.live.get(&key) == Some(&chat.id) {
            st.live.remove(&key);
        }
        let cim = Shared::cim(
            &mut st,
            &key,
            &chat.id,
            &customer,
            Shared::system_sender(),
            Body::notification(name),
        );
        let v = serde_json::to_value(&cim).unwrap_or_default();
        self.shared.to_customer(&mut st, &key, name, v);
        Ok(())
    }

    fn notify(&self, chat: &SimChat, kind: &str, data: Value, sender: Sender) -> Result<()> {
        let mut body = Body::notification(kind);
        body.notification_data = Some(data);
        self.shared
            .send_cim(&chat.id, sender, body, false)
            .map(|_| ())
    }

    fn agent_data(name: &str) -> Value {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        json!({"data": {"agentParticipant": {"participant": {"keycloakUser": {
            "id": format!("agent-{}", name.to_ascii_lowercase().replace(' ', "-")),
            "firstName": first, "lastName": last,
            "username": name.to_ascii_lowercase().replace(' ', ".")
        }}}}})
    }
}

#[async_trait]
impl SimControl for Simulator {
    fn vendor(&self) -> Vendor {
        V
    }

    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.chat_ready.notified();
            if let Some(c) = self.shared.lock().new_chats.pop_front() {
                return Ok(c);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Timeout {
                    vendor: V,
                    operation: "wait for chat",
                    after: timeout,
                });
            }
        }
    }

    async fn queue(
        &self,
        chat: &SimChat,
        position: u32,
        expected_wait: Option<Duration>,
    ) -> Result<()> {
        // TASK_ENQUEUED carries no position or wait the vendor client reads; the values are
        // kept in notificationData for the record.
        let data = json!({"queue": "default", "position": position, "ewt": expected_wait.map(|d| d.as_secs())});
        self.notify(chat, "TASK_ENQUEUED", data, Shared::system_sender())
    }

    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()> {
        self.notify(
            chat,
            "AGENT_SUBSCRIBED",
            Self::agent_data(agent),
            Shared::system_sender(),
        )
    }

    async fn agent_typing(&self, chat: &SimChat, on: bool) -> Result<()> {
        let kind = if on {
            "TYPING_STARTED"
        } else {
            "TYPING_STOPPED"
        };
        self.notify(chat, kind, json!({}), Shared::agent_sender("Alex Agent"))
    }

    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String> {
        self.shared.send_cim(
            &chat.id,
            Shared::agent_sender("Alex Agent"),
            Body::plain(text),
            true,
        )
    }

    async fn agent_sends_file(
        &self,
        chat: &SimChat,
        name: &str,
        mime_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let stored = {
            let mut st = self.shared.lock();
            st.seq += 1;
            let stored = format!("{}_{name}", 10_000 + st.seq);
            st.files
                .insert(stored.clone(), (mime_type.to_owned(), bytes.to_vec()));
            stored
        };
        let url = format!(
            "{}/file-engine/api/downloadFileStream?filename={stored}",
            self.shared.base
        );
        let (kind, _) = crate::engine::media_kinds(mime_type);
        let body = Body {
            kind: kind.to_owned(),
            markdown_text: Some(String::new()),
            caption: Some(name.to_owned()),
            attachment: Some(WireAttachment {
                media_url: Some(url),
                mime_type: Some(mime_type.to_owned()),
                size: Some(bytes.len() as u64),
                media_name: Some(name.to_owned()),
                extra: Default::default(),
            }),
            ..Body::default()
        };
        self.shared
            .send_cim(&chat.id, Shared::agent_sender("Alex Agent"), body, true)
    }

    async fn agent_reads(&self, chat: &SimChat) -> Result<()> {
        let ids: Vec<String> = {
            let mut st = self.shared.lock();
            let c = st
                .chats
                .get_mut(&chat.id)
                .ok_or_else(|| unknown_chat(&chat.id))?;
            let customer_msgs: Vec<String> = c
                .history
                .iter()
                .filter(|m| {
                    m.header.sender.as_ref().and_then(|s| s.kind.as_deref()) == Some("CUSTOMER")
                })
                .filter_map(|m| m.id.clone())
                .collect();
            let new = customer_msgs[c.read_upto.min(customer_msgs.len())..].to_vec();
            c.read_upto = customer_msgs.len();
            new
        };
        for id in ids {
            self.shared.send_cim(
                &chat.id,
                Shared::agent_sender("Alex Agent"),
                Body::delivery(&id, "READ"),
                false,
            )?;
        }
        Ok(())
    }

    async fn agent_leaves(&self, chat: &SimChat) -> Result<()> {
        self.notify(
            chat,
            "AGENT_UNSUBSCRIBED",
            Self::agent_data("Alex Agent"),
            Shared::system_sender(),
        )
    }

    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()> {
        self.agent_leaves(chat).await?;
        self.agent_joins(chat, to_agent).await
    }

    async fn agent_ends(&self, chat: &SimChat) -> Result<()> {
        self.end_chat(chat, event::CHANNEL_SESSION_ENDED)
    }

    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>> {
        let st = self.shared.lock();
        let c = st
            .chats
            .get(&chat.id)
            .ok_or_else(|| unknown_chat(&chat.id))?;
        Ok(c.received.clone())
    }

    async fn idle_warning(&self, _chat: &SimChat, _grace: Duration) -> Result<()> {
        // The web channel has no idle warning: inactivity ends the session
        // (CHANNEL_SESSION_EXPIRED, see `Simulator::expire_chat`).
        Err(Error::unsupported(V, Feature::IdleWarning))
    }

    async fn drop_connections(&self) -> Result<()> {
        self.shared.lock().sockets.clear();
        self.shared.cutter.cut();
        Ok(())
    }

    async fn expire_token(&self) -> Result<()> {
        // The web channel issues a fresh JWT on every connect; it has no expiry signal or
        // refresh call for the customer.
        Err(Error::unsupported(V, Feature::TokenRefresh))
    }

    async fn restart(&self) -> Result<()> {
        {
            let mut st = self.shared.lock();
            st.sockets.clear();
            st.tokens.clear();
        }
        self.shared.cutter.cut();
        Ok(())
    }

    async fn send_malformed(&self, chat: &SimChat) -> Result<()> {
        let mut st = self.shared.lock();
        let key = st
            .chats
            .get(&chat.id)
            .ok_or_else(|| unknown_chat(&chat.id))?
            .key
            .clone();
        self.shared.to_customer(
            &mut st,
            &key,
            event::MESSAGE_RECEIVED,
            json!({"id": 7, "header": "broken", "body": {}}),
        );
        Ok(())
    }

    fn frames(&self) -> Vec<Frame> {
        self.shared.lock().frames.to_vec()
    }

    async fn set_call_answer(&self, answer: CallAnswer) -> Result<()> {
        self.shared.switch.set_answer(answer);
        Ok(())
    }

    async fn set_ring_time(&self, ring: Duration) -> Result<()> {
        self.shared.switch.set_ring(ring);
        Ok(())
    }

    async fn far_end_call(&self) -> Result<Option<FarEndCall>> {
        Ok(self.shared.switch.far_end())
    }
}

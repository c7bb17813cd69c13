//! The sans-IO protocol engine: chats, their transcripts and outboxes, and the DWR
//! poll/offline state machine. Time comes in as a [`Clock`]; nothing here does I/O.
//!
//! # The machinery
//!
//! Both transports decode what the server says into [`Push`]es; [`Engine::handle_push`]
//! applies each one, in order, to the chat it names (by `sid`, else the one current chat of a
//! single-chat session) and returns [`Output`]s: `cc_core` events to emit, background
//! [`Call`]s to make (every received message, echo and app message is `Ack`ed), and the
//! answers `Start`, `Open` and the extension calls wait for.
//!
//! The app's messages go through one [`Outbox`] per chat. [`Engine::poll_sends`] hands out
//! what may go now as [`Send`]s (a `SendMessage` or `SendAppMessage` with a client sequence
//! number that every retry of the same message reuses), the driver reports the result
//! ([`Engine::on_send_ok`] with the `mid` the callback returned, [`Engine::on_send_error`]),
//! and `OnEcho` confirms by content. While the transport is offline nothing is handed out;
//! messages in flight at the drop are reconciled against the transcript when it is back, and
//! the rest are sent again with their old sequence numbers (the server answers a repeated
//! sequence number with the first `mid`, so nothing is doubled).
//!
//! [`PollMachine`] is the DWR engine's connectivity rule (§2.6, §4.1): a failed poll is
//! retried after the retry interval; the second failure in a row means *offline*
//! (`OnServerStateChanged("offline")`), after which a heartbeat is tried every interval
//! until one succeeds (*online*, then `IsValid`); after `max_retries` it gives up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_chat::{EchoMatch, Outbox, OutboxConfig, Poll, SendErrorOutcome, Transcript, Upsert};
use cc_core::{
    ClientMessageId, ConnectionState, Content, DeliveryState, EngagementId, EngagementState, Error,
    Event, Initiator, Message, MessageId, Notice, Participant, Result, Role, Timestamp, Upload,
    Vendor,
};
use cc_transport::{Backoff, BackoffPolicy};
use serde_json::{Value, json};

use crate::error;
use crate::wire::{Call, OpenedSession, Push, is_av_signal, url_decode};

const V: Vendor = Vendor::Tetherfi;

/// The time, both as an instant (timers) and as wall-clock time (message times).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now.
    pub wall: Timestamp,
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Clock {
        Clock {
            now: Instant::now(),
            wall: Timestamp::now(),
        }
    }
}

/// What the engine asks the driver to do or report.
#[derive(Debug)]
pub enum Output {
    /// Emit this event.
    Event(Event),
    /// Make this call in the background (an `Ack`).
    Call(Call),
    /// The answer to a `Start` (by `clientId` in multichat).
    Started {
        /// The `clientId` given at `Start`.
        client_id: Option<String>,
        /// The new engagement, or the `OnStartFailed` error.
        result: Result<EngagementId>,
    },
    /// The answer to an `Open`: the chats attached (empty for `NoSessionFound`).
    Opened(Result<Vec<EngagementId>>),
    /// WebSocket proxy: the answer to `gettoken`.
    AccessToken(String),
    /// `OnCampaignContactCreated`'s payload.
    CampaignContact(Value),
    /// An audio/video signalling app message (§3.8) for chat `engagement`, out of the
    /// transcript: the chat's call takes it, else it is reported as `Event::Vendor
    /// "OnAppMessageReceived"`.
    AvSignal {
        /// The chat.
        engagement: EngagementId,
        /// The agent's name.
        agent: String,
        /// The JSON object.
        message: Value,
    },
}

/// A message to write now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// The chat.
    pub engagement: EngagementId,
    /// The outbox's id of the message.
    pub client_id: ClientMessageId,
    /// How it goes.
    pub op: SendOp,
}

/// How a message goes to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOp {
    /// A `SendMessage` / `SendAppMessage` call.
    Call(Call),
    /// A file for the upload servlet (`uploadFiles`), for chat `sid`.
    Upload(Upload),
}

/// One chat.
#[derive(Debug)]
pub struct Chat {
    /// The engagement id (the web-API `sid`).
    pub id: EngagementId,
    /// The chat service's id.
    pub tchatid: String,
    /// Multichat: the app's `clientId`.
    pub client_id: Option<String>,
    /// Where the chat is.
    pub state: EngagementState,
    /// The agents connected now.
    pub agents: Vec<Participant>,
    /// The transcript.
    pub transcript: Transcript,
    /// The app's messages until confirmed.
    pub outbox: Outbox,
    seqs: HashMap<ClientMessageId, u64>,
    uploads: HashMap<ClientMessageId, Upload>,
}

impl Chat {
    fn new(id: EngagementId, customer: &Participant, config: &OutboxConfig) -> Chat {
        Chat {
            outbox: Outbox::new(V, id.clone(), customer.clone(), config.clone()),
            id,
            tchatid: String::new(),
            client_id: None,
            state: EngagementState::Starting,
            agents: Vec::new(),
            transcript: Transcript::new(),
            seqs: HashMap::new(),
            uploads: HashMap::new(),
        }
    }

    fn is_open(&self) -> bool {
        !matches!(
            self.state,
            EngagementState::Ended | EngagementState::Detached
        )
    }

    /// The participants: the customer and the agents.
    pub fn participants(&self, customer: &Participant) -> Vec<Participant> {
        let mut v = vec![customer.clone()];
        v.extend(self.agents.iter().cloned());
        v
    }
}

/// How the engine behaves.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Put the chat's `sid` on every call (multichat, and the WebSocket proxy).
    pub sid_on_calls: bool,
    /// The customer, as sender of the app's messages.
    pub customer: Participant,
    /// The outbox settings.
    pub outbox: OutboxConfig,
}

/// The engine of one session; see the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    chats: Vec<Chat>,
    next_seq: u64,
    online: bool,
}

fn agent(name: &str, id: Option<&str>) -> Participant {
    let mut p = Participant::new(Role::Agent).with_name(name);
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        p = p.with_id(id);
    }
    p
}

impl Engine {
    /// A new engine, offline, without chats.
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            chats: Vec::new(),
            next_seq: 1,
            online: false,
        }
    }

    /// The customer.
    pub fn customer(&self) -> &Participant {
        &self.config.customer
    }

    /// Whether the transport is online.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The chat `id`.
    pub fn chat(&self, id: &EngagementId) -> Option<&Chat> {
        self.chats.iter().find(|c| &c.id == id)
    }

    fn chat_mut(&mut self, id: &EngagementId) -> Option<&mut Chat> {
        self.chats.iter_mut().find(|c| &c.id == id)
    }

    /// Every chat known, oldest first.
    pub fn chats(&self) -> &[Chat] {
        &self.chats
    }

    /// A client sequence number for a message sent outside the outboxes (call signalling).
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The `sid` to put on a call about `id`.
    pub fn call_sid(&self, id: &EngagementId) -> Option<String> {
        self.config.sid_on_calls.then(|| id.to_string())
    }

    fn route(&self, sid: Option<&str>, client_id: Option<&str>) -> Option<usize> {
        if let Some(sid) = sid.filter(|s| !s.is_empty())
            && let Some(i) = self.chats.iter().position(|c| c.id.as_str() == sid)
        {
            return Some(i);
        }
        if let Some(cid) = client_id
            && let Some(i) = self
                .chats
                .iter()
                .position(|c| c.client_id.as_deref() == Some(cid))
        {
            return Some(i);
        }
        if sid.is_some_and(|s| !s.is_empty()) && self.config.sid_on_calls {
            return None;
        }
        self.chats
            .iter()
            .rposition(Chat::is_open)
            .or_else(|| self.chats.len().checked_sub(1))
    }

    fn ensure_chat(&mut self, sid: &str) -> (usize, bool) {
        if let Some(i) = self.chats.iter().position(|c| c.id.as_str() == sid) {
            return (i, false);
        }
        let mut chat = Chat::new(
            EngagementId::from(sid),
            &self.config.customer,
            &self.config.outbox,
        );
        if self.online {
            chat.outbox.on_connected();
        }
        // One chat per session is the rule: no room for more until a second one comes
        // (a `Chat` is large, and a first push would make room for four).
        self.chats.reserve_exact(1);
        self.chats.push(chat);
        (self.chats.len() - 1, true)
    }

    /// The transport went offline (`attempt` and `delay` of the next try) or came back.
    pub fn set_online(&mut self, online: bool, attempt: u32, delay: Duration) -> Vec<Output> {
        if self.online == online {
            return Vec::new();
        }
        self.online = online;
        for c in &mut self.chats {
            if online {
                c.outbox.on_connected();
            } else {
                c.outbox.on_disconnected();
            }
        }
        let state = if online {
            ConnectionState::Connected
        } else {
            ConnectionState::Reconnecting { attempt, delay }
        };
        vec![Output::Event(Event::Connection(state))]
    }

    /// The session was lost while offline: every open chat ends
    /// (`OnEnd("lib", "SessionLostWhileOffline")`).
    pub fn session_lost(&mut self) -> Vec<Output> {
        let ids: Vec<EngagementId> = self
            .chats
            .iter()
            .filter(|c| c.is_open())
            .map(|c| c.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.end_chat(
                &id,
                Initiator::System,
                Some("SessionLostWhileOffline".to_owned()),
            ));
        }
        out
    }

    /// The transport gave up for good: every message not yet confirmed fails.
    pub fn give_up(&mut self, reason: &str) -> Vec<Output> {
        let mut out = Vec::new();
        for c in &mut self.chats {
            c.uploads.clear();
            for f in c
                .outbox
                .close(Error::transport(V, "send message", reason.to_owned()))
            {
                c.transcript
                    .set_state(None, Some(f.client_id()), f.message.state.clone());
                out.push(Output::Event(f.event()));
            }
        }
        out
    }

    /// The chat was detached with `Close` (`leave`).
    pub fn detach(&mut self, id: &EngagementId) {
        if let Some(c) = self.chat_mut(id)
            && c.state != EngagementState::Ended
        {
            c.state = EngagementState::Detached;
        }
    }

    fn end_chat(
        &mut self,
        id: &EngagementId,
        initiator: Initiator,
        reason: Option<String>,
    ) -> Vec<Output> {
        let Some(c) = self.chat_mut(id) else {
            return Vec::new();
        };
        if c.state == EngagementState::Ended {
            return Vec::new();
        }
        c.state = EngagementState::Ended;
        let mut out: Vec<Output> = c
            .outbox
            .close(Error::closed(V, "engagement"))
            .into_iter()
            .map(|f| Output::Event(f.event()))
            .collect();
        out.push(Output::Event(Event::EngagementEnded {
            engagement: id.clone(),
            initiator,
            reason: reason.filter(|r| !r.is_empty()).map(Arc::from),
        }));
        out
    }

    /// Queues content for chat `id`; the message as the outbox recorded it.
    pub fn push_message(
        &mut self,
        id: &EngagementId,
        content: Content,
        clk: Clock,
    ) -> Result<Message> {
        let c = self
            .chat_mut(id)
            .ok_or_else(|| Error::invalid(V, "engagement", format!("unknown engagement {id}")))?;
        match c.state {
            EngagementState::Ended => return Err(Error::closed(V, "engagement")),
            EngagementState::Detached => {
                return Err(Error::invalid(
                    V,
                    "engagement",
                    "detached with leave(); open it again first",
                ));
            }
            _ => {}
        }
        match &content {
            Content::Text(_) | Content::Notice(_) => {}
            Content::File(_) => {
                return Err(Error::invalid(
                    V,
                    "content",
                    "files go with Engagement::upload, which has the bytes",
                ));
            }
            Content::Rich(_) => return Err(Error::unsupported(V, cc_core::Feature::RichContent)),
        }
        let m = c.outbox.push(content, clk.wall, clk.now);
        c.transcript.upsert(m.clone());
        Ok(m)
    }

    /// Queues a file for chat `id` (sent through the upload servlet).
    pub fn push_upload(&mut self, id: &EngagementId, file: Upload, clk: Clock) -> Result<Message> {
        if file.name.trim().is_empty() {
            return Err(Error::invalid(V, "file.name", "empty file name"));
        }
        let c = self
            .chat_mut(id)
            .ok_or_else(|| Error::invalid(V, "engagement", format!("unknown engagement {id}")))?;
        match c.state {
            EngagementState::Ended => return Err(Error::closed(V, "engagement")),
            EngagementState::Detached => {
                return Err(Error::invalid(
                    V,
                    "engagement",
                    "detached with leave(); open it again first",
                ));
            }
            _ => {}
        }
        let content = Content::File(cc_core::Attachment {
            id: None,
            name: file.name.clone(),
            mime_type: file.mime_type.clone(),
            size: Some(file.bytes.len() as u64),
            url: None,
        });
        let m = c.outbox.push(content, clk.wall, clk.now);
        c.uploads
            .insert(m.client_id.expect("outbox messages have a client id"), file);
        c.transcript.upsert(m.clone());
        Ok(m)
    }

    /// The app-message JSON text for a notice: its payload's fields with `type` = kind.
    pub fn notice_json(notice: &Notice) -> String {
        let mut obj = match &notice.payload {
            Value::Object(m) => m.clone(),
            Value::Null => serde_json::Map::new(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("payload".into(), other.clone());
                m
            }
        };
        obj.insert("type".into(), json!(notice.kind));
        Value::Object(obj).to_string()
    }

    /// What may be written now, and when to ask again.
    pub fn poll_sends(&mut self, clk: Clock) -> (Vec<Send>, Vec<Output>, Option<Instant>) {
        let mut sends = Vec::new();
        let mut out = Vec::new();
        let mut wake: Option<Instant> = None;
        let sid_on_calls = self.config.sid_on_calls;
        for c in &mut self.chats {
            loop {
                match c.outbox.poll(clk.now) {
                    Poll::Send(o) => {
                        let cid = o.client_id();
                        let seq = *c.seqs.entry(cid).or_insert_with(|| {
                            let s = self.next_seq;
                            self.next_seq += 1;
                            s
                        });
                        let sid = sid_on_calls.then(|| c.id.to_string());
                        let op = match &o.message.content {
                            Content::Notice(n) => SendOp::Call(Call::SendAppMessage {
                                msg: Self::notice_json(n),
                                seq,
                                sid,
                            }),
                            Content::File(_) => match c.uploads.get(&cid) {
                                Some(u) => SendOp::Upload(u.clone()),
                                None => continue,
                            },
                            other => SendOp::Call(Call::SendMessage {
                                msg: other.as_text().unwrap_or_default().to_owned(),
                                seq,
                                sid,
                            }),
                        };
                        sends.push(Send {
                            engagement: c.id.clone(),
                            client_id: cid,
                            op,
                        });
                    }
                    Poll::WaitUntil(t) => {
                        wake = Some(wake.map_or(t, |w| w.min(t)));
                        break;
                    }
                    Poll::Reconcile => {
                        // Echoes and acks of what got through are in the transcript.
                        let seen: Vec<Message> = c
                            .transcript
                            .iter()
                            .filter(|m| m.sender.role == Role::Customer && m.id.is_some())
                            .cloned()
                            .collect();
                        let report = c.outbox.reconcile(&seen, clk.now);
                        for m in report.confirmed {
                            c.transcript.upsert(m.clone());
                            out.push(Output::Event(Event::MessageSent(Arc::new(m))));
                        }
                        for f in report.failed {
                            out.push(Output::Event(f.event()));
                        }
                    }
                    Poll::Idle => break,
                }
            }
        }
        (sends, out, wake)
    }

    /// The write completed (WebSocket: the frame went out).
    pub fn on_written(&mut self, id: &EngagementId, cid: ClientMessageId, clk: Clock) {
        if let Some(c) = self.chat_mut(id) {
            c.outbox.on_written(cid, clk.now);
        }
    }

    /// The server accepted the message (DWR callback, WebSocket `ack`), with its `mid`.
    pub fn on_send_ok(
        &mut self,
        id: &EngagementId,
        cid: ClientMessageId,
        mid: Option<String>,
        clk: Clock,
    ) -> Vec<Output> {
        let Some(c) = self.chat_mut(id) else {
            return Vec::new();
        };
        c.outbox.on_written(cid, clk.now);
        c.uploads.remove(&cid);
        let mid = mid.filter(|m| !m.is_empty()).map(MessageId::from);
        // An echo may have brought the id first; the transcript merges by client id.
        match c.outbox.on_acked(cid, mid.clone(), None, clk.now) {
            Some(m) => {
                c.transcript.upsert(m.clone());
                vec![Output::Event(Event::MessageSent(Arc::new(m)))]
            }
            None => {
                if let Some(mid) = mid
                    && let Some(m) = c.transcript.get_by_client_id(cid).cloned()
                    && m.id.is_none()
                {
                    let mut m = m;
                    m.id = Some(mid);
                    c.transcript.upsert(m);
                }
                Vec::new()
            }
        }
    }

    /// The write failed.
    pub fn on_send_error(
        &mut self,
        id: &EngagementId,
        cid: ClientMessageId,
        err: Error,
        clk: Clock,
    ) -> Vec<Output> {
        let Some(c) = self.chat_mut(id) else {
            return Vec::new();
        };
        match c.outbox.on_send_error(cid, err, clk.now) {
            SendErrorOutcome::Failed(f) => {
                c.uploads.remove(&cid);
                c.transcript
                    .set_state(None, Some(cid), f.message.state.clone());
                vec![Output::Event(f.event())]
            }
            SendErrorOutcome::Retry(_) | SendErrorOutcome::Unknown => Vec::new(),
        }
    }

    fn ack(&self, i: usize, id: &str) -> Output {
        Output::Call(Call::Ack {
            id: id.to_owned(),
            sid: self.call_sid(&self.chats[i].id),
        })
    }

    fn agent_for(&self, i: usize, name: &str) -> Participant {
        self.chats[i]
            .agents
            .iter()
            .find(|a| a.display_name.as_deref() == Some(name))
            .cloned()
            .unwrap_or_else(|| agent(name, None))
    }

    fn vendor_event(name: &str, payload: Value) -> Output {
        Output::Event(Event::Vendor {
            vendor: V,
            name: Arc::from(name),
            payload: Arc::new(payload),
        })
    }

    /// Applies one push; see the [module docs](self).
    pub fn handle_push(&mut self, clk: Clock, push: Push) -> Vec<Output> {
        let mut out = Vec::new();
        let route = self.route(push.sid(), None);
        match push {
            Push::StartSuccess {
                sid,
                tchatid,
                param,
                client_id,
            } => {
                let (i, new) = self.ensure_chat(&sid);
                let c = &mut self.chats[i];
                c.tchatid = tchatid;
                c.client_id.clone_from(&client_id);
                if c.state == EngagementState::Detached {
                    c.state = EngagementState::Starting;
                }
                let id = c.id.clone();
                if new {
                    out.push(Output::Event(Event::EngagementStarted {
                        engagement: id.clone(),
                        resumed: false,
                    }));
                }
                if !param.is_null() {
                    out.push(Self::vendor_event(
                        "OnStartSuccess",
                        json!({"sid": sid, "param": param}),
                    ));
                }
                out.push(Output::Started {
                    client_id,
                    result: Ok(id),
                });
            }
            Push::StartFailed { code, client_id } => out.push(Output::Started {
                client_id,
                result: Err(error::start_failed(&code)),
            }),
            Push::OpenSuccess { sessions, .. } => {
                let ids = sessions
                    .into_iter()
                    .map(|s| self.apply_open(s, clk, &mut out))
                    .collect();
                out.push(Output::Opened(Ok(ids)));
            }
            Push::OpenFailed { code, .. } => {
                if code == "NoSessionFound" {
                    out.push(Output::Opened(Ok(Vec::new())));
                } else {
                    out.push(Output::Opened(Err(error::open_failed(&code))));
                }
            }
            Push::ServersideEnd { reason, .. } => {
                if let Some(i) = route {
                    let id = self.chats[i].id.clone();
                    let initiator = if reason.as_deref().is_some_and(error::is_system_reason) {
                        Initiator::System
                    } else {
                        Initiator::Agent
                    };
                    out.extend(self.end_chat(&id, initiator, reason));
                }
            }
            Push::ClientsideEnd { reason, .. } => {
                if let Some(i) = route {
                    let id = self.chats[i].id.clone();
                    out.extend(self.end_chat(&id, Initiator::Customer, reason));
                }
            }
            Push::RemoteUserConnected {
                name,
                agent_id,
                session_id,
                client_id,
            } => {
                let i = self
                    .route(Some(&session_id), client_id.as_deref())
                    .or(route);
                if let Some(i) = i {
                    let c = &mut self.chats[i];
                    let id = c.id.clone();
                    let same = |a: &Participant| {
                        if agent_id.is_empty() {
                            a.display_name.as_deref() == Some(name.as_str())
                        } else {
                            a.id.as_deref() == Some(agent_id.as_str())
                        }
                    };
                    if !c.agents.iter().any(same) {
                        // A repeat with another agent is a transfer: the previous agents leave.
                        for old in std::mem::take(&mut c.agents) {
                            out.push(Output::Event(Event::ParticipantLeft {
                                engagement: id.clone(),
                                participant: Arc::new(old),
                            }));
                        }
                        let p = agent(&name, Some(&agent_id));
                        c.agents.push(p.clone());
                        out.push(Output::Event(Event::ParticipantJoined {
                            engagement: id,
                            participant: Arc::new(p),
                        }));
                    }
                    if c.state != EngagementState::Ended {
                        c.state = EngagementState::Active;
                    }
                }
            }
            Push::CallbackAutoRegistered { reason, sid } => {
                let meaning = error::lookup(error::SYSTEM_NOTIFICATIONS, &reason)
                    .map_or("unknown reason", |i| i.meaning);
                let sid = sid.or_else(|| route.map(|i| self.chats[i].id.to_string()));
                out.push(Self::vendor_event(
                    "OnSystemNotification",
                    json!({"reason": reason, "meaning": meaning, "sid": sid}),
                ));
            }
            Push::CallbackRequestStatus {
                is_customer_req,
                status,
                sid,
            } => out.push(Self::vendor_event(
                "OnCallbackRequestStatus",
                json!({"isCustomerReq": is_customer_req, "status": status, "sid": sid}),
            )),
            Push::InternalError { code } => {
                out.push(Output::Event(Event::error(error::internal_error(&code))));
            }
            Push::CallQueued { info, .. } => {
                if let Some(i) = route {
                    let c = &mut self.chats[i];
                    if matches!(c.state, EngagementState::Starting | EngagementState::Queued) {
                        c.state = EngagementState::Queued;
                    }
                    out.push(Output::Event(Event::Queued {
                        engagement: c.id.clone(),
                        position: info.position,
                        expected_wait: None,
                    }));
                    if !info.queue_type.is_empty() {
                        out.push(Self::vendor_event(
                            "OnCallQueued",
                            json!({"sid": c.id, "position": info.position, "queueType": info.queue_type}),
                        ));
                    }
                }
            }
            Push::MessageReceived { agent, msg, id, .. } => {
                if let Some(i) = route {
                    let sender = self.agent_for(i, &agent);
                    self.receive(i, sender, Content::Text(msg), &id, clk, &mut out);
                    out.push(self.ack(i, &id));
                }
            }
            Push::AppMessageReceived { agent, msg, id, .. } => {
                if let Some(i) = route {
                    let payload: Value = serde_json::from_str(&msg).unwrap_or(Value::String(msg));
                    let kind = payload
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("app")
                        .to_owned();
                    if is_av_signal(&kind) {
                        out.push(Output::AvSignal {
                            engagement: self.chats[i].id.clone(),
                            agent,
                            message: payload,
                        });
                    } else {
                        let sender = self.agent_for(i, &agent);
                        let content = Content::Notice(Notice { kind, payload });
                        self.receive(i, sender, content, &id, clk, &mut out);
                    }
                    if !id.is_empty() {
                        out.push(self.ack(i, &id));
                    }
                }
            }
            Push::Echo { msg, id, .. } => {
                if let Some(i) = route {
                    let c = &mut self.chats[i];
                    let echo = Message {
                        id: Some(MessageId::from(id.as_str())),
                        client_id: None,
                        engagement: c.id.clone(),
                        sender: self.config.customer.clone(),
                        content: Content::Text(msg),
                        server_time: None,
                        local_time: clk.wall,
                        state: DeliveryState::Sent,
                        hidden: false,
                    };
                    match c.outbox.on_echo(&echo, clk.now) {
                        EchoMatch::Confirmed(m) => {
                            c.transcript.upsert(m.clone());
                            out.push(Output::Event(Event::MessageSent(Arc::new(m))));
                        }
                        EchoMatch::AlreadyConfirmed(m) => {
                            c.transcript.upsert(m);
                        }
                        EchoMatch::Unmatched => {
                            // Sent from another page of the same browser session.
                            if c.transcript.upsert(echo.clone()) == Upsert::Inserted {
                                out.push(Output::Event(Event::MessageSent(Arc::new(echo))));
                            }
                        }
                    }
                    out.push(self.ack(i, &id));
                }
            }
            Push::TypingStateChanged { agent, state, .. } => {
                if let Some(i) = route {
                    let p = self.agent_for(i, &agent);
                    out.push(Output::Event(Event::Typing {
                        engagement: self.chats[i].id.clone(),
                        participant: Arc::new(p),
                        on: state == 0,
                    }));
                }
            }
            Push::ConferenceUserLeft { agent, msg, .. } => {
                if let Some(i) = route {
                    let c = &mut self.chats[i];
                    let p = match c
                        .agents
                        .iter()
                        .position(|a| a.display_name.as_deref() == Some(agent.as_str()))
                    {
                        Some(k) => c.agents.remove(k),
                        None => self::agent(&agent, None),
                    };
                    out.push(Output::Event(Event::ParticipantLeft {
                        engagement: c.id.clone(),
                        participant: Arc::new(p),
                    }));
                    if !msg.is_empty() {
                        out.push(Self::vendor_event(
                            "OnConferenceUserLeft",
                            json!({"sid": c.id, "agent": agent, "msg": msg}),
                        ));
                    }
                }
            }
            Push::HistoryReceived { history, sid } => out.push(Self::vendor_event(
                "OnHistoryReceived",
                json!({"sid": sid, "history": history}),
            )),
            Push::ResetCaptcha => out.push(Self::vendor_event("OnResetCaptcha", Value::Null)),
            Push::UploadComplete { response } => {
                out.push(Self::vendor_event("OnUploadComplete", response));
            }
            Push::CampaignContactCreated { response } => {
                out.push(Self::vendor_event(
                    "OnCampaignContactCreated",
                    response.clone(),
                ));
                out.push(Output::CampaignContact(response));
            }
            Push::Accepted { seq, mid, .. } => {
                let found = self.chats.iter().find_map(|c| {
                    c.seqs
                        .iter()
                        .find(|(_, s)| **s == seq)
                        .map(|(cid, _)| (c.id.clone(), *cid))
                });
                if let Some((id, cid)) = found {
                    out.extend(self.on_send_ok(&id, cid, Some(mid), clk));
                }
            }
            Push::AccessToken { token } => out.push(Output::AccessToken(token)),
            Push::Unknown { name, args } => {
                out.push(Self::vendor_event(&name, Value::Array(args)));
            }
        }
        out
    }

    fn receive(
        &mut self,
        i: usize,
        sender: Participant,
        content: Content,
        id: &str,
        clk: Clock,
        out: &mut Vec<Output>,
    ) {
        let c = &mut self.chats[i];
        let m = Message {
            id: (!id.is_empty()).then(|| MessageId::from(id)),
            client_id: None,
            engagement: c.id.clone(),
            sender,
            content,
            server_time: None,
            local_time: clk.wall,
            state: DeliveryState::Sent,
            hidden: false,
        };
        if c.transcript.upsert(m.clone()) == Upsert::Inserted {
            out.push(Output::Event(Event::MessageReceived(Arc::new(m))));
        }
    }

    fn apply_open(&mut self, s: OpenedSession, clk: Clock, out: &mut Vec<Output>) -> EngagementId {
        let (i, new) = self.ensure_chat(&s.sid_webapi);
        let customer = self.config.customer.clone();
        let c = &mut self.chats[i];
        if !s.sid_tchat.is_empty() {
            c.tchatid = s.sid_tchat;
        }
        if s.client_id.is_some() {
            c.client_id = s.client_id;
        }
        let id = c.id.clone();
        for a in &s.agents {
            if !c
                .agents
                .iter()
                .any(|x| x.id.as_deref() == Some(a.id.as_str()))
            {
                let p = agent(&a.name, Some(&a.id));
                c.agents.push(p.clone());
                if !new {
                    out.push(Output::Event(Event::ParticipantJoined {
                        engagement: id.clone(),
                        participant: Arc::new(p),
                    }));
                }
            }
        }
        c.state = if c.agents.is_empty() {
            EngagementState::Queued
        } else {
            EngagementState::Active
        };
        let agent_name = s.agents.last().map(|a| a.name.clone());
        for r in s.trans {
            if r.kind != "msg" {
                continue;
            }
            let text = url_decode(r.msg.as_deref().unwrap_or_default());
            let sender = if r.by.as_deref() == Some("c") {
                customer.clone()
            } else {
                let name = r.name.clone().or_else(|| agent_name.clone());
                c.agents
                    .iter()
                    .find(|a| a.display_name == name)
                    .cloned()
                    .unwrap_or_else(|| agent(name.as_deref().unwrap_or("agent"), None))
            };
            let role = sender.role;
            let m = Message {
                id: r.id.as_deref().map(MessageId::from),
                client_id: None,
                engagement: id.clone(),
                sender,
                content: Content::Text(text),
                server_time: r.time.map(Timestamp),
                local_time: clk.wall,
                state: DeliveryState::Sent,
                hidden: false,
            };
            let mut m = m;
            if role == Role::Customer {
                // Our own message in flight at a drop: the record confirms it.
                match c.outbox.on_echo(&m, clk.now) {
                    EchoMatch::Confirmed(merged) => {
                        out.push(Output::Event(Event::MessageSent(Arc::new(merged.clone()))));
                        m = merged;
                    }
                    EchoMatch::AlreadyConfirmed(merged) => m = merged,
                    EchoMatch::Unmatched => {}
                }
            }
            let inserted = c.transcript.upsert(m.clone()) == Upsert::Inserted;
            if inserted && !new && role != Role::Customer {
                out.push(Output::Event(Event::MessageReceived(Arc::new(m))));
            }
        }
        if new {
            out.push(Output::Event(Event::EngagementStarted {
                engagement: id.clone(),
                resumed: true,
            }));
        }
        id
    }
}

/// What the DWR driver does next (§2.6, §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStep {
    /// Poll again after this wait.
    Poll(Duration),
    /// Try a heartbeat after this wait (offline).
    Heartbeat(Duration),
    /// Stop for good: the retries are used up.
    GiveUp,
}

/// The DWR connectivity rule; see the [module docs](self).
#[derive(Debug)]
pub struct PollMachine {
    backoff: Backoff,
    failures: u32,
    offline: bool,
}

impl PollMachine {
    /// A machine with the retry interval and the most retries (the notes: 3 s, 100).
    pub fn new(retry: Duration, max_retries: u32) -> PollMachine {
        let policy = BackoffPolicy::fixed(retry).with_max_attempts(Some(max_retries));
        PollMachine {
            backoff: policy.start_seeded(0),
            failures: 0,
            offline: false,
        }
    }

    /// Whether the machine says offline.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// How many retries were made in the current run of failures.
    pub fn attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// A poll succeeded. Returns true when that brought the session back online (only a
    /// heartbeat does, see [`PollMachine::on_heartbeat_ok`]; a poll success while online
    /// resets the failure count).
    pub fn on_poll_ok(&mut self) {
        self.failures = 0;
        self.backoff.reset();
    }

    /// A poll failed or timed out. Returns the next step and whether this made the session
    /// offline.
    pub fn on_poll_failed(&mut self, now: Instant) -> (PollStep, bool) {
        self.failures += 1;
        let Some(delay) = self.backoff.next_delay(now) else {
            return (PollStep::GiveUp, false);
        };
        if self.failures >= 2 && !self.offline {
            self.offline = true;
            return (PollStep::Heartbeat(delay), true);
        }
        if self.offline {
            (PollStep::Heartbeat(delay), false)
        } else {
            (PollStep::Poll(delay), false)
        }
    }

    /// A heartbeat failed.
    pub fn on_heartbeat_failed(&mut self, now: Instant) -> PollStep {
        match self.backoff.next_delay(now) {
            Some(d) => PollStep::Heartbeat(d),
            None => PollStep::GiveUp,
        }
    }

    /// A heartbeat succeeded: online again (call `IsValid`, then poll).
    pub fn on_heartbeat_ok(&mut self) {
        self.offline = false;
        self.failures = 0;
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests;

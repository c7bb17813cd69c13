//! The sans-IO chat engine: server events in (with the time), neutral events and
//! instructions out. The client ([`crate::client`]) owns the sockets and timers and feeds
//! this engine; everything that decides what an Expertflow frame means lives here, so it is
//! tested without a network.

use std::sync::Arc;
use std::time::Instant;

use cc_chat::{EchoMatch, Outbox, OutboxConfig, Transcript, Upsert};
use cc_core::{
    Action, Attachment, Card, ClientMessageId, Content, DeliveryState, EngagementId,
    EngagementState, Error, Event, FormField, Initiator, Message, MessageId, Participant,
    RichContent, Role, Timestamp, Vendor,
};
use serde_json::Value;

use crate::error;
use crate::wire::{
    Body, BodyKind, CimMessage, ConversationResumed, CustomerData, Envelope, EnvelopeHeader,
    ErrorsPayload, ResumeAck, Sender, event,
};

const V: Vendor = Vendor::Expertflow;

/// What the engine asks its driver to do, besides emitting events.
#[derive(Debug)]
pub(crate) enum Output {
    /// Emit this event on the session's bus.
    Event(Event),
    /// The JWT arrived: use it as Bearer on every REST call.
    Token(cc_core::Secret),
    /// The chat session started: resolve a waiting `start_chat`.
    Started(EngagementId),
    /// The chat request failed: fail a waiting `start_chat`.
    StartFailed(Error),
    /// Emit `CHAT_ENDED` with the customer data (the widget does after a server end).
    SendChatEnded,
}

/// One chat.
#[derive(Debug)]
pub(crate) struct Chat {
    pub(crate) id: EngagementId,
    pub(crate) state: EngagementState,
    pub(crate) participants: Vec<Participant>,
    pub(crate) outbox: Outbox,
    pub(crate) transcript: Transcript,
}

/// The engine of one session (one customer identity, at most one chat).
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) customer: CustomerData,
    pub(crate) me: Participant,
    pub(crate) chat: Option<Chat>,
    pub(crate) connected: bool,
    outbox_config: OutboxConfig,
}

fn ev(e: Event) -> Output {
    Output::Event(e)
}

fn protocol(frame: &str, reason: impl Into<String>) -> Output {
    ev(Event::error(Error::protocol(V, frame.to_owned(), reason)))
}

/// The role of a CIM sender type.
pub(crate) fn role_of(kind: Option<&str>) -> Role {
    match kind {
        Some("CUSTOMER") => Role::Customer,
        Some("AGENT") => Role::Agent,
        Some("BOT") => Role::Bot,
        _ => Role::System,
    }
}

fn participant_of(sender: Option<&Sender>) -> Participant {
    let Some(s) = sender else {
        return Participant::new(Role::System);
    };
    let mut p = Participant::new(role_of(s.kind.as_deref()));
    if let Some(id) = &s.id {
        p = p.with_id(id.as_str());
    }
    let detail_name = s.additional_detail.as_ref().and_then(|d| {
        let first = d.get("firstName").and_then(Value::as_str).unwrap_or("");
        let last = d.get("lastName").and_then(Value::as_str).unwrap_or("");
        let full = format!("{first} {last}").trim().to_owned();
        (!full.is_empty()).then_some(full)
    });
    if let Some(name) = detail_name.or_else(|| s.sender_name.clone()) {
        p = p.with_name(name);
    }
    p
}

/// The agent named in an `AGENT_SUBSCRIBED` / `AGENT_UNSUBSCRIBED` notification
/// (`notificationData.data.agentParticipant.participant.keycloakUser`).
fn agent_of_notification(body: &Body) -> Participant {
    let user = body
        .notification_data
        .as_ref()
        .and_then(|d| d.pointer("/data/agentParticipant/participant/keycloakUser"));
    let mut p = Participant::new(Role::Agent);
    if let Some(u) = user {
        if let Some(id) = u.get("id").and_then(Value::as_str) {
            p = p.with_id(id);
        }
        let first = u.get("firstName").and_then(Value::as_str).unwrap_or("");
        let last = u.get("lastName").and_then(Value::as_str).unwrap_or("");
        let full = format!("{first} {last}").trim().to_owned();
        let name = if full.is_empty() {
            u.get("username").and_then(Value::as_str).map(str::to_owned)
        } else {
            Some(full)
        };
        if let Some(n) = name {
            p = p.with_name(n);
        }
    }
    p
}

fn file_name_of(body: &Body) -> Option<String> {
    let from_details = body
        .additional_details
        .as_ref()
        .and_then(|d| d.get("fileName"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let att = body.attachment.as_ref();
    from_details
        .or_else(|| body.caption.clone().filter(|c| !c.is_empty()))
        .or_else(|| att.and_then(|a| a.media_name.clone()))
        .or_else(|| {
            let url = att?.media_url.as_deref()?;
            let name = url.rsplit(['=', '/']).next()?;
            Some(name.to_owned())
        })
}

fn actions_of(items: Option<&Value>) -> Vec<Action> {
    items
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|b| Action {
                    label: b
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    payload: b
                        .get("payload")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    url: b.get("url").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The neutral content of a CIM body, or `None` for bodies that are not messages
/// (notifications, receipts) or that the model has no place for.
pub(crate) fn content_of(body: &Body) -> Option<Content> {
    let text = body.markdown_text.clone().unwrap_or_default();
    Some(match body.kind() {
        BodyKind::Plain => Content::Text(text),
        BodyKind::Url => Content::Text(
            body.extra
                .get("mediaUrl")
                .and_then(Value::as_str)
                .map_or(text, str::to_owned),
        ),
        BodyKind::Media => {
            let att = body.attachment.clone().unwrap_or_default();
            let mime = att
                .mime_type
                .clone()
                .or_else(|| {
                    att.extra
                        .get("type")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            Content::File(Attachment {
                id: att
                    .media_url
                    .as_deref()
                    .and_then(|u| u.split_once("filename=").map(|(_, n)| n.to_owned())),
                name: file_name_of(body).unwrap_or_else(|| "file".to_owned()),
                mime_type: mime,
                size: att.size,
                url: att.media_url,
            })
        }
        BodyKind::Button => {
            let replies = actions_of(body.extra.get("buttons"));
            let quick = body
                .extra
                .get("buttonMessageType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("quick_replies"));
            if quick {
                Content::Rich(RichContent::QuickReplies { text, replies })
            } else {
                Content::Rich(RichContent::Buttons {
                    text,
                    buttons: replies,
                })
            }
        }
        BodyKind::Carousel => {
            let cards = body
                .extra
                .get("elements")
                .and_then(Value::as_array)
                .map(|els| {
                    els.iter()
                        .map(|e| Card {
                            title: e
                                .get("title")
                                .or_else(|| e.get("text"))
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            text: e.get("subtitle").and_then(Value::as_str).map(str::to_owned),
                            image_url: e.get("url").and_then(Value::as_str).map(str::to_owned),
                            actions: actions_of(e.get("buttons")),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Content::Rich(RichContent::Carousel { cards })
        }
        BodyKind::FormData => {
            let title = body
                .extra
                .get("formTitle")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let fields = body
                .extra
                .get("sections")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("attributes").and_then(Value::as_array))
                .flatten()
                .map(|a| FormField {
                    name: a
                        .get("key")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    label: a
                        .get("label")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    required: a
                        .get("isRequired")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    options: a
                        .get("attributeOptions")
                        .and_then(Value::as_array)
                        .map(|o| {
                            o.iter()
                                .filter_map(|x| {
                                    x.get("label")
                                        .or_else(|| x.get("value"))
                                        .and_then(Value::as_str)
                                        .map(str::to_owned)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            Content::Rich(RichContent::Form { title, fields })
        }
        BodyKind::Notification | BodyKind::DeliveryNotification | BodyKind::Unknown(_) => {
            return None;
        }
    })
}

/// The neutral message of a CIM message that carries content.
pub(crate) fn message_of(cim: &CimMessage, engagement: &EngagementId) -> Option<Message> {
    let content = content_of(&cim.body)?;
    let server_time = cim.header.timestamp_ms().map(Timestamp);
    Some(Message {
        id: cim.id.clone().map(MessageId::from),
        client_id: None,
        engagement: engagement.clone(),
        sender: participant_of(cim.header.sender.as_ref()),
        content,
        server_time,
        local_time: server_time.unwrap_or_else(Timestamp::now),
        state: DeliveryState::Sent,
        hidden: false,
    })
}

/// Decodes the first argument of a server event as `T`.
fn arg<T: serde::de::DeserializeOwned>(name: &str, args: &[Value]) -> Result<T, Output> {
    let v = args.first().cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(|e| protocol(name, e.to_string()))
}

/// The body type of an outgoing envelope for a MIME type (`image/png` → `IMAGE`) and the
/// envelope's own `type` (the MIME major type).
pub(crate) fn media_kinds(mime: &str) -> (&'static str, String) {
    let major = mime
        .split('/')
        .next()
        .unwrap_or("application")
        .to_ascii_lowercase();
    let body = match major.as_str() {
        "image" => "IMAGE",
        "video" => "VIDEO",
        "audio" => "AUDIO",
        _ => "FILE",
    };
    (body, major)
}

impl Engine {
    pub(crate) fn new(customer: CustomerData, me: Participant, outbox: OutboxConfig) -> Engine {
        Engine {
            customer,
            me,
            chat: None,
            connected: false,
            outbox_config: outbox,
        }
    }

    fn new_chat(&self, id: EngagementId) -> Chat {
        let mut outbox = Outbox::new(V, id.clone(), self.me.clone(), self.outbox_config.clone());
        if self.connected {
            outbox.on_connected();
        }
        Chat {
            id,
            state: EngagementState::Starting,
            participants: vec![self.me.clone()],
            outbox,
            transcript: Transcript::new(),
        }
    }

    fn live_chat(&mut self) -> Option<&mut Chat> {
        self.chat
            .as_mut()
            .filter(|c| c.state != EngagementState::Ended)
    }

    /// The socket connected (first time or again).
    pub(crate) fn on_connected(&mut self) {
        self.connected = true;
        if let Some(c) = self.chat.as_mut() {
            c.outbox.on_connected();
        }
    }

    /// The socket disconnected.
    pub(crate) fn on_disconnected(&mut self) {
        self.connected = false;
        if let Some(c) = self.chat.as_mut() {
            c.outbox.on_disconnected();
        }
    }

    /// The customer envelope for a message body.
    pub(crate) fn envelope(&self, kind: &str, body: Body, with_sender: bool) -> Envelope {
        let header = if with_sender {
            EnvelopeHeader {
                original_message_id: None,
                intent: None,
                entities: Some(Value::Object(Default::default())),
                additional_data: Some(serde_json::json!({ "carousalCardId": null })),
                sender: Some(Sender {
                    id: Some(self.customer.channel_customer_identifier.clone()),
                    kind: Some("CUSTOMER".to_owned()),
                    sender_name: Some(
                        self.me
                            .display_name
                            .clone()
                            .unwrap_or_else(|| self.customer.channel_customer_identifier.clone()),
                    ),
                    additional_detail: Some(Value::Object(Default::default())),
                }),
            }
        } else {
            EnvelopeHeader::default()
        };
        Envelope {
            kind: kind.to_owned(),
            header,
            body,
            customer: self.customer.clone(),
            timestamp: Value::String(String::new()),
        }
    }

    /// The envelope for an outgoing message of the outbox.
    pub(crate) fn message_envelope(&self, content: &Content) -> Result<Envelope, Error> {
        match content {
            Content::Text(t) => Ok(self.envelope("PLAIN", Body::plain(t), true)),
            Content::File(a) => {
                let (body_kind, major) = media_kinds(&a.mime_type);
                let ext = a.name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
                let mut attachment = crate::wire::WireAttachment {
                    media_url: a.url.clone(),
                    mime_type: Some(a.mime_type.clone()),
                    size: a.size,
                    ..Default::default()
                };
                attachment
                    .extra
                    .insert("type".to_owned(), Value::from(a.mime_type.clone()));
                attachment
                    .extra
                    .insert("extType".to_owned(), Value::from(ext));
                let body = Body {
                    kind: body_kind.to_owned(),
                    markdown_text: Some(String::new()),
                    caption: Some(if body_kind == "FILE" {
                        String::new()
                    } else {
                        a.name.clone()
                    }),
                    attachment: Some(attachment),
                    additional_details: Some(serde_json::json!({ "fileName": a.name })),
                    ..Body::default()
                };
                Ok(self.envelope(&major, body, true))
            }
            Content::Notice(_) => Err(Error::unsupported(V, cc_core::Feature::CustomNotices)),
            Content::Rich(_) => Err(Error::invalid(
                V,
                "content",
                "an Expertflow customer sends text or files (forms go with `send_form_data`)",
            )),
        }
    }

    /// Handles one server event.
    pub(crate) fn on_event(&mut self, name: &str, args: &[Value], now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match name {
            event::TOKEN_GENERATED => match args.first() {
                Some(Value::String(t)) if !t.is_empty() => {
                    out.push(Output::Token(cc_core::Secret::new(t.clone())));
                }
                Some(Value::Object(o)) => match o.get("token").and_then(Value::as_str) {
                    Some(t) => out.push(Output::Token(cc_core::Secret::new(t))),
                    None => out.push(protocol(name, "no token")),
                },
                _ => out.push(protocol(name, "expected the JWT as a string")),
            },
            event::CHANNEL_SESSION_STARTED => match arg::<CimMessage>(name, args) {
                Ok(cim) => self.on_session_started(&cim, &mut out),
                Err(o) => out.push(o),
            },
            event::MESSAGE_RECEIVED => match arg::<CimMessage>(name, args) {
                Ok(cim) => self.on_message(cim, now, &mut out),
                Err(o) => out.push(o),
            },
            event::CHANNEL_SESSION_ENDED | event::CHANNEL_SESSION_EXPIRED => {
                let initiator = if name == event::CHANNEL_SESSION_ENDED {
                    Initiator::Agent
                } else {
                    Initiator::System
                };
                let reason = args.first().map(reason_text);
                self.end_chat(initiator, reason, &mut out);
                out.push(Output::SendChatEnded);
            }
            event::CHAT_ENDED => {
                let reason = args.first().map(reason_text);
                self.end_chat(Initiator::Unknown, reason, &mut out);
            }
            event::ERRORS => match arg::<ErrorsPayload>(name, args) {
                Ok(p) => {
                    let err = error::errors_event(p.task.as_deref(), &p.code);
                    let is_start = p
                        .task
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("CHAT_REQUESTED"));
                    if is_start {
                        out.push(Output::StartFailed(err));
                    } else {
                        out.push(ev(Event::error(err)));
                    }
                }
                Err(o) => out.push(o),
            },
            event::CONVERSATION_RESUMED => match arg::<ConversationResumed>(name, args) {
                Ok(r) => {
                    // Announce only what a chat this client already shows missed; a fresh
                    // session takes the history as its transcript.
                    let live = self.live_chat().is_some();
                    self.on_history(&r.history, now, live, &mut out);
                }
                Err(o) => out.push(o),
            },
            _ => out.push(ev(Event::Vendor {
                vendor: V,
                name: name.into(),
                payload: Arc::new(Value::Array(args.to_vec())),
            })),
        }
        out
    }

    fn on_session_started(&mut self, cim: &CimMessage, out: &mut Vec<Output>) {
        let Some(conv) = cim.header.conversation_id.clone().filter(|c| !c.is_empty()) else {
            out.push(protocol(
                event::CHANNEL_SESSION_STARTED,
                "no header.conversationId",
            ));
            return;
        };
        let id = EngagementId::from(conv);
        if self
            .chat
            .as_ref()
            .is_some_and(|c| c.id == id && c.state != EngagementState::Ended)
        {
            out.push(Output::Started(id));
            return;
        }
        self.chat = Some(self.new_chat(id.clone()));
        out.push(ev(Event::EngagementStarted {
            engagement: id.clone(),
            resumed: false,
        }));
        out.push(Output::Started(id));
    }

    /// The conversation id a CIM message belongs to, or the live chat's.
    fn chat_for(&mut self, cim: &CimMessage) -> Option<&mut Chat> {
        let conv = cim.header.conversation_id.clone();
        let chat = self.live_chat()?;
        match conv {
            Some(c) if !c.is_empty() && c != chat.id.as_str() => None,
            _ => Some(chat),
        }
    }

    fn on_message(&mut self, cim: CimMessage, now: Instant, out: &mut Vec<Output>) {
        let role = role_of(cim.header.sender.as_ref().and_then(|s| s.kind.as_deref()));
        let kind = cim.body.kind();
        let Some(chat) = self.chat_for(&cim) else {
            out.push(ev(Event::Vendor {
                vendor: V,
                name: event::MESSAGE_RECEIVED.into(),
                payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
            }));
            return;
        };
        let eng = chat.id.clone();
        match kind {
            BodyKind::Notification => {
                let nt = cim.body.notification_type.clone().unwrap_or_default();
                match nt.as_str() {
                    "TYPING_STARTED" | "TYPING_STOPPED" if role != Role::Customer => {
                        out.push(ev(Event::Typing {
                            engagement: eng,
                            participant: Arc::new(participant_of(cim.header.sender.as_ref())),
                            on: nt == "TYPING_STARTED",
                        }));
                    }
                    "AGENT_SUBSCRIBED" => {
                        let agent = agent_of_notification(&cim.body);
                        chat.state = EngagementState::Active;
                        chat.participants
                            .retain(|p| p.id.is_none() || p.id != agent.id);
                        chat.participants.push(agent.clone());
                        out.push(ev(Event::ParticipantJoined {
                            engagement: eng,
                            participant: Arc::new(agent),
                        }));
                    }
                    "AGENT_UNSUBSCRIBED" => {
                        let agent = agent_of_notification(&cim.body);
                        chat.participants.retain(|p| {
                            !(p.role == Role::Agent && (agent.id.is_none() || p.id == agent.id))
                        });
                        out.push(ev(Event::ParticipantLeft {
                            engagement: eng,
                            participant: Arc::new(agent),
                        }));
                    }
                    "TASK_ENQUEUED" => {
                        chat.state = EngagementState::Queued;
                        out.push(ev(Event::Queued {
                            engagement: eng,
                            position: None,
                            expected_wait: None,
                        }));
                    }
                    "CHANNEL_SESSION_ENDED" | "CHANNEL_SESSION_EXPIRED" => {
                        let initiator = if nt == "CHANNEL_SESSION_ENDED" {
                            Initiator::Agent
                        } else {
                            Initiator::System
                        };
                        let reason = cim.body.markdown_text.clone().filter(|t| !t.is_empty());
                        self.end_chat(initiator, reason, out);
                        out.push(Output::SendChatEnded);
                    }
                    _ => out.push(ev(Event::Vendor {
                        vendor: V,
                        name: format!("NOTIFICATION/{nt}").into(),
                        payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
                    })),
                }
            }
            BodyKind::DeliveryNotification => {
                let Some(mid) = cim.body.message_id.clone() else {
                    out.push(protocol("DELIVERYNOTIFICATION", "no body.messageId"));
                    return;
                };
                let id = MessageId::from(mid);
                let status = cim.body.status.clone().unwrap_or_default();
                let state = match status.as_str() {
                    "READ" => DeliveryState::Read,
                    "DELIVERED" => DeliveryState::Delivered,
                    "FAILED" => DeliveryState::Failed {
                        reason: format!(
                            "the contact center could not deliver it ({})",
                            cim.body
                                .reason_code
                                .as_ref()
                                .map(reason_text)
                                .unwrap_or_default()
                        ),
                        retryable: false,
                    },
                    _ => {
                        out.push(ev(Event::Vendor {
                            vendor: V,
                            name: format!("DELIVERYNOTIFICATION/{status}").into(),
                            payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
                        }));
                        return;
                    }
                };
                let client_id: Option<ClientMessageId> =
                    chat.transcript.get(&id).and_then(|m| m.client_id);
                let changed = chat.transcript.set_state(Some(&id), None, state.clone());
                if changed.is_none() && chat.transcript.get(&id).is_some() {
                    return;
                }
                out.push(ev(match state {
                    DeliveryState::Read => Event::MessageRead {
                        engagement: eng,
                        id: Some(id),
                        client_id,
                    },
                    DeliveryState::Delivered => Event::MessageDelivered {
                        engagement: eng,
                        id: Some(id),
                        client_id,
                    },
                    _ => Event::Vendor {
                        vendor: V,
                        name: "DELIVERYNOTIFICATION/FAILED".into(),
                        payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
                    },
                }));
            }
            _ => {
                if cim.header.intent.as_deref() == Some("UPDATE") {
                    out.push(ev(Event::Vendor {
                        vendor: V,
                        name: "MESSAGE_UPDATED".into(),
                        payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
                    }));
                    if let (Some(orig), Some(content)) = (
                        cim.header.original_message_id.clone(),
                        content_of(&cim.body),
                    ) && let Some(m) = chat.transcript.get(&MessageId::from(orig)).cloned()
                    {
                        let mut edited = m;
                        edited.content = content;
                        chat.transcript.upsert(edited);
                    }
                    return;
                }
                let Some(msg) = message_of(&cim, &eng) else {
                    out.push(ev(Event::Vendor {
                        vendor: V,
                        name: format!("MESSAGE/{}", cim.body.kind).into(),
                        payload: Arc::new(serde_json::to_value(&cim).unwrap_or_default()),
                    }));
                    return;
                };
                if msg.sender.role == Role::Agent || msg.sender.role == Role::Bot {
                    chat.state = EngagementState::Active;
                }
                Self::take_message(chat, msg, now, true, out);
            }
        }
    }

    /// Files one incoming message (live or from history): our own echoes go through the
    /// outbox, everything else into the transcript; `announce` emits `MessageReceived` for
    /// messages not seen before.
    fn take_message(
        chat: &mut Chat,
        msg: Message,
        now: Instant,
        announce: bool,
        out: &mut Vec<Output>,
    ) {
        if msg.sender.role == Role::Customer {
            match chat.outbox.on_echo(&msg, now) {
                EchoMatch::Confirmed(merged) => {
                    chat.transcript.upsert(merged.clone());
                    out.push(ev(Event::MessageSent(Arc::new(merged))));
                }
                EchoMatch::AlreadyConfirmed(merged) => {
                    chat.transcript.upsert(merged);
                }
                EchoMatch::Unmatched => {
                    chat.transcript.upsert(msg);
                }
            }
            return;
        }
        if chat.transcript.upsert(msg.clone()) == Upsert::Inserted && announce {
            out.push(ev(Event::MessageReceived(Arc::new(msg))));
        }
    }

    /// A history (resume ack, `CONVERSATION_RESUMED`): messages missing from the transcript
    /// are added (and announced when `announce`), uncertain outbox messages are settled.
    pub(crate) fn on_history(
        &mut self,
        history: &[CimMessage],
        now: Instant,
        announce: bool,
        out: &mut Vec<Output>,
    ) {
        let conv = history
            .iter()
            .find_map(|m| m.header.conversation_id.clone().filter(|c| !c.is_empty()));
        if self.live_chat().is_none() {
            let Some(conv) = conv else {
                return;
            };
            let id = EngagementId::from(conv);
            let mut chat = self.new_chat(id.clone());
            chat.state = EngagementState::Active;
            self.chat = Some(chat);
            out.push(ev(Event::EngagementStarted {
                engagement: id,
                resumed: true,
            }));
        }
        let Some(chat) = self.live_chat() else {
            return;
        };
        let eng = chat.id.clone();
        for cim in history {
            if cim
                .header
                .conversation_id
                .as_deref()
                .is_some_and(|c| !c.is_empty() && c != eng.as_str())
            {
                continue;
            }
            if let Some(msg) = message_of(cim, &eng) {
                Self::take_message(chat, msg, now, announce, out);
            } else if cim.body.kind() == BodyKind::Notification {
                Self::replay_state(chat, cim);
            }
        }
        if chat.outbox.has_uncertain() {
            let report = chat.outbox.reconcile(&[], now);
            for f in report.failed {
                out.push(ev(f.event()));
            }
        }
    }

    /// Restores state and participants from a notification in a history.
    fn replay_state(chat: &mut Chat, cim: &CimMessage) {
        match cim.body.notification_type.as_deref() {
            Some("AGENT_SUBSCRIBED") => {
                let agent = agent_of_notification(&cim.body);
                chat.participants
                    .retain(|p| p.id.is_none() || p.id != agent.id);
                chat.participants.push(agent);
                chat.state = EngagementState::Active;
            }
            Some("AGENT_UNSUBSCRIBED") => {
                let agent = agent_of_notification(&cim.body);
                chat.participants.retain(|p| {
                    !(p.role == Role::Agent && (agent.id.is_none() || p.id == agent.id))
                });
            }
            Some("TASK_ENQUEUED") if chat.state != EngagementState::Active => {
                chat.state = EngagementState::Queued;
            }
            _ => {}
        }
    }

    /// The `CHAT_RESUMED` ack: `Ok(true)` when a live chat with history was found.
    pub(crate) fn on_resume_ack(
        &mut self,
        args: &[Value],
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        let ack: ResumeAck = match arg(event::CHAT_RESUMED, args) {
            Ok(a) => a,
            Err(o) => {
                out.push(o);
                return false;
            }
        };
        let history: Vec<CimMessage> = match &ack.data {
            Value::Array(items) => {
                let mut v = Vec::with_capacity(items.len());
                for item in items {
                    match serde_json::from_value::<CimMessage>(item.clone()) {
                        Ok(m) => v.push(m),
                        Err(e) => out.push(protocol("CHAT_RESUMED history", e.to_string())),
                    }
                }
                v
            }
            _ => Vec::new(),
        };
        let live = self.live_chat().is_some();
        if !ack.is_chat_available {
            if live {
                // The server no longer knows the chat: it ended while we were away.
                self.end_chat(
                    Initiator::Unknown,
                    Some("the chat is no longer available".to_owned()),
                    out,
                );
            }
            return false;
        }
        if history.is_empty() {
            // A live session without history: nothing to restore or settle against. The
            // widget ends such a session as stale; this client keeps it (a chat that has
            // only just started has no history yet), and resends what is uncertain.
            if let Some(c) = self.chat.as_mut()
                && c.outbox.has_uncertain()
            {
                let report = c.outbox.reconcile(&[], now);
                for f in report.failed {
                    out.push(ev(f.event()));
                }
            }
            return live;
        }
        self.on_history(&history, now, live, out);
        true
    }

    /// Ends the live chat (if any): state, event, the outbox's leftovers fail.
    pub(crate) fn end_chat(
        &mut self,
        initiator: Initiator,
        reason: Option<String>,
        out: &mut Vec<Output>,
    ) {
        let Some(chat) = self.live_chat() else {
            return;
        };
        chat.state = EngagementState::Ended;
        let id = chat.id.clone();
        for f in chat.outbox.close(Error::closed(V, "chat")) {
            out.push(ev(f.event()));
        }
        out.push(ev(Event::EngagementEnded {
            engagement: id,
            initiator,
            reason: reason.map(Into::into),
        }));
    }
}

fn reason_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;

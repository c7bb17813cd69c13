//! The Web Messaging side of the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cc_core::Result;
use cc_testkit::{Direction, Received};
use serde_json::{Value, json};

use super::{
    Chat, ChatKind, File, Inner, JwtOwner, Owner, State, Upload, WmSession, close_socket, iso,
    make_jwt, new_id, run_socket, send_to, set_owner,
};
use crate::wire::messaging::{
    AttachmentDeleted, AttachmentError, AttachmentWire, Channel, ConnectionClosed, ContentItem,
    Direction as Dir, EnvelopeType, EventItem, EventType, FileType, HistoryPage, InboundMedia,
    JwtResponse, MessageType, OriginatingEntity, Party, PresenceType, PresignedUrl, Request,
    ServerBody, ServerFrame, SessionResponse, StructuredMessage, TooManyRequests, Typing,
    TypingType, UploadSuccess,
};

fn frame(kind: EnvelopeType, code: i64, tracing_id: Option<String>, body: ServerBody) -> String {
    ServerFrame {
        kind,
        code,
        tracing_id,
        body,
    }
    .to_json()
}

fn error_reply(code: i64, tracing: Option<String>, message: &str) -> String {
    frame(
        EnvelopeType::Response,
        code,
        tracing,
        ServerBody::Error {
            message: message.to_owned(),
        },
    )
}

pub(super) async fn upgrade(
    AxState(inner): AxState<Arc<Inner>>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    remember_host(&inner, &headers);
    let dep = q.get("deploymentId").cloned().unwrap_or_default();
    if inner.opts.reject_unknown_deployment_on_upgrade && dep != inner.opts.deployment_id {
        return (StatusCode::FORBIDDEN, "Deployment not found").into_response();
    }
    // 4 KiB read buffers, not tungstenite's 128 KiB: a simulator may hold thousands.
    ws.read_buffer_size(4 * 1024).on_upgrade(move |socket| {
        run_socket(inner, socket, Owner::Wm(None), |_, _| {}, on_text, None)
    })
}

pub(super) fn remember_host(inner: &Inner, headers: &HeaderMap) {
    if let Some(h) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        inner.lock().host = Some(h.to_owned());
    }
}

fn on_text(inner: &Arc<Inner>, socket: u64, text: &str) {
    let req = match Request::decode(text) {
        Ok(r) => r,
        Err(e) => {
            let mut st = inner.lock();
            st.record(Direction::ClientToServer, "ws", text);
            let reply = error_reply(400, None, &format!("Invalid request: {}", e.reason));
            st.record(Direction::ServerToClient, "ws", &reply);
            send_to(&st, socket, reply);
            return;
        }
    };
    let is_echo = matches!(req, Request::Echo { .. });
    let mut st = inner.lock();
    if !is_echo {
        st.record(Direction::ClientToServer, "ws", text);
    }
    let token = req.token().expose().to_owned();
    let tracing = req.tracing_id().map(str::to_owned);
    let reply = |st: &mut State, text: String| {
        if !is_echo {
            st.record(Direction::ServerToClient, "ws", &text);
        }
        send_to(st, socket, text);
    };
    if let Request::ConfigureSession {
        deployment_id,
        start_new,
        ..
    } = &req
    {
        if *deployment_id != inner.opts.deployment_id {
            return reply(&mut st, error_reply(403, tracing, "Deployment not found"));
        }
        if st.sessions.get(&token).is_some_and(|s| s.expired) {
            return reply(&mut st, error_reply(4006, tracing, "Session has expired"));
        }
        let new_session = !st.sessions.contains_key(&token);
        let session = st
            .sessions
            .entry(token.clone())
            .or_insert_with(|| WmSession {
                chat: None,
                read_only: false,
                expired: false,
                sent: Default::default(),
                history: Vec::new(),
            });
        if *start_new == Some(true) && session.read_only {
            session.read_only = false;
            session.chat = None;
        }
        let read_only = session.read_only;
        drop(st);
        set_owner(inner, socket, Owner::Wm(Some(token)));
        let mut st = inner.lock();
        let body = SessionResponse {
            connected: true,
            new_session: Some(new_session),
            read_only: Some(read_only),
            allowed_media: Some(crate::wire::messaging::AllowedMedia {
                inbound: Some(InboundMedia {
                    file_types: vec![FileType { kind: "*/*".into() }],
                    max_file_size_k_b: Some(inner.opts.max_file_size_kb),
                }),
            }),
            blocked_extensions: vec![".ade".into(), ".adp".into(), ".bat".into(), ".exe".into()],
            max_custom_data_bytes: Some(inner.opts.max_custom_data_bytes),
            duration_seconds: Some(259_200),
            expiration_date: Some(cc_core::Timestamp::now().unix_ms() / 1000 + 259_200),
            ..SessionResponse::default()
        };
        let text = frame(
            EnvelopeType::Response,
            200,
            tracing,
            ServerBody::Session(body),
        );
        return reply(&mut st, text);
    }
    let Some(session) = st.sessions.get(&token) else {
        return reply(&mut st, error_reply(4007, tracing, "Session not found"));
    };
    if session.expired {
        return reply(&mut st, error_reply(4006, tracing, "Session has expired"));
    }
    match req {
        Request::ConfigureSession { .. } => unreachable!("handled above"),
        Request::Echo { .. } => {
            let body = StructuredMessage {
                id: Some(new_id()),
                kind: MessageType::Text,
                text: Some("ping".into()),
                direction: Some(Dir::Inbound),
                originating_entity: None,
                channel: None,
                content: Vec::new(),
                events: Vec::new(),
                metadata: Default::default(),
            };
            let text = frame(
                EnvelopeType::Response,
                200,
                tracing,
                ServerBody::Message(Box::new(body)),
            );
            reply(&mut st, text);
        }
        Request::GetJwt { .. } => {
            let exp = cc_core::Timestamp::now().unix_ms() / 1000 + 3600;
            let jwt = make_jwt(json!({"iss": "urn:sim:webmessaging", "sub": new_id(), "exp": exp}));
            st.jwts.insert(jwt.clone(), JwtOwner::Wm(token));
            let text = frame(
                EnvelopeType::Response,
                200,
                tracing,
                ServerBody::Jwt(JwtResponse {
                    jwt: jwt.into(),
                    exp,
                }),
            );
            reply(&mut st, text);
        }
        Request::CloseSession {
            close_all_connections,
            ..
        } => {
            if close_all_connections {
                let others: Vec<u64> = st
                    .sockets
                    .iter()
                    .filter(|s| s.id != socket && s.owner == Owner::Wm(Some(token.clone())))
                    .map(|s| s.id)
                    .collect();
                let closed = frame(
                    EnvelopeType::Message,
                    200,
                    None,
                    ServerBody::ConnectionClosed(ConnectionClosed::default()),
                );
                st.record(Direction::ServerToClient, "ws", &closed);
                for o in others {
                    send_to(&st, o, closed.clone());
                    close_socket(&st, o);
                }
            }
            let text = frame(
                EnvelopeType::Response,
                200,
                tracing,
                ServerBody::Session(SessionResponse {
                    connected: false,
                    ..SessionResponse::default()
                }),
            );
            reply(&mut st, text);
        }
        Request::GetConfiguration { .. } => {
            let body = json!({
                "allowedMedia": {"inbound": {"fileTypes": [{"type": "*/*"}], "maxFileSizeKB": inner.opts.max_file_size_kb}},
                "blockedExtensions": [".ade", ".adp", ".bat", ".exe"],
                "maxCustomDataBytes": inner.opts.max_custom_data_bytes,
                "messageRoutingEnabled": true,
                "sessionDurationSeconds": 259_200,
            });
            let text = frame(
                EnvelopeType::Response,
                200,
                tracing,
                ServerBody::Unknown {
                    class: "GetConfigurationResponse".into(),
                    body,
                },
            );
            reply(&mut st, text);
        }
        Request::OnAttachment {
            attachment_id,
            file_name,
            file_type,
            file_size,
            errors_as_json,
            ..
        } => {
            let lower = file_name.to_ascii_lowercase();
            let err = if file_size == 0 || file_size > inner.opts.max_file_size_kb * 1024 {
                Some((4002, "File size is invalid"))
            } else if [".ade", ".adp", ".bat", ".exe"]
                .iter()
                .any(|x| lower.ends_with(x))
            {
                Some((4001, "File type is invalid"))
            } else if file_name.is_empty() {
                Some((4004, "File name is invalid"))
            } else if file_name.chars().count() > 200 {
                Some((4005, "File name is too long"))
            } else {
                None
            };
            if let Some((code, msg)) = err {
                let text = if errors_as_json == Some(true) {
                    frame(
                        EnvelopeType::Message,
                        200,
                        tracing,
                        ServerBody::GenerateUrlError(AttachmentError {
                            attachment_id,
                            error_code: code,
                            error_message: msg.into(),
                            timestamp: None,
                        }),
                    )
                } else {
                    error_reply(code, tracing, msg)
                };
                return reply(&mut st, text);
            }
            let tagging = format!("attachment={attachment_id}");
            let url = format!("{}/uploads/{attachment_id}", st.base(inner.addr));
            st.uploads.insert(
                attachment_id.clone(),
                Upload {
                    token,
                    name: file_name.clone(),
                    mime: file_type.clone(),
                    size: file_size,
                    tagging: tagging.clone(),
                    done: false,
                },
            );
            let text = frame(
                EnvelopeType::Response,
                200,
                tracing,
                ServerBody::PresignedUrl(PresignedUrl {
                    attachment_id,
                    url,
                    headers: [("x-amz-tagging".to_owned(), tagging)].into(),
                    file_name: Some(file_name),
                    file_size: Some(file_size),
                    file_type: Some(file_type),
                }),
            );
            reply(&mut st, text);
        }
        Request::GetAttachment { attachment_id, .. } => {
            let text = match st.uploads.get(&attachment_id) {
                Some(u) if u.done => frame(
                    EnvelopeType::Response,
                    200,
                    tracing,
                    ServerBody::PresignedUrl(PresignedUrl {
                        url: format!("{}/downloads/{attachment_id}", st.base(inner.addr)),
                        attachment_id,
                        headers: BTreeMap::new(),
                        file_name: Some(u.name.clone()),
                        file_size: Some(u.size),
                        file_type: Some(u.mime.clone()),
                    }),
                ),
                Some(_) => error_reply(4010, tracing, "Attachment was not successfully uploaded"),
                None => error_reply(4009, tracing, "Attachment not found"),
            };
            reply(&mut st, text);
        }
        Request::DeleteAttachment { attachment_id, .. } => {
            let text = if st.uploads.remove(&attachment_id).is_some() {
                st.files.remove(&attachment_id);
                frame(
                    EnvelopeType::Response,
                    200,
                    tracing,
                    ServerBody::AttachmentDeleted(AttachmentDeleted { attachment_id }),
                )
            } else {
                error_reply(4009, tracing, "Attachment not found")
            };
            reply(&mut st, text);
        }
        Request::OnMessage { message, .. } => {
            on_message(inner, &mut st, socket, &token, tracing, message, &reply)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn on_message(
    inner: &Arc<Inner>,
    st: &mut State,
    socket: u64,
    token: &str,
    tracing: Option<String>,
    message: crate::wire::messaging::OutgoingMessage,
    reply: &dyn Fn(&mut State, String),
) {
    let opts = &inner.opts;
    if message.kind == MessageType::Event {
        for e in &message.events {
            match (e.event_type, e.presence.as_ref().map(|p| p.kind)) {
                (EventType::Typing, _) => {
                    if !opts.typing_enabled {
                        return reply(
                            st,
                            error_reply(
                                403,
                                tracing,
                                "Turn on the Feature Toggle or fix the configuration.",
                            ),
                        );
                    }
                    if let Some(i) = st.sessions.get(token).and_then(|s| s.chat) {
                        st.chats[i].received.push(Received::Typing { on: true });
                    }
                }
                (EventType::Presence, Some(PresenceType::Join)) => {
                    let attrs = message
                        .channel
                        .as_ref()
                        .map(|c| c.metadata.custom_attributes.clone())
                        .unwrap_or_default();
                    let i = ensure_chat(inner, st, token, &attrs);
                    let _ = i;
                    let echo = inbound(st, &message, Vec::new());
                    push_stored(st, token, tracing.clone(), echo);
                }
                (EventType::Presence, Some(PresenceType::Clear)) => {
                    if !opts.clear_enabled {
                        return reply(
                            st,
                            error_reply(
                                403,
                                tracing,
                                "Presence events Conversation Clear are not supported",
                            ),
                        );
                    }
                    if let Some(i) = st.sessions.get(token).and_then(|s| s.chat) {
                        st.chats[i].received.push(Received::Ended);
                    }
                    st.sessions.remove(token);
                    let cleared =
                        frame(EnvelopeType::Message, 200, None, ServerBody::SessionCleared);
                    st.push_token(token, cleared);
                    let closed = frame(
                        EnvelopeType::Message,
                        200,
                        None,
                        ServerBody::ConnectionClosed(ConnectionClosed::default()),
                    );
                    st.push_token(token, closed);
                    for s in &st.sockets {
                        if s.owner == Owner::Wm(Some(token.to_owned())) {
                            let _ = s.tx.send(super::SockCmd::Close);
                        }
                    }
                }
                _ => {}
            }
        }
        return;
    }
    // Text / Structured: rate limit, limits, attachments.
    let now = tokio::time::Instant::now();
    let per = opts.messages_per_second.max(1);
    {
        let s = st.sessions.get_mut(token).expect("checked by the caller");
        while s
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            s.sent.pop_front();
        }
        if s.sent.len() >= per {
            let text = frame(
                EnvelopeType::Response,
                429,
                tracing,
                ServerBody::TooManyRequests(TooManyRequests {
                    retry_after: opts.retry_after_secs,
                    error_code: 4029,
                    error_message: "Message rate too high for this session".into(),
                }),
            );
            return reply(st, text);
        }
        if s.read_only {
            return reply(
                st,
                error_reply(
                    4000,
                    tracing,
                    "The conversation is read-only; configure with startNew",
                ),
            );
        }
        s.sent.push_back(now);
    }
    let text = message.text.clone().unwrap_or_default();
    if text.chars().count() > opts.max_chars {
        return reply(st, error_reply(4011, tracing, "Message too long"));
    }
    let attrs = message
        .channel
        .as_ref()
        .map(|c| c.metadata.custom_attributes.clone())
        .unwrap_or_default();
    let attr_bytes: usize = attrs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if attr_bytes as u64 > opts.max_custom_data_bytes {
        return reply(
            st,
            error_reply(
                4013,
                tracing,
                &format!(
                    "Custom attributes larger than {} bytes",
                    opts.max_custom_data_bytes
                ),
            ),
        );
    }
    let mut content = Vec::new();
    let mut files = Vec::new();
    for c in &message.content {
        if c.content_type == "Attachment" {
            let id = c
                .attachment
                .as_ref()
                .map(|a| a.id.clone())
                .unwrap_or_default();
            match st.uploads.get(&id) {
                None => return reply(st, error_reply(4009, tracing, "Attachment not found")),
                Some(u) if !u.done || u.token != token => {
                    return reply(
                        st,
                        error_reply(4010, tracing, "Attachment was not successfully uploaded"),
                    );
                }
                Some(u) => {
                    files.push(Received::File {
                        name: u.name.clone(),
                        size: u.size,
                    });
                    content.push(ContentItem::attachment(AttachmentWire {
                        url: Some(format!("{}/downloads/{id}", st.base(inner.addr))),
                        filename: Some(u.name.clone()),
                        file_size: Some(u.size),
                        media_type: Some(media_type(&u.mime).into()),
                        mime: Some(u.mime.clone()),
                        id,
                    }));
                }
            }
        } else {
            content.push(c.clone());
        }
    }
    let i = ensure_chat(inner, st, token, &attrs);
    let hidden = message.metadata.get("filtered").map(String::as_str) == Some("true");
    let button = message
        .content
        .iter()
        .find_map(|c| c.button_response.as_ref().map(|b| b.text.clone()));
    if !text.is_empty() || button.is_some() {
        st.chats[i].received.push(Received::Text {
            text: button.unwrap_or_else(|| text.clone()),
            hidden,
        });
    }
    st.chats[i].received.extend(files);
    let _ = socket;
    let echo = inbound(st, &message, content);
    push_stored(st, token, tracing, echo);
}

fn media_type(mime: &str) -> &'static str {
    match mime.split('/').next() {
        Some("image") => "Image",
        Some("video") => "Video",
        Some("audio") => "Audio",
        _ => "File",
    }
}

fn inbound(
    st: &mut State,
    message: &crate::wire::messaging::OutgoingMessage,
    content: Vec<ContentItem>,
) -> StructuredMessage {
    let ms = st.now_ms();
    let id = new_id();
    let mut metadata: BTreeMap<String, Value> = message
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    metadata.insert("correlationId".into(), Value::String(new_id()));
    StructuredMessage {
        id: Some(id.clone()),
        kind: message.kind,
        text: message.text.clone(),
        direction: Some(Dir::Inbound),
        originating_entity: None,
        channel: Some(Channel {
            time: Some(iso(ms)),
            message_id: Some(id),
            kind: Some("Private".into()),
            from: None,
            to: None,
        }),
        content,
        events: message.events.clone(),
        metadata,
    }
}

/// Stores a message in the token's history and pushes it as `type:"message"`.
fn push_stored(st: &mut State, token: &str, tracing: Option<String>, m: StructuredMessage) {
    if let Some(s) = st.sessions.get_mut(token) {
        s.history.push(m.clone());
    }
    push_message(st, token, tracing, m);
}

/// Pushes `m` to the sockets of `token` as a `StructuredMessage` (not kept in history).
fn push_message(st: &mut State, token: &str, tracing: Option<String>, m: StructuredMessage) {
    let text = frame(
        EnvelopeType::Message,
        200,
        tracing,
        ServerBody::Message(Box::new(m)),
    );
    st.push_token(token, text);
}

fn ensure_chat(
    inner: &Inner,
    st: &mut State,
    token: &str,
    attrs: &BTreeMap<String, String>,
) -> usize {
    if let Some(i) = st.sessions.get(token).and_then(|s| s.chat) {
        return i;
    }
    let name = attrs.get("nickname").cloned().or_else(|| {
        match (attrs.get("firstName"), attrs.get("lastName")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f.clone()),
            _ => None,
        }
    });
    let i = st.new_chat(Chat {
        id: new_id(),
        customer_name: name,
        received: Vec::new(),
        agent: None,
        acd: None,
        kind: ChatKind::Wm {
            token: token.to_owned(),
        },
    });
    if let Some(s) = st.sessions.get_mut(token) {
        s.chat = Some(i);
    }
    st.unseen.push_back(i);
    inner.chat_started.notify_waiters();
    i
}

fn token_of(st: &State, i: usize) -> String {
    match &st.chats[i].kind {
        ChatKind::Wm { token } => token.clone(),
        ChatKind::Guest(_) => unreachable!("a web messaging chat"),
    }
}

fn outbound(st: &mut State, i: usize, kind: MessageType) -> StructuredMessage {
    let ms = st.now_ms();
    let id = new_id();
    let name = st.chats[i].agent.as_ref().map(|(_, n)| n.clone());
    StructuredMessage {
        id: Some(id.clone()),
        kind,
        text: None,
        direction: Some(Dir::Outbound),
        originating_entity: Some(OriginatingEntity::Human),
        channel: Some(Channel {
            time: Some(iso(ms)),
            message_id: Some(id),
            kind: Some("Private".into()),
            from: Some(Party {
                nickname: name,
                image: None,
                first_name: None,
                last_name: None,
            }),
            to: None,
        }),
        content: Vec::new(),
        events: Vec::new(),
        metadata: [("correlationId".to_owned(), Value::String(new_id()))].into(),
    }
}

pub(super) fn agent_joins(st: &mut State, i: usize, agent: &str) -> Result<()> {
    st.chats[i].agent = Some((new_id(), agent.to_owned()));
    let mut m = outbound(st, i, MessageType::Event);
    m.events.push(EventItem::presence(PresenceType::Join));
    let token = token_of(st, i);
    push_stored(st, &token, None, m);
    Ok(())
}

pub(super) fn agent_typing(st: &mut State, i: usize, on: bool) -> Result<()> {
    let mut m = outbound(st, i, MessageType::Event);
    m.events.push(EventItem {
        event_type: EventType::Typing,
        typing: Some(Typing {
            kind: if on { TypingType::On } else { TypingType::Off },
            duration: Some(if on { 5000 } else { 1000 }),
        }),
        presence: None,
    });
    let token = token_of(st, i);
    push_message(st, &token, None, m);
    Ok(())
}

pub(super) fn agent_says(st: &mut State, i: usize, text: &str) -> Result<String> {
    let mut m = outbound(st, i, MessageType::Text);
    m.text = Some(text.to_owned());
    let id = m.id.clone().unwrap_or_default();
    let token = token_of(st, i);
    push_stored(st, &token, None, m);
    Ok(id)
}

pub(super) fn agent_says_swapped(
    _inner: &Inner,
    st: &mut State,
    i: usize,
    first: &str,
    second: &str,
) -> Result<(String, String)> {
    let mut a = outbound(st, i, MessageType::Text);
    a.text = Some(first.to_owned());
    let mut b = outbound(st, i, MessageType::Text);
    b.text = Some(second.to_owned());
    let ids = (
        a.id.clone().unwrap_or_default(),
        b.id.clone().unwrap_or_default(),
    );
    let token = token_of(st, i);
    if let Some(s) = st.sessions.get_mut(&token) {
        s.history.push(a.clone());
        s.history.push(b.clone());
    }
    for m in [b, a] {
        push_message(st, &token, None, m);
    }
    Ok(ids)
}

pub(super) fn agent_sends_file(
    st: &mut State,
    i: usize,
    base: &str,
    name: &str,
    mime: &str,
    bytes: &[u8],
) -> Result<String> {
    let file_id = new_id();
    st.files.insert(
        file_id.clone(),
        File {
            name: name.to_owned(),
            mime: mime.to_owned(),
            bytes: bytes.to_vec(),
        },
    );
    let mut m = outbound(st, i, MessageType::Text);
    m.content.push(ContentItem::attachment(AttachmentWire {
        url: Some(format!("{base}/downloads/{file_id}")),
        filename: Some(name.to_owned()),
        file_size: Some(bytes.len() as u64),
        media_type: Some(media_type(mime).into()),
        mime: Some(mime.to_owned()),
        id: file_id,
    }));
    let id = m.id.clone().unwrap_or_default();
    let token = token_of(st, i);
    push_stored(st, &token, None, m);
    Ok(id)
}

pub(super) fn agent_ends(opts: &super::SimOptions, st: &mut State, i: usize) -> Result<()> {
    let mut m = outbound(st, i, MessageType::Event);
    m.events.push(EventItem::presence(PresenceType::Disconnect));
    if opts.read_only_disconnect {
        m.metadata
            .insert("readOnly".into(), Value::String("true".into()));
    }
    let token = token_of(st, i);
    if let Some(s) = st.sessions.get_mut(&token) {
        s.read_only = opts.read_only_disconnect;
        s.chat = None;
    }
    push_stored(st, &token, None, m);
    Ok(())
}

pub(super) async fn history(
    AxState(inner): AxState<Arc<Inner>>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    remember_host(&inner, &headers);
    let mut st = inner.lock();
    let path = "GET /api/v2/webmessaging/messages";
    st.record_json(Direction::ClientToServer, path, json!({ "query": q }));
    let unauthorized = |st: &mut State, msg: &str| {
        let body = json!({"status": 401, "code": "authentication.required", "message": msg});
        st.record_json(Direction::ServerToClient, path, body.clone());
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    };
    let jwt = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(jwt) = jwt else {
        return unauthorized(
            &mut st,
            "No authentication bearer token specified in authorization header.",
        );
    };
    if st.expired_jwts.contains(&jwt) {
        return unauthorized(&mut st, "Authentication token has expired.");
    }
    let token = match st.jwts.get(&jwt) {
        Some(JwtOwner::Wm(t)) => t.clone(),
        _ => return unauthorized(&mut st, "Invalid login credentials."),
    };
    let num = |k: &str, d: u32| {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<u32>())
            .unwrap_or(Ok(d))
    };
    let (Ok(size), Ok(number)) = (num("pageSize", 25), num("pageNumber", 1)) else {
        let body = json!({"status": 400, "code": "invalid.query.param.value", "message": "pageSize and pageNumber are integers"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    if !(1..=100).contains(&size) || number == 0 {
        let body = json!({"status": 400, "code": "invalid.query.param.value", "message": "pageSize is 1 to 100, pageNumber from 1"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let all: Vec<StructuredMessage> = st
        .sessions
        .get(&token)
        .map(|s| s.history.iter().rev().cloned().collect())
        .unwrap_or_default();
    let total = all.len() as u64;
    let entities: Vec<StructuredMessage> = all
        .into_iter()
        .skip(((number - 1) * size) as usize)
        .take(size as usize)
        .collect();
    let page = HistoryPage {
        page_size: entities.len() as u32,
        entities,
        page_number: number,
        total,
        page_count: total.div_ceil(u64::from(size)) as u32,
    };
    let body = serde_json::to_value(&page).unwrap_or(Value::Null);
    st.record_json(
        Direction::ServerToClient,
        path,
        json!({"total": total, "pageNumber": number}),
    );
    axum::Json(body).into_response()
}

pub(super) async fn upload(
    AxState(inner): AxState<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = inner.lock();
    st.record_json(
        Direction::ClientToServer,
        "PUT /uploads",
        json!({"bytes": body.len(), "x-amz-tagging": headers.get("x-amz-tagging").and_then(|h| h.to_str().ok())}),
    );
    let tagging = headers
        .get("x-amz-tagging")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let base = st.base(inner.addr);
    let Some(u) = st.uploads.get_mut(&id) else {
        return (StatusCode::NOT_FOUND, "no such upload").into_response();
    };
    let failure = if tagging.as_deref() != Some(u.tagging.as_str()) {
        Some((4003, "the presigned headers were not sent"))
    } else if body.len() as u64 != u.size {
        Some((4002, "the body does not have the announced size"))
    } else {
        None
    };
    let token = u.token.clone();
    if let Some((code, msg)) = failure {
        let text = frame(
            EnvelopeType::Message,
            200,
            None,
            ServerBody::UploadFailure(AttachmentError {
                attachment_id: id,
                error_code: code,
                error_message: msg.into(),
                timestamp: Some(iso(cc_core::Timestamp::now().unix_ms())),
            }),
        );
        st.push_token(&token, text);
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    u.done = true;
    let (name, mime) = (u.name.clone(), u.mime.clone());
    st.files.insert(
        id.clone(),
        File {
            name,
            mime,
            bytes: body.to_vec(),
        },
    );
    let text = frame(
        EnvelopeType::Message,
        200,
        None,
        ServerBody::UploadSuccess(UploadSuccess {
            download_url: format!("{base}/downloads/{id}"),
            attachment_id: id,
            timestamp: Some(iso(cc_core::Timestamp::now().unix_ms())),
        }),
    );
    st.push_token(&token, text);
    StatusCode::OK.into_response()
}

pub(super) async fn download(
    AxState(inner): AxState<Arc<Inner>>,
    Path(id): Path<String>,
) -> Response {
    let st = inner.lock();
    match st.files.get(&id) {
        Some(f) => (
            [
                (header::CONTENT_TYPE, f.mime.clone()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", f.name),
                ),
            ],
            f.bytes.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

pub(super) async fn deployment_config(
    AxState(inner): AxState<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    remember_host(&inner, &headers);
    if id != inner.opts.deployment_id {
        return (StatusCode::NOT_FOUND, "deployment not found").into_response();
    }
    let (host, ws) = {
        let st = inner.lock();
        (st.base(inner.addr), st.ws_base(inner.addr))
    };
    axum::Json(json!({
        "id": id, "version": "1", "languages": ["en-us"], "defaultLanguage": "en-us",
        "apiEndpoint": host, "status": "Active",
        "auth": {"enabled": false, "allowSessionUpgrade": false},
        "journeyEvents": {"enabled": false},
        "messenger": {"enabled": true, "apps": {"conversations": {
            "messagingEndpoint": ws,
            "showAgentTypingIndicator": true,
            "showUserTypingIndicator": inner.opts.typing_enabled,
            "autoStart": {"enabled": false},
            "conversationDisconnect": {"enabled": true, "type": if inner.opts.read_only_disconnect { "ReadOnly" } else { "Send" }},
            "conversationClear": {"enabled": inner.opts.clear_enabled},
            "markdown": {"enabled": true}
        }}, "fileUpload": {"modes": [{"fileTypes": ["*/*"], "maxFileSizeKB": inner.opts.max_file_size_kb}]}}
    }))
    .into_response()
}

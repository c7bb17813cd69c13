//! The guest chat v2 side of the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cc_core::Result;
use cc_testkit::{Direction, Received};
use serde_json::{Value, json};

use super::{
    Chat, ChatKind, GuestChat, Inner, JwtOwner, Owner, State, iso, make_jwt, new_id, run_socket,
};
use crate::wire::guest::{
    BASE_PATH, BodyType, CreateConversationRequest, CreateConversationResponse, EntityRef,
    ErrorBody, HEARTBEAT, MemberChange, MemberEntityList, MemberInfo, MemberRole, MemberState,
    MessageEntityList, SendMessageRequest, StreamEvent, WebChatMessage, WebChatTyping,
};

fn error(st: &mut State, endpoint: &str, status: u16, code: &str, message: &str) -> Response {
    let ctx = new_id();
    let body = ErrorBody {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
        context_id: Some(ctx.clone()),
        details: Vec::new(),
    };
    let v = serde_json::to_value(&body).unwrap_or(Value::Null);
    st.record_json(Direction::ServerToClient, endpoint, v.clone());
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("inin-correlation-id", ctx)],
        axum::Json(v),
    )
        .into_response();
    if status == 429 || status == 503 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// `401 bad.credentials`: a bearer that is not a guest chat JWT.
fn bad_credentials(st: &mut State, endpoint: &str) -> Response {
    error(
        st,
        endpoint,
        401,
        "bad.credentials",
        "Invalid login credentials.",
    )
}

/// `403 not.authorized` for this `what` (conversation, member).
fn not_authorized(st: &mut State, endpoint: &str, what: &str) -> Response {
    error(
        st,
        endpoint,
        403,
        "not.authorized",
        &format!("Not authorized for this {what}."),
    )
}

/// `400 chat.error.notnull.<request>.<field>`: a required `field` of `request` is missing.
fn not_null(st: &mut State, endpoint: &str, request: &str, field: &str) -> Response {
    error(
        st,
        endpoint,
        400,
        &format!("chat.error.notnull.{request}.{}", field.to_lowercase()),
        &format!("{field} may not be null"),
    )
}

/// `404 chat.error.not.found`: no such `what` (member, message).
fn not_found(st: &mut State, endpoint: &str, what: &str) -> Response {
    error(
        st,
        endpoint,
        404,
        "chat.error.not.found",
        &format!("The {what} was not found."),
    )
}

/// `400 invalid.query.param.value`, saying what the parameter may be.
fn invalid_query(st: &mut State, endpoint: &str, message: &str) -> Response {
    error(st, endpoint, 400, "invalid.query.param.value", message)
}

/// The JSON request body, or `400 bad.request` naming what is wrong with it.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn parse_body<T: serde::de::DeserializeOwned>(
    st: &mut State,
    endpoint: &str,
    body: &[u8],
) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            st,
            endpoint,
            400,
            "bad.request",
            &format!("Invalid body: {e}"),
        )
    })
}

/// `200` with `body` as JSON.
fn ok(st: &mut State, endpoint: &str, body: &impl serde::Serialize) -> Response {
    let v = serde_json::to_value(body).unwrap_or(Value::Null);
    st.record_json(Direction::ServerToClient, endpoint, v.clone());
    axum::Json(v).into_response()
}

fn injected(st: &mut State, endpoint: &str) -> Option<Response> {
    let status = st.fail_next.pop_front()?;
    let code = match status {
        429 => "too.many.requests.retry.after",
        503 => "service.unavailable",
        500 => "internal.server.error",
        401 => "credentials.expired",
        _ => "bad.request",
    };
    Some(error(
        st,
        endpoint,
        status,
        code,
        "injected by the simulator",
    ))
}

/// Authenticates a request for conversation `cid`: the chat index.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn auth(st: &mut State, endpoint: &str, headers: &HeaderMap, cid: &str) -> Result<usize, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(value) = value else {
        return Err(error(
            st,
            endpoint,
            401,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        ));
    };
    let Some(jwt) = value.strip_prefix("Bearer ") else {
        return Err(bad_credentials(st, endpoint));
    };
    if st.expired_jwts.contains(jwt) {
        return Err(error(
            st,
            endpoint,
            401,
            "credentials.expired",
            "Authentication token has expired.",
        ));
    }
    match st.jwts.get(jwt) {
        Some(JwtOwner::Guest(i)) if st.chats[*i].id == cid => Ok(*i),
        Some(JwtOwner::Guest(_)) => Err(not_authorized(st, endpoint, "conversation")),
        _ => Err(bad_credentials(st, endpoint)),
    }
}

/// A fault injected with `fail_next`, else the bearer check of a conversation request.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn authorized(
    st: &mut State,
    endpoint: &str,
    headers: &HeaderMap,
    cid: &str,
) -> Result<usize, Response> {
    if let Some(r) = injected(st, endpoint) {
        return Err(r);
    }
    auth(st, endpoint, headers, cid)
}

/// [`authorized`], plus: `mid` must be the guest member of the conversation.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn authorized_member(
    st: &mut State,
    endpoint: &str,
    headers: &HeaderMap,
    cid: &str,
    mid: &str,
) -> Result<usize, Response> {
    let i = authorized(st, endpoint, headers, cid)?;
    if gchat(st, i).member != mid {
        return Err(not_authorized(st, endpoint, "member"));
    }
    Ok(i)
}

fn gchat(st: &mut State, i: usize) -> &mut GuestChat {
    match &mut st.chats[i].kind {
        ChatKind::Guest(g) => g,
        ChatKind::Wm { .. } => unreachable!("a guest chat"),
    }
}

fn member_change(st: &mut State, i: usize, member: &str, state: MemberState) {
    let conv = st.chats[i].id.clone();
    if let Some(m) = gchat(st, i)
        .members
        .iter_mut()
        .find(|m| m.id.as_deref() == Some(member))
    {
        m.state = Some(state);
        if state == MemberState::Disconnected {
            m.leave_date = Some(iso(cc_core::Timestamp::now().unix_ms()));
        }
    }
    let ms = st.now_ms();
    let ev = StreamEvent::MemberChange(MemberChange {
        conversation: EntityRef {
            id: conv,
            self_uri: None,
        },
        member: MemberInfo {
            id: Some(member.to_owned()),
            state: Some(state),
            ..MemberInfo::default()
        },
        timestamp: Some(iso(ms)),
    });
    push_event(st, i, &ev);
}

fn push_event(st: &mut State, i: usize, ev: &StreamEvent) {
    let conv = st.chats[i].id.clone();
    let n = ev.to_notification(&conv, &new_id());
    let text = serde_json::to_string(&n).unwrap_or_default();
    st.push_guest(i, text);
}

fn add_message(
    st: &mut State,
    i: usize,
    sender: &str,
    body: &str,
    kind: BodyType,
) -> WebChatMessage {
    let conv = st.chats[i].id.clone();
    let ms = st.now_ms();
    let id = new_id();
    let m = WebChatMessage {
        self_uri: Some(format!("{BASE_PATH}/conversations/{conv}/messages/{id}")),
        id,
        name: None,
        conversation: EntityRef {
            id: conv,
            self_uri: None,
        },
        sender: MemberInfo {
            id: Some(sender.to_owned()),
            ..MemberInfo::default()
        },
        body: body.to_owned(),
        body_type: kind,
        timestamp: Some(iso(ms)),
    };
    gchat(st, i).messages.push(m.clone());
    push_event(st, i, &StreamEvent::Message(m.clone()));
    m
}

fn add_member(st: &mut State, i: usize, name: &str, role: MemberRole) -> String {
    let id = new_id();
    gchat(st, i).members.push(MemberInfo {
        id: Some(id.clone()),
        display_name: Some(name.to_owned()),
        role: Some(role),
        join_date: Some(iso(cc_core::Timestamp::now().unix_ms())),
        state: Some(MemberState::Alerting),
        ..MemberInfo::default()
    });
    id
}

pub(super) async fn create(
    AxState(inner): AxState<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    super::messaging::remember_host(&inner, &headers);
    let endpoint = "POST /api/v2/webchat/guest/conversations";
    let mut st = inner.lock();
    st.record(
        Direction::ClientToServer,
        endpoint,
        &String::from_utf8_lossy(&body),
    );
    if let Some(r) = injected(&mut st, endpoint) {
        return r;
    }
    let req: CreateConversationRequest = match parse_body(&mut st, endpoint, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    const REQUEST: &str = "createconversationrequest";
    let Some(org) = req.organization_id.as_deref() else {
        return not_null(&mut st, endpoint, REQUEST, "organizationId");
    };
    let Some(dep) = req.deployment_id.as_deref() else {
        return not_null(&mut st, endpoint, REQUEST, "deploymentId");
    };
    let Some(routing) = req.routing_target.as_ref() else {
        return not_null(&mut st, endpoint, REQUEST, "routingTarget");
    };
    let Some(member) = req.member_info.as_ref() else {
        return not_null(&mut st, endpoint, REQUEST, "memberInfo");
    };
    if member.display_name.as_deref().is_none_or(str::is_empty) {
        return not_null(&mut st, endpoint, REQUEST, "memberInfo.displayName");
    }
    if routing.target_type != "QUEUE" || routing.target_address.is_empty() {
        return error(
            &mut st,
            endpoint,
            400,
            "chat.error.createconversationrequest.routingtarget",
            "routingTarget must be a QUEUE with a targetAddress",
        );
    }
    if dep != inner.opts.deployment_id || org != inner.opts.org_id {
        return error(
            &mut st,
            endpoint,
            400,
            "chat.deployment.disabled",
            "The deployment is disabled or does not exist.",
        );
    }
    let conv = new_id();
    let member_id = new_id();
    let exp = cc_core::Timestamp::now().unix_ms() / 1000 + 75_000;
    let jwt = make_jwt(json!({
        "data": {"conv": conv, "sub": member_id, "did": dep},
        "org": org, "iss": "urn:purecloud:webchat",
        "iat": exp - 75_000, "exp": exp,
    }));
    let mut guest = member.clone();
    guest.id = Some(member_id.clone());
    guest.role = Some(MemberRole::Customer);
    guest.state = Some(MemberState::Alerting);
    guest.join_date = Some(iso(cc_core::Timestamp::now().unix_ms()));
    guest.authenticated_guest = Some(false);
    let name = member.display_name.clone();
    let i = st.new_chat(Chat {
        id: conv.clone(),
        customer_name: name,
        received: Vec::new(),
        agent: None,
        acd: None,
        kind: ChatKind::Guest(GuestChat {
            member: member_id,
            members: vec![guest.clone()],
            messages: Vec::new(),
            attached: false,
        }),
    });
    st.jwts.insert(jwt.clone(), JwtOwner::Guest(i));
    let ws = st.ws_base(inner.addr);
    let resp = CreateConversationResponse {
        id: conv,
        event_stream_uri: format!("{ws}/chat/jwt/{jwt}").into(),
        jwt: jwt.into(),
        member: MemberInfo {
            id: guest.id,
            ..MemberInfo::default()
        },
    };
    ok(&mut st, endpoint, &resp)
}

pub(super) async fn upgrade(
    AxState(inner): AxState<Arc<Inner>>,
    Path(jwt): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let i = {
        let st = inner.lock();
        if st.expired_jwts.contains(&jwt) {
            return (StatusCode::UNAUTHORIZED, "credentials.expired").into_response();
        }
        match st.jwts.get(&jwt) {
            Some(JwtOwner::Guest(i)) => *i,
            _ => return (StatusCode::UNAUTHORIZED, "bad.credentials").into_response(),
        }
    };
    let heartbeat = StreamEvent::Heartbeat.to_notification("", "");
    let beat = serde_json::to_string(&heartbeat).unwrap_or_default();
    debug_assert!(beat.contains(HEARTBEAT));
    let every = inner.opts.heartbeat;
    // 4 KiB read buffers, not tungstenite's 128 KiB: a simulator may hold thousands.
    ws.read_buffer_size(4 * 1024).on_upgrade(move |socket| {
        run_socket(
            inner,
            socket,
            Owner::Guest(i),
            move |inner, _| attached(inner, i),
            move |inner, socket, text| on_text(inner, socket, text),
            Some((every, beat)),
        )
    })
}

fn attached(inner: &Inner, i: usize) {
    let mut st = inner.lock();
    let first = !std::mem::replace(&mut gchat(&mut st, i).attached, true);
    if first {
        // Routing starts once the event stream is attached.
        let me = gchat(&mut st, i).member.clone();
        member_change(&mut st, i, &me, MemberState::Connected);
        st.unseen.push_back(i);
        inner.chat_started.notify_waiters();
    }
}

fn on_text(inner: &Inner, socket: u64, text: &str) {
    // The stream is server-to-client; the only client frame is the notification-service ping.
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if v.get("message").and_then(Value::as_str) == Some("ping") {
        let pong =
            serde_json::to_string(&StreamEvent::Pong.to_notification("", "")).unwrap_or_default();
        let st = inner.lock();
        super::send_to(&st, socket, pong);
    }
}

pub(super) async fn send_message(
    AxState(inner): AxState<Arc<Inner>>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = "POST /api/v2/webchat/guest/conversations/{id}/members/{id}/messages";
    let mut st = inner.lock();
    st.record(
        Direction::ClientToServer,
        endpoint,
        &String::from_utf8_lossy(&body),
    );
    let i = match authorized_member(&mut st, endpoint, &headers, &cid, &mid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let state = gchat(&mut st, i)
        .members
        .iter()
        .find(|m| m.id.as_deref() == Some(mid.as_str()))
        .and_then(|m| m.state);
    if state != Some(MemberState::Connected) {
        return error(
            &mut st,
            endpoint,
            400,
            "chat.error.member.state",
            "The member is not connected.",
        );
    }
    let req: SendMessageRequest = match parse_body(&mut st, endpoint, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(text) = req.body else {
        return not_null(
            &mut st,
            endpoint,
            "createconversationmessagerequest",
            "body",
        );
    };
    if text.chars().count() > inner.opts.max_chars {
        return error(
            &mut st,
            endpoint,
            400,
            "constraint.validation",
            "body must be at most 4000 characters",
        );
    }
    let kind = req.body_type.unwrap_or(BodyType::Standard);
    let received = match kind {
        BodyType::Notice => {
            let kind = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "notice".into());
            Received::Notice { kind }
        }
        BodyType::Standard => Received::Text {
            text: text.clone(),
            hidden: false,
        },
        _ => {
            return error(
                &mut st,
                endpoint,
                400,
                "invalid.value",
                "bodyType must be standard or notice",
            );
        }
    };
    st.chats[i].received.push(received);
    let m = add_message(&mut st, i, &mid, &text, kind);
    ok(&mut st, endpoint, &m)
}

pub(super) async fn typing(
    AxState(inner): AxState<Arc<Inner>>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "POST /api/v2/webchat/guest/conversations/{id}/members/{id}/typing";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, Value::Null);
    let i = match authorized_member(&mut st, endpoint, &headers, &cid, &mid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    st.chats[i].received.push(Received::Typing { on: true });
    let ms = st.now_ms();
    let t = WebChatTyping {
        id: new_id(),
        conversation: EntityRef {
            id: cid,
            self_uri: None,
        },
        sender: MemberInfo {
            id: Some(mid),
            ..MemberInfo::default()
        },
        timestamp: Some(iso(ms)),
    };
    push_event(&mut st, i, &StreamEvent::Typing(t.clone()));
    ok(&mut st, endpoint, &t)
}

pub(super) async fn leave(
    AxState(inner): AxState<Arc<Inner>>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "DELETE /api/v2/webchat/guest/conversations/{id}/members/{id}";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, Value::Null);
    let i = match authorized_member(&mut st, endpoint, &headers, &cid, &mid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    st.chats[i].received.push(Received::Ended);
    add_message(&mut st, i, &mid, "", BodyType::MemberLeave);
    member_change(&mut st, i, &mid, MemberState::Disconnected);
    if let Some((agent, _)) = st.chats[i].agent.take() {
        member_change(&mut st, i, &agent, MemberState::Disconnected);
    }
    st.record_json(Direction::ServerToClient, endpoint, json!({"status": 204}));
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn member(
    AxState(inner): AxState<Arc<Inner>>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "GET /api/v2/webchat/guest/conversations/{id}/members/{id}";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, Value::Null);
    let i = match authorized(&mut st, endpoint, &headers, &cid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let m = gchat(&mut st, i)
        .members
        .iter()
        .find(|m| m.id.as_deref() == Some(mid.as_str()))
        .cloned();
    match m {
        Some(m) => ok(&mut st, endpoint, &m),
        None => not_found(&mut st, endpoint, "member"),
    }
}

fn param<'a>(q: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    // The official client sends unset parameters as empty values: treat them as absent.
    q.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

pub(super) async fn members(
    AxState(inner): AxState<Arc<Inner>>,
    Path(cid): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "GET /api/v2/webchat/guest/conversations/{id}/members";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, json!({ "query": q }));
    let i = match auth(&mut st, endpoint, &headers, &cid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let size: u32 = param(&q, "pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let number: u32 = param(&q, "pageNumber")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let exclude = param(&q, "excludeDisconnectedMembers") == Some("true");
    let all: Vec<MemberInfo> = gchat(&mut st, i)
        .members
        .iter()
        .filter(|m| !exclude || m.state != Some(MemberState::Disconnected))
        .cloned()
        .collect();
    let total = all.len() as u64;
    let entities: Vec<MemberInfo> = all
        .into_iter()
        .skip(((number - 1) * size.max(1)) as usize)
        .take(size.max(1) as usize)
        .collect();
    let list = MemberEntityList {
        entities,
        page_size: size,
        page_number: number,
        total,
        page_count: total.div_ceil(u64::from(size.max(1))) as u32,
    };
    ok(&mut st, endpoint, &list)
}

pub(super) async fn messages(
    AxState(inner): AxState<Arc<Inner>>,
    Path(cid): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "GET /api/v2/webchat/guest/conversations/{id}/messages";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, json!({ "query": q }));
    let i = match authorized(&mut st, endpoint, &headers, &cid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let max: usize = match param(&q, "maxResults").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return invalid_query(&mut st, endpoint, "maxResults must be 1 to 100");
        }
    };
    let descending = match param(&q, "sortOrder") {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(_) => {
            return invalid_query(&mut st, endpoint, "sortOrder is ascending or descending");
        }
    };
    let all = gchat(&mut st, i).messages.clone();
    let pos = |id: &str| all.iter().position(|m| m.id == id);
    let mut lo = 0;
    let mut hi = all.len();
    if let Some(a) = param(&q, "after") {
        match pos(a) {
            Some(p) => lo = p + 1,
            None => {
                return not_found(&mut st, endpoint, "message");
            }
        }
    }
    if let Some(b) = param(&q, "before") {
        match pos(b) {
            Some(p) => hi = p,
            None => {
                return not_found(&mut st, endpoint, "message");
            }
        }
    }
    let slice: Vec<WebChatMessage> = if lo >= hi {
        Vec::new()
    } else {
        all[lo..hi].to_vec()
    };
    // Backward paging (`before`) serves the newest messages before the anchor.
    let (page, older, newer) = if param(&q, "before").is_some() && param(&q, "after").is_none() {
        let start = slice.len().saturating_sub(max);
        (slice[start..].to_vec(), start > 0 || lo > 0, hi < all.len())
    } else {
        let end = slice.len().min(max);
        (
            slice[..end].to_vec(),
            lo > 0,
            end < slice.len() || hi < all.len(),
        )
    };
    let base = format!("{BASE_PATH}/conversations/{cid}/messages");
    let list = MessageEntityList {
        page_size: page.len() as u32,
        previous_page: if older {
            page.first().map(|m| format!("{base}?before={}", m.id))
        } else {
            None
        },
        next: if newer {
            page.last().map(|m| format!("{base}?after={}", m.id))
        } else {
            None
        },
        self_uri: Some(base),
        entities: if descending {
            page.into_iter().rev().collect()
        } else {
            page
        },
    };
    ok(&mut st, endpoint, &list)
}

pub(super) async fn message(
    AxState(inner): AxState<Arc<Inner>>,
    Path((cid, msg)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let endpoint = "GET /api/v2/webchat/guest/conversations/{id}/messages/{id}";
    let mut st = inner.lock();
    st.record_json(Direction::ClientToServer, endpoint, Value::Null);
    let i = match auth(&mut st, endpoint, &headers, &cid) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let m = gchat(&mut st, i)
        .messages
        .iter()
        .find(|m| m.id == msg)
        .cloned();
    match m {
        Some(m) => ok(&mut st, endpoint, &m),
        None => not_found(&mut st, endpoint, "message"),
    }
}

pub(super) fn queue(st: &mut State, i: usize) -> Result<()> {
    if st.chats[i].acd.is_some() {
        return Ok(());
    }
    let acd = add_member(st, i, "ACD", MemberRole::Acd);
    st.chats[i].acd = Some(acd.clone());
    member_change(st, i, &acd, MemberState::Connected);
    Ok(())
}

pub(super) fn agent_joins(st: &mut State, i: usize, agent: &str) -> Result<()> {
    if let Some(acd) = st.chats[i].acd.take() {
        member_change(st, i, &acd, MemberState::Disconnected);
    }
    let id = add_member(st, i, agent, MemberRole::Agent);
    st.chats[i].agent = Some((id.clone(), agent.to_owned()));
    member_change(st, i, &id, MemberState::Alerting);
    member_change(st, i, &id, MemberState::Connected);
    add_message(st, i, &id, "", BodyType::MemberJoin);
    Ok(())
}

fn agent_id(st: &State, i: usize) -> Result<String> {
    st.chats[i]
        .agent
        .as_ref()
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            cc_core::Error::invalid(
                cc_core::Vendor::Genesys,
                "chat",
                "no agent has joined this chat",
            )
        })
}

pub(super) fn agent_typing(st: &mut State, i: usize, on: bool) -> Result<()> {
    let agent = agent_id(st, i)?;
    if !on {
        return Ok(()); // Guest chat has no "typing stopped": the client times out after ~4 s.
    }
    let ms = st.now_ms();
    let t = WebChatTyping {
        id: new_id(),
        conversation: EntityRef {
            id: st.chats[i].id.clone(),
            self_uri: None,
        },
        sender: MemberInfo {
            id: Some(agent),
            ..MemberInfo::default()
        },
        timestamp: Some(iso(ms)),
    };
    push_event(st, i, &StreamEvent::Typing(t));
    Ok(())
}

pub(super) fn agent_says(st: &mut State, i: usize, text: &str) -> Result<String> {
    let agent = agent_id(st, i)?;
    Ok(add_message(st, i, &agent, text, BodyType::Standard).id)
}

pub(super) fn agent_says_swapped(
    st: &mut State,
    i: usize,
    first: &str,
    second: &str,
) -> Result<(String, String)> {
    let agent = agent_id(st, i)?;
    let conv = st.chats[i].id.clone();
    let mk = |st: &mut State, body: &str| {
        let ms = st.now_ms();
        WebChatMessage {
            id: new_id(),
            name: None,
            conversation: EntityRef {
                id: conv.clone(),
                self_uri: None,
            },
            sender: MemberInfo {
                id: Some(agent.clone()),
                ..MemberInfo::default()
            },
            body: body.to_owned(),
            body_type: BodyType::Standard,
            timestamp: Some(iso(ms)),
            self_uri: None,
        }
    };
    let a = mk(st, first);
    let b = mk(st, second);
    gchat(st, i).messages.extend([a.clone(), b.clone()]);
    let ids = (a.id.clone(), b.id.clone());
    push_event(st, i, &StreamEvent::Message(b));
    push_event(st, i, &StreamEvent::Message(a));
    Ok(ids)
}

pub(super) fn agent_leaves(st: &mut State, i: usize) -> Result<()> {
    let agent = agent_id(st, i)?;
    st.chats[i].agent = None;
    add_message(st, i, &agent, "", BodyType::MemberLeave);
    member_change(st, i, &agent, MemberState::Disconnected);
    Ok(())
}

pub(super) fn agent_ends(st: &mut State, i: usize) -> Result<()> {
    if st.chats[i].agent.is_some() {
        agent_leaves(st, i)?;
    }
    let me = gchat(st, i).member.clone();
    member_change(st, i, &me, MemberState::Disconnected);
    Ok(())
}

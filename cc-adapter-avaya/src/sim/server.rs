//! The simulator's HTTP side: one handler that routes by method and path (the `:join` /
//! `:disconnect` verbs share a path segment with the id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cc_testkit::{Direction, Frame, Received};
use serde_json::{Value, json};

use super::{
    Chat, Claims, Inner, SimSession, State, new_id, now_rfc3339, participant_event, post_message,
};
use crate::wire::{
    self, MessagesPage, ParticipantType, ServerEvent, WireDialog, WireEngagement, WireParticipant,
    WireSession,
};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new().fallback(handle).with_state(inner)
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// A reply whose body fails after its head is sent: the server drops the connection.
fn broken() -> Response {
    let fail = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection broken by the simulator"))
    });
    Response::new(axum::body::Body::from_stream(fail))
}

/// Takes one of `count` if any is left.
fn take_one(count: &mut usize) -> bool {
    let some = *count > 0;
    *count = count.saturating_sub(1);
    some
}

fn ok(v: impl serde::Serialize) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&v).unwrap_or_default(),
    )
        .into_response()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn engagement_json(c: &Chat) -> WireEngagement {
    let mut participants: Vec<WireParticipant> = c.sessions.iter().map(|s| s.1.clone()).collect();
    participants.extend(c.others.iter().cloned());
    WireEngagement {
        engagement_id: c.id.clone(),
        dialogs: vec![WireDialog {
            dialog_id: c.dialog.clone(),
            dialog_status: if c.ended {
                wire::DialogStatus::Terminated
            } else if c.sessions.is_empty() {
                wire::DialogStatus::Pending
            } else {
                wire::DialogStatus::Active
            },
            created_at: Some(c.created_at.clone()),
            last_updated_at: Some(now_rfc3339()),
            participants,
        }],
    }
}

fn session_json(st: &State, id: &str) -> Option<WireSession> {
    let s = st.sessions.get(id)?;
    Some(WireSession {
        session_id: id.to_owned(),
        display_name: s.display_name.clone(),
        session_parameters: s.parameters.clone(),
        engagements: st
            .chats
            .iter()
            .filter(|c| c.customer == s.customer && !c.ended)
            .map(engagement_json)
            .collect(),
    })
}

/// How often the sessions unused for longer than the expiry are swept out. A session is
/// checked on each of its own requests ([`live_session`]); the sweep only frees the memory
/// of those nobody asks for, and running it on every request would cost a pass over every
/// session per request.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Forgets sessions unused for longer than the expiry (at most once per [`SWEEP_EVERY`]).
fn expire_sessions(inner: &Inner, st: &mut State) {
    let now = tokio::time::Instant::now();
    if st
        .last_sweep
        .is_some_and(|t| now.duration_since(t) < SWEEP_EVERY)
    {
        return;
    }
    st.last_sweep = Some(now);
    let limit = inner.opts.session_expiry;
    st.sessions
        .retain(|_, s| now.duration_since(s.last_seen) <= limit);
}

/// The session `id` if it exists and has not expired (an expired one is forgotten now).
fn live_session<'a>(inner: &Inner, st: &'a mut State, id: &str) -> Option<&'a mut SimSession> {
    let now = tokio::time::Instant::now();
    let expired = st
        .sessions
        .get(id)
        .is_some_and(|s| now.duration_since(s.last_seen) > inner.opts.session_expiry);
    if expired {
        st.sessions.remove(id);
    }
    st.sessions.get_mut(id)
}

async fn handle(
    AxState(inner): AxState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prefix = format!(
        "/sdk/digital/chat/v1/integrations/{}/",
        inner.opts.integration_id
    );
    let path = uri.path().to_owned();
    let is_probe = headers.contains_key(wire::ROUTE_HEADER);
    let is_poll = path.ends_with("/events");
    if !is_poll || is_probe {
        let mut channel = format!("{method} {path}");
        if method == Method::DELETE
            && let Some(q) = uri.query()
        {
            channel.push('?');
            channel.push_str(q);
        }
        if is_probe {
            channel.push_str(" (probe)");
        }
        let body_json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        inner.lock().frames.push(Frame {
            direction: Direction::ClientToServer,
            channel,
            body: body_json,
        });
    }
    if let Some(account) = path
        .strip_prefix(TOKENS_PREFIX)
        .and_then(|r| r.strip_suffix("/tokens"))
    {
        return mint_customer_token(&inner, &method, account, &headers, &body);
    }
    let Some(rest) = path.strip_prefix(&prefix) else {
        if path.contains("/sdk/digital/chat/v1/integrations/") {
            return problem(StatusCode::FORBIDDEN, "Forbidden", "Unknown integration");
        }
        return problem(StatusCode::NOT_FOUND, "Not Found", "No such path");
    };
    if headers
        .get(wire::APPKEY_HEADER)
        .and_then(|v| v.to_str().ok())
        != Some(&inner.opts.appkey)
    {
        return problem(StatusCode::FORBIDDEN, "Forbidden", "Invalid appkey");
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let claims = match inner.check_token(&bearer) {
        Ok(c) => c,
        Err(detail) => return problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail),
    };
    if claims.integration_id != inner.opts.integration_id {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Token for another integration",
        );
    }
    expire_sessions(&inner, &mut inner.lock());
    let parts: Vec<&str> = rest.split('/').collect();
    let q = query(&uri);
    match (method.clone(), parts.as_slice()) {
        (Method::POST, ["sessions"]) => create_session(&inner, &claims, &body),
        (Method::GET, ["sessions", id]) => {
            let mut st = inner.lock();
            match live_session(&inner, &mut st, id) {
                Some(s) if s.customer == claims.sub => {
                    s.last_seen = tokio::time::Instant::now();
                }
                _ => return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found"),
            }
            ok(session_json(&st, id))
        }
        (Method::DELETE, ["sessions", id]) => {
            let mut st = inner.lock();
            if st.sessions.remove(*id).is_none() {
                return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
            }
            st.deleted
                .push(((*id).to_owned(), q.get("reason").cloned()));
            for c in &mut st.chats {
                c.sessions.retain(|s| s.0 != *id);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["sessions", id, "events"]) => {
            poll(&inner, id, &claims, q.get("lastEventId"), is_probe, &bearer).await
        }
        (Method::POST, ["engagements"]) => create_engagement(&inner, &claims, &body),
        (Method::GET, ["engagements", id]) => {
            let st = inner.lock();
            match st
                .chats
                .iter()
                .find(|c| c.id == *id && c.customer == claims.sub)
            {
                Some(c) => ok(engagement_json(c)),
                None => problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found"),
            }
        }
        (Method::POST, ["engagements", verb]) => {
            if let Some(id) = verb.strip_suffix(":join") {
                join(&inner, &claims, id, &body)
            } else if let Some(id) = verb.strip_suffix(":disconnect") {
                disconnect(&inner, &claims, id, &body)
            } else {
                problem(StatusCode::NOT_FOUND, "Not Found", "No such path")
            }
        }
        (Method::POST, ["engagements", id, "messages"]) => {
            let (brk, after) = {
                let mut st = inner.lock();
                (take_one(&mut st.break_sends), st.break_sends_after)
            };
            match (brk, after) {
                (false, _) => send(&inner, &claims, id, &body),
                (true, false) => broken(),
                (true, true) => {
                    // Taken and echoed; the reply is lost with the connection.
                    let _taken = send(&inner, &claims, id, &body);
                    broken()
                }
            }
        }
        (Method::GET, ["engagements", id, "messages"]) => {
            super::pass(&inner.history_held).await;
            list(&inner, &claims, id, &q, &headers, &path)
        }
        _ => problem(StatusCode::NOT_FOUND, "Not Found", "No such path"),
    }
}

/// The customer backend's token endpoint (§3.7 step 2), under this prefix:
/// `POST /api/digital/chat/v1/accounts/{accountId}/tokens`.
const TOKENS_PREFIX: &str = "/api/digital/chat/v1/accounts/";

/// The body of a token request (the fields the simulator checks; others are accepted).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    integration_id: String,
    customer_id: String,
    #[serde(default)]
    customer_name: Option<String>,
    #[serde(default)]
    ttl: Option<u64>,
}

/// Mints a customer JWT as the backend token endpoint does: `appkey` required, the
/// account and integration of this simulator, `customerId` 1..=256 characters,
/// `customerName` ≤ 70, `ttl` 15..=60 minutes (default 15; the simulator's own
/// [`super::SimOptions::token_ttl`] when it is shorter, so expiry tests stay short).
/// The OAuth client-credentials step before it is not simulated: no access token is checked.
fn mint_customer_token(
    inner: &Inner,
    method: &Method,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if *method != Method::POST {
        return problem(StatusCode::NOT_FOUND, "Not Found", "No such path");
    }
    if headers
        .get(wire::APPKEY_HEADER)
        .and_then(|v| v.to_str().ok())
        != Some(&inner.opts.appkey)
    {
        return problem(StatusCode::FORBIDDEN, "Forbidden", "Invalid appkey");
    }
    if account != inner.opts.account_id {
        return problem(StatusCode::NOT_FOUND, "Not Found", "Account not found");
    }
    let req: TokenRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad_request("body", &e.to_string(), 1000),
    };
    if req.integration_id != inner.opts.integration_id {
        return bad_request("integrationId", "unknown integration", 1001);
    }
    let id_len = req.customer_id.chars().count();
    if !(1..=256).contains(&id_len) {
        return bad_request("customerId", "size must be between 1 and 256", 1002);
    }
    if req
        .customer_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 70)
    {
        return bad_request("customerName", "size must be at most 70", 1003);
    }
    let minutes = req.ttl.unwrap_or(15);
    if !(15..=60).contains(&minutes) {
        return bad_request("ttl", "must be between 15 and 60", 1004);
    }
    let ttl = Duration::from_secs(minutes * 60).min(inner.opts.token_ttl);
    match inner.mint(&req.customer_id, ttl) {
        Ok(token) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "jwtToken": token.expose() }).to_string(),
        )
            .into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &e.to_string(),
        ),
    }
}

fn bad_request(field: &str, message: &str, code: i64) -> Response {
    let body = json!({
        "type": "about:blank", "title": "Bad Request", "status": 400,
        "detail": "Request validation failed",
        "violations": [{ "field": field, "message": message, "code": code }],
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The vendor's `MappedData` limits: ≤ 20 pairs, keys 1..=64, values ≤ 256 characters.
fn check_mapped(map: &std::collections::BTreeMap<String, String>, field: &str) -> Option<Response> {
    if map.len() > 20 {
        return Some(bad_request(field, "at most 20 entries", 20002));
    }
    for (k, v) in map {
        let kn = k.chars().count();
        if kn == 0 || kn > 64 {
            return Some(bad_request(
                &format!("{field}.{k}"),
                "keys are 1..64 characters",
                20002,
            ));
        }
        if v.chars().count() > 256 {
            return Some(bad_request(
                &format!("{field}.{k}"),
                "values are at most 256 characters",
                20002,
            ));
        }
    }
    None
}

fn create_session(inner: &Inner, claims: &Claims, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<wire::CreateSessionRequest>(body) else {
        return bad_request("body", "not a session request", 20001);
    };
    if req
        .display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 70)
    {
        return bad_request("displayName", "at most 70 characters", 20002);
    }
    if let Some(r) = check_mapped(&req.session_parameters, "sessionParameters") {
        return r;
    }
    let id = new_id();
    let mut st = inner.lock();
    expire_sessions(inner, &mut st);
    st.sessions.insert(
        id.clone(),
        SimSession {
            customer: claims.sub.clone(),
            display_name: req.display_name,
            parameters: req.session_parameters,
            queue: Vec::new(),
            last_seen: tokio::time::Instant::now(),
            wake: Arc::new(tokio::sync::Notify::new()),
        },
    );
    ok(session_json(&st, &id))
}

fn own_session<'a>(
    inner: &Inner,
    st: &'a mut State,
    claims: &Claims,
    id: &str,
) -> Option<&'a mut SimSession> {
    let s = live_session(inner, st, id).filter(|s| s.customer == claims.sub)?;
    s.last_seen = tokio::time::Instant::now();
    Some(s)
}

fn create_engagement(inner: &Inner, claims: &Claims, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<wire::CreateEngagementRequest>(body) else {
        return bad_request("body", "not an engagement request", 20001);
    };
    if let Some(r) = check_mapped(&req.engagement_parameters, "engagementParameters") {
        return r;
    }
    let resp = {
        let mut st = inner.lock();
        let Some(s) = own_session(inner, &mut st, claims, &req.session_id) else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
        };
        let me = WireParticipant {
            participant_id: new_id(),
            participant_type: ParticipantType::Customer,
            display_name: s.display_name.clone(),
        };
        let chat = Chat {
            id: new_id(),
            dialog: new_id(),
            customer: claims.sub.clone(),
            customer_name: s.display_name.clone(),
            others: Vec::new(),
            sessions: vec![(req.session_id.clone(), me.clone())],
            messages: Vec::new(),
            received: Vec::new(),
            ended: false,
            returned: false,
            created_at: now_rfc3339(),
        };
        let mut json = engagement_json(&chat);
        json.dialogs[0].dialog_status = wire::DialogStatus::Pending;
        json.dialogs[0].participants.clear();
        st.chats.push(chat);
        let i = st.chats.len() - 1;
        let created = ServerEvent::EngagementCreated(wire::EngagementCreatedEvent {
            engagement_id: st.chats[i].id.clone(),
            session_id: Some(req.session_id.clone()),
        });
        st.push(&req.session_id, &created);
        let added = ServerEvent::ParticipantAdded(participant_event(
            &st,
            i,
            &me,
            Some(req.session_id.clone()),
        ));
        st.push(&req.session_id, &added);
        json
    };
    inner.chat_started.notify_waiters();
    inner.chat_started.notify_one();
    ok(resp)
}

fn join(inner: &Inner, claims: &Claims, id: &str, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<wire::JoinRequest>(body) else {
        return bad_request("body", "not a join request", 20001);
    };
    let resp = {
        let mut st = inner.lock();
        let Some(s) = own_session(inner, &mut st, claims, &req.session_id) else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
        };
        let name = s.display_name.clone();
        let Some(i) = st
            .chats
            .iter()
            .position(|c| c.id == id && c.customer == claims.sub && !c.ended)
        else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found");
        };
        if st.chats[i].dialog != req.dialog_id {
            return bad_request("dialogId", "not the engagement's dialog", 20002);
        }
        // Joining again (a resumed session) is idempotent, and tells the session again.
        let known = st.chats[i]
            .sessions
            .iter()
            .find(|s| s.0 == req.session_id)
            .map(|s| s.1.clone());
        let me = match known {
            Some(p) => p,
            None => {
                let me = WireParticipant {
                    participant_id: new_id(),
                    participant_type: ParticipantType::Customer,
                    display_name: name,
                };
                st.chats[i]
                    .sessions
                    .push((req.session_id.clone(), me.clone()));
                me
            }
        };
        let ev = ServerEvent::ParticipantAdded(participant_event(
            &st,
            i,
            &me,
            Some(req.session_id.clone()),
        ));
        st.push(&req.session_id, &ev);
        engagement_json(&st.chats[i])
    };
    ok(resp)
}

fn disconnect(inner: &Inner, claims: &Claims, id: &str, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<wire::DisconnectRequest>(body) else {
        return bad_request("body", "not a disconnect request", 20001);
    };
    {
        let mut st = inner.lock();
        if own_session(inner, &mut st, claims, &req.session_id).is_none() {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
        }
        let Some(i) = st.chats.iter().position(|c| c.id == id && !c.ended) else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found");
        };
        st.chats[i].received.push(Received::Ended);
        st.chats[i].ended = true;
        let others = std::mem::take(&mut st.chats[i].others);
        let sessions = std::mem::take(&mut st.chats[i].sessions);
        for p in &others {
            let ev = ServerEvent::ParticipantDisconnected(participant_event(&st, i, p, None));
            for (s, _) in &sessions {
                st.push(s, &ev);
            }
        }
        for (s, p) in &sessions {
            let ev =
                ServerEvent::ParticipantDisconnected(participant_event(&st, i, p, Some(s.clone())));
            st.push(s, &ev);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn send(inner: &Inner, claims: &Claims, id: &str, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<wire::SendMessageRequest>(body) else {
        return bad_request("body", "not a message request", 20001);
    };
    let Some(text) = req.body.text().map(str::to_owned) else {
        return bad_request("body.elementText", "missing", 20002);
    };
    let n = text.chars().count();
    if n == 0 || n > 4096 {
        return bad_request("body.elementText.text", "1..4096 characters", 20006);
    }
    if let Some(p) = &req.parent_message_id
        && uuid::Uuid::parse_str(p).is_err()
    {
        return bad_request("parentMessageId", "not a UUID", 20002);
    }
    let m = {
        let mut st = inner.lock();
        if own_session(inner, &mut st, claims, &req.session_id).is_none() {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
        }
        let Some(i) = st.chats.iter().position(|c| c.id == id && !c.ended) else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found");
        };
        let Some(me) = st.chats[i]
            .sessions
            .iter()
            .find(|s| s.0 == req.session_id)
            .map(|s| s.1.clone())
        else {
            return problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found");
        };
        st.chats[i].received.push(Received::Text {
            text: text.clone(),
            hidden: false,
        });
        post_message(&mut st, i, &me, &text, "PLAINTEXT")
    };
    ok(m)
}

fn list(
    inner: &Inner,
    claims: &Claims,
    id: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    let size: usize = q.get("pageSize").and_then(|v| v.parse().ok()).unwrap_or(10);
    let number: usize = q
        .get("pageNumber")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if !(1..=50).contains(&size) || number == 0 {
        return bad_request("pageSize", "1..50", 20002);
    }
    let mut st = inner.lock();
    let session = q.get("sessionId").cloned().unwrap_or_default();
    if own_session(inner, &mut st, claims, &session).is_none() {
        return problem(StatusCode::NOT_FOUND, "Not Found", "Session not found");
    }
    let Some(c) = st
        .chats
        .iter()
        .find(|c| c.id == id && c.customer == claims.sub)
    else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "Engagement not found");
    };
    let newest: Vec<_> = c.messages.iter().rev().cloned().collect();
    let start = (number - 1) * size;
    let page: Vec<_> = newest.iter().skip(start).take(size).cloned().collect();
    let next = if start + size < newest.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        format!(
            "http://{host}{path}?sessionId={session}&dialogId={}&pageSize={size}&pageNumber={}&orderBy=DSC",
            c.dialog,
            number + 1
        )
    } else {
        String::new()
    };
    ok(MessagesPage {
        messages: page,
        pagination: wire::Pagination {
            page_number: number as u32,
        },
        links: wire::Links { next },
    })
}

async fn poll(
    inner: &Arc<Inner>,
    id: &str,
    claims: &Claims,
    last: Option<&String>,
    probe: bool,
    bearer: &str,
) -> Response {
    let deadline = tokio::time::Instant::now()
        + if probe {
            Duration::ZERO
        } else {
            inner.opts.hold
        };
    let ack: Option<u64> = last.and_then(|l| l.parse().ok());
    {
        let mut st = inner.lock();
        let fail = if probe {
            st.fail_probes > 0
        } else {
            st.fail_polls > 0
        };
        if fail {
            if probe {
                st.fail_probes -= 1;
            } else {
                st.fail_polls -= 1;
            }
            let status =
                StatusCode::from_u16(st.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return problem(status, "Simulated failure", "injected by the simulator");
        }
        if !probe && take_one(&mut st.break_polls) {
            return broken();
        }
    }
    loop {
        if !probe {
            super::pass(&inner.events_held).await;
        }
        let everyone = inner.events.notified();
        tokio::pin!(everyone);
        everyone.as_mut().enable();
        if let Err(detail) = inner.check_token(bearer) {
            return problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail);
        }
        let not_found = || problem(StatusCode::NOT_FOUND, "Not Found", wire::SESSION_NOT_FOUND);
        let wake = {
            let mut st = inner.lock();
            expire_sessions(inner, &mut st);
            match own_session(inner, &mut st, claims, id) {
                Some(s) => s.wake.clone(),
                None => return not_found(),
            }
        };
        // Listening before the queue is read: an event queued in between wakes this poll.
        let mine = wake.notified();
        tokio::pin!(mine);
        mine.as_mut().enable();
        {
            let mut st = inner.lock();
            let Some(s) = own_session(inner, &mut st, claims, id) else {
                return not_found();
            };
            if let Some(a) = ack {
                s.queue.retain(|(eid, _)| *eid > a);
            }
            if !s.queue.is_empty() {
                let batch: Vec<Value> = s.queue.iter().map(|(_, v)| v.clone()).collect();
                return ok(batch);
            }
        }
        let woken = async {
            tokio::select! {
                () = &mut mine => {}
                () = &mut everyone => {}
            }
        };
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return ok(Vec::<Value>::new());
        }
    }
}

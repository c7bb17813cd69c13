//! The simulator's HTTP and WebSocket handlers, and the chat logic both transports share.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Multipart, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cc_testkit::{Direction, Received};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ChatRec, Item, Page, Shared, SimStatus, State};
use crate::wire::dwr::{DwrRequest, ReplyLine, decode_call, write_reply};
use crate::wire::{Call, Push, TransRecord, url_encode};

type S = Arc<Shared>;

pub(crate) fn router(shared: S) -> Router {
    let root = shared.opts.root.trim_end_matches('/').to_owned();
    Router::new()
        .route(&format!("{root}/call/plaincall/{{name}}"), post(plaincall))
        .route(&format!("{root}/call/plainpoll/{{name}}"), post(plainpoll))
        .route(&format!("{root}/status"), get(status))
        .route(&format!("{root}/CaptchaImageServlet"), get(captcha))
        .route(&format!("{root}/upload"), post(upload))
        .route(&format!("{root}/download"), get(download))
        .route("/ws-chat-proxy/ws/chat", any(ws_upgrade))
        .with_state(shared)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn js(body: String, set_cookie: Option<String>) -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response();
    if let Some(c) = set_cookie
        && let Ok(v) = c.parse()
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The recorded body of a DWR call: JSON text parameters shown parsed.
fn call_frame(req: &DwrRequest) -> Value {
    let c = &req.calls[0];
    let params: Vec<Value> = c
        .params
        .iter()
        .map(|p| match p {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .unwrap_or_else(|| p.clone()),
            other => other.clone(),
        })
        .collect();
    json!({
        "method": format!("{}.{}", c.script, c.method),
        "params": params,
        "page": req.page,
        "scriptSessionId": req.script_session_id,
    })
}

async fn plaincall(
    AxState(sh): AxState<S>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let root = sh.opts.root.clone();
    let req = match DwrRequest::decode(&body) {
        Ok(r) if !r.calls.is_empty() => r,
        Ok(_) => return (StatusCode::BAD_REQUEST, "no call").into_response(),
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (browser, set_cookie) = match cookie(&headers, "JSESSIONID") {
        Some(b) => (b, None),
        None => {
            let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
            (
                id.clone(),
                Some(format!("JSESSIONID={id}; Path=/; HttpOnly")),
            )
        }
    };
    let page = req
        .script_session_id
        .split_once('/')
        .map_or(req.script_session_id.clone(), |(_, p)| p.to_owned());
    let batch = req.batch_id.to_string();
    let mut lines = Vec::new();
    {
        let mut st = sh.lock();
        st.record(
            Direction::ClientToServer,
            &format!("POST {root}/call/plaincall/{name}"),
            call_frame(&req),
        );
        for c in &req.calls {
            let call_id = c.id.to_string();
            match decode_call(c) {
                Ok(call) => match handle_call(&sh, &mut st, &browser, &page, call, false) {
                    Ok(v) => lines.push(ReplyLine::Callback {
                        batch: batch.clone(),
                        call: call_id,
                        value: v,
                    }),
                    Err(msg) => lines.push(ReplyLine::Exception {
                        batch: batch.clone(),
                        call: call_id,
                        message: msg,
                    }),
                },
                Err(msg) => lines.push(ReplyLine::Exception {
                    batch: batch.clone(),
                    call: call_id,
                    message: msg,
                }),
            }
        }
    }
    js(write_reply(&lines), set_cookie)
}

async fn plainpoll(
    AxState(sh): AxState<S>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let req = match DwrRequest::decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some(browser) = cookie(&headers, "JSESSIONID") else {
        return (StatusCode::BAD_REQUEST, "no session").into_response();
    };
    let page = req
        .script_session_id
        .split_once('/')
        .map_or(req.script_session_id.clone(), |(_, p)| p.to_owned());
    let next = req.next_reverse_ajax_index.unwrap_or(0);
    {
        let mut st = sh.lock();
        let root = sh.opts.root.clone();
        st.record(
            Direction::ClientToServer,
            &format!("POST {root}/call/plainpoll/{name}"),
            json!({"nextReverseAjaxIndex": next}),
        );
    }
    let mut kill = sh.net.watch();
    kill.borrow_and_update();
    let deadline = tokio::time::Instant::now() + sh.opts.poll_hold;
    loop {
        let (wake, ready) = {
            let mut st = sh.lock();
            let b = st.browser(&browser);
            let p = b.pages.entry(page.clone()).or_insert_with(new_page);
            // Everything below `next` is acknowledged.
            p.queue.retain(|(i, _)| *i >= next);
            let wake = Arc::clone(&p.wake);
            if p.queue.is_empty() {
                (wake, None)
            } else {
                let lines = p
                    .queue
                    .iter()
                    .map(|(i, item)| ReplyLine::ReverseAjax {
                        index: *i,
                        script: match item {
                            Item::Push(p) => crate::wire::dwr::encode_push(p),
                            Item::Raw(r) => r.clone(),
                        },
                    })
                    .collect::<Vec<_>>();
                (wake, Some(lines))
            }
        };
        if let Some(mut lines) = ready {
            lines.push(ReplyLine::Callback {
                batch: req.batch_id.to_string(),
                call: "0".into(),
                value: json!(sh.opts.poll_pause_ms),
            });
            return js(write_reply(&lines), None);
        }
        // A push queued since the check above left a permit: this returns at once.
        tokio::select! {
            () = wake.notified() => {}
            _ = kill.changed() => break,
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    js(
        write_reply(&[ReplyLine::Callback {
            batch: req.batch_id.to_string(),
            call: "0".into(),
            value: json!(sh.opts.poll_pause_ms),
        }]),
        None,
    )
}

fn new_page() -> Page {
    Page {
        queue: Vec::new(),
        next_index: 0,
        attached: false,
        ws: None,
        wake: Arc::default(),
    }
}

fn open_chats(st: &State, browser: &str) -> Vec<usize> {
    st.chats
        .iter()
        .enumerate()
        .filter(|(_, c)| c.browser == browser && !c.ended)
        .map(|(i, _)| i)
        .collect()
}

fn find_chat(st: &State, browser: &str, sid: Option<&str>) -> Result<usize, String> {
    let open = open_chats(st, browser);
    match sid {
        Some(sid) => open
            .into_iter()
            .find(|i| st.chats[*i].sid == sid)
            .ok_or_else(|| format!("no open chat {sid}")),
        None => open
            .last()
            .copied()
            .ok_or_else(|| "UnOpenedSessionNotAllowed".to_owned()),
    }
}

/// One call of either transport; the callback value (DWR) or an exception message.
pub(crate) fn handle_call(
    sh: &S,
    st: &mut State,
    browser: &str,
    page: &str,
    call: Call,
    ws: bool,
) -> Result<Value, String> {
    let now = cc_core::Timestamp::now().unix_ms();
    match call {
        Call::GenerateId => Ok(json!(st.long_id().to_uppercase())),
        Call::CheckHeartbeat => Ok(Value::Null),
        Call::PageUnloaded => {
            if let Some(p) = st.browser(browser).pages.get_mut(page) {
                p.attached = false;
            }
            Ok(Value::Null)
        }
        Call::IsValid => {
            let b = st.browser(browser);
            Ok(json!(!b.invalid))
        }
        Call::Open { cookie_enabled, .. } => {
            let b = st.browser(browser);
            let p = b.pages.entry(page.to_owned()).or_insert_with(new_page);
            p.attached = true;
            b.close_generation += 1;
            let timer_ended = b.ended_by_timer;
            let open = open_chats(st, browser);
            let push = if !cookie_enabled {
                Push::OpenFailed {
                    code: "CookiesDisabled".into(),
                    token: None,
                }
            } else if open.is_empty() {
                Push::OpenFailed {
                    code: if timer_ended {
                        "AlreadyEndedSession".into()
                    } else {
                        "NoSessionFound".into()
                    },
                    token: None,
                }
            } else {
                Push::OpenSuccess {
                    sessions: open.iter().map(|i| st.opened(*i)).collect(),
                    token: None,
                }
            };
            deliver_to_page(st, browser, page, push);
            Ok(Value::Null)
        }
        Call::Start {
            details,
            va_session,
            client_id,
        } => {
            let attached = st
                .browser(browser)
                .pages
                .get(page)
                .is_some_and(|p| p.attached);
            let fail = |st: &mut State, code: &str| {
                deliver_to_page(
                    st,
                    browser,
                    page,
                    Push::StartFailed {
                        code: code.to_owned(),
                        client_id: client_id.clone(),
                    },
                );
                Ok(Value::Null)
            };
            if !attached {
                return fail(st, "UnOpenedSessionPerformedStart");
            }
            if let Some(code) = st.fail_next_start.take() {
                return fail(st, &code);
            }
            let Ok(details) = serde_json::from_str::<Value>(&details) else {
                return fail(st, "StartError");
            };
            if let Some(want) = &sh.opts.captcha {
                match details.get("eEnteredCaptcha").and_then(Value::as_str) {
                    None => return fail(st, "CaptchaNotFound"),
                    Some("") => return fail(st, "CaptchaIsEmpty"),
                    Some(got) if got != want => return fail(st, "CaptchaDoesNotMatch"),
                    Some(_) => {}
                }
            }
            if client_id.is_some() {
                st.browser(browser).multichat = true;
            } else if !open_chats(st, browser).is_empty() {
                return fail(st, "AlreadyStartedAndInSession");
            }
            if st.chats.iter().filter(|c| !c.ended).count() >= sh.opts.max_concurrent {
                return fail(st, "MaxConcurrentSessionCountReached");
            }
            let sid = st.long_id();
            let tchatid = st.long_id();
            let name = details
                .get("eCustDetails")
                .and_then(|d| d.get("eCustName"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            st.chats.push(ChatRec {
                sid: sid.clone(),
                tchatid: tchatid.clone(),
                browser: browser.to_owned(),
                customer_name: name,
                client_id: client_id.clone(),
                agents: Vec::new(),
                trans: Vec::new(),
                received: Vec::new(),
                ended: false,
                returned: false,
                details,
                va_session: serde_json::from_str(&va_session).unwrap_or(Value::String(va_session)),
                acks: Vec::new(),
            });
            let i = st.chats.len() - 1;
            st.push(
                i,
                Push::StartSuccess {
                    sid,
                    tchatid,
                    param: Value::Null,
                    client_id,
                },
                None,
            );
            sh.chat_started.notify_waiters();
            Ok(Value::Null)
        }
        Call::SendMessage { msg, seq, sid } => {
            let i = find_chat(st, browser, sid.as_deref())?;
            if let Some(mid) = st
                .browser(browser)
                .seqs
                .get(&(page.to_owned(), seq))
                .cloned()
            {
                if ws {
                    deliver_to_page(st, browser, page, accepted(seq, &mid, &st.chats[i].sid));
                }
                return Ok(json!(mid));
            }
            let mid = st.id("c");
            st.browser(browser)
                .seqs
                .insert((page.to_owned(), seq), mid.clone());
            let c = &mut st.chats[i];
            c.received.push(Received::Text {
                text: msg.clone(),
                hidden: false,
            });
            c.trans.push(TransRecord {
                kind: "msg".into(),
                by: Some("c".into()),
                msg: Some(url_encode(&msg)),
                name: None,
                id: Some(mid.clone()),
                time: Some(now),
            });
            let chat_sid = c.sid.clone();
            let echo = Push::Echo {
                msg,
                id: mid.clone(),
                sid: Some(chat_sid.clone()),
            };
            if ws {
                deliver_to_page(st, browser, page, accepted(seq, &mid, &chat_sid));
                st.push(i, echo, Some(page));
            } else {
                st.push(i, echo, None);
            }
            Ok(json!(mid))
        }
        Call::SendAppMessage { msg, seq, sid } => {
            let i = find_chat(st, browser, sid.as_deref())?;
            if let Some(mid) = st
                .browser(browser)
                .seqs
                .get(&(page.to_owned(), seq))
                .cloned()
            {
                if ws {
                    deliver_to_page(st, browser, page, accepted(seq, &mid, &st.chats[i].sid));
                }
                return Ok(json!(mid));
            }
            let obj: Value = serde_json::from_str(&msg).map_err(|_| "app message is not JSON")?;
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .ok_or("app message without a type")?
                .to_owned();
            let mid = st.id("c");
            st.browser(browser)
                .seqs
                .insert((page.to_owned(), seq), mid.clone());
            if crate::wire::is_av_signal(&kind) {
                // Call signalling: the CSO side's call engine takes it, not the transcript.
                super::av::on_customer(sh, st, i, &obj);
            } else {
                st.chats[i].received.push(Received::Notice { kind });
            }
            if ws {
                let chat_sid = st.chats[i].sid.clone();
                deliver_to_page(st, browser, page, accepted(seq, &mid, &chat_sid));
            }
            Ok(json!(mid))
        }
        Call::Typing { state, sid } => {
            let i = find_chat(st, browser, sid.as_deref())?;
            st.chats[i]
                .received
                .push(Received::Typing { on: state == 0 });
            Ok(Value::Null)
        }
        Call::End { reason, sid } => {
            let i = find_chat(st, browser, sid.as_deref())?;
            let c = &mut st.chats[i];
            c.ended = true;
            c.received.push(Received::Ended);
            let chat_sid = c.sid.clone();
            super::av::chat_ended(st, &chat_sid);
            st.push(
                i,
                Push::ClientsideEnd {
                    reason: Some(reason),
                    sid: Some(chat_sid),
                },
                None,
            );
            Ok(Value::Null)
        }
        Call::Close => {
            let b = st.browser(browser);
            if let Some(p) = b.pages.get_mut(page) {
                p.attached = false;
            }
            if !b.pages.values().any(|p| p.attached) {
                b.close_generation += 1;
                let generation = b.close_generation;
                let sh2 = sh.clone();
                let browser = browser.to_owned();
                let after = sh.opts.close_end_after;
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let mut st = sh2.lock();
                    let b = st.browser(&browser);
                    if b.close_generation != generation || b.pages.values().any(|p| p.attached) {
                        return;
                    }
                    b.ended_by_timer = true;
                    let mut ended = Vec::new();
                    for c in st.chats.iter_mut().filter(|c| c.browser == browser) {
                        c.ended = true;
                        ended.push(c.sid.clone());
                    }
                    for sid in ended {
                        super::av::chat_ended(&mut st, &sid);
                    }
                });
            }
            Ok(Value::Null)
        }
        Call::Ack { id, sid } => {
            if let Ok(i) = find_chat(st, browser, sid.as_deref()) {
                st.chats[i].acks.push(id);
            }
            Ok(Value::Null)
        }
        Call::GetAccessToken => {
            let t = st.long_id();
            st.tokens.push(t.clone());
            if ws {
                deliver_to_page(st, browser, page, Push::AccessToken { token: t.clone() });
            }
            Ok(json!(t))
        }
        Call::RequestCallback { contact, sid } => {
            let i = find_chat(st, browser, sid.as_deref())?;
            let ok = contact.chars().any(|c| c.is_ascii_digit());
            let chat_sid = st.chats[i].sid.clone();
            st.push(
                i,
                Push::CallbackRequestStatus {
                    is_customer_req: true,
                    status: json!(ok),
                    sid: Some(chat_sid),
                },
                None,
            );
            Ok(Value::Null)
        }
        Call::CreateCampaignContact { data } => {
            let response = match serde_json::from_str::<Value>(&data) {
                Ok(Value::Object(_)) => {
                    json!({"resultCode": 0, "resultMessage": "Contact created"})
                }
                _ => json!({"resultCode": 1, "resultMessage": "Invalid contact data"}),
            };
            deliver_to_page(st, browser, page, Push::CampaignContactCreated { response });
            Ok(Value::Null)
        }
        Call::Log { level, unit, msg } => {
            st.logs.push((level, unit, msg));
            Ok(Value::Null)
        }
    }
}

fn accepted(seq: u64, mid: &str, sid: &str) -> Push {
    Push::Accepted {
        seq,
        mid: mid.to_owned(),
        sid: Some(sid.to_owned()),
    }
}

fn deliver_to_page(st: &mut State, browser: &str, page: &str, push: Push) {
    let multichat = st.browser(browser).multichat;
    let mut frames = Vec::new();
    let b = st.browser(browser);
    let p = b.pages.entry(page.to_owned()).or_insert_with(new_page);
    super::push_page(p, &Item::Push(push), multichat, &mut frames);
    for f in frames {
        st.record(Direction::ServerToClient, f.0, f.1);
    }
}

async fn status(AxState(sh): AxState<S>) -> Response {
    let s = sh.lock().status.clone().unwrap_or(SimStatus::Online);
    match s {
        SimStatus::Online => "ONLINE".into_response(),
        SimStatus::Offline(m) => format!("OFFLINE ({m})").into_response(),
        SimStatus::Http(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct CaptchaQuery {
    #[serde(default)]
    reset: Option<String>,
}

async fn captcha(AxState(sh): AxState<S>, Query(q): Query<CaptchaQuery>) -> Response {
    let text = sh.opts.captcha.clone().unwrap_or_default();
    let reset = q.reset.as_deref() == Some("true");
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" data-reset=\"{reset}\"><text y=\"20\">{text}</text></svg>"
        ),
    )
        .into_response()
}

async fn upload(AxState(sh): AxState<S>, mut form: Multipart) -> Response {
    let mut sid = None;
    let mut file: Option<(String, String, Bytes)> = None;
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("sid") => sid = field.text().await.ok(),
            Some("file") => {
                let name = field.file_name().unwrap_or("file").to_owned();
                let ty = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                if let Ok(b) = field.bytes().await {
                    file = Some((name, ty, b));
                }
            }
            _ => {}
        }
    }
    let Some((name, ty, bytes)) = file else {
        return (StatusCode::BAD_REQUEST, "no file field").into_response();
    };
    let response = json!({"fileName": name, "fileSize": bytes.len(), "fileType": ty});
    let mut st = sh.lock();
    st.record(
        Direction::ClientToServer,
        &format!("POST {}/upload", sh.opts.root),
        response.clone(),
    );
    if let Some(i) = sid.and_then(|s| st.chats.iter().position(|c| c.sid == s)) {
        st.chats[i].received.push(Received::File {
            name: name.clone(),
            size: bytes.len() as u64,
        });
        st.push(
            i,
            Push::UploadComplete {
                response: response.clone(),
            },
            None,
        );
    }
    st.files.insert(name, bytes.to_vec());
    drop(st);
    axum::Json(response).into_response()
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    file: String,
}

async fn download(AxState(sh): AxState<S>, Query(q): Query<DownloadQuery>) -> Response {
    match sh.lock().files.get(&q.file) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ws_upgrade(AxState(sh): AxState<S>, upgrade: WebSocketUpgrade) -> Response {
    // 4 KiB read buffers, not tungstenite's 128 KiB: a simulator may hold thousands.
    upgrade
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| ws_conn(sh, socket))
}

async fn ws_conn(sh: S, mut socket: WebSocket) {
    let mut page = uuid::Uuid::new_v4().simple().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut browser: Option<String> = None;
    let mut kill = sh.net.watch();
    kill.borrow_and_update();
    loop {
        tokio::select! {
            _ = kill.changed() => break,
            out = rx.recv() => {
                let Some(text) = out else { break };
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                ws_frame(&sh, &mut browser, &mut page, &tx, &text);
            }
        }
    }
    if let Some(b) = browser {
        let mut st = sh.lock();
        // Only if no newer connection of the same page took over.
        if let Some(p) = st.browser(&b).pages.get_mut(&page)
            && p.ws.as_ref().is_some_and(|w| w.same_channel(&tx))
        {
            p.attached = false;
            p.ws = None;
        }
    }
    // Dropping the socket without a close frame, as a failing server does.
    tokio::time::sleep(Duration::from_millis(0)).await;
}

fn ws_frame(
    sh: &S,
    browser: &mut Option<String>,
    page: &mut String,
    tx: &mpsc::UnboundedSender<String>,
    text: &str,
) {
    let mut st = sh.lock();
    let mut recorded: Value = serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()));
    // `start.param` is the SessionDetails JSON text: recorded parsed.
    if recorded.get("type").and_then(Value::as_str) == Some("start")
        && let Some(p) = recorded.get("param").and_then(Value::as_str)
        && let Ok(v) = serde_json::from_str::<Value>(p)
    {
        recorded["param"] = v;
    }
    st.record(Direction::ClientToServer, "ws", recorded);
    let call = match crate::wire::ws::decode_call(text) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(json!({"type":"error","code":"BadFrame","reason":e}).to_string());
            return;
        }
    };
    if let Call::Open {
        token,
        page: client_page,
        ..
    } = &call
    {
        if let Some(p) = client_page {
            p.clone_into(page);
        }
        let page = page.as_str();
        // The browser session: the one the token names, else a new one.
        let b = match token {
            Some(t) if st.browsers.contains_key(t) => t.clone(),
            _ => st.long_id(),
        };
        st.browser(&b).multichat = true;
        st.browser(&b).token = Some(b.clone());
        let p = st
            .browser(&b)
            .pages
            .entry(page.to_owned())
            .or_insert_with(new_page);
        p.ws = Some(tx.clone());
        p.attached = true;
        st.browser(&b).close_generation += 1;
        let open = open_chats(&st, &b);
        let push = if open.is_empty() {
            let timer = st.browser(&b).ended_by_timer;
            Push::OpenFailed {
                code: if timer {
                    "AlreadyEndedSession".into()
                } else {
                    "NoSessionFound".into()
                },
                token: Some(b.clone()),
            }
        } else {
            Push::OpenSuccess {
                sessions: open.iter().map(|i| st.opened(*i)).collect(),
                token: Some(b.clone()),
            }
        };
        *browser = Some(b.clone());
        deliver_to_page(&mut st, &b, page, push);
        return;
    }
    let Some(b) = browser.clone() else {
        let _ = tx.send(json!({"type":"error","code":"UnOpenedSessionNotAllowed"}).to_string());
        return;
    };
    if let Err(code) = handle_call(sh, &mut st, &b, page.as_str(), call, true) {
        let _ = tx.send(json!({"type":"error","code":code}).to_string());
    }
}

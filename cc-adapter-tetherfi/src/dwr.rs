//! The DWR link: plain calls, the reverse-AJAX poll loop, cookies, and the offline rule.
//!
//! Cookies are kept here (`JSESSIONID` from the servlet, `DWRSESSIONID` from
//! `__System.generateId`), sent on every request and given to the app as the resume token.
//! Pushes are applied strictly in index order; an index below `nextReverseAjaxIndex` is a
//! repeat and skipped, and every poll reports the next index, which acknowledges the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cc_core::{ConnectionState, Error, Event, Result, Vendor};
use cc_transport::{HttpClient, Method, header};
use serde_json::Value;

use crate::client::Inner;
use crate::engine::{PollMachine, PollStep};
use crate::wire::dwr::{DwrRequest, ReplyLine, decode_push, encode_call, parse_reply};
use crate::wire::{Call, Push};

const V: Vendor = Vendor::Tetherfi;

/// The DWR connection of one page.
pub(crate) struct DwrLink {
    http: HttpClient,
    root: String,
    page: String,
    page_id: String,
    multichat: bool,
    batch: AtomicU64,
    cookies: Mutex<BTreeMap<String, String>>,
}

type Pushes = Vec<(u64, String)>;

impl DwrLink {
    fn new(inner: &Inner) -> Result<DwrLink> {
        let cfg = &inner.cfg;
        // The session's client: the same base, roots and timeout.
        let http = inner.http()?.clone();
        let mut cookies = BTreeMap::new();
        if let Some(t) = &cfg.resume_token {
            for part in t.expose().split(';') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        Ok(DwrLink {
            http,
            root: cfg.dwr_url("")?.path().trim_end_matches('/').to_owned(),
            page: cfg.page.clone(),
            page_id: inner.page_id.clone(),
            multichat: cfg.multichat,
            batch: AtomicU64::new(0),
            cookies: Mutex::new(cookies),
        })
    }

    /// The `Cookie` header value, when any cookie is set.
    pub(crate) fn cookie_header(&self) -> Option<String> {
        let c = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        (!c.is_empty()).then(|| {
            c.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn script_session_id(&self) -> String {
        let c = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "{}/{}",
            c.get("DWRSESSIONID").map_or("", String::as_str),
            self.page_id
        )
    }

    async fn post(
        &self,
        path: &str,
        req: DwrRequest,
        timeout: Option<Duration>,
    ) -> Result<Vec<ReplyLine>> {
        let mut r = self
            .http
            .request(Method::POST, path)
            .header("accept", "text/javascript, text/plain, */*")
            .bytes(req.encode().into(), "text/plain");
        if let Some(c) = self.cookie_header() {
            r = r.header("cookie", &c);
        }
        if let Some(t) = timeout {
            r = r.timeout(t);
        }
        let resp = r.send().await.map_err(|e| match e {
            // A 5xx from the servlet or a proxy in front of it: the server is unreachable.
            Error::Rejected { code, message, .. } if code.starts_with('5') => {
                Error::transport(V, "DWR request", message)
            }
            other => other,
        })?;
        {
            let mut jar = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
            for v in resp.headers.get_all(header::SET_COOKIE) {
                if let Ok(s) = v.to_str()
                    && let Some((k, val)) = s.split(';').next().and_then(|p| p.split_once('='))
                {
                    jar.insert(k.trim().to_owned(), val.trim().to_owned());
                }
            }
        }
        let body = String::from_utf8_lossy(&resp.body);
        parse_reply(&body).map_err(|e| Error::protocol(V, format!("DWR reply to {path}"), e))
    }

    fn request(&self, calls: Vec<crate::wire::dwr::DwrCall>, next: Option<u64>) -> DwrRequest {
        DwrRequest {
            calls,
            batch_id: self.batch.fetch_add(1, Ordering::SeqCst),
            instance_id: 0,
            page: self.page.clone(),
            script_session_id: self.script_session_id(),
            next_reverse_ajax_index: next,
            partial_response: None,
        }
    }

    /// Makes one call: its callback value and any pushes the reply carried.
    pub(crate) async fn call(&self, call: &Call) -> Result<(Value, Pushes)> {
        let dc = encode_call(call, self.multichat, 0);
        let path = format!(
            "{}/call/plaincall/{}.{}.dwr",
            self.root, dc.script, dc.method
        );
        let req = self.request(vec![dc], None);
        let batch = req.batch_id.to_string();
        let method = call.dwr_name().1;
        let lines = self.post(&path, req, None).await?;
        let mut value = None;
        let mut pushes = Vec::new();
        for l in lines {
            match l {
                ReplyLine::Callback {
                    batch: b, value: v, ..
                } if b == batch => value = Some(v),
                ReplyLine::Exception { message, .. }
                | ReplyLine::BatchException { message, .. } => {
                    return Err(crate::error::exception(method, &message));
                }
                ReplyLine::ReverseAjax { index, script } => pushes.push((index, script)),
                _ => {}
            }
        }
        let value = value.ok_or_else(|| {
            Error::protocol(
                V,
                format!("DWR reply to {method}"),
                "no callback for the batch",
            )
        })?;
        Ok((value, pushes))
    }

    /// One reverse-AJAX poll: the pause before the next one and the pushes.
    async fn poll(&self, next: u64, timeout: Duration) -> Result<(Duration, Pushes)> {
        let path = format!("{}/call/plainpoll/livechat.dwr", self.root);
        let mut req = self.request(Vec::new(), Some(next));
        req.partial_response = Some(0);
        let lines = self.post(&path, req, Some(timeout)).await?;
        let mut pause = Duration::ZERO;
        let mut pushes = Vec::new();
        for l in lines {
            match l {
                ReplyLine::Callback { value, .. } => {
                    pause = Duration::from_millis(value.as_u64().unwrap_or(0).min(60_000));
                }
                ReplyLine::ReverseAjax { index, script } => pushes.push((index, script)),
                ReplyLine::Exception { message, .. }
                | ReplyLine::BatchException { message, .. } => {
                    return Err(crate::error::exception("poll", &message));
                }
                ReplyLine::Unknown(_) => {}
            }
        }
        Ok((pause, pushes))
    }

    /// Keeps the pushes at or after `next` (in index order), advancing `next`.
    pub(crate) fn filter_pushes(next: &mut u64, mut pushes: Pushes) -> Vec<Result<Push, String>> {
        pushes.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (index, script) in pushes {
            if index < *next {
                continue;
            }
            *next = index + 1;
            out.push(decode_push(&script).map_err(|e| format!("push {index}: {e}")));
        }
        out
    }
}

/// Bootstraps the DWR session, starts the poll loop, and re-attaches with `Open`.
pub(crate) async fn start(inner: &Arc<Inner>) -> Result<()> {
    let link = Arc::new(DwrLink::new(inner)?);
    let has_id = link
        .cookies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key("DWRSESSIONID");
    if !has_id {
        let (v, _) = link.call(&Call::GenerateId).await?;
        let Value::String(id) = v else {
            return Err(Error::protocol(
                V,
                "__System.generateId callback",
                "expected a string",
            ));
        };
        link.cookies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert("DWRSESSIONID".into(), id);
    }
    let _ = inner.link.set(crate::client::Link::Dwr(link.clone()));
    inner.set_online(true, 0, Duration::ZERO);
    let me = inner.clone();
    inner.spawn(poll_loop(me, link));
    // The floating-chat flow: Open first; NoSessionFound means "start one".
    inner.open().await.map(drop).or_else(|e| {
        if e.vendor_code().is_some() {
            Ok(())
        } else {
            Err(e)
        }
    })
}

async fn poll_loop(inner: Arc<Inner>, link: Arc<DwrLink>) {
    let cfg = &inner.cfg;
    let mut machine = PollMachine::new(cfg.poll_retry(), cfg.max_retries);
    loop {
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let next = inner.lock().next_index;
        match link.poll(next, cfg.poll_timeout()).await {
            Ok((pause, pushes)) => {
                machine.on_poll_ok();
                {
                    let mut st = inner.lock();
                    let decoded = DwrLink::filter_pushes(&mut st.next_index, pushes);
                    inner.on_pushes(&mut st, decoded);
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Err(e) => {
                tracing::debug!(vendor = %V, error = %e, "poll failed");
                let (mut step, offline) = machine.on_poll_failed(std::time::Instant::now());
                if offline && let PollStep::Heartbeat(d) = step {
                    // OnServerStateChanged("offline").
                    inner.set_online(false, machine.attempt(), d);
                }
                loop {
                    match step {
                        PollStep::Poll(d) => {
                            tokio::time::sleep(d).await;
                            break;
                        }
                        PollStep::Heartbeat(d) => {
                            tokio::time::sleep(d).await;
                            if inner.closed.load(Ordering::SeqCst) {
                                return;
                            }
                            if link.call(&Call::CheckHeartbeat).await.is_ok() {
                                machine.on_heartbeat_ok();
                                back_online(&inner, &link).await;
                                break;
                            }
                            step = machine.on_heartbeat_failed(std::time::Instant::now());
                            if let PollStep::Heartbeat(d) = step {
                                inner
                                    .bus
                                    .emit(Event::Connection(ConnectionState::Reconnecting {
                                        attempt: machine.attempt(),
                                        delay: d,
                                    }));
                            }
                        }
                        PollStep::GiveUp => {
                            inner.give_up("the server stayed unreachable");
                            inner
                                .bus
                                .emit(Event::Connection(ConnectionState::Disconnected {
                                    reason: Arc::from(format!(
                                        "the server stayed unreachable for {} retries",
                                        cfg.max_retries
                                    )),
                                }));
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// `OnServerStateChanged("online")`: ask `IsValid`; a lost session ends its chats
/// (`OnEnd("lib", "SessionLostWhileOffline")`).
async fn back_online(inner: &Arc<Inner>, link: &Arc<DwrLink>) {
    let valid = match link.call(&Call::IsValid).await {
        Ok((Value::Bool(b), _)) => b,
        Ok((other, _)) => {
            inner.bus.emit(Event::error(Error::protocol(
                V,
                "IsValid callback",
                format!("expected a boolean, got {other}"),
            )));
            true
        }
        Err(_) => true,
    };
    if !valid {
        inner.session_lost();
    }
    inner.set_online(true, 0, Duration::ZERO);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_apply_in_index_order_once() {
        let mut next = 3;
        let pushes = vec![
            (4, r#"__textchat.OnEcho("b","2");"#.to_owned()),
            (2, r#"__textchat.OnEcho("old","0");"#.to_owned()),
            (3, r#"__textchat.OnEcho("a","1");"#.to_owned()),
            (5, r#"__textchat.OnEcho("bad"#.to_owned()),
            (6, r#"__textchat.OnEcho("c","3");"#.to_owned()),
        ];
        let out = DwrLink::filter_pushes(&mut next, pushes.clone());
        assert_eq!(next, 7);
        let names: Vec<String> = out
            .iter()
            .map(|p| match p {
                Ok(Push::Echo { msg, .. }) => msg.clone(),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error: {}", &e[..6]),
            })
            .collect();
        assert_eq!(names, ["a", "b", "error: push 5", "c"]);
        // The same reply again (a poll answered twice): nothing new.
        assert!(DwrLink::filter_pushes(&mut next, pushes).is_empty());
    }
}

//! DWR 3 plain-call wire format (§3.2–3.6): request bodies, replies, pushes.
//!
//! A request is `POST {root}/call/plaincall/{script}.{method}.dwr` (or
//! `{root}/call/plainpoll/livechat.dwr` for the reverse-AJAX poll) with a `text/plain` body of
//! `key=value` lines ([`DwrRequest`]). Parameters are typed scalars: `string:<percent-encoded>`,
//! `number:<n>`, `boolean:<b>`, `null:null`.
//!
//! A reply is JavaScript: an anti-hijacking first line, a `//#DWR` marker, then one statement
//! per line ([`ReplyLine`]): `dwr.engine.remote.handleCallback("<batch>","<call>",<value>);`,
//! `handleException(…)`, `handleBatchException(…)`, and numbered pushes
//! `dwr.engine.remote.handleReverseAjax(<index>, function(){ __textchat.OnX(…); });`. Each push
//! is decoded on its own ([`decode_push`]), so one malformed push costs only itself.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::js::{self, parse_call, to_js};
use super::{Call, OpenedSession, Push, QueueInfo, url_decode, url_encode};

/// The first line of every reply: stops a cross-site `<script>` include from running it.
pub const PROTECTION: &str = "throw 'allowScriptTagRemoting is false.';";

/// One call in a request body.
#[derive(Clone, Debug, PartialEq)]
pub struct DwrCall {
    /// `__textchat`, `__System`, `__clientlog`.
    pub script: String,
    /// The method.
    pub method: String,
    /// The call's index in the batch.
    pub id: u32,
    /// The parameters: strings, numbers, booleans, nulls.
    pub params: Vec<Value>,
}

/// A request body.
#[derive(Clone, Debug, PartialEq)]
pub struct DwrRequest {
    /// The calls (empty for a poll).
    pub calls: Vec<DwrCall>,
    /// The batch id, increasing per page.
    pub batch_id: u64,
    /// The engine instance (0).
    pub instance_id: u32,
    /// The page path, plain (percent-encoded on the wire).
    pub page: String,
    /// `<DWRSESSIONID>/<pageId>`.
    pub script_session_id: String,
    /// The next push index the page expects (polls; calls while polling is off).
    pub next_reverse_ajax_index: Option<u64>,
    /// Polls: `0` (no streaming).
    pub partial_response: Option<u8>,
}

fn encode_param(v: &Value) -> String {
    match v {
        Value::String(s) => format!("string:{}", url_encode(s)),
        Value::Number(n) => format!("number:{n}"),
        Value::Bool(b) => format!("boolean:{b}"),
        _ => "null:null".to_owned(),
    }
}

fn decode_param(s: &str) -> Result<Value, String> {
    let (kind, raw) = s
        .split_once(':')
        .ok_or_else(|| format!("parameter `{s}` has no type"))?;
    match kind {
        "string" => Ok(Value::String(url_decode(raw))),
        "number" => js::parse_value(raw)
            .ok()
            .filter(Value::is_number)
            .ok_or_else(|| format!("bad number `{raw}`")),
        "boolean" => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("bad boolean `{raw}`")),
        },
        "null" | "undefined" => Ok(Value::Null),
        other => Err(format!("unsupported parameter type `{other}`")),
    }
}

impl DwrRequest {
    /// The body text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "callCount={}", self.calls.len());
        if let Some(i) = self.next_reverse_ajax_index {
            let _ = writeln!(out, "nextReverseAjaxIndex={i}");
        }
        for (n, c) in self.calls.iter().enumerate() {
            let _ = writeln!(out, "c{n}-scriptName={}", c.script);
            let _ = writeln!(out, "c{n}-methodName={}", c.method);
            let _ = writeln!(out, "c{n}-id={}", c.id);
            for (k, p) in c.params.iter().enumerate() {
                let _ = writeln!(out, "c{n}-param{k}={}", encode_param(p));
            }
        }
        let _ = writeln!(out, "batchId={}", self.batch_id);
        let _ = writeln!(out, "instanceId={}", self.instance_id);
        let _ = writeln!(out, "page={}", url_encode(&self.page));
        let _ = writeln!(out, "scriptSessionId={}", self.script_session_id);
        if let Some(p) = self.partial_response {
            let _ = writeln!(out, "partialResponse={p}");
        }
        out
    }

    /// Parses a body (the simulator's side); errors name the line.
    pub fn decode(body: &str) -> Result<DwrRequest, String> {
        let mut req = DwrRequest {
            calls: Vec::new(),
            batch_id: 0,
            instance_id: 0,
            page: String::new(),
            script_session_id: String::new(),
            next_reverse_ajax_index: None,
            partial_response: None,
        };
        let mut count: Option<usize> = None;
        for line in body.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line `{line}` is not key=value"))?;
            let num = |v: &str| -> Result<u64, String> {
                v.trim()
                    .parse()
                    .map_err(|_| format!("`{k}` is not a number"))
            };
            match k {
                "callCount" => {
                    let n = num(v)?;
                    if n > 100 {
                        return Err("callCount above 100".to_owned());
                    }
                    count = Some(n as usize);
                    req.calls = (0..n as u32)
                        .map(|id| DwrCall {
                            script: String::new(),
                            method: String::new(),
                            id,
                            params: Vec::new(),
                        })
                        .collect();
                }
                "batchId" => req.batch_id = num(v)?,
                "instanceId" => req.instance_id = u32::try_from(num(v)?).unwrap_or(0),
                "page" => req.page = url_decode(v),
                "scriptSessionId" => req.script_session_id = v.to_owned(),
                "nextReverseAjaxIndex" => req.next_reverse_ajax_index = Some(num(v)?),
                "partialResponse" => {
                    req.partial_response = Some(u8::try_from(num(v)?).unwrap_or(0));
                }
                key if key.starts_with('c') && key.contains('-') => {
                    let (idx, field) = key[1..].split_once('-').unwrap_or(("", ""));
                    let idx: usize = idx
                        .parse()
                        .map_err(|_| format!("bad call index in `{key}`"))?;
                    let call = req
                        .calls
                        .get_mut(idx)
                        .ok_or_else(|| format!("`{key}` names a call beyond callCount"))?;
                    match field {
                        "scriptName" => call.script = v.to_owned(),
                        "methodName" => call.method = v.to_owned(),
                        "id" => {}
                        f if f.starts_with("param") => {
                            let n: usize = f[5..]
                                .parse()
                                .map_err(|_| format!("bad parameter index in `{key}`"))?;
                            if n > 32 {
                                return Err(format!("`{key}`: too many parameters"));
                            }
                            if call.params.len() <= n {
                                call.params.resize(n + 1, Value::Null);
                            }
                            call.params[n] =
                                decode_param(v).map_err(|e| format!("`{key}`: {e}"))?;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if count.is_none() {
            return Err("no callCount".to_owned());
        }
        if let Some(c) = req
            .calls
            .iter()
            .find(|c| c.script.is_empty() || c.method.is_empty())
        {
            return Err(format!("call {} has no script or method name", c.id));
        }
        Ok(req)
    }
}

/// The DWR call for `call`; `multichat` adds the `Sid`/`clientId` parameters.
pub fn encode_call(call: &Call, multichat: bool, id: u32) -> DwrCall {
    let (script, method) = call.dwr_name();
    let s = |v: &str| Value::String(v.to_owned());
    let sid = |p: &mut Vec<Value>, sid: &Option<String>| {
        if multichat && let Some(sid) = sid {
            p.push(s(sid));
        }
    };
    let mut params = Vec::new();
    match call {
        Call::GenerateId | Call::CheckHeartbeat | Call::PageUnloaded => {}
        Call::IsValid | Call::GetAccessToken | Call::Close => {}
        Call::Open { cookie_enabled, .. } => params.push(Value::Bool(*cookie_enabled)),
        Call::Start {
            details,
            va_session,
            client_id,
        } => {
            params.push(s(details));
            params.push(s(va_session));
            if multichat && let Some(c) = client_id {
                params.push(s(c));
            }
        }
        Call::SendMessage { msg, seq, sid: id } => {
            // The wrapper URL-encodes the text; DWR's `string:` encodes it once more.
            params.push(s(&url_encode(msg)));
            params.push(json!(seq));
            sid(&mut params, id);
        }
        Call::SendAppMessage { msg, seq, sid: id } => {
            params.push(s(&url_encode(msg)));
            params.push(json!(seq));
            sid(&mut params, id);
        }
        Call::Typing { state, sid: id } => {
            params.push(json!(state));
            sid(&mut params, id);
        }
        Call::End { reason, sid: id } => {
            params.push(s(reason));
            sid(&mut params, id);
        }
        Call::Ack { id: mid, sid: id } => {
            params.push(s(mid));
            sid(&mut params, id);
        }
        Call::RequestCallback { contact, sid: id } => {
            params.push(s(contact));
            sid(&mut params, id);
        }
        Call::CreateCampaignContact { data } => params.push(s(data)),
        Call::Log { level, unit, msg } => {
            params.push(s(level));
            params.push(s(unit));
            params.push(s(msg));
        }
    }
    DwrCall {
        script: script.to_owned(),
        method: method.to_owned(),
        id,
        params,
    }
}

fn p_str(p: &[Value], i: usize, what: &str) -> Result<String, String> {
    match p.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(format!("missing parameter {i} ({what})")),
    }
}

fn p_opt(p: &[Value], i: usize) -> Option<String> {
    match p.get(i) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn p_num(p: &[Value], i: usize, what: &str) -> Result<u64, String> {
    match p.get(i) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{what} is not a count")),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{what} is not a number")),
        _ => Err(format!("missing parameter {i} ({what})")),
    }
}

/// The [`Call`] a DWR call stands for (the simulator's side).
pub fn decode_call(c: &DwrCall) -> Result<Call, String> {
    let p = &c.params;
    Ok(match (c.script.as_str(), c.method.as_str()) {
        ("__System", "generateId") => Call::GenerateId,
        ("__System", "checkHeartbeat") => Call::CheckHeartbeat,
        ("__System", "pageUnloaded") => Call::PageUnloaded,
        ("__clientlog", "Log") => Call::Log {
            level: p_str(p, 0, "type")?,
            unit: p_str(p, 1, "unit")?,
            msg: p_str(p, 2, "msg")?,
        },
        ("__textchat", m) => match m {
            "Open" => Call::Open {
                cookie_enabled: p.first().and_then(Value::as_bool).unwrap_or(false),
                token: None,
                page: None,
            },
            "Start" => Call::Start {
                details: p_str(p, 0, "sessionDetails")?,
                va_session: p_opt(p, 1).unwrap_or_else(|| "[]".to_owned()),
                client_id: p_opt(p, 2),
            },
            "SendMessage" => Call::SendMessage {
                msg: url_decode(&p_str(p, 0, "msg")?),
                seq: p_num(p, 1, "clientSeq")?,
                sid: p_opt(p, 2),
            },
            "SendAppMessage" => Call::SendAppMessage {
                msg: url_decode(&p_str(p, 0, "msg")?),
                seq: p_num(p, 1, "clientSeq")?,
                sid: p_opt(p, 2),
            },
            "NotifyTypingStateChange" => Call::Typing {
                state: u8::try_from(p_num(p, 0, "state")?).map_err(|_| "bad typing state")?,
                sid: p_opt(p, 1),
            },
            "ClientSideEnd" => Call::End {
                reason: p_opt(p, 0).unwrap_or_default(),
                sid: p_opt(p, 1),
            },
            "Close" => Call::Close,
            "Ack" => Call::Ack {
                id: p_str(p, 0, "id")?,
                sid: p_opt(p, 1),
            },
            "IsValid" => Call::IsValid,
            "GetAccessToken" => Call::GetAccessToken,
            "RequestCallback" => Call::RequestCallback {
                contact: p_str(p, 0, "contact")?,
                sid: p_opt(p, 1),
            },
            "CreateCampaignContact" => Call::CreateCampaignContact {
                data: p_str(p, 0, "data")?,
            },
            other => return Err(format!("unknown method __textchat.{other}")),
        },
        (s, m) => return Err(format!("unknown method {s}.{m}")),
    })
}

/// One statement of a reply.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyLine {
    /// The result of call `call` of batch `batch`.
    Callback {
        /// The batch id.
        batch: String,
        /// The call id.
        call: String,
        /// The result.
        value: Value,
    },
    /// Call `call` of batch `batch` threw.
    Exception {
        /// The batch id.
        batch: String,
        /// The call id.
        call: String,
        /// The exception's message.
        message: String,
    },
    /// The whole batch failed.
    BatchException {
        /// The batch id.
        batch: String,
        /// The message.
        message: String,
    },
    /// Push number `index`; `script` is the body of its function, decoded with
    /// [`decode_push`].
    ReverseAjax {
        /// The push index.
        index: u64,
        /// The script.
        script: String,
    },
    /// A statement this parser does not know (ignored by the client, reported).
    Unknown(String),
}

/// A reply split into statements. Fails when the body is not a DWR reply at all (no
/// `//#DWR` marker: an HTML error page, a proxy's reply).
pub fn parse_reply(body: &str) -> Result<Vec<ReplyLine>, String> {
    if !body.contains("//#DWR") {
        let head: String = body.chars().take(60).collect();
        return Err(format!("not a DWR reply (no //#DWR marker): {head:?}"));
    }
    let mut out = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") || line == PROTECTION {
            continue;
        }
        out.push(parse_line(line));
    }
    Ok(out)
}

const RA: &str = "dwr.engine.remote.handleReverseAjax(";

fn parse_line(line: &str) -> ReplyLine {
    if let Some(rest) = line.strip_prefix(RA) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(index) = digits.parse::<u64>() {
            let after = rest[digits.len()..].trim_start();
            let body = after
                .strip_prefix(',')
                .map(str::trim_start)
                .and_then(|b| b.strip_prefix("function(){"))
                .map(|b| {
                    let b = b.trim_end();
                    let b = b.strip_suffix(';').unwrap_or(b).trim_end();
                    let b = b.strip_suffix(')').unwrap_or(b).trim_end();
                    b.strip_suffix('}').unwrap_or(b).trim()
                });
            return ReplyLine::ReverseAjax {
                index,
                script: body.unwrap_or_default().to_owned(),
            };
        }
        return ReplyLine::Unknown(line.to_owned());
    }
    match parse_call(line) {
        Ok((name, args)) => {
            let s = |i: usize| match args.get(i) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            match name.as_str() {
                "dwr.engine.remote.handleCallback" => ReplyLine::Callback {
                    batch: s(0),
                    call: s(1),
                    value: args.get(2).cloned().unwrap_or(Value::Null),
                },
                "dwr.engine.remote.handleException" => ReplyLine::Exception {
                    batch: s(0),
                    call: s(1),
                    message: exception_message(args.get(2)),
                },
                "dwr.engine.remote.handleBatchException" => ReplyLine::BatchException {
                    batch: String::new(),
                    message: exception_message(args.first()),
                },
                _ => ReplyLine::Unknown(line.to_owned()),
            }
        }
        Err(_) => ReplyLine::Unknown(line.to_owned()),
    }
}

fn exception_message(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| o.get("javaClassName").and_then(Value::as_str))
            .unwrap_or("exception")
            .to_owned(),
        Some(Value::String(s)) => s.clone(),
        _ => "exception".to_owned(),
    }
}

/// Writes a reply: protection line, markers, then the statements.
pub fn write_reply(lines: &[ReplyLine]) -> String {
    let mut out = String::new();
    out.push_str(PROTECTION);
    out.push_str("\n//#DWR-INSERT\n//#DWR-REPLY\n");
    for l in lines {
        match l {
            ReplyLine::Callback { batch, call, value } => {
                let _ = writeln!(
                    out,
                    "dwr.engine.remote.handleCallback({},{},{});",
                    to_js(&json!(batch)),
                    to_js(&json!(call)),
                    to_js(value)
                );
            }
            ReplyLine::Exception {
                batch,
                call,
                message,
            } => {
                let _ = writeln!(
                    out,
                    "dwr.engine.remote.handleException({},{},{{javaClassName:'java.lang.Throwable',message:{}}});",
                    to_js(&json!(batch)),
                    to_js(&json!(call)),
                    to_js(&json!(message))
                );
            }
            ReplyLine::BatchException { message, .. } => {
                let _ = writeln!(
                    out,
                    "dwr.engine.remote.handleBatchException({{name:'batch',message:{}}});",
                    to_js(&json!(message))
                );
            }
            ReplyLine::ReverseAjax { index, script } => {
                let _ = writeln!(out, "{RA}{index}, function(){{ {script} }});");
            }
            ReplyLine::Unknown(text) => {
                out.push_str(text);
                out.push('\n');
            }
        }
    }
    out
}

fn a_str(args: &[Value], i: usize, what: &str) -> Result<String, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!("argument {i} ({what}) missing or not a string")),
    }
}

fn a_opt(args: &[Value], i: usize) -> Option<String> {
    match args.get(i) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Decodes one push script `__textchat.OnX(args…);`.
pub fn decode_push(script: &str) -> Result<Push, String> {
    let (name, args) = parse_call(script)?;
    let Some(event) = name.strip_prefix("__textchat.") else {
        return Ok(Push::Unknown { name, args });
    };
    let a = &args;
    Ok(match event {
        "OnStartSuccess" => Push::StartSuccess {
            sid: a_str(a, 0, "sid")?,
            tchatid: a_opt(a, 1).unwrap_or_default(),
            param: a.get(2).cloned().unwrap_or(Value::Null),
            client_id: a_opt(a, 3),
        },
        "OnStartFailed" => Push::StartFailed {
            code: a_str(a, 0, "errorCode")?,
            client_id: a_opt(a, 1),
        },
        "OnOpenSuccess" => {
            let sessions = match a.first() {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| serde_json::from_value::<OpenedSession>(v.clone()))
                    .collect::<Result<Vec<_>, _>>(),
                Some(v @ Value::Object(_)) => {
                    serde_json::from_value::<OpenedSession>(v.clone()).map(|s| vec![s])
                }
                _ => return Err("argument 0 (session) missing or not an object".to_owned()),
            }
            .map_err(|e| format!("session: {e}"))?;
            Push::OpenSuccess {
                sessions,
                token: None,
            }
        }
        "OnOpenFailed" => Push::OpenFailed {
            code: a_str(a, 0, "errorCode")?,
            token: None,
        },
        "OnServersideEnd" => Push::ServersideEnd {
            reason: a_opt(a, 0),
            sid: a_opt(a, 1),
        },
        "OnClientsideEnd" => Push::ClientsideEnd {
            reason: a_opt(a, 0),
            sid: a_opt(a, 1),
        },
        "OnRemoteUserConnected" => Push::RemoteUserConnected {
            name: a_str(a, 0, "name")?,
            agent_id: a_opt(a, 1).unwrap_or_default(),
            session_id: a_opt(a, 2).unwrap_or_default(),
            client_id: a_opt(a, 3),
        },
        "OnCallbackAutoRegistered" | "OnSystemNotification" => Push::CallbackAutoRegistered {
            reason: a_str(a, 0, "reasonCode")?,
            sid: a_opt(a, 1),
        },
        "OnCallbackRequestStatus" => Push::CallbackRequestStatus {
            is_customer_req: match a.first() {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s == "true",
                _ => return Err("argument 0 (isCustomerReq) missing".to_owned()),
            },
            status: a.get(1).cloned().unwrap_or(Value::Null),
            sid: a_opt(a, 2),
        },
        "OnError" | "OnInternalServerError" => Push::InternalError {
            code: a_str(a, 0, "errorCode")?,
        },
        "OnCallQueued" => Push::CallQueued {
            info: QueueInfo::parse_csv(&a_str(a, 0, "queue info")?),
            sid: a_opt(a, 1),
        },
        "OnMessageReceived" => Push::MessageReceived {
            agent: a_str(a, 0, "agent")?,
            msg: url_decode(&a_str(a, 1, "msg")?),
            id: a_str(a, 2, "id")?,
            sid: a_opt(a, 3),
        },
        "OnAppMessageReceived" => Push::AppMessageReceived {
            agent: a_str(a, 0, "agent")?,
            msg: url_decode(&a_str(a, 1, "msg")?),
            id: a_str(a, 2, "id")?,
            sid: a_opt(a, 3),
        },
        "OnEcho" => Push::Echo {
            msg: url_decode(&a_str(a, 0, "msg")?),
            id: a_str(a, 1, "id")?,
            sid: a_opt(a, 2),
        },
        "OnTypingStateChanged" => Push::TypingStateChanged {
            agent: a_str(a, 0, "agent")?,
            state: match a.get(1) {
                Some(Value::Number(n)) if n.as_u64() == Some(0) => 0,
                Some(Value::Number(n)) if n.as_u64() == Some(1) => 1,
                Some(Value::String(s)) if s == "0" || s == "1" => u8::from(s == "1"),
                _ => return Err("argument 1 (state) is not 0 or 1".to_owned()),
            },
            sid: a_opt(a, 2),
        },
        "OnConferenceUserLeft" => Push::ConferenceUserLeft {
            agent: a_str(a, 0, "agent")?,
            msg: a_opt(a, 1).map(|m| url_decode(&m)).unwrap_or_default(),
            sid: a_opt(a, 2),
        },
        "OnHistoryReceived" => Push::HistoryReceived {
            history: a.first().cloned().unwrap_or(Value::Null),
            sid: a_opt(a, 1),
        },
        "OnResetCaptcha" => Push::ResetCaptcha,
        "OnUploadComplete" => Push::UploadComplete {
            response: a.first().cloned().unwrap_or(Value::Null),
        },
        "OnCampaignContactCreated" => Push::CampaignContactCreated {
            response: a.first().cloned().unwrap_or(Value::Null),
        },
        _ => Push::Unknown { name, args },
    })
}

/// Writes one push script (the simulator's side). `Sid`/`clientId` are appended when given.
pub fn encode_push(push: &Push) -> String {
    let s = |v: &str| json!(v);
    let opt = |args: &mut Vec<Value>, v: &Option<String>| {
        if let Some(v) = v {
            args.push(json!(v));
        }
    };
    let mut args: Vec<Value> = Vec::new();
    let name = match push {
        Push::StartSuccess {
            sid,
            tchatid,
            param,
            client_id,
        } => {
            args.extend([s(sid), s(tchatid), param.clone()]);
            opt(&mut args, client_id);
            "OnStartSuccess"
        }
        Push::StartFailed { code, client_id } => {
            args.push(s(code));
            opt(&mut args, client_id);
            "OnStartFailed"
        }
        Push::OpenSuccess { sessions, .. } => {
            let v = if sessions.len() == 1 && sessions[0].client_id.is_none() {
                serde_json::to_value(&sessions[0])
            } else {
                serde_json::to_value(sessions)
            };
            args.push(v.unwrap_or(Value::Null));
            "OnOpenSuccess"
        }
        Push::OpenFailed { code, .. } => {
            args.push(s(code));
            "OnOpenFailed"
        }
        Push::ServersideEnd { reason, sid } => {
            args.push(reason.as_deref().map(s).unwrap_or(Value::Null));
            opt(&mut args, sid);
            "OnServersideEnd"
        }
        Push::ClientsideEnd { reason, sid } => {
            args.push(reason.as_deref().map(s).unwrap_or(Value::Null));
            opt(&mut args, sid);
            "OnClientsideEnd"
        }
        Push::RemoteUserConnected {
            name,
            agent_id,
            session_id,
            client_id,
        } => {
            args.extend([s(name), s(agent_id), s(session_id)]);
            opt(&mut args, client_id);
            "OnRemoteUserConnected"
        }
        Push::CallbackAutoRegistered { reason, sid } => {
            args.push(s(reason));
            opt(&mut args, sid);
            "OnCallbackAutoRegistered"
        }
        Push::CallbackRequestStatus {
            is_customer_req,
            status,
            sid,
        } => {
            args.extend([json!(is_customer_req), status.clone()]);
            opt(&mut args, sid);
            "OnCallbackRequestStatus"
        }
        Push::InternalError { code } => {
            args.push(s(code));
            "OnError"
        }
        Push::CallQueued { info, sid } => {
            args.push(s(&info.to_csv()));
            opt(&mut args, sid);
            "OnCallQueued"
        }
        Push::MessageReceived {
            agent,
            msg,
            id,
            sid,
        } => {
            args.extend([s(agent), s(&url_encode(msg)), s(id)]);
            opt(&mut args, sid);
            "OnMessageReceived"
        }
        Push::AppMessageReceived {
            agent,
            msg,
            id,
            sid,
        } => {
            args.extend([s(agent), s(&url_encode(msg)), s(id)]);
            opt(&mut args, sid);
            "OnAppMessageReceived"
        }
        Push::Echo { msg, id, sid } => {
            args.extend([s(&url_encode(msg)), s(id)]);
            opt(&mut args, sid);
            "OnEcho"
        }
        Push::TypingStateChanged { agent, state, sid } => {
            args.extend([s(agent), json!(state)]);
            opt(&mut args, sid);
            "OnTypingStateChanged"
        }
        Push::ConferenceUserLeft { agent, msg, sid } => {
            args.extend([s(agent), s(&url_encode(msg))]);
            opt(&mut args, sid);
            "OnConferenceUserLeft"
        }
        Push::HistoryReceived { history, sid } => {
            args.push(history.clone());
            opt(&mut args, sid);
            "OnHistoryReceived"
        }
        Push::ResetCaptcha => "OnResetCaptcha",
        Push::UploadComplete { response } => {
            args.push(response.clone());
            "OnUploadComplete"
        }
        Push::CampaignContactCreated { response } => {
            args.push(response.clone());
            "OnCampaignContactCreated"
        }
        Push::Accepted { .. } | Push::AccessToken { .. } => {
            // WebSocket-only frames: DWR answers these in the call's callback.
            return String::new();
        }
        Push::Unknown { name, args: a } => {
            let list: Vec<String> = a.iter().map(to_js).collect();
            return format!("{name}({});", list.join(","));
        }
    };
    let list: Vec<String> = args.iter().map(to_js).collect();
    format!("__textchat.{name}({});", list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let call = Call::SendMessage {
            msg: "hello there & more".into(),
            seq: 3,
            sid: Some("S1".into()),
        };
        let req = DwrRequest {
            calls: vec![encode_call(&call, true, 0)],
            batch_id: 7,
            instance_id: 0,
            page: "/help?x=1".into(),
            script_session_id: "ABC/def".into(),
            next_reverse_ajax_index: None,
            partial_response: None,
        };
        let body = req.encode();
        assert!(body.contains("c0-param0=string:hello%2520there%2520%2526%2520more\n"));
        assert!(body.contains("c0-param1=number:3\n"));
        let back = DwrRequest::decode(&body).unwrap();
        assert_eq!(back, req);
        assert_eq!(decode_call(&back.calls[0]).unwrap(), call);
    }

    #[test]
    fn reply_round_trip() {
        let push = Push::MessageReceived {
            agent: "Alex".into(),
            msg: "hi \"you\"".into(),
            id: "17".into(),
            sid: None,
        };
        let body = write_reply(&[
            ReplyLine::ReverseAjax {
                index: 4,
                script: encode_push(&push),
            },
            ReplyLine::Callback {
                batch: "2".into(),
                call: "0".into(),
                value: json!(500),
            },
        ]);
        let lines = parse_reply(&body).unwrap();
        let ReplyLine::ReverseAjax { index, script } = &lines[0] else {
            panic!("{lines:?}")
        };
        assert_eq!(*index, 4);
        assert_eq!(decode_push(script).unwrap(), push);
        assert_eq!(
            lines[1],
            ReplyLine::Callback {
                batch: "2".into(),
                call: "0".into(),
                value: json!(500)
            }
        );
        assert!(parse_reply("<html>").is_err());
    }
}

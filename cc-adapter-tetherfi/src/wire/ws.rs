//! The WebSocket chat proxy's JSON frames (§3.7), each an object with a `type`.
//!
//! VERIFIED frames: client `start`, `text`, `typingstate`, `end` and free app messages;
//! server `startstatus`, `callqueued`, `remoteuser`, `text`, `typingstate`, `cbstatus`,
//! `notification`, `logout`, `onend` and app messages. PROPOSED here (the notes say acks
//! exist but not their framing; resume and the extension calls have no public framing):
//! client `open {session?}` → server `openstatus {status, session, chats | error}` as the first
//! exchange on every connection; server `ack {seq, mid, sid}` for every client message;
//! `echo {content, id, sid}`; client `ack {id, sid}` for agent messages; `close`, `gettoken` →
//! `token`, `callback`, `campaigncontact` → `campaigncontact`, `log`; server `error {code}`,
//! `history`, `uploadcomplete`, `resetcaptcha`. Every server frame about a chat carries `sid`.

use serde_json::{Map, Value, json};

use super::{Call, OpenedSession, Push, QueueInfo};

/// Client frame types with a meaning of their own; app messages may not use them.
pub const RESERVED_TYPES: &[&str] = &[
    "open",
    "start",
    "text",
    "typingstate",
    "end",
    "close",
    "ack",
    "isvalid",
    "gettoken",
    "callback",
    "campaigncontact",
    "log",
];

fn put_sid(m: &mut Map<String, Value>, sid: &Option<String>) {
    if let Some(s) = sid {
        m.insert("sid".into(), json!(s));
    }
}

/// The frame for `call`; `None` for DWR-only calls.
pub fn encode_call(call: &Call) -> Option<Value> {
    let mut m = Map::new();
    let t = |m: &mut Map<String, Value>, t: &str| {
        m.insert("type".into(), json!(t));
    };
    match call {
        Call::GenerateId | Call::CheckHeartbeat | Call::PageUnloaded => return None,
        Call::Open { token, page, .. } => {
            t(&mut m, "open");
            if let Some(tok) = token {
                m.insert("session".into(), json!(tok));
            }
            if let Some(p) = page {
                m.insert("page".into(), json!(p));
            }
        }
        Call::Start {
            details,
            va_session,
            client_id,
        } => {
            t(&mut m, "start");
            m.insert("param".into(), json!(details));
            m.insert("vasession".into(), json!(va_session));
            if let Some(c) = client_id {
                m.insert("clientId".into(), json!(c));
            }
        }
        Call::SendMessage { msg, seq, sid } => {
            t(&mut m, "text");
            m.insert("content".into(), json!(msg));
            m.insert("user".into(), json!("customer"));
            m.insert("seq".into(), json!(seq));
            put_sid(&mut m, sid);
        }
        Call::SendAppMessage { msg, seq, sid } => {
            match serde_json::from_str::<Value>(msg) {
                Ok(Value::Object(obj)) => m = obj,
                _ => {
                    t(&mut m, "appmessage");
                    m.insert("content".into(), json!(msg));
                }
            }
            m.insert("seq".into(), json!(seq));
            put_sid(&mut m, sid);
        }
        Call::Typing { state, sid } => {
            t(&mut m, "typingstate");
            m.insert("state".into(), json!(state));
            put_sid(&mut m, sid);
        }
        Call::End { reason, sid } => {
            t(&mut m, "end");
            m.insert("reason".into(), json!(reason));
            m.insert("initiator".into(), json!("app"));
            put_sid(&mut m, sid);
        }
        Call::Close => t(&mut m, "close"),
        Call::Ack { id, sid } => {
            t(&mut m, "ack");
            m.insert("id".into(), json!(id));
            put_sid(&mut m, sid);
        }
        Call::IsValid => t(&mut m, "isvalid"),
        Call::GetAccessToken => t(&mut m, "gettoken"),
        Call::RequestCallback { contact, sid } => {
            t(&mut m, "callback");
            m.insert("contact".into(), json!(contact));
            put_sid(&mut m, sid);
        }
        Call::CreateCampaignContact { data } => {
            t(&mut m, "campaigncontact");
            m.insert("data".into(), json!(data));
        }
        Call::Log { level, unit, msg } => {
            t(&mut m, "log");
            m.insert("level".into(), json!(level));
            m.insert("unit".into(), json!(unit));
            m.insert("msg".into(), json!(msg));
        }
    }
    Some(Value::Object(m))
}

fn s(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn req(m: &Map<String, Value>, k: &str, frame: &str) -> Result<String, String> {
    s(m, k).ok_or_else(|| format!("`{frame}` frame without `{k}`"))
}

fn num(m: &Map<String, Value>, k: &str, frame: &str) -> Result<u64, String> {
    match m.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`{frame}` frame without a numeric `{k}`"))
}

fn object(text: &str) -> Result<(String, Map<String, Value>), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("not a JSON object".to_owned());
    };
    let kind = s(&m, "type").ok_or_else(|| "frame without `type`".to_owned())?;
    Ok((kind, m))
}

/// Decodes a client frame (the simulator's side).
pub fn decode_call(text: &str) -> Result<Call, String> {
    let (kind, m) = object(text)?;
    let sid = s(&m, "sid");
    Ok(match kind.as_str() {
        "open" => Call::Open {
            cookie_enabled: true,
            token: s(&m, "session"),
            page: s(&m, "page"),
        },
        "start" => Call::Start {
            details: req(&m, "param", "start")?,
            va_session: s(&m, "vasession").unwrap_or_else(|| "[]".to_owned()),
            client_id: s(&m, "clientId"),
        },
        "text" => Call::SendMessage {
            msg: req(&m, "content", "text")?,
            seq: num(&m, "seq", "text")?,
            sid,
        },
        "typingstate" => Call::Typing {
            state: u8::try_from(num(&m, "state", "typingstate")?)
                .map_err(|_| "bad typing state".to_owned())?,
            sid,
        },
        "end" => Call::End {
            reason: s(&m, "reason").unwrap_or_default(),
            sid,
        },
        "close" => Call::Close,
        "ack" => Call::Ack {
            id: req(&m, "id", "ack")?,
            sid,
        },
        "isvalid" => Call::IsValid,
        "gettoken" => Call::GetAccessToken,
        "callback" => Call::RequestCallback {
            contact: req(&m, "contact", "callback")?,
            sid,
        },
        "campaigncontact" => Call::CreateCampaignContact {
            data: req(&m, "data", "campaigncontact")?,
        },
        "log" => Call::Log {
            level: s(&m, "level").unwrap_or_default(),
            unit: s(&m, "unit").unwrap_or_default(),
            msg: s(&m, "msg").unwrap_or_default(),
        },
        _ => {
            let seq = num(&m, "seq", &kind)?;
            let mut app = m;
            app.remove("seq");
            app.remove("sid");
            Call::SendAppMessage {
                msg: Value::Object(app).to_string(),
                seq,
                sid,
            }
        }
    })
}

/// Decodes a server frame into a [`Push`].
pub fn decode_push(text: &str) -> Result<Push, String> {
    let (kind, m) = object(text)?;
    let sid = s(&m, "sid");
    Ok(match kind.as_str() {
        "startstatus" => match m.get("status") {
            Some(Value::Bool(true)) => Push::StartSuccess {
                sid: req(&m, "sid", "startstatus")?,
                tchatid: s(&m, "tchatid").unwrap_or_default(),
                param: m.get("param").cloned().unwrap_or(Value::Null),
                client_id: s(&m, "clientId"),
            },
            Some(Value::Bool(false)) => Push::StartFailed {
                code: s(&m, "error").unwrap_or_else(|| "StartError".to_owned()),
                client_id: s(&m, "clientId"),
            },
            _ => return Err("`startstatus` frame without a boolean `status`".to_owned()),
        },
        "openstatus" => match m.get("status") {
            Some(Value::Bool(true)) => Push::OpenSuccess {
                sessions: serde_json::from_value::<Vec<OpenedSession>>(
                    m.get("chats").cloned().unwrap_or(json!([])),
                )
                .map_err(|e| format!("`openstatus` chats: {e}"))?,
                token: s(&m, "session"),
            },
            Some(Value::Bool(false)) => Push::OpenFailed {
                code: s(&m, "error").unwrap_or_else(|| "NoSessionFound".to_owned()),
                token: s(&m, "session"),
            },
            _ => return Err("`openstatus` frame without a boolean `status`".to_owned()),
        },
        // The audio/video `callqueued {avtype}` (§3.8) shares the chat frame's name.
        "callqueued" if m.contains_key("avtype") && !m.contains_key("position") => {
            app_message(m, sid)
        }
        "callqueued" => {
            let extra = s(&m, "extra").unwrap_or_default();
            let mut info = if extra.contains(',') {
                QueueInfo::parse_csv(&extra)
            } else {
                QueueInfo {
                    queue_type: extra,
                    ..QueueInfo::default()
                }
            };
            info.position = Some(
                u32::try_from(num(&m, "position", "callqueued")?)
                    .map_err(|_| "queue position out of range".to_owned())?,
            );
            Push::CallQueued { info, sid }
        }
        "remoteuser" => Push::RemoteUserConnected {
            name: req(&m, "username", "remoteuser")?,
            agent_id: s(&m, "userid").unwrap_or_default(),
            session_id: s(&m, "sessionId").or(sid).unwrap_or_default(),
            client_id: s(&m, "clientId"),
        },
        "text" => Push::MessageReceived {
            agent: s(&m, "user").unwrap_or_default(),
            msg: req(&m, "content", "text")?,
            id: req(&m, "id", "text")?,
            sid,
        },
        "echo" => Push::Echo {
            msg: req(&m, "content", "echo")?,
            id: req(&m, "id", "echo")?,
            sid,
        },
        "ack" => Push::Accepted {
            seq: num(&m, "seq", "ack")?,
            mid: req(&m, "mid", "ack")?,
            sid,
        },
        "typingstate" => Push::TypingStateChanged {
            agent: s(&m, "user").unwrap_or_default(),
            state: match num(&m, "state", "typingstate")? {
                0 => 0,
                1 => 1,
                _ => return Err("`typingstate` state is not 0 or 1".to_owned()),
            },
            sid,
        },
        "cbstatus" => Push::CallbackRequestStatus {
            is_customer_req: matches!(m.get("isCustInitiated"), Some(Value::Bool(true))),
            status: m.get("status").cloned().unwrap_or(Value::Null),
            sid,
        },
        "notification" => {
            let name = s(&m, "name").unwrap_or_default();
            if name.eq_ignore_ascii_case("CallbackAutoRegistered")
                || name.eq_ignore_ascii_case("SystemNotification")
            {
                Push::CallbackAutoRegistered {
                    reason: req(&m, "value", "notification")?,
                    sid,
                }
            } else {
                Push::Unknown {
                    name: "notification".to_owned(),
                    args: vec![Value::Object(m)],
                }
            }
        }
        "logout" => Push::ConferenceUserLeft {
            agent: s(&m, "user").unwrap_or_default(),
            msg: s(&m, "msg").unwrap_or_default(),
            sid,
        },
        "onend" => {
            let reason = s(&m, "reason");
            match s(&m, "initiator").as_deref() {
                Some("client" | "app" | "customer") => Push::ClientsideEnd { reason, sid },
                _ => Push::ServersideEnd { reason, sid },
            }
        }
        "error" => Push::InternalError {
            code: req(&m, "code", "error")?,
        },
        "history" => Push::HistoryReceived {
            history: m.get("history").cloned().unwrap_or(Value::Null),
            sid,
        },
        "uploadcomplete" => Push::UploadComplete {
            response: m.get("response").cloned().unwrap_or(Value::Null),
        },
        "campaigncontact" => {
            let mut r = m;
            r.remove("type");
            Push::CampaignContactCreated {
                response: Value::Object(r),
            }
        }
        "token" => Push::AccessToken {
            token: req(&m, "token", "token")?,
        },
        "resetcaptcha" => Push::ResetCaptcha,
        _ => app_message(m, sid),
    })
}

/// Any other frame: an app message from TMAC (`user` is the agent, `id` the message id).
fn app_message(m: Map<String, Value>, sid: Option<String>) -> Push {
    let agent = s(&m, "user").unwrap_or_default();
    let id = s(&m, "id").unwrap_or_default();
    let mut app = m;
    app.remove("sid");
    Push::AppMessageReceived {
        agent,
        msg: Value::Object(app).to_string(),
        id,
        sid,
    }
}

/// Writes a server frame (the simulator's side); `token` goes into `openstatus`.
pub fn encode_push(push: &Push) -> Value {
    let with_sid = |mut v: Value, sid: &Option<String>| {
        if let (Some(sid), Value::Object(m)) = (sid, &mut v) {
            m.insert("sid".into(), json!(sid));
        }
        v
    };
    match push {
        Push::StartSuccess {
            sid,
            tchatid,
            param,
            client_id,
        } => {
            let mut v = json!({"type":"startstatus","status":true,"sid":sid,"tchatid":tchatid,"param":param});
            if let Some(c) = client_id {
                v["clientId"] = json!(c);
            }
            v
        }
        Push::StartFailed { code, client_id } => {
            let mut v = json!({"type":"startstatus","status":false,"error":code});
            if let Some(c) = client_id {
                v["clientId"] = json!(c);
            }
            v
        }
        Push::OpenSuccess { sessions, token } => {
            json!({"type":"openstatus","status":true,"session":token,"chats":sessions})
        }
        Push::OpenFailed { code, token } => {
            json!({"type":"openstatus","status":false,"error":code,"session":token})
        }
        Push::ServersideEnd { reason, sid } => with_sid(
            json!({"type":"onend","initiator":"server","reason":reason}),
            sid,
        ),
        Push::ClientsideEnd { reason, sid } => with_sid(
            json!({"type":"onend","initiator":"client","reason":reason}),
            sid,
        ),
        Push::RemoteUserConnected {
            name,
            agent_id,
            session_id,
            client_id,
        } => {
            let mut v = json!({"type":"remoteuser","username":name,"userid":agent_id,"sessionId":session_id,"sid":session_id});
            if let Some(c) = client_id {
                v["clientId"] = json!(c);
            }
            v
        }
        Push::CallbackAutoRegistered { reason, sid } => with_sid(
            json!({"type":"notification","name":"CallbackAutoRegistered","value":reason}),
            sid,
        ),
        Push::CallbackRequestStatus {
            is_customer_req,
            status,
            sid,
        } => with_sid(
            json!({"type":"cbstatus","status":status,"isCustInitiated":is_customer_req}),
            sid,
        ),
        Push::InternalError { code } => json!({"type":"error","code":code}),
        Push::CallQueued { info, sid } => with_sid(
            json!({"type":"callqueued","position":info.position.unwrap_or(0),"extra":info.to_csv()}),
            sid,
        ),
        Push::MessageReceived {
            agent,
            msg,
            id,
            sid,
        } => with_sid(
            json!({"type":"text","user":agent,"content":msg,"id":id}),
            sid,
        ),
        Push::AppMessageReceived {
            agent,
            msg,
            id,
            sid,
        } => {
            let mut v = serde_json::from_str::<Value>(msg)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"type":"appmessage","content":msg}));
            v["user"] = json!(agent);
            v["id"] = json!(id);
            with_sid(v, sid)
        }
        Push::Echo { msg, id, sid } => with_sid(json!({"type":"echo","content":msg,"id":id}), sid),
        Push::TypingStateChanged { agent, state, sid } => with_sid(
            json!({"type":"typingstate","user":agent,"state":state}),
            sid,
        ),
        Push::ConferenceUserLeft { agent, msg, sid } => {
            with_sid(json!({"type":"logout","user":agent,"msg":msg}), sid)
        }
        Push::HistoryReceived { history, sid } => {
            with_sid(json!({"type":"history","history":history}), sid)
        }
        Push::ResetCaptcha => json!({"type":"resetcaptcha"}),
        Push::UploadComplete { response } => json!({"type":"uploadcomplete","response":response}),
        Push::CampaignContactCreated { response } => {
            let mut v = response.clone();
            if !v.is_object() {
                v = json!({"response": v});
            }
            v["type"] = json!("campaigncontact");
            v
        }
        Push::Accepted { seq, mid, sid } => {
            with_sid(json!({"type":"ack","seq":seq,"mid":mid}), sid)
        }
        Push::AccessToken { token } => json!({"type":"token","token":token}),
        Push::Unknown { name, args } => json!({"type": name, "args": args}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip() {
        for call in [
            Call::SendMessage {
                msg: "hi".into(),
                seq: 1,
                sid: Some("S".into()),
            },
            Call::Typing {
                state: 0,
                sid: None,
            },
            Call::SendAppMessage {
                msg: r#"{"info":"x","type":"devinfo"}"#.into(),
                seq: 2,
                sid: None,
            },
            Call::End {
                reason: "done".into(),
                sid: Some("S".into()),
            },
        ] {
            let text = encode_call(&call).unwrap().to_string();
            assert_eq!(decode_call(&text).unwrap(), call, "{text}");
        }
    }

    #[test]
    fn pushes_round_trip() {
        for push in [
            Push::MessageReceived {
                agent: "Alex".into(),
                msg: "hi".into(),
                id: "m1".into(),
                sid: Some("S".into()),
            },
            Push::Accepted {
                seq: 4,
                mid: "m2".into(),
                sid: Some("S".into()),
            },
            Push::ServersideEnd {
                reason: Some("x".into()),
                sid: Some("S".into()),
            },
            Push::StartFailed {
                code: "CaptchaIsEmpty".into(),
                client_id: None,
            },
        ] {
            let text = encode_push(&push).to_string();
            assert_eq!(decode_push(&text).unwrap(), push, "{text}");
        }
        assert!(decode_push("{}").is_err());
        assert!(decode_push("[1]").is_err());
    }

    #[test]
    fn av_callqueued_is_an_app_message() {
        let chat =
            decode_push(r#"{"type":"callqueued","position":2,"extra":"chat","sid":"S"}"#).unwrap();
        assert!(matches!(chat, Push::CallQueued { .. }), "{chat:?}");
        let av = decode_push(
            r#"{"type":"callqueued","avtype":"audio","user":"Alex","id":"m3","sid":"S"}"#,
        )
        .unwrap();
        let Push::AppMessageReceived {
            agent,
            msg,
            id,
            sid,
        } = av
        else {
            panic!("{av:?}")
        };
        assert_eq!(
            (agent.as_str(), id.as_str(), sid.as_deref()),
            ("Alex", "m3", Some("S"))
        );
        let v: Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["avtype"], "audio");
    }
}

//! The decoders on sample frames from the protocol notes (§3.3–3.7), and property tests:
//! arbitrary and truncated input never panics; unknown pushes become `Push::Unknown`.

use cc_adapter_tetherfi::wire::dwr::{
    DwrRequest, ReplyLine, decode_call, decode_push, encode_call, encode_push, parse_reply,
};
use cc_adapter_tetherfi::wire::{Call, Push, QueueInfo, js, url_decode, url_encode, ws};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A poll reply as the notes describe it: protection line, marker, pushes, the pause.
const POLL_REPLY: &str = r#"throw 'allowScriptTagRemoting is false.';
//#DWR-INSERT
//#DWR-REPLY
dwr.engine.remote.handleReverseAjax(0, function(){ __textchat.OnStartSuccess("S1","T1",{vdn:'5001'}); });
dwr.engine.remote.handleReverseAjax(1, function(){ __textchat.OnCallQueued("5001,3,ab12,sip:q@x,10.0.0.1,chat"); });
dwr.engine.remote.handleReverseAjax(2, function(){ __textchat.OnRemoteUserConnected("Alex","a1","S1"); });
dwr.engine.remote.handleReverseAjax(3, function(){ __textchat.OnMessageReceived("Alex","hello%20there","17"); });
dwr.engine.remote.handleReverseAjax(4, function(){ __textchat.OnTypingStateChanged("Alex",0); });
dwr.engine.remote.handleReverseAjax(5, function(){ __textchat.OnServersideEnd(undefined); });
dwr.engine.remote.handleCallback("12","0",500);
"#;

#[test]
fn poll_reply_from_the_notes() {
    let lines = parse_reply(POLL_REPLY).unwrap();
    assert_eq!(lines.len(), 7);
    let pushes: Vec<Push> = lines
        .iter()
        .filter_map(|l| match l {
            ReplyLine::ReverseAjax { script, .. } => Some(decode_push(script).unwrap()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&pushes[0], Push::StartSuccess { sid, tchatid, param, client_id: None }
        if sid == "S1" && tchatid == "T1" && param == &json!({"vdn": "5001"}))
    );
    assert!(matches!(&pushes[1], Push::CallQueued { info, sid: None }
        if info.position == Some(3) && info.queue_type == "chat"));
    assert!(
        matches!(&pushes[2], Push::RemoteUserConnected { name, agent_id, session_id, .. }
        if name == "Alex" && agent_id == "a1" && session_id == "S1")
    );
    assert!(matches!(&pushes[3], Push::MessageReceived { msg, id, .. }
        if msg == "hello there" && id == "17"));
    assert!(matches!(
        &pushes[4],
        Push::TypingStateChanged { state: 0, .. }
    ));
    assert!(matches!(
        &pushes[5],
        Push::ServersideEnd {
            reason: None,
            sid: None
        }
    ));
    assert_eq!(
        lines[6],
        ReplyLine::Callback {
            batch: "12".into(),
            call: "0".into(),
            value: json!(500)
        }
    );
}

#[test]
fn open_success_session_object_and_multichat_array() {
    let single = r#"__textchat.OnOpenSuccess({sid_webapi:"S1",sid_tchat:"T1",agents:[{name:"Alex",id:"a1",index:0}],trans:[{type:"msg",by:"c",msg:"hi%21",time:1700000000000},{type:"connect",id:"a1",name:"Alex",time:1700000000100}]});"#;
    let Push::OpenSuccess { sessions, .. } = decode_push(single).unwrap() else {
        panic!()
    };
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].agents[0].name, "Alex");
    assert_eq!(sessions[0].trans[0].msg.as_deref(), Some("hi%21"));
    let multi = r#"__textchat.OnOpenSuccess([{sid_webapi:"A",clientId:"c1"},{sid_webapi:"B",clientId:"c2"}]);"#;
    let Push::OpenSuccess { sessions, .. } = decode_push(multi).unwrap() else {
        panic!()
    };
    assert_eq!(sessions[1].client_id.as_deref(), Some("c2"));
}

#[test]
fn every_documented_push_decodes() {
    for (script, name) in [
        (
            r#"__textchat.OnStartFailed("CaptchaDoesNotMatch");"#,
            "OnStartFailed",
        ),
        (
            r#"__textchat.OnOpenFailed("NoSessionFound");"#,
            "OnOpenFailed",
        ),
        (
            r#"__textchat.OnClientsideEnd("resolved");"#,
            "OnClientsideEnd",
        ),
        (
            r#"__textchat.OnCallbackAutoRegistered("NoStaffedAgents");"#,
            "OnCallbackAutoRegistered",
        ),
        (
            r#"__textchat.OnCallbackRequestStatus(true,"Registered");"#,
            "OnCallbackRequestStatus",
        ),
        (
            r#"__textchat.OnError("UnOpenedSessionNotAllowed");"#,
            "OnError",
        ),
        (
            r#"__textchat.OnAppMessageReceived("Alex","%7B%22type%22%3A%22x%22%7D","9");"#,
            "OnAppMessageReceived",
        ),
        (r#"__textchat.OnEcho("hi","c1");"#, "OnEcho"),
        (
            r#"__textchat.OnConferenceUserLeft("Blake","left");"#,
            "OnConferenceUserLeft",
        ),
        (
            r#"__textchat.OnHistoryReceived([{msg:"old"}]);"#,
            "OnHistoryReceived",
        ),
        (r#"__textchat.OnResetCaptcha();"#, "OnResetCaptcha"),
        (
            r#"__textchat.OnUploadComplete({fileName:"a.pdf",fileSize:3,fileType:"application/pdf"});"#,
            "OnUploadComplete",
        ),
        (
            r#"__textchat.OnCampaignContactCreated({resultCode:0,resultMessage:"ok"});"#,
            "OnCampaignContactCreated",
        ),
    ] {
        let p = decode_push(script).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert_eq!(p.name(), name, "{script}");
        // What the simulator writes decodes to the same push.
        assert_eq!(decode_push(&encode_push(&p)).unwrap(), p, "{script}");
    }
    let unknown = decode_push(r#"__textchat.OnSomethingNew(1,"x");"#).unwrap();
    assert!(
        matches!(unknown, Push::Unknown { name, args } if name == "__textchat.OnSomethingNew" && args.len() == 2)
    );
    assert!(decode_push(r#"__textchat.OnMessageReceived("Alex");"#).is_err());
    assert!(decode_push(r#"__textchat.OnTypingStateChanged("Alex",7);"#).is_err());
}

#[test]
fn request_body_from_the_notes() {
    let body = "callCount=1\nc0-scriptName=__textchat\nc0-methodName=Start\nc0-id=0\n\
                c0-param0=string:%7B%22lib%22%3A%22web%22%7D\nc0-param1=string:%5B%5D\n\
                batchId=3\ninstanceId=0\npage=%2Fhelp\nscriptSessionId=ABC%2Fxyz\n";
    let req = DwrRequest::decode(body).unwrap();
    assert_eq!(req.page, "/help");
    assert_eq!(
        decode_call(&req.calls[0]).unwrap(),
        Call::Start {
            details: r#"{"lib":"web"}"#.into(),
            va_session: "[]".into(),
            client_id: None
        }
    );
    let poll = "callCount=0\nnextReverseAjaxIndex=5\nbatchId=4\ninstanceId=0\npage=%2F\nscriptSessionId=A%2Fb\npartialResponse=0\n";
    let req = DwrRequest::decode(poll).unwrap();
    assert_eq!(req.next_reverse_ajax_index, Some(5));
    assert!(req.calls.is_empty());
    assert!(DwrRequest::decode("c0-scriptName=x\n").is_err());
    assert!(DwrRequest::decode("callCount=1\nc0-param0=weird:1\n").is_err());
}

#[test]
fn send_message_is_url_encoded_twice_on_the_wire() {
    let dc = encode_call(
        &Call::SendMessage {
            msg: "50% off?".into(),
            seq: 1,
            sid: None,
        },
        false,
        0,
    );
    assert_eq!(dc.params[0], json!("50%25%20off%3F"));
    let body = DwrRequest {
        calls: vec![dc],
        batch_id: 0,
        instance_id: 0,
        page: "/".into(),
        script_session_id: "a/b".into(),
        next_reverse_ajax_index: None,
        partial_response: None,
    }
    .encode();
    assert!(
        body.contains("c0-param0=string:50%2525%2520off%253F\n"),
        "{body}"
    );
}

#[test]
fn chat_proxy_frames_from_the_notes() {
    let p = ws::decode_push(
        r#"{"type":"startstatus","status":true,"sid":"S","tchatid":"T","param":{}}"#,
    )
    .unwrap();
    assert!(matches!(p, Push::StartSuccess { sid, .. } if sid == "S"));
    let p =
        ws::decode_push(r#"{"type":"startstatus","status":false,"error":"StartError"}"#).unwrap();
    assert!(matches!(p, Push::StartFailed { code, .. } if code == "StartError"));
    let p = ws::decode_push(r#"{"type":"callqueued","position":2,"extra":"chat"}"#).unwrap();
    assert!(
        matches!(p, Push::CallQueued { info, .. } if info.position == Some(2) && info.queue_type == "chat")
    );
    let p =
        ws::decode_push(r#"{"type":"remoteuser","username":"Alex","userid":"a1","sessionId":"S"}"#)
            .unwrap();
    assert!(
        matches!(p, Push::RemoteUserConnected { name, session_id, .. } if name == "Alex" && session_id == "S")
    );
    let p = ws::decode_push(r#"{"type":"text","user":"Alex","content":"hi","id":"m1"}"#).unwrap();
    assert!(matches!(p, Push::MessageReceived { msg, .. } if msg == "hi"));
    let p = ws::decode_push(r#"{"type":"typingstate","user":"Alex","state":1}"#).unwrap();
    assert!(matches!(p, Push::TypingStateChanged { state: 1, .. }));
    let p = ws::decode_push(r#"{"type":"cbstatus","status":"ok","isCustInitiated":true}"#).unwrap();
    assert!(matches!(
        p,
        Push::CallbackRequestStatus {
            is_customer_req: true,
            ..
        }
    ));
    let p = ws::decode_push(
        r#"{"type":"notification","name":"CallbackAutoRegistered","value":"QueueIsTooBig"}"#,
    )
    .unwrap();
    assert!(matches!(p, Push::CallbackAutoRegistered { reason, .. } if reason == "QueueIsTooBig"));
    let p = ws::decode_push(r#"{"type":"logout","user":"Blake","msg":"bye"}"#).unwrap();
    assert!(matches!(p, Push::ConferenceUserLeft { agent, .. } if agent == "Blake"));
    let p = ws::decode_push(r#"{"type":"onend","reason":"x","initiator":"server"}"#).unwrap();
    assert!(matches!(p, Push::ServersideEnd { .. }));
    let p = ws::decode_push(r#"{"type":"requestav","param":"video","user":"Alex"}"#).unwrap();
    assert!(matches!(p, Push::AppMessageReceived { agent, msg, .. }
        if agent == "Alex" && serde_json::from_str::<Value>(&msg).unwrap()["type"] == "requestav"));
    assert!(ws::decode_push(r#"{"type":"text","user":"Alex"}"#).is_err());
    let start = ws::encode_call(&Call::Start {
        details: "{}".into(),
        va_session: "[]".into(),
        client_id: None,
    })
    .unwrap();
    assert_eq!(start["type"], "start");
    let end = ws::encode_call(&Call::End {
        reason: "bye".into(),
        sid: None,
    })
    .unwrap();
    assert_eq!(end, json!({"type":"end","reason":"bye","initiator":"app"}));
}

#[test]
fn queue_csv_and_uri_component() {
    assert_eq!(QueueInfo::parse_csv("5001,x").position, None);
    assert_eq!(url_decode(&url_encode("ä ✓ %")), "ä ✓ %");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dwr_reply_parser_never_panics(s in ".{0,400}") {
        let _ = parse_reply(&s);
        let _ = parse_reply(&format!("//#DWR\n{s}"));
        let _ = decode_push(&s);
        let _ = js::parse_value(&s);
        let _ = js::parse_call(&s);
    }

    #[test]
    fn dwr_request_parser_never_panics(s in "(callCount=[0-9]{1,3}\n)?([a-z0-9-]{1,12}=[a-z:%0-9]{0,12}\n){0,8}") {
        if let Ok(req) = DwrRequest::decode(&s) {
            for c in &req.calls {
                let _ = decode_call(c);
            }
        }
    }

    #[test]
    fn truncated_replies_never_panic(cut in 0usize..POLL_REPLY.len()) {
        let mut end = cut;
        while !POLL_REPLY.is_char_boundary(end) { end -= 1; }
        if let Ok(lines) = parse_reply(&POLL_REPLY[..end]) {
            for l in lines {
                if let ReplyLine::ReverseAjax { script, .. } = l {
                    let _ = decode_push(&script);
                }
            }
        }
    }

    #[test]
    fn json_decoders_never_panic(s in ".{0,300}") {
        let _ = ws::decode_push(&s);
        let _ = ws::decode_call(&s);
    }

    #[test]
    fn json_frames_with_arbitrary_fields_never_panic(
        t in prop::sample::select(vec!["startstatus","openstatus","callqueued","remoteuser","text","echo","ack","typingstate","cbstatus","notification","logout","onend","error","token","campaigncontact","custom"]),
        k in "[a-zA-Z]{1,10}",
        v in prop_oneof![Just(json!(null)), any::<i64>().prop_map(|n| json!(n)), ".{0,20}".prop_map(|s| json!(s)), any::<bool>().prop_map(|b| json!(b))],
    ) {
        let frame = json!({"type": t, k: v, "status": v, "position": v, "seq": v});
        let _ = ws::decode_push(&frame.to_string());
        let _ = ws::decode_call(&frame.to_string());
    }

    #[test]
    fn text_survives_both_encodings(msg in "\\PC{0,60}") {
        let call = Call::SendMessage { msg: msg.clone(), seq: 1, sid: None };
        let body = DwrRequest {
            calls: vec![encode_call(&call, false, 0)],
            batch_id: 0, instance_id: 0, page: "/".into(),
            script_session_id: "a/b".into(), next_reverse_ajax_index: None, partial_response: None,
        }.encode();
        let back = DwrRequest::decode(&body).unwrap();
        prop_assert_eq!(decode_call(&back.calls[0]).unwrap(), call);
        let push = Push::MessageReceived { agent: "A".into(), msg, id: "1".into(), sid: None };
        prop_assert_eq!(&decode_push(&encode_push(&push)).unwrap(), &push);
        prop_assert_eq!(&ws::decode_push(&ws::encode_push(&push).to_string()).unwrap(), &push);
    }
}

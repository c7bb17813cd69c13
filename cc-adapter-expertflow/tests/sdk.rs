//! The vendor SDK's functions beyond the conformance scenarios, against the simulator:
//! widget configs, pre-chat form and validation, conversation data, transcript, files,
//! business hours, callbacks, scripted errors, session takeover and server-side ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cc_adapter_expertflow::sim::{SimOptions, Simulator};
use cc_adapter_expertflow::{ENTRY, ExpertflowSession};
use cc_core::{
    Availability, ConnectionState, Content, Engagement, EngagementState, ErrorKind, Event,
    EventStream, Initiator, Session, StatusQuery, TlsSettings, Upload,
};
use cc_testkit::SimControl;
use futures::StreamExt;

const STEP: Duration = Duration::from_secs(5);

async fn session(sim: &Simulator, customer: &str) -> ExpertflowSession {
    let cfg = sim.client_config(&sim.base_url(), customer);
    ExpertflowSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap()
}

async fn wait(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(STEP, async {
        while let Some(e) = events.next().await {
            if pred(&e) {
                return Some(e);
            }
            seen.push(format!("{e:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        _ => panic!("no {what}; saw {seen:#?}"),
    }
}

async fn chat(
    sim: &Simulator,
    s: &ExpertflowSession,
) -> (Arc<dyn Engagement>, cc_testkit::SimChat) {
    let eng = s
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap();
    let chat = sim.wait_for_chat(STEP).await.unwrap();
    assert_eq!(chat.id, eng.id().to_string());
    assert_eq!(chat.customer_name.as_deref(), Some("Casey Jones"));
    (eng, chat)
}

#[tokio::test]
async fn widget_configs_forms_and_validation() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-forms").await;
    let cfg = s.widget_configs().await.unwrap();
    assert_eq!(cfg.widget_identifier.as_deref(), Some("web"));
    let form_id = cfg.form.clone().unwrap();
    let form = s.pre_chat_form(&form_id).await.unwrap();
    assert_eq!(form["formTitle"], "Pre-chat form");
    let mut answers = BTreeMap::from([
        ("firstName".to_owned(), "Casey".to_owned()),
        ("phone".to_owned(), "+923331234567".to_owned()),
    ]);
    s.check_pre_chat_form(&form_id, &answers).await.unwrap();
    answers.insert("phone".to_owned(), "call me".to_owned());
    let e = s.check_pre_chat_form(&form_id, &answers).await.unwrap_err();
    assert!(e.to_string().contains("form.phone"), "{e}");
    answers.remove("firstName");
    let e = s.check_pre_chat_form(&form_id, &answers).await.unwrap_err();
    assert!(e.to_string().contains("form.firstName"), "{e}");
    let missing = s.pre_chat_form("nope").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Rejected);
}

#[tokio::test]
async fn conversation_data_transcript_files_and_the_bearer_token() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-data").await;
    let mut events = s.events();
    let (eng, chat) = chat(&sim, &s).await;
    let conv = eng.id().to_string();

    let data = BTreeMap::from([("orderId".to_owned(), "1234".to_owned())]);
    eng.set_context(data.clone()).await.unwrap();
    assert_eq!(s.conversation_data(&conv).await.unwrap()["orderId"], "1234");
    s.set_customer_data(&data).await.unwrap();
    assert_eq!(s.customer_data().await.unwrap()["orderId"], "1234");

    eng.send(Content::text("where is my order?")).await.unwrap();
    wait(&mut events, "MessageSent", |e| {
        matches!(e, Event::MessageSent(_))
    })
    .await;
    let id = sim.agent_says(&chat, "on its way").await.unwrap();
    wait(&mut events, "MessageReceived", |e| {
        matches!(e, Event::MessageReceived(_))
    })
    .await;
    sim.agent_edits(&chat, &id, "arriving today").unwrap();
    wait(
        &mut events,
        "the edit",
        |e| matches!(e, Event::Vendor { name, .. } if &**name == "MESSAGE_UPDATED"),
    )
    .await;
    let transcript = s.conversation_transcript(&conv).await.unwrap();
    let texts: Vec<String> = transcript
        .iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect();
    assert_eq!(texts, vec!["where is my order?", "arriving today"]);
    let mut pager = eng.history(50).await.unwrap();
    let page = pager.previous_page().await.unwrap().unwrap();
    assert_eq!(page.messages.len(), 2);
    assert!(!page.has_older);

    let bytes: Arc<[u8]> = (0..300u32).map(|i| i as u8).collect();
    let up = s
        .upload_file(&Upload {
            name: "photo.png".into(),
            mime_type: "image/png".into(),
            bytes: bytes.clone(),
        })
        .await
        .unwrap();
    assert!(up.name.ends_with("_photo.png"));
    assert_eq!(s.download(&up.name).await.unwrap(), bytes.to_vec());

    // The REST services want the token the socket handed out.
    let anonymous = cc_transport::HttpClient::new(cc_transport::HttpConfig::new(
        cc_core::Vendor::Expertflow,
        url::Url::parse(&sim.base_url()).unwrap(),
    ))
    .unwrap();
    let e = anonymous
        .get_json::<serde_json::Value>(&format!(
            "{}/conversation-manager/customer-topics/{conv}/conversation-data",
            sim.base_url()
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    let frames = sim.frames();
    let upload = frames
        .iter()
        .find(|f| f.channel == "POST /file-engine/api/uploadFileStream")
        .unwrap();
    assert!(
        upload.body["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer eyJ")
    );
    assert_eq!(upload.body["body"]["conversationId"], "<five digits>");
}

#[tokio::test]
async fn large_uploads_are_refused() {
    let sim = Simulator::start(SimOptions {
        max_upload_bytes: 100,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let s = session(&sim, "c-big").await;
    let (eng, _chat) = chat(&sim, &s).await;
    let e = eng
        .upload(Upload {
            name: "big.bin".into(),
            mime_type: "application/octet-stream".into(),
            bytes: vec![0u8; 101].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.vendor_code(), Some("413"), "{e}");
}

#[tokio::test]
async fn business_hours_become_service_status() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-hours").await;
    let st = s.service_status(StatusQuery::default()).await.unwrap();
    assert_eq!(st.availability, Availability::Open);
    assert!(!st.opening_hours.unwrap().windows.is_empty());
    let closed = Simulator::start(SimOptions {
        business_hours: (0, 0),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let s = session(&closed, "c-hours").await;
    let st = s.service_status(StatusQuery::default()).await.unwrap();
    assert_eq!(st.availability, Availability::ClosedByCalendar);
}

#[tokio::test]
async fn callback_request_goes_to_the_configured_url() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-cb").await;
    s.request_callback("+923331234567", ["a", "b", "", ""])
        .await
        .unwrap();
    let got = sim.callbacks();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["campaignId"], "42");
    assert_eq!(got[0]["phone1"], "+923331234567");
    assert_eq!(got[0]["businessParam1"], "a");
    assert_eq!(got[0]["duplicateCallbacks"], false);
    assert_eq!(
        s.request_callback(" ", ["", "", "", ""])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn a_refused_chat_request_fails_start_chat() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-err").await;
    sim.fail_next_chat_request(408);
    let e = s
        .start_chat(cc_testkit::default_chat_request())
        .await
        .unwrap_err();
    assert_eq!(e.vendor_code(), Some("CHAT_REQUESTED/408"));
    assert!(e.is_retryable());
    // The next attempt goes through.
    chat(&sim, &s).await;
}

#[tokio::test]
async fn expiry_ends_the_chat_and_the_client_acknowledges_it() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-exp").await;
    let mut events = s.events();
    let (eng, chat) = chat(&sim, &s).await;
    sim.expire_chat(&chat).unwrap();
    wait(&mut events, "EngagementEnded", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::System,
                ..
            }
        )
    })
    .await;
    assert_eq!(eng.state(), EngagementState::Ended);
    assert_eq!(
        eng.send(Content::text("hello?")).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    // As the widget, the client answers the server's end with CHAT_ENDED.
    tokio::time::timeout(STEP, async {
        while !sim
            .frames()
            .iter()
            .any(|f| f.body[0] == "CHAT_ENDED" && f.channel == "ws")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(s.engagements().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_newer_session_replaces_the_older_one() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let first = session(&sim, "c-tabs").await;
    let mut events = first.events();
    let (_eng, chat) = chat(&sim, &first).await;
    let second = session(&sim, "c-tabs").await;
    wait(
        &mut events,
        "SESSION_REPLACED",
        |e| matches!(e, Event::Vendor { name, .. } if &**name == "SESSION_REPLACED"),
    )
    .await;
    wait(&mut events, "ShutDown", |e| {
        matches!(e, Event::ShutDown { .. })
    })
    .await;
    // The newer session resumed the chat and goes on with it.
    let list = second.engagements().await.unwrap();
    assert_eq!(list[0].id().to_string(), chat.id);
    let mut ev2 = second.events();
    sim.agent_says(&chat, "hello second tab").await.unwrap();
    wait(&mut ev2, "MessageReceived", |e| {
        matches!(e, Event::MessageReceived(_))
    })
    .await;
}

#[tokio::test]
async fn server_disconnect_is_final_and_conversation_resumed_is_understood() {
    let sim = Simulator::start(SimOptions {
        push_conversation_resumed: true,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let s = session(&sim, "c-bye").await;
    let mut events = s.events();
    let (_eng, chat) = chat(&sim, &s).await;
    sim.agent_says(&chat, "before").await.unwrap();
    wait(&mut events, "MessageReceived", |e| {
        matches!(e, Event::MessageReceived(_))
    })
    .await;
    sim.server_disconnect();
    wait(&mut events, "Disconnected", |e| {
        matches!(e, Event::Connection(ConnectionState::Disconnected { .. }))
    })
    .await;
    wait(&mut events, "ShutDown", |e| {
        matches!(e, Event::ShutDown { .. })
    })
    .await;
    // Through the registry entry, as cc-sdk connects: the pushed CONVERSATION_RESUMED and the
    // CHAT_RESUMED ack both bring the history; it is there once.
    let again = (ENTRY.connect)(sim.config("c-bye")).await.unwrap();
    let list = again.engagements().await.unwrap();
    assert_eq!(list.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let texts: Vec<String> = list[0]
        .transcript()
        .iter()
        .filter_map(|m| m.content.as_text().map(str::to_owned))
        .collect();
    assert_eq!(texts, vec!["before"]);
    assert!(
        sim.frames()
            .iter()
            .any(|f| f.body[0] == "CONVERSATION_RESUMED")
    );
}

#[tokio::test]
async fn leave_detaches_and_a_new_session_resumes() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-leave").await;
    let (eng, chat) = chat(&sim, &s).await;
    eng.send(Content::text("see you on the next page"))
        .await
        .unwrap();
    tokio::time::timeout(STEP, async {
        while sim.received(&chat).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    eng.leave().await.unwrap();
    assert_eq!(eng.state(), EngagementState::Detached);
    assert_eq!(
        eng.send(Content::text("x")).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    // The chat goes on at the server; the next page resumes it with its transcript.
    assert!(
        !sim.received(&chat)
            .await
            .unwrap()
            .contains(&cc_testkit::Received::Ended)
    );
    let next = session(&sim, "c-leave").await;
    let list = next.engagements().await.unwrap();
    assert_eq!(list[0].id(), eng.id());
    assert_eq!(
        list[0].transcript()[0].content,
        Content::text("see you on the next page")
    );
}

#[tokio::test]
async fn ending_while_disconnected_reaches_the_server_after_the_reconnect() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let proxy = cc_testkit::Proxy::start(sim.addr()).await.unwrap();
    let cfg = sim.client_config(&format!("http://{}", proxy.addr()), "c-end-offline");
    let s = ExpertflowSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    let mut events = s.events();
    let (eng, chat) = chat(&sim, &s).await;
    proxy.set_down(true);
    wait(&mut events, "Reconnecting", |e| {
        matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    eng.end(Some("bye".into())).await.unwrap();
    wait(&mut events, "EngagementEnded", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::Customer,
                ..
            }
        )
    })
    .await;
    assert!(sim.received(&chat).await.unwrap().is_empty());
    proxy.set_down(false);
    tokio::time::timeout(STEP, async {
        while sim.received(&chat).await.unwrap() != vec![cc_testkit::Received::Ended] {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(s.engagements().await.unwrap().is_empty());
}

#[tokio::test]
async fn form_activity_and_form_data_message() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-form").await;
    let answers = BTreeMap::from([("firstName".to_owned(), "Casey".to_owned())]);
    assert_eq!(
        s.push_form_activity("prechat-form-1", &answers)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
    let (_eng, chat) = chat(&sim, &s).await;
    s.push_form_activity("prechat-form-1", &answers)
        .await
        .unwrap();
    let act = sim.activities();
    assert_eq!(act[0]["header"]["intent"], "WIDGET_FORM_ACTIVITY");
    assert_eq!(act[0]["header"]["conversationId"], chat.id.as_str());
    assert_eq!(
        act[0]["body"]["sections"][0]["attributes"][0]["value"],
        "Casey"
    );
    s.send_form_data(
        serde_json::json!({"formId": "bot-form", "formTitle": "Survey", "sections": []}),
    )
    .await
    .unwrap();
    assert_eq!(
        sim.received(&chat).await.unwrap(),
        vec![cc_testkit::Received::Notice {
            kind: "FORM_DATA".into()
        }]
    );
}

#[tokio::test]
async fn a_socket_url_at_the_root_uses_the_default_path() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut cfg = sim.client_config(&sim.base_url(), "c-root");
    cfg.socket_url = Some(format!("{}/", sim.base_url()));
    let s = ExpertflowSession::connect(cfg, &TlsSettings::default())
        .await
        .unwrap();
    chat(&sim, &s).await;
}

#[tokio::test]
async fn typing_starts_at_most_once_per_cooldown() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let s = session(&sim, "c-typing").await;
    let (eng, chat) = chat(&sim, &s).await;
    for _ in 0..3 {
        eng.typing(true).await.unwrap();
    }
    eng.typing(false).await.unwrap();
    eng.typing(true).await.unwrap();
    assert_eq!(
        sim.received(&chat).await.unwrap(),
        vec![
            cc_testkit::Received::Typing { on: true },
            cc_testkit::Received::Typing { on: false },
            cc_testkit::Received::Typing { on: true },
        ]
    );
}

//! The SIP user agent against a scripted WebSocket SIP server on 127.0.0.1: every path of
//! registration, outgoing and incoming calls, in-dialog requests and failures.

#[path = "peers/sip_server.rs"]
mod sip_server;

use std::time::{Duration, Instant};

use cc_core::{Error, Secret, Vendor};
use cc_rtc::sip::{
    DialogEvent, DigestAuthorization, DigestChallenge, Method, NameAddr, SipMessage, UaConfig,
    UaEvent, UserAgent, parse_dtmf_relay,
};
use cc_transport::BackoffPolicy;
use sip_server::{Conn, SipServer};
use tokio::sync::broadcast;

const PASSWORD: &str = "s3cret-pw";
const WAIT: Duration = Duration::from_secs(5);

fn config(server: &SipServer, user: &str) -> UaConfig {
    let mut config = UaConfig::new(server.url(), "sip.test", user);
    config.password = Some(Secret::new(PASSWORD));
    config.display_name = Some("Ada".to_owned());
    config.backoff = BackoffPolicy::fixed(Duration::from_millis(50));
    config.keepalive = None;
    config
}

async fn start(server: &mut SipServer, config: UaConfig) -> (UserAgent, Conn) {
    let (ua, conn) = tokio::join!(
        UserAgent::start(Vendor::Expertflow, config),
        server.accept()
    );
    let ua = ua.expect("UA starts");
    assert_eq!(conn.offered.as_deref(), Some("sip"));
    (ua, conn)
}

async fn start_alice(server: &mut SipServer) -> (UserAgent, Conn) {
    let config = config(server, "alice");
    start(server, config).await
}

async fn next_ua_event(
    events: &mut broadcast::Receiver<UaEvent>,
    mut want: impl FnMut(&UaEvent) -> bool,
) -> UaEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no such UA event within 5 s")
            .expect("UA events ended");
        if want(&event) {
            return event;
        }
    }
}

async fn next_dialog_event(dialog: &cc_rtc::sip::Dialog) -> DialogEvent {
    tokio::time::timeout(WAIT, dialog.next_event())
        .await
        .expect("no dialog event within 5 s")
        .expect("dialog events ended")
}

fn ok(request: &SipMessage) -> SipMessage {
    SipMessage::response_to(request, 200, "OK")
}

/// Answers the REGISTER exchange: 401, then checks the digest and grants `expires`.
async fn serve_register(conn: &mut Conn, expires: u32) -> (SipMessage, SipMessage) {
    let first = conn.recv().await;
    assert_eq!(first.method(), Some(&Method::Register));
    let challenge = DigestChallenge::new("sip.test", format!("n{}", fastrand::u32(..)));
    conn.send(
        &SipMessage::response_to(&first, 401, "Unauthorized")
            .with_header("WWW-Authenticate", challenge.header_value()),
    );
    let second = conn.recv().await;
    let auth =
        DigestAuthorization::parse(second.header("Authorization").expect("credentials")).unwrap();
    assert!(auth.verify(&Method::Register, PASSWORD));
    assert_eq!(auth.nonce, challenge.nonce);
    assert_eq!(auth.uri, "sip:sip.test");
    assert_eq!(auth.qop.as_deref(), Some("auth"));
    assert_eq!(auth.nonce_count(), Some(1));
    let contact = second.header("Contact").unwrap().to_owned();
    let granted = contact.replace(";expires=600", &format!(";expires={expires}"));
    conn.send(&ok(&second).with_header("Contact", granted));
    (first, second)
}

#[tokio::test]
async fn register_with_digest_refresh_and_unregister() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let started = Instant::now();
    let (register, (first, second)) = tokio::join!(ua.register(), serve_register(&mut conn, 1));
    register.expect("registered");
    println!("REGISTER with digest: {:?}", started.elapsed());

    // The wire SIP.js writes.
    let host = ua.contact_host().to_owned();
    assert!(host.ends_with(".invalid"));
    assert_eq!(first.uri(), Some("sip:sip.test"));
    let via = first.header("Via").unwrap();
    assert!(
        via.starts_with(&format!("SIP/2.0/WS {host};branch=z9hG4bK")),
        "{via}"
    );
    assert_eq!(
        first.header("Contact"),
        Some(format!("<sip:alice@{host};transport=ws>;expires=600").as_str())
    );
    assert_eq!(first.header("To"), Some("<sip:alice@sip.test>"));
    assert!(
        first
            .header("From")
            .unwrap()
            .starts_with("\"Ada\" <sip:alice@sip.test>;tag=")
    );
    assert_eq!(first.header("Expires"), Some("600"));
    assert_eq!(first.header("Supported"), Some("path, gruu, outbound"));
    assert_eq!(first.header("Authorization"), None);
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.cseq().unwrap().0, first.cseq().unwrap().0 + 1);
    assert_ne!(second.via_branch(), first.via_branch());
    let frames = format!("{first}{second}");
    assert!(!frames.contains(PASSWORD));
    assert!(
        matches!(
            next_ua_event(&mut events, |e| matches!(e, UaEvent::Registered { .. })).await,
            UaEvent::Registered { expires: 1 }
        ),
        "the granted expiry is read from our Contact"
    );

    // Refresh at 90 % of 1 s, reusing the challenge with the next nonce count.
    let refresh = conn.recv().await;
    assert_eq!(refresh.method(), Some(&Method::Register));
    let auth = DigestAuthorization::parse(refresh.header("Authorization").unwrap()).unwrap();
    assert_eq!(auth.nonce_count(), Some(2));
    assert!(auth.verify(&Method::Register, PASSWORD));
    assert_eq!(refresh.call_id(), first.call_id());
    conn.send(&ok(&refresh).with_header("Expires", "600"));
    next_ua_event(&mut events, |e| {
        matches!(e, UaEvent::Registered { expires: 600 })
    })
    .await;

    let (unregister, request) = tokio::join!(ua.unregister(), async {
        let request = conn.recv().await;
        conn.send(&ok(&request));
        request
    });
    unregister.unwrap();
    assert_eq!(request.header("Expires"), Some("0"));
    assert!(request.header("Contact").unwrap().ends_with(";expires=0"));
    next_ua_event(&mut events, |e| matches!(e, UaEvent::Unregistered)).await;
    // No refresh after un-REGISTER.
    assert!(conn.try_recv(Duration::from_millis(1200)).await.is_none());
}

#[tokio::test]
async fn a_refused_registration_is_an_auth_error_and_an_event() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let (register, ()) = tokio::join!(ua.register(), async {
        let request = conn.recv().await;
        conn.send(&SipMessage::response_to(&request, 403, "Forbidden"));
    });
    let err = register.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { code: Some(code), .. } if code == "403"),
        "{err:?}"
    );
    match next_ua_event(&mut events, |e| {
        matches!(e, UaEvent::RegistrationFailed { .. })
    })
    .await
    {
        UaEvent::RegistrationFailed { status, reason } => {
            assert_eq!((status, reason.as_str()), (403, "Forbidden"));
        }
        _ => unreachable!(),
    }

    // A wrong password: the second 401 ends it.
    let (register, ()) = tokio::join!(ua.register(), async {
        for _ in 0..2 {
            let request = conn.recv().await;
            conn.send(
                &SipMessage::response_to(&request, 401, "Unauthorized").with_header(
                    "WWW-Authenticate",
                    DigestChallenge::new("sip.test", format!("n{}", fastrand::u32(..)))
                        .header_value(),
                ),
            );
        }
    });
    assert!(matches!(register.unwrap_err(), Error::Auth { code: Some(c), .. } if c == "401"));
}

#[tokio::test]
async fn re_registers_after_a_reconnect() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let (register, _) = tokio::join!(ua.register(), serve_register(&mut conn, 600));
    register.unwrap();
    conn.close();
    next_ua_event(&mut events, |e| matches!(e, UaEvent::TransportDown { .. })).await;
    let mut conn = server.accept().await;
    next_ua_event(&mut events, |e| matches!(e, UaEvent::TransportUp)).await;
    let again = conn.recv().await;
    assert_eq!(again.method(), Some(&Method::Register));
    // The cached challenge is answered at once; a new challenge would be fine too.
    assert!(again.header("Authorization").is_some());
    conn.send(&ok(&again));
    next_ua_event(&mut events, |e| matches!(e, UaEvent::Registered { .. })).await;
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendrecv\r\n";

fn customer_headers() -> Vec<(String, String)> {
    [
        ("X-Customer-Name", "Ada"),
        ("X-Agent-Extension", ""),
        ("X-Customer-Number", "+4100"),
        ("X-Customer-Id", "c-1"),
        ("X-Destination-Number", "1000"),
        ("X-Media-Type", "audio"),
        ("X-Calltype", "OUT"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The far end's 2xx to `invite`, with two Record-Routes and a Contact.
fn answer_200(invite: &SipMessage, tag: &str) -> SipMessage {
    let mut invite = invite.clone();
    invite
        .headers
        .insert(0, ("Record-Route".into(), "<sip:proxy2.test;lr>".into()));
    invite.headers.insert(
        0,
        ("Record-Route".into(), "<sip:proxy1.test;lr;r2=on>".into()),
    );
    SipMessage::response_to_tagged(&invite, 200, "OK", tag)
        .with_header("Contact", "<sip:agent@10.0.0.9:5080;transport=ws>")
        .with_body("application/sdp", ANSWER)
}

#[tokio::test]
async fn outgoing_call_hold_dtmf_info_reinvite_and_bye() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut ua_events = ua.events();
    let started = Instant::now();
    let call = ua
        .invite("sip:1000@sip.test", customer_headers(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    let host = ua.contact_host().to_owned();

    // Header order: ours, then the caller's in its order, then Allow/Supported/User-Agent.
    let names: Vec<&str> = invite.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Via",
            "Max-Forwards",
            "To",
            "From",
            "Call-ID",
            "CSeq",
            "Contact",
            "X-Customer-Name",
            "X-Agent-Extension",
            "X-Customer-Number",
            "X-Customer-Id",
            "X-Destination-Number",
            "X-Media-Type",
            "X-Calltype",
            "Allow",
            "Supported",
            "User-Agent",
            "Content-Type"
        ]
    );
    let wire = invite.to_string();
    assert!(wire.contains("\r\nX-Agent-Extension: \r\n"), "{wire}");
    assert_eq!(invite.uri(), Some("sip:1000@sip.test"));
    assert_eq!(
        invite.header("Contact"),
        Some(format!("<sip:alice@{host};transport=ws;ob>").as_str())
    );
    assert_eq!(invite.header("Supported"), Some("outbound"));
    assert_eq!(invite.header("Content-Type"), Some("application/sdp"));
    assert_eq!(invite.body, OFFER);
    assert_eq!(invite.cseq(), Some((1, Method::Invite)));

    conn.send(&SipMessage::response_to(&invite, 100, "Trying"));
    assert_eq!(next_dialog_event(&call).await, DialogEvent::Trying);
    conn.send(&SipMessage::response_to_tagged(
        &invite, 180, "Ringing", "far1",
    ));
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Ringing {
            status: 180,
            early_sdp: None
        }
    );
    let answer = answer_200(&invite, "far1");
    conn.send(&answer);
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Answered {
            sdp: ANSWER.to_owned()
        }
    );
    println!("INVITE → 200 (scripted): {:?}", started.elapsed());
    assert!(call.is_established());
    assert_eq!(call.remote_tag().as_deref(), Some("far1"));

    // ACK to the 200's Contact, through the reversed Record-Route set.
    let ack = conn.recv().await;
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.uri(), Some("sip:agent@10.0.0.9:5080;transport=ws"));
    let routes: Vec<&str> = ack.headers_named("Route").collect();
    assert_eq!(
        routes,
        ["<sip:proxy2.test;lr>", "<sip:proxy1.test;lr;r2=on>"]
    );
    assert_eq!(ack.cseq(), Some((1, Method::Ack)));
    assert_eq!(ack.to_tag(), Some("far1"));
    assert_ne!(ack.via_branch(), invite.via_branch());

    // A repeated 200 gets the same ACK again.
    conn.send(&answer);
    let ack2 = conn.recv().await;
    assert_eq!(ack2, ack);

    // Hold: re-INVITE out, the answer comes back.
    let held = ANSWER.replace("sendrecv", "recvonly");
    let (reinvite, ()) = tokio::join!(
        call.reinvite(OFFER.replace("sendrecv", "sendonly")),
        async {
            let re = conn.recv().await;
            assert_eq!(re.method(), Some(&Method::Invite));
            assert_eq!(re.uri(), Some("sip:agent@10.0.0.9:5080;transport=ws"));
            assert_eq!(re.to_tag(), Some("far1"));
            assert_eq!(re.cseq(), Some((2, Method::Invite)));
            assert!(re.body.contains("a=sendonly"));
            assert!(re.header("Contact").unwrap().contains(";ob>"));
            conn.send(&SipMessage::response_to(&re, 100, "Trying"));
            conn.send(
                &SipMessage::response_to(&re, 200, "OK")
                    .with_header("Contact", "<sip:agent@10.0.0.9:5080;transport=ws>")
                    .with_body("application/sdp", held.clone()),
            );
            let ack = conn.recv().await;
            assert_eq!(ack.cseq(), Some((2, Method::Ack)));
        }
    );
    assert_eq!(reinvite.unwrap(), held);

    // DTMF as INFO dtmf-relay, one digit per request.
    let (dtmf, ()) = tokio::join!(call.dtmf("1#"), async {
        for digit in ['1', '#'] {
            let info = conn.recv().await;
            assert_eq!(info.method(), Some(&Method::Info));
            assert_eq!(info.header("Content-Type"), Some("application/dtmf-relay"));
            assert_eq!(info.body, format!("Signal={digit}\r\nDuration=150"));
            assert_eq!(parse_dtmf_relay(&info.body), Some(digit));
            conn.send(&ok(&info));
        }
    });
    dtmf.unwrap();
    assert!(matches!(
        call.dtmf("1x").await.unwrap_err(),
        Error::InvalidInput { .. }
    ));

    // INFO in.
    let mut info = SipMessage::request(Method::Info, format!("sip:alice@{host};transport=ws"))
        .with_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKinfo1")
        .with_header("From", answer.header("To").unwrap())
        .with_header("To", invite.header("From").unwrap())
        .with_header("Call-ID", invite.call_id().unwrap())
        .with_header("CSeq", "10 INFO")
        .with_body("application/dtmf-relay", "Signal=5\r\nDuration=160");
    conn.send(&info);
    let info_ok = conn.recv().await;
    assert_eq!(info_ok.status(), Some(200));
    assert_eq!(info_ok.via_branch(), Some("z9hG4bKinfo1"));
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Info {
            content_type: "application/dtmf-relay".to_owned(),
            body: "Signal=5\r\nDuration=160".to_owned()
        }
    );

    // The far end re-offers.
    info.start = cc_rtc::sip::StartLine::Request {
        method: Method::Invite,
        uri: format!("sip:alice@{host};transport=ws"),
    };
    let mut reoffer = info.clone();
    reoffer.set_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKre1");
    reoffer.set_header("CSeq", "11 INVITE");
    reoffer.set_header("Contact", "<sip:agent@10.0.0.9:5080;transport=ws>");
    reoffer.body = OFFER.replace("sendrecv", "sendonly");
    reoffer.set_header("Content-Type", "application/sdp");
    conn.send(&reoffer);
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::ReInvite {
            sdp: reoffer.body.clone()
        }
    );
    call.answer_reinvite(ANSWER.replace("sendrecv", "recvonly"))
        .unwrap();
    let re_ok = conn.recv().await;
    assert_eq!(re_ok.status(), Some(200));
    assert_eq!(re_ok.cseq(), Some((11, Method::Invite)));
    assert!(re_ok.body.contains("a=recvonly"));
    assert_eq!(re_ok.to_tag(), Some(call.local_tag()));
    let mut ack_in = reoffer.clone();
    ack_in.start = cc_rtc::sip::StartLine::Request {
        method: Method::Ack,
        uri: format!("sip:alice@{host};transport=ws"),
    };
    ack_in.set_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKack1");
    ack_in.set_header("CSeq", "11 ACK");
    ack_in.body.clear();
    ack_in.remove_header("Content-Type");
    conn.send(&ack_in);
    assert!(
        conn.try_recv(Duration::from_millis(800)).await.is_none(),
        "the 200 is not repeated after the ACK"
    );

    // MESSAGE inside the dialog reaches the UA's events.
    let mut message = info.clone();
    message.start = cc_rtc::sip::StartLine::Request {
        method: Method::Message,
        uri: format!("sip:alice@{host};transport=ws"),
    };
    message.set_header("CSeq", "12 MESSAGE");
    message.set_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKmsg1");
    message = message.with_body("text/plain", r#"{"event":"agentDetails"}"#);
    conn.send(&message);
    assert_eq!(conn.recv().await.status(), Some(200));
    match next_ua_event(&mut ua_events, |e| matches!(e, UaEvent::Message { .. })).await {
        UaEvent::Message { body, call_id, .. } => {
            assert_eq!(body, r#"{"event":"agentDetails"}"#);
            assert_eq!(call_id, call.call_id());
        }
        _ => unreachable!(),
    }

    // BYE with the custom reason.
    let (bye, ()) = tokio::join!(
        call.bye(vec![(
            "X-Call-Dropped-Custom-Reason".to_owned(),
            "99_REFRESH".to_owned()
        )]),
        async {
            let bye = conn.recv().await;
            assert_eq!(bye.method(), Some(&Method::Bye));
            assert_eq!(
                bye.header("X-Call-Dropped-Custom-Reason"),
                Some("99_REFRESH")
            );
            assert_eq!(bye.cseq(), Some((5, Method::Bye)));
            let routes: Vec<&str> = bye.headers_named("Route").collect();
            assert_eq!(routes.len(), 2);
            conn.send(&ok(&bye));
        }
    );
    bye.unwrap();
    assert!(call.is_terminated());
    assert_eq!(
        tokio::time::timeout(WAIT, call.next_event()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn invite_challenge_then_busy_with_custom_reason() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let first = conn.recv().await;
    conn.send(
        &SipMessage::response_to(&first, 407, "Proxy Authentication Required").with_header(
            "Proxy-Authenticate",
            DigestChallenge::new("sip.test", "inv-nonce").header_value(),
        ),
    );
    let ack = conn.recv().await;
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(
        ack.via_branch(),
        first.via_branch(),
        "ACK of a non-2xx is in the transaction"
    );
    assert_eq!(ack.cseq(), Some((1, Method::Ack)));
    let second = conn.recv().await;
    assert_eq!(second.cseq(), Some((2, Method::Invite)));
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.from_tag(), first.from_tag());
    let auth = DigestAuthorization::parse(second.header("Proxy-Authorization").unwrap()).unwrap();
    assert!(auth.verify(&Method::Invite, PASSWORD));
    assert_eq!(auth.uri, "sip:1000@sip.test");
    conn.send(
        &SipMessage::response_to(&second, 486, "Busy Here")
            .with_header("X-Call-Dropped-Custom-Reason", "USER_BUSY"),
    );
    assert_eq!(conn.recv().await.method(), Some(&Method::Ack));
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Failed {
            status: 486,
            reason: "USER_BUSY".to_owned()
        }
    );
    assert_eq!(
        tokio::time::timeout(WAIT, call.next_event()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn failure_reasons_come_from_the_reason_header_or_the_phrase() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let cases = [
        (
            SipMessage::response(480, "Temporarily Unavailable")
                .with_header("Reason", "Q.850;cause=19;text=\"NO_ANSWER\""),
            "NO_ANSWER",
        ),
        (SipMessage::response(603, "Decline"), "Decline"),
        (
            SipMessage::response(503, "Service Unavailable"),
            "Service Unavailable",
        ),
    ];
    for (template, want) in cases {
        let call = ua
            .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
            .await
            .unwrap();
        let invite = conn.recv().await;
        let mut response = SipMessage::response_to(
            &invite,
            template.status().unwrap(),
            template.reason().unwrap(),
        );
        response.headers.extend(template.headers.clone());
        conn.send(&response);
        assert_eq!(conn.recv().await.method(), Some(&Method::Ack));
        assert_eq!(
            next_dialog_event(&call).await,
            DialogEvent::Failed {
                status: template.status().unwrap(),
                reason: want.to_owned()
            }
        );
    }
}

#[tokio::test]
async fn cancel_before_the_answer() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;

    // After a provisional response: CANCEL at once.
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    conn.send(&SipMessage::response_to_tagged(
        &invite, 180, "Ringing", "r1",
    ));
    assert!(matches!(
        next_dialog_event(&call).await,
        DialogEvent::Ringing { .. }
    ));
    call.cancel().await.unwrap();
    let cancel = conn.recv().await;
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(cancel.via_branch(), invite.via_branch());
    assert_eq!(cancel.uri(), invite.uri());
    assert_eq!(cancel.cseq(), Some((1, Method::Cancel)));
    assert_eq!(cancel.to_tag(), None);
    conn.send(&ok(&cancel));
    conn.send(&SipMessage::response_to_tagged(
        &invite,
        487,
        "Request Terminated",
        "r1",
    ));
    assert_eq!(conn.recv().await.method(), Some(&Method::Ack));
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Failed {
            status: 487,
            reason: "Request Terminated".to_owned()
        }
    );

    // Before any response: the CANCEL waits for the first provisional.
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    call.cancel().await.unwrap();
    assert!(conn.try_recv(Duration::from_millis(200)).await.is_none());
    conn.send(&SipMessage::response_to(&invite, 100, "Trying"));
    let cancel = conn.recv().await;
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    // The answer crossed the CANCEL: ACK, then BYE.
    conn.send(&ok(&cancel));
    conn.send(&answer_200(&invite, "r2"));
    assert_eq!(conn.recv().await.method(), Some(&Method::Ack));
    let bye = conn.recv().await;
    assert_eq!(bye.method(), Some(&Method::Bye));
    conn.send(&ok(&bye));
    assert_eq!(next_dialog_event(&call).await, DialogEvent::Trying);
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Failed {
            status: 487,
            reason: "Request Terminated".to_owned()
        }
    );
}

#[tokio::test]
async fn remote_bye_is_answered_and_reported_with_its_reason() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    let answer = answer_200(&invite, "far");
    conn.send(&answer);
    assert!(matches!(
        next_dialog_event(&call).await,
        DialogEvent::Answered { .. }
    ));
    conn.recv().await; // ACK
    let bye = SipMessage::request(Method::Bye, format!("sip:alice@{}", ua.contact_host()))
        .with_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKbye1")
        .with_header("From", answer.header("To").unwrap())
        .with_header("To", invite.header("From").unwrap())
        .with_header("Call-ID", invite.call_id().unwrap())
        .with_header("CSeq", "20 BYE")
        .with_header("Reason", "Q.850;cause=16;text=\"NORMAL_CLEARING\"");
    conn.send(&bye);
    let response = conn.recv().await;
    assert_eq!(response.status(), Some(200));
    assert_eq!(response.cseq(), Some((20, Method::Bye)));
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Bye {
            reason: Some("NORMAL_CLEARING".to_owned())
        }
    );
    assert_eq!(
        tokio::time::timeout(WAIT, call.next_event()).await.unwrap(),
        None
    );
    // A BYE for a dialog that is gone: 481.
    let mut again = bye.clone();
    again.set_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKbye2");
    conn.send(&again);
    assert_eq!(conn.recv().await.status(), Some(481));
    assert!(matches!(
        call.bye(Vec::new()).await,
        Err(Error::InvalidInput { .. })
    ));
}

fn incoming_invite(ua: &UserAgent, call_id: &str, branch: &str) -> SipMessage {
    SipMessage::request(
        Method::Invite,
        format!("sip:alice@{};transport=ws", ua.contact_host()),
    )
    .with_header("Record-Route", "<sip:proxy1.test;lr>")
    .with_header("Via", format!("SIP/2.0/WS proxy1.test;branch={branch}"))
    .with_header("Max-Forwards", "69")
    .with_header("From", "\"conference\" <sip:1000@sip.test>;tag=agent1")
    .with_header("To", "<sip:alice@sip.test>")
    .with_header("Call-ID", call_id)
    .with_header("CSeq", "7 INVITE")
    .with_header("Contact", "<sip:1000@10.0.0.9:5080;transport=ws>")
    .with_header("X-Call-Id", "dlg-77")
    .with_body("application/sdp", OFFER)
}

#[tokio::test]
async fn incoming_call_ring_answer_busy_second_call_and_remote_bye() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let invite = incoming_invite(&ua, "in-1", "z9hG4bKin1");
    conn.send(&invite);
    let UaEvent::Incoming(call) =
        next_ua_event(&mut events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    assert_eq!(call.header("X-Call-Id"), Some("dlg-77"));
    assert_eq!(call.sdp(), OFFER);
    assert!(call.from().contains("conference"));
    call.ringing().unwrap();
    let ringing = conn.recv().await;
    assert_eq!(ringing.status(), Some(180));
    let tag = ringing.to_tag().unwrap().to_owned();
    let dialog = call.answer(ANSWER.to_owned()).unwrap();
    let ok200 = conn.recv().await;
    assert_eq!(ok200.status(), Some(200));
    assert_eq!(ok200.to_tag(), Some(tag.as_str()));
    assert_eq!(ok200.body, ANSWER);
    assert_eq!(ok200.header("Record-Route"), Some("<sip:proxy1.test;lr>"));
    assert!(
        ok200
            .header("Contact")
            .unwrap()
            .contains(";transport=ws;ob>")
    );
    assert!(call.answer(ANSWER.to_owned()).is_err(), "answered once");

    // Without an ACK the 200 is repeated.
    let repeat = conn.recv().await;
    assert_eq!(repeat, ok200);
    let ack = SipMessage::request(Method::Ack, "sip:alice@x.invalid")
        .with_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKack")
        .with_header("From", invite.header("From").unwrap())
        .with_header("To", ok200.header("To").unwrap())
        .with_header("Call-ID", "in-1")
        .with_header("CSeq", "7 ACK");
    conn.send(&ack);
    assert!(conn.try_recv(Duration::from_millis(1200)).await.is_none());

    // A second call while this one is live: the app refuses it.
    conn.send(&incoming_invite(&ua, "in-2", "z9hG4bKin2"));
    let UaEvent::Incoming(second) =
        next_ua_event(&mut events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    second
        .reject(
            486,
            "Busy Here",
            vec![(
                "X-Call-Dropped-Custom-Reason".to_owned(),
                "ON-ANOTHER-CALL".to_owned(),
            )],
        )
        .unwrap();
    let busy = conn.recv().await;
    assert_eq!(busy.status(), Some(486));
    assert_eq!(busy.call_id(), Some("in-2"));
    assert!(busy.to_tag().is_some());
    assert_eq!(
        busy.header("X-Call-Dropped-Custom-Reason"),
        Some("ON-ANOTHER-CALL")
    );
    assert!(second.reject(486, "Busy Here", Vec::new()).is_err());
    assert!(second.reject(200, "OK", Vec::new()).is_err());

    // Our BYE on the incoming dialog goes to the caller's Contact via the Record-Route.
    let (bye, ()) = tokio::join!(dialog.bye(Vec::new()), async {
        let bye = conn.recv().await;
        assert_eq!(bye.uri(), Some("sip:1000@10.0.0.9:5080;transport=ws"));
        assert_eq!(bye.header("Route"), Some("<sip:proxy1.test;lr>"));
        assert_eq!(bye.to_tag(), Some("agent1"));
        assert_eq!(bye.from_tag(), Some(tag.as_str()));
        conn.send(&ok(&bye));
    });
    bye.unwrap();
}

#[tokio::test]
async fn the_caller_cancels_an_incoming_call() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let invite = incoming_invite(&ua, "in-3", "z9hG4bKin3");
    conn.send(&invite);
    let UaEvent::Incoming(call) =
        next_ua_event(&mut events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    call.ringing().unwrap();
    assert_eq!(conn.recv().await.status(), Some(180));
    let mut cancel = SipMessage::request(Method::Cancel, invite.uri().unwrap());
    for name in ["Via", "From", "To", "Call-ID"] {
        cancel.push_header(name, invite.header(name).unwrap());
    }
    cancel.push_header("CSeq", "7 CANCEL");
    conn.send(&cancel);
    let first = conn.recv().await;
    let second = conn.recv().await;
    assert_eq!(first.cseq(), Some((7, Method::Cancel)));
    assert_eq!(first.status(), Some(200));
    assert_eq!(second.cseq(), Some((7, Method::Invite)));
    assert_eq!(second.status(), Some(487));
    assert_eq!(
        next_dialog_event(call.dialog()).await,
        DialogEvent::Cancelled
    );
    assert!(call.answer(ANSWER.to_owned()).is_err());
}

#[tokio::test]
async fn message_out_and_in_options_and_unknown_requests() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let (sent, ()) = tokio::join!(
        ua.message(
            "sip:1000@sip.test",
            "text/plain",
            r#"{"event":"USER_BUSY"}"#
        ),
        async {
            let message = conn.recv().await;
            assert_eq!(message.method(), Some(&Method::Message));
            assert_eq!(message.uri(), Some("sip:1000@sip.test"));
            assert_eq!(message.header("Content-Type"), Some("text/plain"));
            assert_eq!(message.body, r#"{"event":"USER_BUSY"}"#);
            conn.send(&ok(&message));
        }
    );
    sent.unwrap();
    let (refused, ()) = tokio::join!(ua.message("sip:1000@sip.test", "text/plain", "x"), async {
        let message = conn.recv().await;
        conn.send(&SipMessage::response_to(&message, 404, "Not Found"));
    });
    assert!(matches!(refused.unwrap_err(), Error::Rejected { code, .. } if code == "404"));
    assert!(matches!(
        ua.message("tel:123", "text/plain", "x").await.unwrap_err(),
        Error::InvalidInput { .. }
    ));

    let incoming = SipMessage::request(Method::Message, format!("sip:alice@{}", ua.contact_host()))
        .with_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKm1")
        .with_header("From", "<sip:1000@sip.test>;tag=a")
        .with_header("To", "<sip:alice@sip.test>")
        .with_header("Call-ID", "m-1")
        .with_header("CSeq", "1 MESSAGE")
        .with_body("text/plain", r#"{"event":"MEDIA_SERVER_CALL_END"}"#);
    conn.send(&incoming);
    let response = conn.recv().await;
    assert_eq!(response.status(), Some(200));
    match next_ua_event(&mut events, |e| matches!(e, UaEvent::Message { .. })).await {
        UaEvent::Message {
            from,
            content_type,
            body,
            call_id,
        } => {
            assert_eq!(from, "<sip:1000@sip.test>;tag=a");
            assert_eq!(content_type, "text/plain");
            assert_eq!(body, r#"{"event":"MEDIA_SERVER_CALL_END"}"#);
            assert_eq!(call_id, "m-1");
        }
        _ => unreachable!(),
    }
    let mut options = incoming.clone();
    options.start = cc_rtc::sip::StartLine::Request {
        method: Method::Options,
        uri: "sip:alice@x.invalid".to_owned(),
    };
    options.set_header("CSeq", "2 OPTIONS");
    options.body.clear();
    options.remove_header("Content-Type");
    conn.send(&options);
    let response = conn.recv().await;
    assert_eq!(response.status(), Some(200));
    assert!(response.header("Allow").unwrap().contains("INVITE"));
    let mut subscribe = options.clone();
    subscribe.start = cc_rtc::sip::StartLine::Request {
        method: Method::Subscribe,
        uri: "sip:alice@x.invalid".to_owned(),
    };
    subscribe.set_header("CSeq", "3 SUBSCRIBE");
    conn.send(&subscribe);
    assert_eq!(conn.recv().await.status(), Some(501));
}

#[tokio::test]
async fn a_malformed_frame_is_an_error_event_and_the_ua_goes_on() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    conn.send_raw("NOTSIP garbage here\r\n\r\n");
    match next_ua_event(&mut events, |e| matches!(e, UaEvent::Error(_))).await {
        UaEvent::Error(e) => {
            assert!(matches!(*e, Error::Protocol { .. }), "{e:?}");
            assert!(e.to_string().contains("NOTSIP garbage here"), "{e}");
        }
        _ => unreachable!(),
    }
    conn.send_raw("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/WS x;branch=z9hG4bK1\r\n\r\n");
    match next_ua_event(&mut events, |e| matches!(e, UaEvent::Error(_))).await {
        UaEvent::Error(e) => assert!(e.to_string().contains("missing header `From`"), "{e}"),
        _ => unreachable!(),
    }
    // Keep-alive CRLFs are not errors.
    conn.send_raw("\r\n\r\n");
    let options = SipMessage::request(Method::Options, "sip:alice@x.invalid")
        .with_header("Via", "SIP/2.0/WS proxy1.test;branch=z9hG4bKo1")
        .with_header("From", "<sip:p@sip.test>;tag=p")
        .with_header("To", "<sip:alice@sip.test>")
        .with_header("Call-ID", "o-1")
        .with_header("CSeq", "1 OPTIONS");
    conn.send(&options);
    assert_eq!(conn.recv().await.status(), Some(200));
    assert!(matches!(
        events.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
}

#[tokio::test]
async fn timer_b_and_timer_f() {
    let mut server = SipServer::start().await;
    let mut config = config(&server, "alice");
    config.transaction_timeout = Duration::from_millis(300);
    let (ua, mut conn) = start(&mut server, config).await;
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    conn.recv().await;
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Failed {
            status: 408,
            reason: "Request Timeout".to_owned()
        }
    );
    // After a provisional response Timer B no longer runs: the call waits for the answer.
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    // 183 with early media.
    conn.send(
        &SipMessage::response_to_tagged(&invite, 183, "Session Progress", "x")
            .with_body("application/sdp", ANSWER),
    );
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Ringing {
            status: 183,
            early_sdp: Some(ANSWER.to_owned())
        }
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(600), call.next_event())
            .await
            .is_err()
    );
    conn.send(&answer_200(&invite, "x"));
    assert!(matches!(
        next_dialog_event(&call).await,
        DialogEvent::Answered { .. }
    ));

    let err = ua
        .message("sip:1000@sip.test", "text/plain", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let mut events = ua.events();
    let err = ua.register().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(matches!(
        next_ua_event(&mut events, |e| matches!(
            e,
            UaEvent::RegistrationFailed { .. }
        ))
        .await,
        UaEvent::RegistrationFailed { status: 408, .. }
    ));
}

#[tokio::test]
async fn config_checks_and_no_secrets_in_debug() {
    let server = SipServer::start().await;
    let config = config(&server, "alice");
    let debug = format!("{config:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("[REDACTED]"));
    let mut bad = config.clone();
    bad.user = "a b".to_owned();
    assert!(matches!(
        UserAgent::start(Vendor::Expertflow, bad).await.unwrap_err(),
        Error::InvalidInput { field, .. } if field == "sip.user"
    ));
    let mut bad = config.clone();
    bad.ws_url = url::Url::parse("http://127.0.0.1:1/").unwrap();
    assert!(matches!(
        UserAgent::start(Vendor::Expertflow, bad).await.unwrap_err(),
        Error::InvalidInput { field, .. } if field == "sip.ws_url"
    ));
    // Nothing listens: start gives up after the connect timeout.
    let mut down = config.clone();
    down.ws_url = url::Url::parse("ws://127.0.0.1:9/").unwrap();
    down.connect_timeout = Duration::from_millis(300);
    assert!(UserAgent::start(Vendor::Expertflow, down).await.is_err());
    let name = NameAddr::parse("<sip:a@b>").unwrap();
    assert_eq!(name.uri, "sip:a@b");
}

#[tokio::test]
async fn an_incoming_call_nobody_takes_is_refused_with_480() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    // Nobody listens to the UA's events.
    conn.send(&incoming_invite(&ua, "in-9", "z9hG4bKin9"));
    let response = conn.recv().await;
    assert_eq!(response.status(), Some(480));
    assert_eq!(response.call_id(), Some("in-9"));
    assert!(response.to_tag().is_some());

    // A listener that drops the call without answering: refused once the event is gone.
    let mut events = ua.events();
    conn.send(&incoming_invite(&ua, "in-10", "z9hG4bKin10"));
    let UaEvent::Incoming(call) =
        next_ua_event(&mut events, |e| matches!(e, UaEvent::Incoming(_))).await
    else {
        unreachable!()
    };
    assert!(conn.try_recv(Duration::from_millis(200)).await.is_none());
    drop(call);
    drop(events);
    let response = conn.recv().await;
    assert_eq!(response.status(), Some(480));
    assert_eq!(response.call_id(), Some("in-10"));
}

#[tokio::test]
async fn losing_the_connection_ends_a_ringing_call_and_pending_requests() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let mut events = ua.events();
    let call = ua
        .invite("sip:1000@sip.test", Vec::new(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    // 183 with early media.
    conn.send(
        &SipMessage::response_to_tagged(&invite, 183, "Session Progress", "x")
            .with_body("application/sdp", ANSWER),
    );
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Ringing {
            status: 183,
            early_sdp: Some(ANSWER.to_owned())
        }
    );
    let ua2 = ua.clone();
    let message =
        tokio::spawn(async move { ua2.message("sip:1000@sip.test", "text/plain", "x").await });
    assert_eq!(conn.recv().await.method(), Some(&Method::Message));
    conn.close();
    assert_eq!(
        next_dialog_event(&call).await,
        DialogEvent::Failed {
            status: 503,
            reason: "connection lost".to_owned()
        }
    );
    let err = message.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    // The UA is back on a new connection and works.
    let mut conn = server.accept().await;
    next_ua_event(&mut events, |e| matches!(e, UaEvent::TransportUp)).await;
    let (sent, ()) = tokio::join!(ua.message("sip:1000@sip.test", "text/plain", "y"), async {
        let m = conn.recv().await;
        conn.send(&ok(&m));
    });
    sent.unwrap();
}

#[tokio::test]
async fn a_registrar_that_keeps_saying_stale_gets_three_rounds() {
    let mut server = SipServer::start().await;
    let (ua, mut conn) = start_alice(&mut server).await;
    let (register, ()) = tokio::join!(ua.register(), async {
        for round in 0..3 {
            let request = conn.recv().await;
            assert_eq!(request.header("Authorization").is_some(), round > 0);
            let mut challenge = DigestChallenge::new("sip.test", format!("stale{round}"));
            challenge.stale = round > 0;
            conn.send(
                &SipMessage::response_to(&request, 401, "Unauthorized")
                    .with_header("WWW-Authenticate", challenge.header_value()),
            );
        }
        assert!(conn.try_recv(Duration::from_millis(200)).await.is_none());
    });
    assert!(matches!(register.unwrap_err(), Error::Auth { code: Some(c), .. } if c == "401"));
}

#[tokio::test]
async fn over_wss_via_and_contact_say_wss_and_the_certificate_is_checked() {
    let (mut server, ca_pem) = SipServer::start_tls().await;
    let mut config = config(&server, "alice");
    config.tls = cc_transport::TlsConfig::webpki()
        .with_pem_roots(None, "tls.ca_pem", ca_pem.as_bytes())
        .unwrap();
    let (ua, mut conn) = start(&mut server, config.clone()).await;
    let host = ua.contact_host().to_owned();
    let (register, (first, _)) = tokio::join!(ua.register(), serve_register(&mut conn, 600));
    register.unwrap();
    assert!(
        first
            .header("Via")
            .unwrap()
            .starts_with(&format!("SIP/2.0/WSS {host};branch=")),
        "{first}"
    );
    assert_eq!(
        first.header("Contact"),
        Some(format!("<sip:alice@{host};transport=wss>;expires=600").as_str())
    );
    let _call = ua
        .invite("sip:1000@sip.test", customer_headers(), OFFER.to_owned())
        .await
        .unwrap();
    let invite = conn.recv().await;
    assert_eq!(
        invite.header("Contact"),
        Some(format!("<sip:alice@{host};transport=wss;ob>").as_str())
    );

    // Without the test CA the certificate is refused.
    let mut untrusted = config;
    untrusted.tls = cc_transport::TlsConfig::webpki();
    untrusted.connect_timeout = Duration::from_millis(500);
    assert!(
        UserAgent::start(Vendor::Expertflow, untrusted)
            .await
            .is_err()
    );
}

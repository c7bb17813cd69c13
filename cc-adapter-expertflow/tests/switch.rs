//! The simulator's EF switch on its own, driven by raw SIP frames over a WebSocket (no user
//! agent in between): registrar digest, each `CallAnswer`, the far end's media, DTMF INFO,
//! hold re-INVITE, BYE, CANCEL and what `far_end_call` reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_adapter_expertflow::sim::{
    DIALLING_URI, EXTENSION, PASSWORD, SIP_DOMAIN, SimOptions, Simulator,
};
use cc_core::{MediaDevices, Vendor};
use cc_rtc::media::{MediaConfig, MediaSession};
use cc_rtc::sip::{DigestChallenge, Method, SipCodec, SipMessage, random_token};
use cc_rtc::{RecordingSink, ToneSource};
use cc_testkit::{CallAnswer, SimControl};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const V: Vendor = Vendor::Expertflow;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    ws: Ws,
    codec: SipCodec,
    tag: String,
    cseq: u32,
}

impl Client {
    async fn connect(sim: &Simulator) -> Client {
        let mut req = sim.switch_url().into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
            "sip",
            "the switch picks subprotocol sip"
        );
        Client {
            ws,
            codec: SipCodec::new(V),
            tag: random_token(8),
            cseq: 0,
        }
    }

    fn request(
        &mut self,
        method: Method,
        uri: &str,
        call_id: &str,
        to_tag: Option<&str>,
    ) -> SipMessage {
        self.cseq += 1;
        let to = match to_tag {
            Some(t) => format!("<{uri}>;tag={t}"),
            None => format!("<{uri}>"),
        };
        SipMessage::request(method.clone(), uri)
            .with_header(
                "Via",
                format!("SIP/2.0/WS x.invalid;branch=z9hG4bK{}", random_token(10)),
            )
            .with_header("Max-Forwards", "70")
            .with_header(
                "From",
                format!("<sip:{EXTENSION}@{SIP_DOMAIN}>;tag={}", self.tag),
            )
            .with_header("To", to)
            .with_header("Call-ID", call_id)
            .with_header("CSeq", format!("{} {}", self.cseq, method.as_str()))
            .with_header(
                "Contact",
                format!("<sip:{EXTENSION}@x.invalid;transport=ws>"),
            )
    }

    async fn send(&mut self, m: &SipMessage) {
        self.ws
            .send(Message::text(self.codec.print(m)))
            .await
            .unwrap();
    }

    async fn recv(&mut self) -> SipMessage {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a SIP frame within 5 s")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = f {
                return self.codec.parse(&t).unwrap();
            }
        }
    }

    async fn expect_status(&mut self, status: u16) -> SipMessage {
        let m = self.recv().await;
        assert_eq!(m.status(), Some(status), "{m:?}");
        m
    }

    async fn register(&mut self, password: &str) -> SipMessage {
        let uri = format!("sip:{SIP_DOMAIN}");
        let call_id = random_token(12);
        let first = self.request(Method::Register, &uri, &call_id, None);
        self.send(&first).await;
        let challenge = self.expect_status(401).await;
        let c = DigestChallenge::parse(challenge.header("WWW-Authenticate").unwrap()).unwrap();
        assert_eq!(c.qop, ["auth"]);
        let auth = c
            .authorization(EXTENSION, password, &Method::Register, &uri, 1, "cn0nce")
            .unwrap();
        let second = self
            .request(Method::Register, &uri, &call_id, None)
            .with_header("Authorization", auth)
            .with_header("Expires", "600");
        self.send(&second).await;
        self.recv().await
    }
}

fn target() -> String {
    format!("sip:{DIALLING_URI}@{SIP_DOMAIN}")
}

async fn client_media() -> (MediaSession, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::new());
    let media = MediaSession::start(
        V,
        MediaConfig::loopback(),
        MediaDevices {
            audio_in: Some(Arc::new(ToneSource::new(300.0))),
            audio_out: Some(sink.clone()),
            ..MediaDevices::default()
        },
    )
    .await
    .unwrap();
    (media, sink)
}

#[tokio::test]
async fn registrar_challenges_and_checks_the_password() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut c = Client::connect(&sim).await;
    let bad = c.register("wrong").await;
    assert_eq!((bad.status(), bad.reason()), (Some(403), Some("Forbidden")));
    let ok = c.register(PASSWORD).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(ok.header("Expires"), Some("600"));
    // Refuse: the right password is refused too.
    sim.set_call_answer(CallAnswer::Refuse).await.unwrap();
    let refused = c.register(PASSWORD).await;
    assert_eq!(refused.status(), Some(403));
    // Every frame is recorded on channel `sip`.
    let frames: Vec<_> = sim
        .frames()
        .into_iter()
        .filter(|f| f.channel == "sip")
        .collect();
    assert_eq!(frames.len(), 12, "6 requests and 6 responses");
    assert_eq!(
        frames[0].body["line"],
        format!("REGISTER sip:{SIP_DOMAIN} SIP/2.0")
    );
}

#[tokio::test]
async fn busy_no_answer_and_unregistered() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut c = Client::connect(&sim).await;
    // Not registered: refused.
    let call_id = random_token(12);
    let invite = c.request(Method::Invite, &target(), &call_id, None);
    c.send(&invite).await;
    c.expect_status(100).await;
    c.expect_status(403).await;

    assert_eq!(c.register(PASSWORD).await.status(), Some(200));
    sim.set_call_answer(CallAnswer::Busy).await.unwrap();
    let invite = c.request(Method::Invite, &target(), &random_token(12), None);
    c.send(&invite).await;
    c.expect_status(100).await;
    let busy = c.expect_status(486).await;
    assert_eq!(
        busy.header("X-Call-Dropped-Custom-Reason"),
        Some("USER_BUSY")
    );

    sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let invite = c.request(Method::Invite, &target(), &random_token(12), None);
    let sent = Instant::now();
    c.send(&invite).await;
    c.expect_status(100).await;
    c.expect_status(180).await;
    let gone = c.expect_status(480).await;
    assert_eq!(
        gone.header("X-Call-Dropped-Custom-Reason"),
        Some("NO_ANSWER")
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "{:?}",
        sent.elapsed()
    );
    let far = sim.far_end_call().await.unwrap().unwrap();
    assert!(!far.answered && far.ended);

    // CANCEL while ringing: 200 to the CANCEL, 487 to the INVITE.
    sim.set_call_answer(CallAnswer::NoAnswer).await.unwrap();
    let call_id = random_token(12);
    let invite = c.request(Method::Invite, &target(), &call_id, None);
    c.send(&invite).await;
    c.expect_status(100).await;
    c.expect_status(180).await;
    let mut cancel = invite.clone();
    cancel.start = cc_rtc::sip::StartLine::Request {
        method: Method::Cancel,
        uri: target(),
    };
    cancel.set_header("CSeq", format!("{} CANCEL", c.cseq));
    c.send(&cancel).await;
    c.expect_status(200).await;
    c.expect_status(487).await;
    assert!(sim.far_end_call().await.unwrap().unwrap().ended);
}

#[tokio::test]
async fn answered_call_media_dtmf_hold_bye() {
    let sim = Simulator::start(SimOptions::default()).await.unwrap();
    let mut c = Client::connect(&sim).await;
    assert_eq!(c.register(PASSWORD).await.status(), Some(200));
    // Answer at once: the figure below is then signalling + ICE + DTLS + the first packet.
    sim.set_ring_time(Duration::ZERO).await.unwrap();
    let (media, sink) = client_media().await;
    let offer = media.create_offer().unwrap();
    let call_id = random_token(12);
    let invite = c
        .request(Method::Invite, &target(), &call_id, None)
        .with_header("X-Customer-Name", "Ada")
        .with_header("X-Media-Type", "audio")
        .with_body("application/sdp", offer);
    let sent = Instant::now();
    c.send(&invite).await;
    c.expect_status(100).await;
    let ringing = c.expect_status(180).await;
    let ok = c.expect_status(200).await;
    assert_eq!(ok.to_tag(), ringing.to_tag(), "one To tag per dialog");
    assert_eq!(ok.content_type().as_deref(), Some("application/sdp"));
    media.apply_answer(&ok.body).unwrap();
    let tag = ok.to_tag().unwrap().to_owned();
    let ack = c.request(Method::Ack, &target(), &call_id, Some(&tag));
    c.send(&ack).await;
    media.connected(Duration::from_secs(5)).await.unwrap();
    while media.stats().audio_packets_received == 0 {
        assert!(sent.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "INVITE to the first RTP packet (no ringing): {:?}",
        sent.elapsed()
    );
    assert_eq!(
        sim.call_headers()[0],
        ("X-Customer-Name".to_owned(), "Ada".to_owned())
    );

    // Media both ways.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let far = sim.far_end_call().await.unwrap().unwrap();
        if far.answered
            && far.stats.audio_packets_received >= 25
            && media.stats().audio_packets_received >= 25
        {
            break;
        }
        assert!(Instant::now() < deadline, "{far:?} {:?}", media.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sink.frames() > 0);

    // DTMF over INFO.
    for d in "12#".chars() {
        let info = c
            .request(Method::Info, &target(), &call_id, Some(&tag))
            .with_body(
                "application/dtmf-relay",
                format!("Signal={d}\r\nDuration=150\r\n"),
            );
        c.send(&info).await;
        c.expect_status(200).await;
    }
    assert_eq!(
        sim.far_end_call()
            .await
            .unwrap()
            .unwrap()
            .stats
            .dtmf_received,
        "12#"
    );

    // Hold and resume.
    for on in [true, false] {
        let offer = media.hold_offer(on).unwrap();
        let re = c
            .request(Method::Invite, &target(), &call_id, Some(&tag))
            .with_body("application/sdp", offer);
        c.send(&re).await;
        let answer = c.expect_status(200).await;
        media.apply_answer(&answer.body).unwrap();
        assert_eq!(sim.far_end_call().await.unwrap().unwrap().held, on);
    }

    // The far end hangs up: BYE with the reason.
    sim.far_end_hangup(Some("NORMAL_CLEARING")).unwrap();
    let bye = c.recv().await;
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.call_id(), Some(call_id.as_str()));
    assert_eq!(
        bye.header("X-Call-Dropped-Custom-Reason"),
        Some("NORMAL_CLEARING")
    );
    assert_eq!(
        cc_rtc::sip::end_reason(&bye).as_deref(),
        Some("NORMAL_CLEARING")
    );
    let far = sim.far_end_call().await.unwrap().unwrap();
    assert!(
        far.ended && far.stats.audio_packets_received >= 25,
        "{far:?}"
    );
    media.close().await;
}

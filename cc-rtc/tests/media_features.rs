//! Mute, hold, DTMF, video and a FreeSWITCH-style answer between two loopback media sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::media::{MediaDevices, VideoSource};
use cc_core::{ErrorKind, Vendor};
use cc_rtc::media::{MediaConfig, MediaEvent, MediaSession};
use cc_rtc::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};

const CONNECT: Duration = Duration::from_secs(5);

struct Peer {
    media: MediaSession,
    sink: Arc<RecordingSink>,
    video: Arc<CountingVideoSink>,
}

async fn peer(config: MediaConfig) -> Peer {
    let sink = Arc::new(RecordingSink::new());
    let video = Arc::new(CountingVideoSink::new());
    let devices = MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(sink.clone()),
        video_in: Some(Arc::new(TestPatternVideo::with_interval(
            Duration::from_millis(20),
        ))),
        video_out: Some(video.clone()),
    };
    let media = MediaSession::start(Vendor::Tvox, config, devices)
        .await
        .expect("media session starts");
    Peer { media, sink, video }
}

async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pair(config: MediaConfig) -> (Peer, Peer) {
    let a = peer(config.clone()).await;
    let b = peer(config).await;
    let offer = a.media.create_offer().unwrap();
    let answer = b.media.accept_offer(&offer).unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    b.media.connected(CONNECT).await.unwrap();
    (a, b)
}

/// Waits (at most 3 s) until `to` has received `n` more audio packets.
async fn keeps_receiving(to: &Peer, n: u64, what: &str) {
    let start = to.media.stats().audio_packets_received;
    until(Duration::from_secs(3), what, || {
        to.media.stats().audio_packets_received >= start + n
    })
    .await;
}

/// Packets `to` receives during `window`.
async fn received_during(to: &Peer, window: Duration) -> u64 {
    let before = to.media.stats().audio_packets_received;
    tokio::time::sleep(window).await;
    to.media.stats().audio_packets_received - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_stops_outgoing_audio_packets() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    until(Duration::from_secs(3), "audio", || {
        b.media.stats().audio_packets_received >= 10
    })
    .await;

    a.media.set_audio_muted(true);
    // Let what is in flight arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = a.media.stats().audio_packets_sent;
    assert_eq!(received_during(&b, Duration::from_millis(400)).await, 0);
    assert_eq!(a.media.stats().audio_packets_sent, sent);
    // The other direction is not affected.
    keeps_receiving(&a, 5, "audio").await;

    a.media.set_audio_muted(false);
    until(Duration::from_secs(2), "audio after unmute", || {
        a.media.stats().audio_packets_sent > sent + 5
    })
    .await;
    keeps_receiving(&b, 5, "audio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_follow_the_sdp_directions() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    let mut b_events = b.media.events();
    until(Duration::from_secs(3), "audio", || {
        a.media.stats().audio_packets_received >= 5 && b.media.stats().audio_packets_received >= 5
    })
    .await;

    // a holds: a=sendonly, b answers a=recvonly and stops sending; a keeps sending.
    let reoffer = a.media.hold_offer(true).unwrap();
    assert!(reoffer.contains("a=sendonly"), "{reoffer}");
    let answer = b.media.accept_offer(&reoffer).unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    assert!(b.media.is_held_by_remote());
    assert!(!a.media.is_held_by_remote());
    let held = async {
        loop {
            if let MediaEvent::RemoteHold(on) = b_events.recv().await.unwrap() {
                return on;
            }
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(1), held)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        received_during(&a, Duration::from_millis(400)).await,
        0,
        "b still sends"
    );
    keeps_receiving(&b, 5, "audio from the holder").await;
    // A holder cannot hold twice.
    assert_eq!(
        a.media.hold_offer(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // The held side cannot send DTMF.
    assert_eq!(
        b.media.send_dtmf("1").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // a resumes: a=sendrecv both ways.
    let reoffer = a.media.hold_offer(false).unwrap();
    assert!(reoffer.contains("a=sendrecv"), "{reoffer}");
    let answer = b.media.accept_offer(&reoffer).unwrap();
    assert!(answer.contains("a=sendrecv"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    assert!(!b.media.is_held_by_remote());
    until(Duration::from_secs(2), "audio after resume", || {
        a.media.stats().audio_packets_received >= 15
    })
    .await;
    keeps_receiving(&a, 5, "audio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_offer_from_the_held_side_keeps_the_hold() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    let reoffer = a.media.hold_offer(true).unwrap();
    a.media
        .apply_answer(&b.media.accept_offer(&reoffer).unwrap())
        .unwrap();
    assert!(b.media.is_held_by_remote());
    // The held side re-offers sendrecv (a session refresh, or it tries to resume).
    let from_b = b.media.hold_offer(false).unwrap();
    assert!(from_b.contains("a=sendrecv"), "{from_b}");
    let answer = a.media.accept_offer(&from_b).unwrap();
    assert!(
        answer.contains("a=sendonly"),
        "the holder keeps its hold: {answer}"
    );
    b.media.apply_answer(&answer).unwrap();
    assert!(b.media.is_held_by_remote());
    assert!(!a.media.is_held_by_remote());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        received_during(&a, Duration::from_millis(300)).await,
        0,
        "b sends while held"
    );
    keeps_receiving(&b, 5, "audio").await;

    // The holder resumes.
    let resume = a.media.hold_offer(false).unwrap();
    a.media
        .apply_answer(&b.media.accept_offer(&resume).unwrap())
        .unwrap();
    assert!(!b.media.is_held_by_remote());
    until(Duration::from_secs(2), "audio from b again", || {
        a.media.stats().audio_packets_received > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_inactive_offer_is_a_remote_hold() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    // A far end that holds with a=inactive (some PBXs do).
    let reoffer = a
        .media
        .hold_offer(true)
        .unwrap()
        .replace("a=sendonly", "a=inactive");
    let answer = b.media.accept_offer(&reoffer).unwrap();
    assert!(answer.contains("a=inactive"), "{answer}");
    assert!(b.media.is_held_by_remote());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_digits_arrive_once_each_in_order() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    let mut b_events = b.media.events();
    a.media.send_dtmf("12#*9A").unwrap();
    until(Duration::from_secs(4), "six digits", || {
        b.media.stats().dtmf_received.len() >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.media.stats().dtmf_received, "12#*9A");
    let mut digits = String::new();
    while let Ok(event) = b_events.try_recv() {
        if let MediaEvent::Dtmf(c) = event {
            digits.push(c);
        }
    }
    assert_eq!(digits, "12#*9A");
    assert_eq!(a.media.stats().dtmf_received, "");

    // While muted, DTMF still goes out (alone).
    b.media.set_audio_muted(true);
    b.media.send_dtmf("0").unwrap();
    until(Duration::from_secs(2), "a digit while muted", || {
        a.media.stats().dtmf_received == "0"
    })
    .await;

    let err = a.media.send_dtmf("1x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("dtmf"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_is_unsupported_without_telephone_event() {
    let a = peer(MediaConfig::loopback()).await;
    let b = peer(MediaConfig::loopback()).await;
    let offer = a.media.create_offer().unwrap();
    let answer = b.media.accept_offer(&offer).unwrap();
    // A far end that does not do RFC 4733.
    let answer: String = answer
        .lines()
        .filter(|l| !l.contains("telephone-event") && !l.starts_with("a=fmtp:101"))
        .map(|l| {
            if l.starts_with("m=audio") {
                l.replace(" 101", "")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\r\n")
        .collect();
    a.media.apply_answer(&answer).unwrap();
    assert_eq!(
        a.media.send_dtmf("1").unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_frames_flow_both_ways() {
    let config = MediaConfig {
        video: true,
        ..MediaConfig::loopback()
    };
    let a = peer(config.clone()).await;
    let b = peer(config).await;
    let offer = a.media.create_offer().unwrap();
    assert!(
        offer.contains("m=video") && offer.contains("VP8/90000"),
        "{offer}"
    );
    let answer = b.media.accept_offer(&offer).unwrap();
    assert!(answer.contains("m=video"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(4), "20 frames both ways", || {
        a.video.frames() >= 20 && b.video.frames() >= 20
    })
    .await;
    let (sa, sb) = (a.media.stats(), b.media.stats());
    assert!(
        sa.video_frames_sent >= 20 && sb.video_frames_received >= 20,
        "{sa:?} {sb:?}"
    );
    assert!(b.video.keyframes() >= 1, "the first frame is a key frame");
    let last = b.video.last_frame().unwrap();
    assert_eq!(last.codec, cc_core::media::VideoCodec::Vp8);
    // Audio flows next to it on the same transport.
    assert!(sb.audio_packets_received > 0);

    a.media.set_video_muted(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frames = b.video.frames();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.video.frames(), frames, "video muted");
    assert!(a.video.frames() > 20, "b still sends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_side_answers_a_video_offer_without_video() {
    let a = peer(MediaConfig {
        video: true,
        ..MediaConfig::loopback()
    })
    .await;
    let b = peer(MediaConfig::loopback()).await;
    let answer = b
        .media
        .accept_offer(&a.media.create_offer().unwrap())
        .unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(3), "audio", || {
        b.media.stats().audio_packets_received >= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.media.stats().video_frames_received, 0);
    assert_eq!(a.media.stats().video_frames_sent, 0);
}

/// Rewrites a str0m answer the way FreeSWITCH lays one out (its own o=/s= lines, session-level
/// attributes, `a=ptime`, `a=rtcp`, an ssrc line of its own), keeping the transport facts.
fn freeswitch_style(answer: &str) -> String {
    let mut out = String::new();
    let mut in_media = false;
    for line in answer.lines() {
        if line.starts_with("o=") {
            out.push_str("o=FreeSWITCH 1700000000 1700000001 IN IP4 127.0.0.1\r\n");
            continue;
        }
        if line.starts_with("s=") {
            out.push_str("s=FreeSWITCH\r\n");
            continue;
        }
        if line.starts_with("a=msid-semantic") || line.starts_with("a=extmap") {
            continue;
        }
        if line.starts_with("m=audio") {
            in_media = true;
        }
        out.push_str(line);
        out.push_str("\r\n");
        if in_media && line.starts_with("c=") {
            out.push_str("a=ptime:20\r\n");
        }
        if in_media && line.starts_with("a=rtcp-mux") {
            out.push_str("a=rtcp:9 IN IP4 0.0.0.0\r\n");
            out.push_str("a=ssrc:1234567 cname:fs-cname\r\n");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeswitch_style_answer_connects() {
    let a = peer(MediaConfig::loopback()).await;
    let b = peer(MediaConfig::loopback()).await;
    let offer = a.media.create_offer().unwrap();
    // FreeSWITCH takes the DTLS client role (a=setup:active) when it answers. str0m answers an
    // actpass offer as passive, so the far end here sees a passive offer to become active, as
    // FreeSWITCH is; our side still sent (and keeps) actpass.
    let original = b
        .media
        .accept_offer(&offer.replace("a=setup:actpass", "a=setup:passive"))
        .unwrap();
    assert!(original.contains("a=setup:active"), "{original}");
    let answer = freeswitch_style(&original);
    assert!(answer.contains("a=mid:"), "{answer}");
    assert!(answer.contains("a=group:BUNDLE"), "{answer}");
    assert!(answer.contains("a=setup:active"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(3), "audio both ways", || {
        a.sink.frames() >= 10 && b.sink.frames() >= 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_candidates_connect_an_offer_without_candidates() {
    let a = peer(MediaConfig::loopback()).await;
    let b = peer(MediaConfig::loopback()).await;
    let strip = |sdp: &str| -> String {
        sdp.lines()
            .filter(|l| !l.starts_with("a=candidate"))
            .map(|l| format!("{l}\r\n"))
            .collect()
    };
    let offer = strip(&a.media.create_offer().unwrap());
    let answer = strip(&b.media.accept_offer(&offer).unwrap());
    a.media.apply_answer(&answer).unwrap();
    for c in a.media.local_candidates() {
        b.media.add_remote_candidate(&format!("a={c}")).unwrap();
    }
    for c in b.media.local_candidates() {
        a.media.add_remote_candidate(&c).unwrap();
    }
    a.media.connected(CONNECT).await.unwrap();
    b.media.connected(CONNECT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_initial_offer_is_refused() {
    let a = peer(MediaConfig::loopback()).await;
    a.media.create_offer().unwrap();
    assert_eq!(
        a.media.create_offer().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Nothing negotiated: a hold offer has nothing to hold.
    let fresh = peer(MediaConfig::loopback()).await;
    assert_eq!(
        fresh.media.hold_offer(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(fresh.sink.frames() == 0);
    let source = TestPatternVideo::new();
    assert!(source.next_frame().unwrap().keyframe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unspecified_bind_without_ice_servers_is_refused() {
    let config = MediaConfig {
        bind: "0.0.0.0".parse().unwrap(),
        ..MediaConfig::loopback()
    };
    let err = MediaSession::start(Vendor::Tvox, config, MediaDevices::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("media.bind"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hold_offer_rolls_back() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    // The far end refuses the re-offer (SIP 488): nothing changes, the hold can be tried again.
    let _refused = a.media.hold_offer(true).unwrap();
    assert!(a.media.rollback_offer());
    assert!(!a.media.rollback_offer(), "nothing waits any more");
    keeps_receiving(&b, 5, "audio after the rollback").await;
    keeps_receiving(&a, 5, "audio after the rollback").await;
    let again = a.media.hold_offer(true).unwrap();
    assert!(again.contains("a=sendonly"), "{again}");
    a.media
        .apply_answer(&b.media.accept_offer(&again).unwrap())
        .unwrap();
    assert!(b.media.is_held_by_remote());

    // An initial offer that was refused can be made again, with one audio m-line.
    let c = peer(MediaConfig::loopback()).await;
    c.media.create_offer().unwrap();
    assert!(c.media.rollback_offer());
    let offer = c.media.create_offer().unwrap();
    assert_eq!(offer.matches("m=audio").count(), 1, "{offer}");
    let d = peer(MediaConfig::loopback()).await;
    c.media
        .apply_answer(&d.media.accept_offer(&offer).unwrap())
        .unwrap();
    c.media.connected(CONNECT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_crossing_let_the_far_end_win() {
    let (a, b) = pair(MediaConfig::loopback()).await;
    // Both hold at once; a takes b's offer (ours is dropped and undone), then holds again.
    let _mine = a.media.hold_offer(true).unwrap();
    let theirs = b.media.hold_offer(true).unwrap();
    let answer = a.media.accept_offer(&theirs).unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    b.media.apply_answer(&answer).unwrap();
    assert!(a.media.is_held_by_remote());
    assert!(!a.media.rollback_offer());
}

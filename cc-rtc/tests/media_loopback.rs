//! Two media sessions on 127.0.0.1: offer/answer, ICE, DTLS-SRTP, audio both ways.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::Vendor;
use cc_core::media::MediaDevices;
use cc_rtc::media::{MediaConfig, MediaEvent, MediaSession};
use cc_rtc::{RecordingSink, ToneSource};

const CONNECT: Duration = Duration::from_secs(5);

struct Peer {
    media: MediaSession,
    sink: Arc<RecordingSink>,
}

async fn peer(config: MediaConfig, hz: f32) -> Peer {
    let sink = Arc::new(RecordingSink::new());
    let devices = MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(hz))),
        audio_out: Some(sink.clone()),
        ..Default::default()
    };
    let media = MediaSession::start(Vendor::Expertflow, config, devices)
        .await
        .expect("media session starts");
    Peer { media, sink }
}

/// Waits until `cond` holds, polling every 20 ms, at most `limit`.
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connected_pair() -> (Peer, Peer) {
    let a = peer(MediaConfig::loopback(), 440.0).await;
    let b = peer(MediaConfig::loopback(), 440.0).await;
    let offer = a.media.create_offer().unwrap();
    let answer = b.media.accept_offer(&offer).unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    b.media.connected(CONNECT).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_flows_both_ways_over_g711() {
    let a = peer(MediaConfig::loopback(), 440.0).await;
    let b = peer(MediaConfig::loopback(), 440.0).await;
    let mut a_events = a.media.events();

    let started = Instant::now();
    let offer = a.media.create_offer().unwrap();
    assert!(offer.contains("a=group:BUNDLE"), "{offer}");
    assert!(offer.contains("a=rtcp-mux"), "{offer}");
    assert!(
        offer.contains("PCMU/8000") && offer.contains("PCMA/8000"),
        "{offer}"
    );
    assert!(offer.contains("telephone-event/8000"), "{offer}");
    assert!(offer.contains("a=fingerprint:sha-256"), "{offer}");
    assert!(offer.contains("typ host"), "{offer}");
    assert!(!offer.contains("m=video"), "{offer}");
    assert_eq!(a.media.local_candidates().len(), 1);

    let answer = b.media.accept_offer(&offer).unwrap();
    assert!(answer.contains("a=setup:"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    b.media.connected(CONNECT).await.unwrap();
    assert!(a.media.is_connected());
    assert_eq!(a_events.recv().await.unwrap(), MediaEvent::Connected);

    until(Duration::from_secs(3), "the first packet", || {
        b.media.stats().audio_packets_received > 0
    })
    .await;
    eprintln!("offer to first received packet: {:?}", started.elapsed());

    until(Duration::from_secs(4), "50 packets both ways", || {
        a.media.stats().audio_packets_received >= 50 && b.media.stats().audio_packets_received >= 50
    })
    .await;
    let (sa, sb) = (a.media.stats(), b.media.stats());
    assert_eq!(sa.audio_codec.as_deref(), Some("PCMU"));
    assert_eq!(sb.audio_codec.as_deref(), Some("PCMU"));
    assert!(
        sa.audio_packets_sent >= 50 && sb.audio_packets_sent >= 50,
        "{sa:?} {sb:?}"
    );
    assert!(b.sink.frames() >= 50);
    let hz = b.sink.dominant_hz().expect("a tone");
    assert!((hz - 440.0).abs() < 10.0, "received {hz} Hz");
    let hz = a.sink.dominant_hz().expect("a tone");
    assert!((hz - 440.0).abs() < 10.0, "received {hz} Hz");

    a.media.close().await;
    b.media.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_tones_arrive_at_the_right_side() {
    let a = peer(MediaConfig::loopback(), 440.0).await;
    let b = peer(MediaConfig::loopback(), 1000.0).await;
    let offer = a.media.create_offer().unwrap();
    let answer = b.media.accept_offer(&offer).unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(3), "audio both ways", || {
        a.sink.frames() >= 20 && b.sink.frames() >= 20
    })
    .await;
    let at_a = a.sink.dominant_hz().unwrap();
    let at_b = b.sink.dominant_hz().unwrap();
    assert!((at_a - 1000.0).abs() < 20.0, "a hears {at_a}");
    assert!((at_b - 440.0).abs() < 10.0, "b hears {at_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_everything() {
    let (a, b) = connected_pair().await;
    until(Duration::from_secs(3), "audio", || {
        b.media.stats().audio_packets_received > 5
    })
    .await;
    let mut b_events = b.media.events();
    a.media.close().await;
    assert!(a.media.is_closed());
    // The far end hears of it at once (DTLS close alert), not after an ICE timeout.
    let closed = async {
        loop {
            if b_events.recv().await.unwrap() == MediaEvent::Closed {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), closed)
        .await
        .expect("the far end sees the close");
    let sent = a.media.stats().audio_packets_sent;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = b.media.stats().audio_packets_received;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.media.stats().audio_packets_sent, sent);
    assert_eq!(
        b.media.stats().audio_packets_received,
        received,
        "a still sends"
    );
    let err = a.media.create_offer().unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::Closed);
    assert!(a.media.connected(Duration::from_millis(100)).await.is_err());
    b.media.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sdp_is_a_protocol_error_naming_the_sdp() {
    let a = peer(MediaConfig::loopback(), 440.0).await;
    let err = a.media.accept_offer("this is not SDP").unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("SDP offer"), "{err}");

    let err = a.media.apply_answer("v=0\r\n").unwrap_err();
    assert!(
        matches!(
            err.kind(),
            cc_core::ErrorKind::Protocol | cc_core::ErrorKind::InvalidInput
        ),
        "{err}"
    );
    assert!(err.to_string().contains("SDP answer"), "{err}");

    // An answer with no offer waiting.
    let b = peer(MediaConfig::loopback(), 440.0).await;
    let offer = b.media.create_offer().unwrap();
    let c = peer(MediaConfig::loopback(), 440.0).await;
    let answer = c.media.accept_offer(&offer).unwrap();
    let err = a.media.apply_answer(&answer).unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("SDP answer"), "{err}");

    let err = a
        .media
        .add_remote_candidate("candidate:garbage")
        .unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("candidate"), "{err}");
}

#[cfg(feature = "opus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_flows_over_opus_when_both_offer_it() {
    let config = MediaConfig {
        opus: true,
        ..MediaConfig::loopback()
    };
    let a = peer(config.clone(), 440.0).await;
    let b = peer(config, 440.0).await;
    let offer = a.media.create_offer().unwrap();
    assert!(offer.contains("opus/48000/2"), "{offer}");
    assert!(offer.contains("telephone-event/48000"), "{offer}");
    let answer = b.media.accept_offer(&offer).unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(4), "opus audio both ways", || {
        a.sink.frames() >= 30 && b.sink.frames() >= 30
    })
    .await;
    assert_eq!(a.media.stats().audio_codec.as_deref(), Some("opus"));
    assert_eq!(b.sink.sample_rate(), 48_000);
    let hz = b.sink.dominant_hz().expect("a tone");
    assert!((hz - 440.0).abs() < 10.0, "received {hz} Hz");
    a.media.send_dtmf("5").unwrap();
    until(Duration::from_secs(2), "a digit", || {
        b.media.stats().dtmf_received == "5"
    })
    .await;
}

#[cfg(feature = "opus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_offer_falls_back_to_g711_with_a_g711_only_peer() {
    let a = peer(
        MediaConfig {
            opus: true,
            ..MediaConfig::loopback()
        },
        440.0,
    )
    .await;
    let b = peer(MediaConfig::loopback(), 440.0).await;
    let answer = b
        .media
        .accept_offer(&a.media.create_offer().unwrap())
        .unwrap();
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(3), "audio", || b.sink.frames() >= 10).await;
    assert_eq!(a.media.stats().audio_codec.as_deref(), Some("PCMU"));
}

#[cfg(not(feature = "opus"))]
#[tokio::test]
async fn opus_without_the_feature_is_refused() {
    let config = MediaConfig {
        opus: true,
        ..MediaConfig::loopback()
    };
    let err = MediaSession::start(Vendor::Expertflow, config, MediaDevices::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), cc_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("media.opus"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pcma_only_offer_is_answered_and_played_in_a_law() {
    let a = peer(MediaConfig::loopback(), 440.0).await;
    let b = peer(MediaConfig::loopback(), 440.0).await;
    // As a G.711 A-law gateway offers: payload 8 only (plus telephone-event).
    let offer: String = a
        .media
        .create_offer()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("a=rtpmap:0 ") && !l.starts_with("a=rtcp-fb:0 "))
        .map(|l| {
            if l.starts_with("m=audio") {
                l.replace(" 0 8", " 8")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\r\n")
        .collect();
    assert!(offer.contains("SAVPF 8 101"), "{offer}");
    let answer = b.media.accept_offer(&offer).unwrap();
    assert!(!answer.contains("PCMU"), "{answer}");
    a.media.apply_answer(&answer).unwrap();
    a.media.connected(CONNECT).await.unwrap();
    until(Duration::from_secs(3), "A-law audio both ways", || {
        a.sink.frames() >= 20 && b.sink.frames() >= 20
    })
    .await;
    assert_eq!(b.media.stats().audio_codec.as_deref(), Some("PCMA"));
    assert_eq!(a.media.stats().audio_codec.as_deref(), Some("PCMA"));
    let hz = a.sink.dominant_hz().unwrap();
    assert!((hz - 440.0).abs() < 10.0, "{hz}");
}

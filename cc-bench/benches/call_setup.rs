//! Call set-up time on loopback, per adapter with calls.
//!
//! The far end answers at once (`SimControl::set_ring_time(0)`), so the figure is the
//! SDK's and the simulator's own work: from `start_call` (the INVITE or the vendor's call
//! request goes out at once; registration is done by a warm-up call first) to the first
//! audio frame from the far end decoded into the app's sink, and to `Event::Call`
//! `Connected`. Medians over the calls of one run.
//!
//! A second figure isolates the SIP path: our `UserAgent`, registered at the Expertflow
//! simulator's switch once, sends an INVITE with a `MediaSession` offer; the time runs from
//! the INVITE to the first audio frame the far end sent, decoded into the sink.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cc_bench::{BoxError, SimThread, chat_request, full_run, lane_name, lanes, median, report};
use cc_sdk::rtc::ToneSource;
use cc_sdk::testkit::CallAnswer;
use cc_sdk::{AudioSink, CallRequest, CallSession, CallState, Event, MediaDevices, Role, Session};
use futures::StreamExt;

/// An audio sink that notes when the first frame arrived.
#[derive(Debug, Default)]
struct FirstFrame {
    at: OnceLock<Instant>,
    arrived: tokio::sync::Notify,
}

impl AudioSink for FirstFrame {
    fn write_frame(&self, _sample_rate: u32, _pcm: &[i16]) {
        if self.at.set(Instant::now()).is_ok() {
            self.arrived.notify_one();
        }
    }
}

const STEP: Duration = Duration::from_secs(10);

fn main() -> Result<(), BoxError> {
    let calls = if full_run() { 30 } else { 2 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = Vec::new();
    let mut measured = 0;
    for (entry, transport) in lanes(true)? {
        let lane = lane_name(&entry, transport);
        let run = || -> Result<Option<(f64, f64)>, BoxError> {
            let sim = SimThread::start(entry, transport)?;
            rt.block_on(lane_run(&sim, calls))
        };
        match run() {
            Ok(None) => eprintln!("{lane}: no calls, skipped"),
            Ok(Some((media, connected))) => {
                measured += 1;
                eprintln!(
                    "{lane}: start_call -> first far-end audio frame median {media:.1} ms, \
                     -> Connected {connected:.1} ms, over {calls} calls"
                );
                report("call_setup_first_audio", &lane, media, "ms");
                report("call_setup_connected", &lane, connected, "ms");
            }
            Err(e) => {
                eprintln!("{lane}: FAILED: {e}");
                failed.push(lane);
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!("failed lanes: {}", failed.join(", ")).into());
    }
    if measured == 0 {
        return Err("no simulator with calls to measure".into());
    }
    if std::env::var("CC_BENCH_VENDOR").map_or(true, |v| v == "expertflow") {
        let invite = rt.block_on(sip_invite(calls))?;
        eprintln!(
            "expertflow switch, SIP user agent: INVITE -> first far-end audio frame median \
             {invite:.1} ms over {calls} calls"
        );
        report(
            "sip_invite_to_first_audio",
            "expertflow/switch",
            invite,
            "ms",
        );
    }
    Ok(())
}

/// INVITE → first far-end audio frame through the Expertflow simulator's switch, with the
/// SIP user agent and the media engine used directly.
async fn sip_invite(calls: usize) -> Result<f64, BoxError> {
    use cc_sdk::Secret;
    use cc_sdk::expertflow::sim::{
        DIALLING_URI, EXTENSION, PASSWORD, SIP_DOMAIN, SimOptions, Simulator,
    };
    use cc_sdk::rtc::media::{MediaConfig, MediaSession};
    use cc_sdk::rtc::sip::{DialogEvent, UaConfig, UserAgent};
    use cc_sdk::testkit::SimControl;

    let vendor = cc_sdk::Vendor::Expertflow;
    let sim = Simulator::start(SimOptions::default()).await?;
    sim.set_ring_time(Duration::ZERO).await?;
    let mut config = UaConfig::new(url::Url::parse(&sim.switch_url())?, SIP_DOMAIN, EXTENSION);
    config.password = Some(Secret::new(PASSWORD));
    let ua = UserAgent::start(vendor, config).await?;
    ua.register().await?;
    let target = format!("sip:{DIALLING_URI}@{SIP_DOMAIN}");
    let mut samples = Vec::new();
    for i in 0..=calls {
        let first = Arc::new(FirstFrame::default());
        let devices = MediaDevices {
            audio_in: Some(Arc::new(ToneSource::new(440.0))),
            audio_out: Some(first.clone()),
            ..MediaDevices::default()
        };
        let media = MediaSession::start(vendor, MediaConfig::loopback(), devices).await?;
        let offer = media.create_offer()?;
        let t0 = Instant::now();
        let dialog = ua.invite(&target, Vec::new(), offer).await?;
        loop {
            match tokio::time::timeout(STEP, dialog.next_event()).await {
                Err(_) => return Err("no answer to the INVITE within 10 s".into()),
                Ok(None) => return Err("the dialog ended before an answer".into()),
                Ok(Some(DialogEvent::Answered { sdp })) => {
                    media.apply_answer(&sdp)?;
                    break;
                }
                Ok(Some(DialogEvent::Failed { status, reason })) => {
                    return Err(format!("INVITE failed: {status} {reason}").into());
                }
                Ok(Some(_)) => {}
            }
        }
        tokio::time::timeout(STEP, first.arrived.notified())
            .await
            .map_err(|_| "no far-end audio within 10 s")?;
        let at = first.at.get().ok_or("the first-frame time is missing")?;
        if i > 0 {
            samples.push(ms(at.duration_since(t0)));
        }
        dialog.bye(Vec::new()).await?;
        media.close().await;
    }
    ua.close().await;
    Ok(median(&samples))
}

async fn lane_run(sim: &SimThread, calls: usize) -> Result<Option<(f64, f64)>, BoxError> {
    let session = cc_sdk::connect(&sim.config).await?;
    if !session.capabilities().calls_audio {
        return Ok(None);
    }
    let mut events = session.events();
    let _chat = session.start_chat(chat_request("caller")).await?;
    sim.run(|c| async move {
        let chat = c.wait_for_chat(STEP).await?;
        c.agent_joins(&chat, "Alex Agent").await?;
        c.set_call_answer(CallAnswer::Answer).await?;
        c.set_ring_time(Duration::ZERO).await
    })
    .await?;
    cc_bench::wait_for(&mut events, "the agent", STEP, |e| {
        matches!(e, Event::ParticipantJoined { participant, .. } if participant.role == Role::Agent)
    })
    .await?;
    let (mut media, mut connected) = (Vec::new(), Vec::new());
    // The first call is a warm-up (registration, first connection of the media path).
    for i in 0..=calls {
        let (m, c) = one_call(&*session).await?;
        if i > 0 {
            media.push(m);
            connected.push(c);
        }
    }
    session.shutdown().await?;
    Ok(Some((median(&media), median(&connected))))
}

/// One call: returns milliseconds to the first far-end audio frame and to `Connected`.
async fn one_call(session: &dyn Session) -> Result<(f64, f64), BoxError> {
    let first = Arc::new(FirstFrame::default());
    let request = CallRequest {
        devices: MediaDevices {
            audio_in: Some(Arc::new(ToneSource::new(440.0))),
            audio_out: Some(first.clone()),
            ..MediaDevices::default()
        },
        ..CallRequest::default()
    };
    let t0 = Instant::now();
    let call = session.start_call(request).await?;
    let mut events = call.events();
    let connected = wait_state(&mut events, &*call, |s| *s == CallState::Connected).await?;
    let connected = connected.duration_since(t0);
    tokio::time::timeout(STEP, first.arrived.notified())
        .await
        .map_err(|_| "no far-end audio within 10 s")?;
    let media = first
        .at
        .get()
        .ok_or("the first-frame time is missing")?
        .duration_since(t0);
    call.hangup().await?;
    wait_state(&mut events, &*call, |s| {
        matches!(s, CallState::Ended { .. })
    })
    .await?;
    Ok((ms(media), ms(connected)))
}

async fn wait_state(
    events: &mut cc_sdk::EventStream,
    call: &dyn CallSession,
    want: impl Fn(&CallState) -> bool,
) -> Result<Instant, BoxError> {
    let id = call.id();
    if want(&call.state()) {
        return Ok(Instant::now());
    }
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => {
                return Err(
                    format!("call state not reached within {STEP:?}: {:?}", call.state()).into(),
                );
            }
            Ok(None) => return Err("the call's event stream closed".into()),
            Ok(Some(Event::Call { call: c, state })) if c == id && want(&state) => {
                return Ok(Instant::now());
            }
            Ok(Some(_)) => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

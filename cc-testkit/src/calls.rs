//! The call scenarios: the same script for every adapter with calls, against its simulator's
//! far end (a media peer that plays a tone and counts what it receives).
//!
//! | scenario | needs | what it does and expects |
//! |---|---|---|
//! | `call_full` | chat, calls_audio | start, join; `sim.set_call_answer(Answer)`; `start_call` with a 440 Hz tone source and a recording sink → `Event::Call` `Ringing` then `Connected` on the session stream; RTP audio flows both ways (client `stats()` and `sim.far_end_call()` each count at least 25 packets received); `mute_audio(true)` → the far end receives at most 3 more packets over 600 ms; `mute_audio(false)` → it receives 10 more; with `call_hold`: `hold(true)` → `OnHold`, the far end sees the call held; `hold(false)` → `Connected`, not held; with `call_dtmf`: `dtmf("12#")` → the far end received `12#`; `hangup()` → `Ended` with a reason starting `local-hangup`; the far end saw the end; the chat goes on (customer says "after the call") |
//! | `call_video` | chat, calls_audio, calls_video | as `call_full` up to media, with video requested, a test-pattern source and a counting sink: video frames both ways (at least 10 each), the far end negotiated video; hang up |
//! | `call_busy` | chat, calls_audio | start, join; `set_call_answer(Busy)`; `start_call` → `Ended` with a reason starting `busy`; the far end never answered |
//! | `call_no_answer` | chat, calls_audio | `set_call_answer(NoAnswer)` → `Ringing`, then `Ended` with a reason starting `no-answer` |
//! | `call_refused` | chat, calls_audio | `set_call_answer(Refuse)` → `start_call` fails with `Error::Auth` or `Error::Rejected` |
//!
//! Ended reasons start with a neutral word (`busy`, `no-answer`, `rejected`, `failed`,
//! `local-hangup`, `remote-hangup`), then `: ` and the vendor's own text when it gave one.

use std::sync::Arc;
use std::time::Duration;

use cc_core::{
    CallRequest, CallSession, CallState, CallStats, ErrorKind, Event, Feature, MediaDevices,
};
use cc_rtc::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};

use crate::Failure;
use crate::harness::{Harness, Outcome, StepExt, check};
use crate::scenarios::{customer_says, start_and_join};
use crate::sim::{CallAnswer, FarEndCall, FarEndWait};

/// Packets each side must have received before media counts as flowing.
const FLOWING: u64 = 25;

fn request(h: &Harness, video: bool) -> CallRequest {
    let chat = h.chat_request();
    CallRequest {
        customer: chat.customer,
        video,
        routing: chat.routing,
        context: chat.context,
        devices: test_devices(video),
    }
}

/// The devices of a test call: a 440 Hz tone and a recording sink; with `video`, a test
/// pattern and a frame-counting sink too.
pub fn test_devices(video: bool) -> MediaDevices {
    MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(Arc::new(RecordingSink::new())),
        video_in: video.then(|| Arc::new(TestPatternVideo::new()) as _),
        video_out: video.then(|| Arc::new(CountingVideoSink::new()) as _),
    }
}

/// For a plain `#[test]`: [`wait_call_stats`], panicking with `what` and the last statistics
/// read when `timeout` passes first.
pub async fn client_stats_until(
    call: &dyn CallSession,
    timeout: Duration,
    what: &str,
    done: impl FnMut(&CallStats) -> bool,
) -> CallStats {
    match wait_call_stats(call, timeout, done).await {
        Ok(StatsWait::Done(stats)) => stats,
        Ok(StatsWait::TimedOut(stats)) => {
            panic!("{what}: not within {timeout:?}; the client's statistics: {stats:#?}")
        }
        Err(e) => panic!("{what}: stats() failed: {e}"),
    }
}

/// For a plain `#[test]`: [`SimControl::wait_far_end`], panicking with `what` and the far
/// end's last view when `timeout` passes first.
///
/// [`SimControl::wait_far_end`]: crate::SimControl::wait_far_end
pub async fn far_end_until(
    sim: &dyn crate::SimControl,
    timeout: Duration,
    what: &str,
    done: impl Fn(&FarEndCall) -> bool + Send + Sync,
) -> FarEndCall {
    match sim.wait_far_end(timeout, &done).await {
        Ok(FarEndWait::Done(far)) => far,
        Ok(FarEndWait::TimedOut(far)) => {
            panic!("{what}: not within {timeout:?}; the far end saw {far:#?}")
        }
        Err(e) => panic!("{what}: far_end_call() failed: {e}"),
    }
}

/// Waits for `Event::Call` of this call in a state `want` accepts.
async fn expect_call_state(
    h: &mut Harness,
    step: &str,
    call: &Arc<str>,
    mut want: impl FnMut(&CallState) -> bool,
) -> Result<CallState, Failure> {
    let ev = h
        .expect(
            step,
            |e| matches!(e, Event::Call { call: c, state } if c == call && want(state)),
        )
        .await?;
    match ev {
        Event::Call { state, .. } => Ok(state),
        _ => unreachable!("matched Event::Call"),
    }
}

/// Polls the far end until `done` accepts what it saw.
async fn wait_far_end(
    h: &mut Harness,
    step: &str,
    done: impl Fn(&FarEndCall) -> bool + Send + Sync,
) -> Result<FarEndCall, Failure> {
    match h.sim().wait_far_end(h.timeout(), &done).await.step(step)? {
        FarEndWait::Done(far) => Ok(far),
        FarEndWait::TimedOut(seen) => {
            h.events.drain();
            Err(h.events.failure(
                step,
                &format!("not within {:?}; the far end saw {seen:#?}", h.timeout()),
            ))
        }
    }
}

async fn far_end(h: &mut Harness, step: &str) -> Result<FarEndCall, Failure> {
    wait_far_end(h, step, |_| true).await
}

/// Dials with the far end answering and waits until media flows both ways.
async fn connected_call(h: &mut Harness, video: bool) -> Result<Arc<dyn CallSession>, Failure> {
    h.sim()
        .set_call_answer(CallAnswer::Answer)
        .await
        .step("far end will answer")?;
    let call = h
        .session()
        .start_call(request(h, video))
        .await
        .step("start call")?;
    let id = call.id();
    expect_call_state(h, "call rings", &id, |s| *s == CallState::Ringing).await?;
    expect_call_state(h, "call connected", &id, |s| *s == CallState::Connected).await?;
    wait_far_end(h, "far end receives audio", |f| {
        f.answered && f.stats.audio_packets_received >= FLOWING
    })
    .await?;
    wait_client(h, "client receives audio", &*call, |s| {
        s.audio_packets_received >= FLOWING
    })
    .await?;
    Ok(call)
}

/// Polls the client's own `stats()` until `done` accepts them.
async fn wait_client(
    h: &Harness,
    step: &str,
    call: &dyn CallSession,
    done: impl FnMut(&CallStats) -> bool,
) -> Outcome {
    match wait_call_stats(call, h.timeout(), done).await.step(step)? {
        StatsWait::Done(_) => Ok(()),
        StatsWait::TimedOut(stats) => Err(Failure::new(format!(
            "step `{step}`: not within {:?}: {stats:?}",
            h.timeout()
        ))),
    }
}

/// How [`wait_call_stats`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsWait {
    /// The statistics that were accepted.
    Done(CallStats),
    /// Not within the timeout: the last statistics read.
    TimedOut(CallStats),
}

/// Polls a call's own [`CallSession::stats`] every 20 ms until `done` accepts them, or
/// `timeout` passes: the client's side of what [`SimControl::wait_far_end`] does for the
/// simulator's far end.
///
/// [`SimControl::wait_far_end`]: crate::SimControl::wait_far_end
pub async fn wait_call_stats(
    call: &dyn CallSession,
    timeout: Duration,
    mut done: impl FnMut(&CallStats) -> bool,
) -> cc_core::Result<StatsWait> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let stats = call.stats()?;
        if done(&stats) {
            return Ok(StatsWait::Done(stats));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(StatsWait::TimedOut(stats));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hangs up and checks both sides saw the end.
async fn hang_up(h: &mut Harness, call: &dyn CallSession) -> Outcome {
    let id = call.id();
    call.hangup().await.step("hang up")?;
    expect_call_state(
        h,
        "call ended by the customer",
        &id,
        |s| matches!(s, CallState::Ended { reason } if reason.starts_with("local-hangup")),
    )
    .await?;
    wait_far_end(h, "far end sees the end", |f| f.ended).await?;
    check(
        matches!(call.state(), CallState::Ended { .. }),
        "state after hang-up",
        || format!("state {:?}, expected Ended", call.state()),
    )
}

pub(crate) async fn call_full(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    let call = connected_call(h, false).await?;
    let id = call.id();
    let caps = h.capabilities();

    // Mute: the far end stops receiving (a few packets may be in flight).
    call.mute_audio(true).await.step("mute audio")?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = far_end(h, "far end while muted")
        .await?
        .stats
        .audio_packets_received;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = far_end(h, "far end while muted")
        .await?
        .stats
        .audio_packets_received;
    check(after <= before + 3, "muted audio stops", || {
        format!(
            "the far end received {} packets in 600 ms while muted",
            after - before
        )
    })?;
    call.mute_audio(false).await.step("unmute audio")?;
    wait_far_end(h, "far end receives audio again", |f| {
        f.stats.audio_packets_received >= after + 10
    })
    .await?;

    if caps.supports(Feature::CallHold) {
        call.hold(true).await.step("hold")?;
        expect_call_state(h, "call on hold", &id, |s| *s == CallState::OnHold).await?;
        wait_far_end(h, "far end sees the hold", |f| f.held).await?;
        call.hold(false).await.step("resume")?;
        expect_call_state(h, "call resumed", &id, |s| *s == CallState::Connected).await?;
        wait_far_end(h, "far end sees the resume", |f| !f.held).await?;
    } else {
        let r = call.hold(true).await;
        check(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Unsupported),
            "hold without call_hold",
            || format!("expected Error::Unsupported, got {r:?}"),
        )?;
    }

    if caps.supports(Feature::CallDtmf) {
        call.dtmf("12#").await.step("send DTMF 12#")?;
        wait_far_end(h, "far end receives DTMF 12#", |f| {
            f.stats.dtmf_received.contains("12#")
        })
        .await?;
    } else {
        let r = call.dtmf("12#").await;
        check(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Unsupported),
            "DTMF without call_dtmf",
            || format!("expected Error::Unsupported, got {r:?}"),
        )?;
    }

    hang_up(h, &*call).await?;
    customer_says(h, &*eng, &chat, "after the call").await?;
    Ok(())
}

pub(crate) async fn call_video(h: &mut Harness) -> Outcome {
    let _chat = start_and_join(h).await?;
    let call = connected_call(h, true).await?;
    let far = wait_far_end(h, "far end receives video", |f| {
        f.stats.video_frames_received >= 10
    })
    .await?;
    check(far.video, "far end negotiated video", || {
        format!("the far end says no video: {far:?}")
    })?;
    wait_client(h, "client receives video", &*call, |s| {
        s.video_frames_received >= 10
    })
    .await?;
    hang_up(h, &*call).await
}

/// Dials with the far end set to `answer` and waits for the end with a reason starting `prefix`.
async fn failing_call(h: &mut Harness, answer: CallAnswer, prefix: &str, rings: bool) -> Outcome {
    let _chat = start_and_join(h).await?;
    h.sim()
        .set_call_answer(answer)
        .await
        .step("set the far end's answer")?;
    let call = h
        .session()
        .start_call(request(h, false))
        .await
        .step("start call")?;
    let id = call.id();
    if rings {
        expect_call_state(h, "call rings", &id, |s| *s == CallState::Ringing).await?;
    }
    let step = format!("call ends with `{prefix}`");
    expect_call_state(
        h,
        &step,
        &id,
        |s| matches!(s, CallState::Ended { reason } if reason.starts_with(prefix)),
    )
    .await?;
    let far = h.sim().far_end_call().await.step("far end")?;
    check(
        !far.as_ref().is_some_and(|f| f.answered),
        "far end never answered",
        || format!("the far end says it answered: {far:?}"),
    )
}

pub(crate) async fn call_busy(h: &mut Harness) -> Outcome {
    failing_call(h, CallAnswer::Busy, "busy", false).await
}

pub(crate) async fn call_no_answer(h: &mut Harness) -> Outcome {
    failing_call(h, CallAnswer::NoAnswer, "no-answer", true).await
}

pub(crate) async fn call_refused(h: &mut Harness) -> Outcome {
    let _chat = start_and_join(h).await?;
    h.sim()
        .set_call_answer(CallAnswer::Refuse)
        .await
        .step("far end refuses calls")?;
    let r = h.session().start_call(request(h, false)).await;
    check(
        matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::Auth | ErrorKind::Rejected)),
        "start call refused",
        || {
            format!(
                "expected Error::Auth or Error::Rejected, got {:?}",
                r.map(|c| c.id())
            )
        },
    )
}

/// The probe for a missing call feature: `start_call` refused by the adapter and the guard.
pub(crate) async fn probe_call(
    h: &mut Harness,
    feature: Feature,
) -> [(&'static str, cc_core::Result<()>); 2] {
    let video = feature == Feature::CallsVideo;
    let raw = h
        .raw_session()
        .start_call(request(h, video))
        .await
        .map(|_| ());
    let guarded = h.session().start_call(request(h, video)).await.map(|_| ());
    [("adapter", raw), ("guard", guarded)]
}

//! The simulator's CSO side of audio/video calls (§3.8): it answers the customer's
//! `avtstatus` with `configs`, the `offer` as [`CallAnswer`] says, with a far-end
//! `MediaSession` on 127.0.0.1 (a 440 Hz tone, a recording sink), and keeps what it saw for
//! [`cc_testkit::SimControl::far_end_call`].
//!
//! | answer | what the customer gets after its `offer` |
//! |---|---|
//! | `Answer` | `callqueued`, ~200 ms later `agt1stconnect`, `answer {sdp}`, `candidate`s |
//! | `Busy` | `endav {reason: "AgentBusy"}` (PROPOSED busy signal) |
//! | `NoAnswer` | `callqueued`, ~1 s later `endav {reason: "NoAnswer"}` (PROPOSED) |
//! | `Refuse` | already at `avtstatus`: `configs {avmode: "false"}` |

use std::sync::Arc;
use std::time::Duration;

use cc_core::{CallStats, MediaDevices};
use cc_rtc::media::{MediaConfig, MediaSession};
use cc_rtc::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};
use cc_testkit::{CallAnswer, FarEndCall};
use serde_json::Value;

use super::{Shared, State};
use crate::wire::Push;
use crate::wire::av::{AVMODE_OFF, AVMODE_VIDEO, AvConfigs, AvSignal};

/// How long the simulated CSO rings before answering, unless `SimControl::set_ring_time` says otherwise.
const RING: Duration = Duration::from_millis(200);
/// How long it rings before giving up with `NoAnswer`.
const NO_ANSWER_AFTER: Duration = Duration::from_secs(1);

/// One call as the simulator's far end keeps it.
pub(crate) struct SimCall {
    /// The chat.
    pub(crate) sid: String,
    pub(crate) video: bool,
    pub(crate) answered: bool,
    pub(crate) held: bool,
    pub(crate) ended: bool,
    pub(crate) media: Option<MediaSession>,
    /// Candidates that came before the media peer was up.
    pub(crate) pending: Vec<String>,
    /// The media peer's counts when it closed.
    pub(crate) final_stats: Option<CallStats>,
}

impl SimCall {
    pub(crate) fn view(&self) -> FarEndCall {
        FarEndCall {
            answered: self.answered,
            held: self.held,
            ended: self.ended,
            video: self.video,
            stats: match (&self.final_stats, &self.media) {
                (Some(s), _) => s.clone(),
                (None, Some(m)) => m.stats(),
                (None, None) => CallStats::default(),
            },
        }
    }
}

/// The `configs` the service gives now: no calls when set to refuse, else audio and video
/// (loopback media needs no ICE servers).
pub(crate) fn configs_for(st: &State) -> AvConfigs {
    let avmode = if st.call_answer == CallAnswer::Refuse {
        AVMODE_OFF
    } else {
        AVMODE_VIDEO
    };
    AvConfigs::new(avmode, Vec::new(), Vec::new())
}

/// Sends an audio/video app message from the CSO to chat `i`.
pub(crate) fn push_signal(st: &mut State, i: usize, sig: &AvSignal) {
    let id = st.id("m");
    let agent = st.chats[i]
        .agents
        .last()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let sid = Some(st.chats[i].sid.clone());
    st.push(
        i,
        Push::AppMessageReceived {
            agent,
            msg: sig.to_value().to_string(),
            id,
            sid,
        },
        None,
    );
}

fn chat_of(st: &State, sid: &str) -> Option<usize> {
    st.chats.iter().position(|c| c.sid == sid && !c.ended)
}

fn current(st: &State, sid: &str) -> Option<usize> {
    st.calls.iter().rposition(|c| c.sid == sid && !c.ended)
}

/// The CSO side re-offers its media `sendonly` (it holds) or `sendrecv` (it resumes).
pub(crate) fn reoffer_hold(st: &mut State, sid: &str, on: bool) -> cc_core::Result<()> {
    let i = chat_of(st, sid).ok_or_else(|| {
        cc_core::Error::invalid(cc_core::Vendor::Tetherfi, "chat", "no open chat")
    })?;
    let k = current(st, sid)
        .filter(|k| st.calls[*k].media.is_some())
        .ok_or_else(|| {
            cc_core::Error::invalid(cc_core::Vendor::Tetherfi, "call", "no answered call")
        })?;
    let sdp = st.calls[k]
        .media
        .as_ref()
        .expect("checked")
        .hold_offer(on)?;
    push_signal(st, i, &AvSignal::Offer { sdp });
    Ok(())
}

/// Ends the call `k`: closes the media peer (keeping its final counts).
pub(crate) fn end_call(st: &mut State, k: usize) {
    let c = &mut st.calls[k];
    c.ended = true;
    if let Some(m) = c.media.take() {
        c.final_stats = Some(m.stats());
        tokio::spawn(async move { m.close().await });
    }
}

/// Ends the calls of chat `sid` (the chat ended).
pub(crate) fn chat_ended(st: &mut State, sid: &str) {
    while let Some(k) = current(st, sid) {
        end_call(st, k);
    }
}

/// A signalling message from the customer on chat `i` (under the state lock).
pub(crate) fn on_customer(sh: &Arc<Shared>, st: &mut State, i: usize, msg: &Value) {
    let sid = st.chats[i].sid.clone();
    let Ok(Some(sig)) = AvSignal::decode(msg) else {
        return;
    };
    match sig {
        AvSignal::AvtStatus { param } if param == AVMODE_OFF => {
            if let Some(k) = current(st, &sid) {
                end_call(st, k);
            }
        }
        AvSignal::AvtStatus { param } => {
            let configs = configs_for(st);
            if configs.avmode != AVMODE_OFF {
                if let Some(k) = current(st, &sid) {
                    end_call(st, k);
                }
                st.calls.push(SimCall {
                    sid,
                    video: param == AVMODE_VIDEO,
                    answered: false,
                    held: false,
                    ended: false,
                    media: None,
                    pending: Vec::new(),
                    final_stats: None,
                });
            }
            if !sh.opts.av_configs_on_join {
                push_signal(st, i, &AvSignal::Configs(configs));
            }
        }
        AvSignal::Offer { sdp } => {
            let Some(k) = current(st, &sid) else {
                push_signal(
                    st,
                    i,
                    &AvSignal::EndAv {
                        reason: "NoAvSession".to_owned(),
                    },
                );
                return;
            };
            if let Some(m) = st.calls[k].media.clone() {
                // A re-offer (hold / resume).
                match m.accept_offer(&sdp) {
                    Ok(answer) => {
                        st.calls[k].held = m.is_held_by_remote();
                        push_signal(st, i, &AvSignal::Answer { sdp: answer });
                    }
                    Err(e) => tracing::debug!(error = %e, "simulator: bad re-offer"),
                }
                return;
            }
            let avtype = if st.calls[k].video { "video" } else { "audio" }.to_owned();
            match st.call_answer {
                CallAnswer::Answer => {
                    push_signal(
                        st,
                        i,
                        &AvSignal::CallQueued {
                            avtype: avtype.clone(),
                        },
                    );
                    tokio::spawn(answer(sh.clone(), sid, sdp, avtype));
                }
                CallAnswer::Busy => {
                    push_signal(
                        st,
                        i,
                        &AvSignal::EndAv {
                            reason: "AgentBusy".to_owned(),
                        },
                    );
                    end_call(st, k);
                }
                CallAnswer::NoAnswer => {
                    push_signal(st, i, &AvSignal::CallQueued { avtype });
                    let sh = sh.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(NO_ANSWER_AFTER).await;
                        let mut st = sh.lock();
                        if let (Some(i), Some(k)) = (chat_of(&st, &sid), current(&st, &sid)) {
                            push_signal(
                                &mut st,
                                i,
                                &AvSignal::EndAv {
                                    reason: "NoAnswer".to_owned(),
                                },
                            );
                            end_call(&mut st, k);
                        }
                        drop(st);
                    });
                }
                CallAnswer::Refuse => {
                    push_signal(
                        st,
                        i,
                        &AvSignal::EndAv {
                            reason: "Rejected".to_owned(),
                        },
                    );
                    end_call(st, k);
                }
            }
        }
        AvSignal::Candidate { candidate, .. } => {
            if let Some(k) = current(st, &sid) {
                match &st.calls[k].media {
                    Some(m) => {
                        let _ = m.add_remote_candidate(&candidate);
                    }
                    None => st.calls[k].pending.push(candidate),
                }
            }
        }
        AvSignal::EndAv { .. } | AvSignal::Bye { .. } | AvSignal::OnEnd { .. } => {
            if let Some(k) = current(st, &sid) {
                end_call(st, k);
            }
        }
        AvSignal::Answer { sdp } => {
            // The answer to the CSO's own re-offer (see `Simulator::agent_reoffers_hold`).
            if let Some(k) = current(st, &sid)
                && let Some(m) = &st.calls[k].media
                && let Err(e) = m.apply_answer(&sdp)
            {
                tracing::debug!(error = %e, "simulator: bad answer");
            }
        }
        // Device info and server-side types.
        _ => {}
    }
}

/// Rings, then answers with a far-end media peer.
async fn answer(sh: Arc<Shared>, sid: String, offer: String, avtype: String) {
    let ring = sh.lock().ring.unwrap_or(RING);
    tokio::time::sleep(ring).await;
    let video = avtype == AVMODE_VIDEO;
    {
        let mut st = sh.lock();
        let (Some(i), Some(_)) = (chat_of(&st, &sid), current(&st, &sid)) else {
            return;
        };
        push_signal(&mut st, i, &AvSignal::Agt1stConnect { avtype });
    }
    let devices = MediaDevices {
        audio_in: Some(Arc::new(ToneSource::new(440.0))),
        audio_out: Some(Arc::new(RecordingSink::new())),
        video_in: video.then(|| Arc::new(TestPatternVideo::new()) as _),
        video_out: video.then(|| Arc::new(CountingVideoSink::new()) as _),
    };
    let mut config = MediaConfig::loopback();
    config.video = video;
    let media = match MediaSession::start(cc_core::Vendor::Tetherfi, config, devices).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "simulator: far-end media did not start");
            return fail(&sh, &sid, "ERROR");
        }
    };
    let sdp = match media.accept_offer(&offer) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "simulator: far end cannot take the offer");
            media.close().await;
            return fail(&sh, &sid, "ERROR");
        }
    };
    let candidates = media.local_candidates();
    let mid = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .unwrap_or("0")
        .trim()
        .to_owned();
    let taken = {
        let mut st = sh.lock();
        match (chat_of(&st, &sid), current(&st, &sid)) {
            (Some(i), Some(k)) => {
                for c in std::mem::take(&mut st.calls[k].pending) {
                    let _ = media.add_remote_candidate(&c);
                }
                st.calls[k].media = Some(media.clone());
                st.calls[k].answered = true;
                push_signal(&mut st, i, &AvSignal::Answer { sdp });
                for c in candidates {
                    push_signal(
                        &mut st,
                        i,
                        &AvSignal::Candidate {
                            mid: mid.clone(),
                            mline_index: 0,
                            candidate: c.trim_start_matches("a=").to_owned(),
                        },
                    );
                }
                true
            }
            // The call or the chat ended while the CSO was picking up.
            _ => false,
        }
    };
    if taken {
    } else {
        media.close().await;
    }
}

fn fail(sh: &Arc<Shared>, sid: &str, reason: &str) {
    let mut st = sh.lock();
    if let (Some(i), Some(k)) = (chat_of(&st, sid), current(&st, sid)) {
        push_signal(
            &mut st,
            i,
            &AvSignal::EndAv {
                reason: reason.to_owned(),
            },
        );
        end_call(&mut st, k);
    }
    drop(st);
}

//! The call state machine, sans-IO.
//!
//! A [`CallMachine`] takes the app's commands ([`CallMachine::command`]) and the signalling
//! events the adapter decodes from the wire ([`CallMachine::signal`]), and answers with the
//! [`CallAction`]s the adapter must put on the wire and the new [`CallState`] to report. It
//! never does I/O and never reads a clock, so every transition is a plain unit test.
//!
//! ```text
//! Idle --dial--> Dialing --ringing--> Ringing --answered--> Connected <--hold/unhold--> OnHold
//!   \              |  \_____________answered_____________/      |                       |
//!    \             +--hangup (cancel) / failed--+                +--hangup (bye) / remote hangup--+
//!     +--hangup--> Ended <------------------------------------------------------------------+
//! ```

use std::sync::Arc;

use cc_core::{CallState, Error, Result, Vendor};

/// What the app asks of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    /// Place the call.
    Dial,
    /// Mute or unmute the microphone.
    MuteAudio(bool),
    /// Mute or unmute the camera.
    MuteVideo(bool),
    /// Hold or resume.
    Hold(bool),
    /// Send DTMF digits.
    Dtmf(String),
    /// End the call.
    Hangup,
}

/// What the far end or the vendor's signalling said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallSignal {
    /// The request is being processed (SIP 100, queued).
    Trying,
    /// The far end rings (SIP 180/183).
    Ringing,
    /// The far end answered; media may flow.
    Answered,
    /// The far end put the call on hold or resumed it.
    RemoteHold(bool),
    /// The far end hung up.
    RemoteHangup {
        /// The reason the far end gave.
        reason: Arc<str>,
    },
    /// The call failed (rejected, timed out, media failed).
    Failed {
        /// Why.
        reason: Arc<str>,
    },
}

/// What the adapter must do on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Send the call request (SIP INVITE with the offer, or the vendor's call request).
    Offer {
        /// Whether video is offered.
        video: bool,
    },
    /// Renegotiate the hold state (SIP re-INVITE with `sendonly`/`sendrecv`).
    UpdateHold(bool),
    /// Stop or resume sending local audio.
    SetAudioMuted(bool),
    /// Stop or resume sending local video.
    SetVideoMuted(bool),
    /// Send DTMF digits (SIP INFO or RFC 4733 events).
    SendDtmf(String),
    /// Cancel a call that was not answered yet (SIP CANCEL).
    Cancel,
    /// End an answered call (SIP BYE).
    Bye,
}

/// The call state machine of one call.
#[derive(Clone, Debug)]
pub struct CallMachine {
    vendor: Vendor,
    video: bool,
    state: CallState,
    local_hold: bool,
    remote_hold: bool,
    audio_muted: bool,
    video_muted: bool,
}

/// The result of one step: actions to perform, and the new state if it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Actions for the adapter, in order.
    pub actions: Vec<CallAction>,
    /// The new state, when it changed (report it as `Event::Call`).
    pub state: Option<CallState>,
}

impl CallMachine {
    /// A new call in [`CallState::Idle`].
    pub fn new(vendor: Vendor, video: bool) -> Self {
        CallMachine {
            vendor,
            video,
            state: CallState::Idle,
            local_hold: false,
            remote_hold: false,
            audio_muted: false,
            video_muted: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// Whether the microphone is muted.
    pub fn audio_muted(&self) -> bool {
        self.audio_muted
    }

    /// Whether the camera is muted.
    pub fn video_muted(&self) -> bool {
        self.video_muted
    }

    /// Whether the call offers video.
    pub fn has_video(&self) -> bool {
        self.video
    }

    fn ended(&self) -> bool {
        matches!(self.state, CallState::Ended { .. })
    }

    fn refuse(&self, what: &str) -> Error {
        Error::invalid(
            self.vendor,
            "call",
            format!(
                "cannot {what} while the call is {}",
                state_name(&self.state)
            ),
        )
    }

    fn go(&mut self, to: CallState, actions: Vec<CallAction>) -> Step {
        let changed = self.state != to;
        self.state = to;
        Step {
            actions,
            state: changed.then(|| self.state.clone()),
        }
    }

    fn held_state(&self) -> CallState {
        if self.local_hold || self.remote_hold {
            CallState::OnHold
        } else {
            CallState::Connected
        }
    }

    /// Applies an app command.
    pub fn command(&mut self, command: CallCommand) -> Result<Step> {
        if self.ended() {
            return Err(Error::closed(self.vendor, "call"));
        }
        match command {
            CallCommand::Dial => match self.state {
                CallState::Idle => Ok(self.go(
                    CallState::Dialing,
                    vec![CallAction::Offer { video: self.video }],
                )),
                _ => Err(self.refuse("dial")),
            },
            CallCommand::MuteAudio(on) => {
                if self.audio_muted == on {
                    return Ok(Step::default());
                }
                self.audio_muted = on;
                Ok(Step {
                    actions: vec![CallAction::SetAudioMuted(on)],
                    state: None,
                })
            }
            CallCommand::MuteVideo(on) => {
                if !self.video {
                    return Err(Error::unsupported(
                        self.vendor,
                        cc_core::Feature::CallsVideo,
                    ));
                }
                if self.video_muted == on {
                    return Ok(Step::default());
                }
                self.video_muted = on;
                Ok(Step {
                    actions: vec![CallAction::SetVideoMuted(on)],
                    state: None,
                })
            }
            CallCommand::Hold(on) => match self.state {
                CallState::Connected | CallState::OnHold => {
                    if self.local_hold == on {
                        return Ok(Step::default());
                    }
                    self.local_hold = on;
                    let to = self.held_state();
                    Ok(self.go(to, vec![CallAction::UpdateHold(on)]))
                }
                _ => Err(self.refuse(if on { "hold" } else { "resume" })),
            },
            CallCommand::Dtmf(digits) => match self.state {
                CallState::Connected => {
                    if digits.is_empty() {
                        return Err(Error::invalid(self.vendor, "digits", "empty"));
                    }
                    if let Some(bad) = digits
                        .chars()
                        .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
                    {
                        return Err(Error::invalid(
                            self.vendor,
                            "digits",
                            format!("`{bad}` is not a DTMF digit"),
                        ));
                    }
                    Ok(Step {
                        actions: vec![CallAction::SendDtmf(digits)],
                        state: None,
                    })
                }
                _ => Err(self.refuse("send DTMF")),
            },
            CallCommand::Hangup => {
                let action = match self.state {
                    CallState::Idle => None,
                    CallState::Dialing | CallState::Ringing => Some(CallAction::Cancel),
                    _ => Some(CallAction::Bye),
                };
                Ok(self.go(
                    CallState::Ended {
                        reason: Arc::from("hangup"),
                    },
                    action.into_iter().collect(),
                ))
            }
        }
    }

    /// Applies a signalling event. Events that make no sense in the current state (a late
    /// `Ringing` after `Answered`, anything after the end) change nothing.
    pub fn signal(&mut self, signal: CallSignal) -> Step {
        if self.ended() {
            return Step::default();
        }
        match (signal, &self.state) {
            (CallSignal::Trying, _) => Step::default(),
            (CallSignal::Ringing, CallState::Dialing) => self.go(CallState::Ringing, vec![]),
            (CallSignal::Ringing, _) => Step::default(),
            (CallSignal::Answered, CallState::Dialing | CallState::Ringing) => {
                let to = self.held_state();
                self.go(to, vec![])
            }
            (CallSignal::Answered, _) => Step::default(),
            (CallSignal::RemoteHold(on), CallState::Connected | CallState::OnHold) => {
                self.remote_hold = on;
                let to = self.held_state();
                self.go(to, vec![])
            }
            (CallSignal::RemoteHold(_), _) => Step::default(),
            (CallSignal::RemoteHangup { reason } | CallSignal::Failed { reason }, _) => {
                self.go(CallState::Ended { reason }, vec![])
            }
        }
    }
}

fn state_name(s: &CallState) -> &'static str {
    match s {
        CallState::Idle => "idle",
        CallState::Dialing => "dialing",
        CallState::Ringing => "ringing",
        CallState::Connected => "connected",
        CallState::OnHold => "on hold",
        CallState::Ended { .. } => "ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(video: bool) -> CallMachine {
        let mut m = CallMachine::new(Vendor::Expertflow, video);
        m.command(CallCommand::Dial).unwrap();
        m.signal(CallSignal::Answered);
        assert_eq!(m.state(), &CallState::Connected);
        m
    }

    #[test]
    fn dial_ring_answer_hangup() {
        let mut m = CallMachine::new(Vendor::Expertflow, false);
        let s = m.command(CallCommand::Dial).unwrap();
        assert_eq!(s.actions, vec![CallAction::Offer { video: false }]);
        assert_eq!(s.state, Some(CallState::Dialing));
        assert_eq!(m.signal(CallSignal::Trying), Step::default());
        assert_eq!(
            m.signal(CallSignal::Ringing).state,
            Some(CallState::Ringing)
        );
        assert_eq!(
            m.signal(CallSignal::Answered).state,
            Some(CallState::Connected)
        );
        // A late ringing changes nothing.
        assert_eq!(m.signal(CallSignal::Ringing), Step::default());
        let s = m.command(CallCommand::Hangup).unwrap();
        assert_eq!(s.actions, vec![CallAction::Bye]);
        assert!(matches!(s.state, Some(CallState::Ended { .. })));
        assert!(matches!(
            m.command(CallCommand::Hangup),
            Err(Error::Closed { .. })
        ));
        assert_eq!(m.signal(CallSignal::Answered), Step::default());
    }

    #[test]
    fn hangup_before_answer_cancels() {
        let mut m = CallMachine::new(Vendor::Expertflow, false);
        m.command(CallCommand::Dial).unwrap();
        m.signal(CallSignal::Ringing);
        assert_eq!(
            m.command(CallCommand::Hangup).unwrap().actions,
            vec![CallAction::Cancel]
        );
        let mut idle = CallMachine::new(Vendor::Expertflow, false);
        assert!(
            idle.command(CallCommand::Hangup)
                .unwrap()
                .actions
                .is_empty()
        );
    }

    #[test]
    fn local_and_remote_hold_combine() {
        let mut m = connected(false);
        let s = m.command(CallCommand::Hold(true)).unwrap();
        assert_eq!(s.actions, vec![CallAction::UpdateHold(true)]);
        assert_eq!(s.state, Some(CallState::OnHold));
        assert_eq!(m.command(CallCommand::Hold(true)).unwrap(), Step::default());
        // The far end holds too; resuming locally keeps the call on hold.
        assert_eq!(m.signal(CallSignal::RemoteHold(true)).state, None);
        let s = m.command(CallCommand::Hold(false)).unwrap();
        assert_eq!(s.actions, vec![CallAction::UpdateHold(false)]);
        assert_eq!(s.state, None);
        assert_eq!(m.state(), &CallState::OnHold);
        assert_eq!(
            m.signal(CallSignal::RemoteHold(false)).state,
            Some(CallState::Connected)
        );
    }

    #[test]
    fn dtmf_only_when_connected_and_valid() {
        let mut m = CallMachine::new(Vendor::Expertflow, false);
        let e = m.command(CallCommand::Dtmf("1".into())).unwrap_err();
        assert!(e.to_string().contains("idle"), "{e}");
        let mut m = connected(false);
        assert_eq!(
            m.command(CallCommand::Dtmf("12#*A".into()))
                .unwrap()
                .actions,
            vec![CallAction::SendDtmf("12#*A".into())]
        );
        let e = m.command(CallCommand::Dtmf("1x".into())).unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
        m.command(CallCommand::Hold(true)).unwrap();
        assert!(m.command(CallCommand::Dtmf("1".into())).is_err());
    }

    #[test]
    fn mute_is_idempotent_and_video_needs_video() {
        let mut m = connected(false);
        assert_eq!(
            m.command(CallCommand::MuteAudio(true)).unwrap().actions,
            vec![CallAction::SetAudioMuted(true)]
        );
        assert!(
            m.command(CallCommand::MuteAudio(true))
                .unwrap()
                .actions
                .is_empty()
        );
        assert!(m.audio_muted());
        assert!(matches!(
            m.command(CallCommand::MuteVideo(true)),
            Err(Error::Unsupported { .. })
        ));
        let mut v = connected(true);
        assert_eq!(
            v.command(CallCommand::MuteVideo(true)).unwrap().actions,
            vec![CallAction::SetVideoMuted(true)]
        );
        assert!(v.video_muted());
    }

    #[test]
    fn failure_and_remote_hangup_end_the_call() {
        let mut m = CallMachine::new(Vendor::Expertflow, false);
        m.command(CallCommand::Dial).unwrap();
        let s = m.signal(CallSignal::Failed {
            reason: Arc::from("486 Busy Here"),
        });
        assert_eq!(
            s.state,
            Some(CallState::Ended {
                reason: Arc::from("486 Busy Here")
            })
        );
        let mut m = connected(false);
        let s = m.signal(CallSignal::RemoteHangup {
            reason: Arc::from("BYE"),
        });
        assert!(matches!(s.state, Some(CallState::Ended { .. })));
        assert!(m.command(CallCommand::Dial).is_err());
    }

    #[test]
    fn cannot_dial_twice_or_hold_before_answer() {
        let mut m = CallMachine::new(Vendor::Expertflow, false);
        m.command(CallCommand::Dial).unwrap();
        assert!(m.command(CallCommand::Dial).is_err());
        let e = m.command(CallCommand::Hold(true)).unwrap_err();
        assert!(e.to_string().contains("dialing"), "{e}");
    }
}

//! The call domain of the SDK.
//!
//! Today this crate holds the sans-IO call state machine ([`CallMachine`]) that every adapter
//! with audio or video calls drives behind `cc_core::CallSession`: it turns the app's commands
//! (dial, mute, hold, DTMF, hang up) and the decoded signalling (ringing, answered, remote hold,
//! remote hang-up) into wire actions and state changes.
//!
//! The app plugs in its microphone, camera and speakers through `cc_core::media`
//! (`MediaDevices`); the media engine below plays and records through them.
//!
//! [`media`]: the WebRTC media engine of a call (str0m; ICE with STUN/TURN gathering, DTLS-SRTP,
//! G.711/Opus audio, VP8 video, RFC 4733 DTMF); [`codec`]: audio codecs; [`devices`]: test devices.
//!
//! [`sip`]: SIP over WebSocket (RFC 7118): message codec, digest authentication, user agent.

mod call;
pub mod codec;
pub mod devices;
mod ice;
pub mod media;
pub mod sip;

pub use call::{CallAction, CallCommand, CallMachine, CallSignal, Step};
pub use devices::{CountingVideoSink, RecordingSink, TestPatternVideo, ToneSource};

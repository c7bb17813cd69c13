//! The call domain of the SDK.
//!
//! Today this crate holds the sans-IO call state machine ([`CallMachine`]) that every adapter
//! with audio or video calls drives behind `cc_core::CallSession`: it turns the app's commands
//! (dial, mute, hold, DTMF, hang up) and the decoded signalling (ringing, answered, remote hold,
//! remote hang-up) into wire actions and state changes.
//!
//! Still to come with the calls work: ICE configuration, the WebRTC media engine, the
//! SIP-over-WebSocket user agent, and the traits through which an app plugs in its
//! microphone, camera and speakers. No adapter offers calls yet.

mod call;

pub use call::{CallAction, CallCommand, CallMachine, CallSignal, Step};

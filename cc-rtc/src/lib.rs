//! The call domain of the SDK: not implemented yet.
//!
//! This crate will hold what every adapter with audio or video calls shares: the sans-IO call
//! state machine behind `cc_core::CallSession`, media controls (mute, hold, DTMF), ICE
//! configuration, the WebRTC media engine, the SIP-over-WebSocket user agent, and the traits
//! through which an app plugs in its microphone, camera and speakers. Until then the crate
//! exports nothing, and no adapter offers calls through it.

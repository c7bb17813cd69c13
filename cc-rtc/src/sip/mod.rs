//! SIP over WebSocket (RFC 7118): the message codec, digest authentication and a small user
//! agent.
//!
//! - [`SipCodec`] / [`SipMessage`]: parse a frame, print a message, build responses
//!   ([`SipMessage::response_to`]). Parsing goes through rsipstack's `sip` module, pinned and
//!   wrapped here so it can change behind these types.
//! - [`DigestChallenge`] / [`DigestAuthorization`]: MD5 digest with `qop=auth`, client and
//!   server side.
//! - [`UserAgent`]: REGISTER (digest, refresh, re-register after reconnects), outgoing
//!   calls ([`UserAgent::invite`] → [`Dialog`]), incoming calls ([`UaEvent::Incoming`] →
//!   [`IncomingCall`]), re-INVITE, INFO (DTMF), MESSAGE, CANCEL, BYE, on cc-transport's
//!   reconnecting WebSocket with subprotocol `sip`.
//!
//! A simulated switch implements its side with the codec and digest types.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_core::{Secret, Vendor};
//! use cc_rtc::sip::{DialogEvent, UaConfig, UserAgent};
//!
//! let url = url::Url::parse("wss://switch.example:7443").unwrap();
//! let mut config = UaConfig::new(url, "switch.example", "99000");
//! config.password = Some(Secret::new("1234"));
//! let ua = UserAgent::start(Vendor::Expertflow, config).await?;
//! ua.register().await?;
//! let offer = String::from("v=0\r\n..."); // from the media engine
//! let call = ua
//!     .invite("sip:1000@switch.example", vec![("X-Calltype".into(), "OUT".into())], offer)
//!     .await?;
//! while let Some(event) = call.next_event().await {
//!     match event {
//!         DialogEvent::Answered { sdp } => { /* apply the answer */ let _ = sdp; break; }
//!         DialogEvent::Failed { status, reason } => { println!("{status} {reason}"); break; }
//!         _ => {}
//!     }
//! }
//! call.dtmf("12#").await?;
//! call.bye(Vec::new()).await?;
//! # Ok(()) }
//! ```

mod codec;
mod dialog;
mod digest;
mod ua;

pub use codec::{
    Method, NameAddr, SipCodec, SipMessage, StartLine, end_reason, list_entries, param_of,
    parse_cseq, random_token, split_list, tag_of,
};
pub use dialog::{Dialog, DialogEvent, IncomingCall, dtmf_relay_body, parse_dtmf_relay};
pub use digest::{DigestAuthorization, DigestChallenge};
pub use ua::{OutgoingCall, UaConfig, UaEvent, UserAgent};

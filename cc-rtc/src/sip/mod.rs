//! SIP over WebSocket (RFC 7118): the message codec, digest authentication and a small user
//! agent.
//!
//! - [`SipCodec`] / [`SipMessage`]: parse a frame, print a message, build responses
//!   ([`SipMessage::response_to`]). Parsing goes through rsipstack's `sip` module, pinned and
//!   wrapped here so it can change behind these types.
//! - [`DigestChallenge`] / [`DigestAuthorization`]: MD5 digest with `qop=auth`, client and
//!   server side.
//!
//! A simulated switch implements its side with these same types.

mod codec;
mod digest;

pub use codec::{
    Method, NameAddr, SipCodec, SipMessage, StartLine, end_reason, list_entries, param_of,
    parse_cseq, random_token, split_list, tag_of,
};
pub use digest::{DigestAuthorization, DigestChallenge};

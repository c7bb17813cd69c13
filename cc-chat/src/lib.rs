//! The vendor-neutral chat machinery every cc adapter uses.
//!
//! The message model ([`Message`], [`Content`], [`DeliveryState`], ...) lives in `cc-core`
//! and is re-exported here; this crate owns what moves messages around:
//!
//! - [`outbox`]: every message the app sends gets a [`ClientMessageId`] and waits in the
//!   [`Outbox`] until the vendor confirms it. The outbox decides what to write and when
//!   (connection state, pacing, retries with back-off), matches the vendor's echoes and acks
//!   to the pending messages, and reconciles messages whose fate a dropped connection left
//!   uncertain, so every message reaches the vendor exactly once or fails visibly.
//! - [`transcript`]: the [`Transcript`] of one engagement, ordered by server time with a
//!   stable tie-break, deduplicated by vendor id, with our own messages merged with their
//!   echoes.
//! - [`pager`]: [`Pager`], a [`HistoryPager`] over an adapter's page-fetch function, for
//!   page-number and cursor paging.
//! - [`typing`]: the [`TypingDebouncer`] that turns keystrokes into rate-limited
//!   typing-start and idle typing-stop signals.
//! - [`handoff`]: renders a bot conversation ([`BotTurn`]s) for the agent: chunked text,
//!   labelled lines, or a user-data entry.
//! - [`dedup`]: [`IncomingDedup`], a bounded memory of vendor ids for events that may be
//!   delivered twice.
//!
//! Everything here is sans-IO: time comes in as a parameter ([`std::time::Instant`] for
//! timers, [`Timestamp`] for message times), nothing opens a socket or spawns a task, so an
//! adapter drives it from its engine and tests are deterministic. The one async piece, the
//! [`Pager`], awaits only the fetch function the adapter gives it.

#![warn(missing_docs)]

pub mod dedup;
pub mod handoff;
pub mod outbox;
pub mod pager;
pub mod transcript;
pub mod typing;

pub use cc_core::{
    Action, Attachment, BotTurn, Card, ClientMessageId, Content, DeliveryState, EngagementId,
    FormField, HistoryPage, HistoryPager, Message, MessageId, Notice, Participant, Receipt,
    RichContent, Role, SentMessage, Timestamp, Upload,
};

pub use dedup::IncomingDedup;
pub use handoff::{HandoffFormat, LengthLimit, RoleLabels, TimeStyle, UserData};
pub use outbox::{
    EchoMatch, Failure, Outbox, OutboxConfig, Outgoing, Pacer, Poll, Rate, ReconcileReport,
    SendErrorOutcome,
};
pub use pager::{Cursor, FetchedPage, PageRequest, PageSource, Pager, PagingMode};
pub use transcript::{EARLY_STATES, MergeReport, Transcript, Upsert};
pub use typing::{TypingConfig, TypingDebouncer};

/// Moves `state` forward to `new` if `new` ranks higher ([`DeliveryState::rank`]); returns
/// whether it changed. A late `Delivered` never overwrites `Read`, nothing leaves `Failed`.
///
/// ```
/// use cc_chat::{advance_state, DeliveryState};
/// let mut s = DeliveryState::Read;
/// assert!(!advance_state(&mut s, DeliveryState::Delivered));
/// assert_eq!(s, DeliveryState::Read);
/// ```
pub fn advance_state(state: &mut DeliveryState, new: DeliveryState) -> bool {
    if new.rank() > state.rank() {
        *state = new;
        true
    } else {
        false
    }
}

/// What [`cc_core::Engagement::send`] returns for a message the outbox recorded.
pub fn sent_message(message: &Message) -> SentMessage {
    SentMessage {
        client_id: message
            .client_id
            .expect("messages recorded by the outbox always carry a client id"),
        id: message.id.clone(),
        state: message.state.clone(),
    }
}

/// Whether two contents are the same message for echo matching: texts compare after trimming
/// surrounding whitespace (vendors trim), files by name, everything else exactly.
pub fn same_content(a: &Content, b: &Content) -> bool {
    match (a, b) {
        (Content::Text(x), Content::Text(y)) => x.trim() == y.trim(),
        (Content::File(x), Content::File(y)) => x.name == y.name,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_never_goes_back() {
        let mut s = DeliveryState::Pending;
        assert!(advance_state(&mut s, DeliveryState::Sent));
        assert!(advance_state(&mut s, DeliveryState::Read));
        assert!(!advance_state(&mut s, DeliveryState::Delivered));
        assert!(!advance_state(&mut s, DeliveryState::Sent));
        assert_eq!(s, DeliveryState::Read);
        let failed = DeliveryState::Failed {
            reason: "x".into(),
            retryable: false,
        };
        assert!(advance_state(&mut s, failed.clone()));
        assert!(!advance_state(&mut s, DeliveryState::Read));
        assert_eq!(s, failed);
    }

    #[test]
    fn content_matching() {
        assert!(same_content(&Content::text(" hi\n"), &Content::text("hi")));
        assert!(!same_content(&Content::text("hi"), &Content::text("ho")));
        let file = |name: &str, url: Option<&str>| {
            Content::File(Attachment {
                id: None,
                name: name.into(),
                mime_type: "text/plain".into(),
                size: None,
                url: url.map(Into::into),
            })
        };
        assert!(same_content(
            &file("a.txt", None),
            &file("a.txt", Some("u"))
        ));
        assert!(!same_content(&file("a.txt", None), &file("b.txt", None)));
        assert!(!same_content(&file("a.txt", None), &Content::text("a.txt")));
    }
}

//! The unified event model: one flat enum for every vendor.

use std::sync::Arc;
use std::time::Duration;

use crate::{ClientMessageId, EngagementId, Error, Message, MessageId, Participant, Vendor};

/// The state of the session's connection to the vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting for the first time.
    Connecting,
    /// Connected and ready.
    Connected,
    /// The connection was lost; the SDK tries again after `delay`.
    Reconnecting {
        /// Which attempt comes next (1 for the first retry).
        attempt: u32,
        /// When the attempt starts.
        delay: Duration,
    },
    /// Disconnected for good (shut down, or retries exhausted).
    Disconnected {
        /// Why.
        reason: Arc<str>,
    },
}

/// Who ended an engagement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// The customer (this app).
    Customer,
    /// An agent.
    Agent,
    /// The contact center (timeout, closing hours, shutdown).
    System,
    /// The vendor did not say.
    Unknown,
}

/// The state of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Created, nothing sent yet.
    Idle,
    /// The call request is on its way.
    Dialing,
    /// The far end is ringing or the call is queued.
    Ringing,
    /// Media flows.
    Connected,
    /// On hold (by either side).
    OnHold,
    /// Ended.
    Ended {
        /// Why, as the vendor or the SDK says.
        reason: Arc<str>,
    },
}

/// An event of a session or one of its engagements.
///
/// `Event` is `Clone` and small (big payloads are behind `Arc`), because one broadcast ring
/// per session holds them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The connection state changed.
    Connection(ConnectionState),
    /// An engagement started (or was resumed after a restart).
    EngagementStarted {
        /// The engagement.
        engagement: EngagementId,
        /// True when an existing engagement was resumed.
        resumed: bool,
    },
    /// The engagement waits in a queue.
    Queued {
        /// The engagement.
        engagement: EngagementId,
        /// Position in the queue, 1 first, when known.
        position: Option<u32>,
        /// Expected wait, when known.
        expected_wait: Option<Duration>,
    },
    /// An agent, bot or other participant joined.
    ParticipantJoined {
        /// The engagement.
        engagement: EngagementId,
        /// Who joined.
        participant: Arc<Participant>,
    },
    /// A participant left (transfer, agent disconnect).
    ParticipantLeft {
        /// The engagement.
        engagement: EngagementId,
        /// Who left.
        participant: Arc<Participant>,
    },
    /// The engagement ended.
    EngagementEnded {
        /// The engagement.
        engagement: EngagementId,
        /// Who ended it.
        initiator: Initiator,
        /// The vendor's reason, when given.
        reason: Option<Arc<str>>,
    },
    /// A message from the other side arrived.
    MessageReceived(Arc<Message>),
    /// The vendor acknowledged or echoed a message this client sent.
    MessageSent(Arc<Message>),
    /// A message was delivered to the other side.
    MessageDelivered {
        /// The engagement.
        engagement: EngagementId,
        /// The vendor id of the message.
        id: Option<MessageId>,
        /// The client id, for messages this client sent.
        client_id: Option<ClientMessageId>,
    },
    /// A message was read by the other side.
    MessageRead {
        /// The engagement.
        engagement: EngagementId,
        /// The vendor id of the message.
        id: Option<MessageId>,
        /// The client id, for messages this client sent.
        client_id: Option<ClientMessageId>,
    },
    /// A message this client sent could not be delivered; the outbox gave up.
    MessageFailed {
        /// The engagement.
        engagement: EngagementId,
        /// The client id.
        client_id: ClientMessageId,
        /// Why.
        error: Arc<Error>,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The engagement.
        engagement: EngagementId,
        /// Who.
        participant: Arc<Participant>,
        /// Typing or stopped.
        on: bool,
    },
    /// A call changed state.
    Call {
        /// The call's id.
        call: Arc<str>,
        /// The new state.
        state: CallState,
    },
    /// The session's token expires soon; call `Session::set_token`.
    TokenExpiring {
        /// Time left.
        in_: Duration,
    },
    /// The session's token expired.
    TokenExpired,
    /// The vendor warns that an idle engagement will close.
    IdleWarning {
        /// The engagement, when the warning is for one.
        engagement: Option<EngagementId>,
        /// Time left before it closes.
        grace: Duration,
    },
    /// The session shut down; no more events follow.
    ShutDown {
        /// Why.
        reason: Arc<str>,
    },
    /// A recoverable error (a malformed frame, a failed background task); the session goes on.
    Error(Arc<Error>),
    /// A vendor event with no neutral meaning, kept so nothing is dropped.
    Vendor {
        /// The vendor.
        vendor: Vendor,
        /// The vendor's event name.
        name: Arc<str>,
        /// The raw payload.
        payload: Arc<serde_json::Value>,
    },
    /// This subscriber fell behind and missed events; recover from the transcript.
    Lagged {
        /// How many events were missed.
        missed: u64,
    },
}

macro_rules! event_kinds {
    ($( $(#[doc = $doc:literal])* $kind:ident => $pat:pat, )*) => {
        /// The fieldless kind of an [`Event`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[doc = $doc])* $kind, )*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$kind, )* ];

            /// The kind's name.
            pub const fn name(self) -> &'static str {
                match self { $( EventKind::$kind => stringify!($kind), )* }
            }

            /// One line saying what the event means.
            pub const fn description(self) -> &'static str {
                match self { $( EventKind::$kind => concat!($($doc),*), )* }
            }
        }

        impl Event {
            /// The event's kind.
            pub const fn kind(&self) -> EventKind {
                match self { $( $pat => EventKind::$kind, )* }
            }
        }
    };
}

event_kinds! {
    /// The connection state changed (connecting, connected, reconnecting, disconnected).
    Connection => Event::Connection(_),
    /// An engagement started or was resumed.
    EngagementStarted => Event::EngagementStarted { .. },
    /// The engagement waits in a queue, with position and expected wait when known.
    Queued => Event::Queued { .. },
    /// An agent, bot or other participant joined.
    ParticipantJoined => Event::ParticipantJoined { .. },
    /// A participant left.
    ParticipantLeft => Event::ParticipantLeft { .. },
    /// The engagement ended, with initiator and reason.
    EngagementEnded => Event::EngagementEnded { .. },
    /// A message from the other side arrived.
    MessageReceived => Event::MessageReceived(_),
    /// The vendor acknowledged a message this client sent.
    MessageSent => Event::MessageSent(_),
    /// A message was delivered to the other side.
    MessageDelivered => Event::MessageDelivered { .. },
    /// A message was read by the other side.
    MessageRead => Event::MessageRead { .. },
    /// A message could not be sent.
    MessageFailed => Event::MessageFailed { .. },
    /// Someone started or stopped typing.
    Typing => Event::Typing { .. },
    /// A call changed state.
    Call => Event::Call { .. },
    /// The token expires soon.
    TokenExpiring => Event::TokenExpiring { .. },
    /// The token expired.
    TokenExpired => Event::TokenExpired,
    /// An idle engagement will close after a grace period.
    IdleWarning => Event::IdleWarning { .. },
    /// The session shut down.
    ShutDown => Event::ShutDown { .. },
    /// A recoverable error; the session goes on.
    Error => Event::Error(_),
    /// A raw vendor event with no neutral meaning.
    Vendor => Event::Vendor { .. },
    /// The subscriber fell behind and missed events.
    Lagged => Event::Lagged { .. },
}

impl Event {
    /// The engagement this event belongs to, if any.
    pub fn engagement(&self) -> Option<&EngagementId> {
        match self {
            Event::EngagementStarted { engagement, .. }
            | Event::Queued { engagement, .. }
            | Event::ParticipantJoined { engagement, .. }
            | Event::ParticipantLeft { engagement, .. }
            | Event::EngagementEnded { engagement, .. }
            | Event::MessageDelivered { engagement, .. }
            | Event::MessageRead { engagement, .. }
            | Event::MessageFailed { engagement, .. }
            | Event::Typing { engagement, .. } => Some(engagement),
            Event::MessageReceived(m) | Event::MessageSent(m) => Some(&m.engagement),
            Event::IdleWarning { engagement, .. } => engagement.as_ref(),
            _ => None,
        }
    }

    /// A recoverable error event.
    pub fn error(e: Error) -> Self {
        Event::Error(Arc::new(e))
    }
}

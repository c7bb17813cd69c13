//! What an adapter can do: [`Capabilities`] and the mirrored [`Feature`] enum.
//!
//! Both are generated from one list so they cannot drift. An operation that an adapter
//! lacks returns [`crate::Error::Unsupported`] naming the [`Feature`].

use std::fmt;

use serde::Serialize;

macro_rules! capabilities {
    (
        bools { $( $(#[doc = $doc:literal])* $field:ident => $variant:ident, )* }
        limits { $( $(#[doc = $ldoc:literal])* $lfield:ident : $lty:ty, )* }
    ) => {
        /// What one adapter supports: booleans per feature and optional limits.
        ///
        /// Declare with struct update from [`Capabilities::NONE`]:
        ///
        /// ```
        /// use cc_core::Capabilities;
        /// let caps = Capabilities { typing_out: true, attachment_max_bytes: Some(10 << 20), ..Capabilities::NONE };
        /// assert!(caps.supports(cc_core::Feature::TypingOut));
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        pub struct Capabilities {
            $( $(#[doc = $doc])* pub $field: bool, )*
            $( $(#[doc = $ldoc])* pub $lfield: Option<$lty>, )*
        }

        impl Capabilities {
            /// Nothing supported, no limits known.
            pub const NONE: Capabilities = Capabilities {
                $( $field: false, )*
                $( $lfield: None, )*
            };

            /// Whether `feature` is supported.
            pub const fn supports(&self, feature: Feature) -> bool {
                match feature {
                    $( Feature::$variant => self.$field, )*
                }
            }

            /// The supported features, in declaration order.
            pub fn features(&self) -> impl Iterator<Item = Feature> + '_ {
                Feature::ALL.iter().copied().filter(|f| self.supports(*f))
            }

            /// The limits as `(name, value)` pairs, `None` when unknown or unlimited.
            pub fn limits(&self) -> Vec<(&'static str, Option<u64>)> {
                vec![ $( (stringify!($lfield), self.$lfield.map(u64::from)), )* ]
            }
        }

        impl Default for Capabilities {
            fn default() -> Self {
                Self::NONE
            }
        }

        /// A feature an adapter may support; mirrors the boolean fields of [`Capabilities`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Feature {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Feature {
            /// Every feature, in declaration order.
            pub const ALL: &'static [Feature] = &[ $( Feature::$variant, )* ];

            /// The snake_case name, the same as the [`Capabilities`] field.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Feature::$variant => stringify!($field), )*
                }
            }

            /// One line saying what the feature is.
            pub const fn description(self) -> &'static str {
                match self {
                    $( Feature::$variant => concat!($($doc),*), )*
                }
            }
        }

        /// The documentation line of each limit field, by name.
        pub const LIMITS: &[(&str, &str)] = &[ $( (stringify!($lfield), concat!($($ldoc),*)), )* ];
    };
}

capabilities! {
    bools {
        /// Start a chat engagement.
        chat => Chat,
        /// Resume an ongoing chat after the app restarts (new session, same customer).
        resume => Resume,
        /// Detach from a chat without ending it (page navigation).
        leave => Leave,
        /// More than one chat at a time in one session.
        multi_chat => MultiChat,
        /// Send typing indicators to the agent.
        typing_out => TypingOut,
        /// Receive the agent's typing indicators.
        typing_in => TypingIn,
        /// Receive delivery receipts for sent messages.
        delivery_receipts => DeliveryReceipts,
        /// Send and receive read receipts.
        read_receipts => ReadReceipts,
        /// Upload files to the agent.
        attachments => Attachments,
        /// Receive files from the agent.
        attachments_in => AttachmentsIn,
        /// Receive rich content (quick replies, buttons, cards, carousels, forms).
        rich_content => RichContent,
        /// Send custom notices or app messages with a kind and a JSON payload.
        custom_notices => CustomNotices,
        /// Send messages that reach the agent but stay out of the visible transcript.
        filtered_messages => FilteredMessages,
        /// Read the chat history from the server.
        history => History,
        /// Page backwards through history.
        history_can_page_backwards => HistoryCanPageBackwards,
        /// Update the context (user data, custom attributes) during a chat.
        set_context => SetContext,
        /// Hand a bot conversation over to a human agent with its turns.
        bot_history_handoff => BotHistoryHandoff,
        /// Queue position while waiting.
        queue_position => QueuePosition,
        /// Expected wait while queued.
        expected_wait => ExpectedWait,
        /// Ask the service status (open, closed, agents available).
        service_status => ServiceStatus,
        /// Opening hours in the service status.
        opening_hours => OpeningHours,
        /// List the agents in the chat.
        agent_list => AgentList,
        /// Replace the session's token (JWT refresh).
        token_refresh => TokenRefresh,
        /// Reset the vendor's idle timers.
        keep_alive => KeepAlive,
        /// Warnings before the vendor closes an idle chat.
        idle_warning => IdleWarning,
        /// Request a callback.
        callbacks => Callbacks,
        /// Audio calls.
        calls_audio => CallsAudio,
        /// Video calls.
        calls_video => CallsVideo,
        /// Put a call on hold.
        call_hold => CallHold,
        /// Send DTMF digits in a call.
        call_dtmf => CallDtmf,
    }
    limits {
        /// Largest message body, in characters.
        message_max_chars: u32,
        /// Largest attachment, in bytes.
        attachment_max_bytes: u64,
        /// Largest history page the vendor serves.
        history_page_max: u32,
        /// Messages per second per session the vendor accepts; the adapter queues above it.
        messages_per_second: u32,
        /// Least time between two typing-start frames, in milliseconds.
        typing_cooldown_ms: u32,
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

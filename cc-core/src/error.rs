//! The one error type of the SDK.
//!
//! Every error names the vendor it comes from (where one is known) and keeps the vendor's
//! own code beside our classification. Apps ask [`Error::is_retryable`] and
//! [`Error::retry_after`] instead of guessing; [`Error::kind`] gives a `Copy` kind for
//! metrics and bindings.

use std::borrow::Cow;
use std::time::Duration;

use crate::{Feature, Vendor};

/// A boxed error source; keeps third-party error types out of the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network or the connection failed; retrying may help.
    #[error("{vendor}: transport failure in {operation}")]
    Transport {
        /// The vendor.
        vendor: Vendor,
        /// What the SDK was doing.
        operation: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// The token expired or the credentials were rejected.
    #[error("{vendor}: authentication failed{}: {message}", code_suffix(.code))]
    Auth {
        /// The vendor.
        vendor: Vendor,
        /// The vendor's own code, if it gave one.
        code: Option<String>,
        /// The vendor's message or ours.
        message: String,
    },
    /// The vendor refused the request.
    #[error("{vendor} rejected the request ({code}): {message}")]
    Rejected {
        /// The vendor.
        vendor: Vendor,
        /// The vendor's own code (an HTTP status, an error code string).
        code: String,
        /// The vendor's message.
        message: String,
        /// When the vendor says to try again; set means the error is retryable.
        retry_after: Option<Duration>,
    },
    /// The adapter does not support the operation.
    #[error("{vendor} does not support {feature}")]
    Unsupported {
        /// The vendor.
        vendor: Vendor,
        /// The missing feature.
        feature: Feature,
    },
    /// An argument or configuration value is invalid; names the field.
    #[error("{}invalid `{field}`: {reason}", vendor_prefix(.vendor))]
    InvalidInput {
        /// The vendor, when one is known.
        vendor: Option<Vendor>,
        /// The field, as a path (`genesys.deployment_id`).
        field: Cow<'static, str>,
        /// Why it is invalid.
        reason: String,
    },
    /// The vendor sent a frame the SDK could not understand; the session goes on.
    #[error("{vendor}: malformed {frame}: {reason}")]
    Protocol {
        /// The vendor.
        vendor: Vendor,
        /// Which frame or body (`web messaging frame`, `member-change event`).
        frame: Cow<'static, str>,
        /// What was wrong with it.
        reason: String,
    },
    /// The operation did not complete in time.
    #[error("{vendor}: {operation} timed out after {after:?}")]
    Timeout {
        /// The vendor.
        vendor: Vendor,
        /// What the SDK was doing.
        operation: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The session or engagement is closed.
    #[error("{vendor}: {what} is closed")]
    Closed {
        /// The vendor.
        vendor: Vendor,
        /// What is closed (`session`, `engagement`, `call`).
        what: &'static str,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn vendor_prefix(vendor: &Option<Vendor>) -> String {
    vendor.map(|v| format!("{v}: ")).unwrap_or_default()
}

/// A `Copy` classification of [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Transport`].
    Transport,
    /// [`Error::Auth`].
    Auth,
    /// [`Error::Rejected`].
    Rejected,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::InvalidInput`].
    InvalidInput,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Closed`].
    Closed,
}

impl Error {
    /// An [`Error::Unsupported`].
    pub const fn unsupported(vendor: Vendor, feature: Feature) -> Self {
        Error::Unsupported { vendor, feature }
    }

    /// An [`Error::InvalidInput`] naming `field`.
    pub fn invalid(
        vendor: impl Into<Option<Vendor>>,
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            vendor: vendor.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Protocol`] naming the frame.
    pub fn protocol(
        vendor: Vendor,
        frame: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Protocol {
            vendor,
            frame: frame.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Transport`] around `source`.
    pub fn transport(vendor: Vendor, operation: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Transport {
            vendor,
            operation,
            source: source.into(),
        }
    }

    /// An [`Error::Closed`].
    pub const fn closed(vendor: Vendor, what: &'static str) -> Self {
        Error::Closed { vendor, what }
    }

    /// The kind, for metrics and bindings.
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Error::Transport { .. } => ErrorKind::Transport,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Rejected { .. } => ErrorKind::Rejected,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Closed { .. } => ErrorKind::Closed,
        }
    }

    /// The vendor the error comes from, when one is known.
    pub const fn vendor(&self) -> Option<Vendor> {
        match self {
            Error::Transport { vendor, .. }
            | Error::Auth { vendor, .. }
            | Error::Rejected { vendor, .. }
            | Error::Unsupported { vendor, .. }
            | Error::Protocol { vendor, .. }
            | Error::Timeout { vendor, .. }
            | Error::Closed { vendor, .. } => Some(*vendor),
            Error::InvalidInput { vendor, .. } => *vendor,
        }
    }

    /// The vendor's own code, where the vendor gave one.
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            Error::Auth { code, .. } => code.as_deref(),
            Error::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying the same operation again may succeed.
    pub const fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Rejected { retry_after, .. } => retry_after.is_some(),
            _ => false,
        }
    }

    /// How long the vendor asked to wait before trying again.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error's text followed by each of its causes that the text does not already hold,
/// joined with `: `. reqwest's own text names only the outermost step
/// (`error sending request`); this reaches the cause underneath (`Connection refused`).
///
/// ```
/// let e = std::io::Error::other("connection refused");
/// assert_eq!(cc_core::error_with_causes(&e), "connection refused");
/// ```
pub fn error_with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

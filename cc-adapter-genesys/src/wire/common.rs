//! Shapes and codec helpers both Genesys APIs share: the platform error body, the numbered
//! entity page, and the JSON decode/encode steps every frame goes through.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DecodeError;

/// The platform `ErrorBody` (guest chat REST errors, Web Messaging history errors).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// HTTP status.
    #[serde(default)]
    pub status: u16,
    /// Error code (`chat.error.member.state`).
    #[serde(default)]
    pub code: String,
    /// Text.
    #[serde(default)]
    pub message: String,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Field details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl ErrorBody {
    /// Decodes an error body; never panics.
    pub fn decode(text: &str) -> Result<ErrorBody, DecodeError> {
        decode_json("error body", text)
    }
}

/// A numbered page of entities (`{entities, pageSize, pageNumber, total, pageCount}`), as the
/// guest member list and the Web Messaging history both send it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityPage<T> {
    /// The entities (history: newest first).
    #[serde(default = "Vec::new")]
    pub entities: Vec<T>,
    /// Page size.
    #[serde(default)]
    pub page_size: u32,
    /// Page number, 1-based.
    #[serde(default)]
    pub page_number: u32,
    /// Total number of entities.
    #[serde(default)]
    pub total: u64,
    /// Number of pages.
    #[serde(default)]
    pub page_count: u32,
}

impl<T> Default for EntityPage<T> {
    fn default() -> Self {
        EntityPage {
            entities: Vec::new(),
            page_size: 0,
            page_number: 0,
            total: 0,
            page_count: 0,
        }
    }
}

/// Decodes a JSON text as `T`; a failure is a [`DecodeError`] naming `frame`.
pub(crate) fn decode_json<T: DeserializeOwned>(
    frame: &'static str,
    text: &str,
) -> Result<T, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::new(frame, e))
}

/// Decodes the `what` body of a `frame` as `T`; a failure names both.
pub(crate) fn decode_body<T: DeserializeOwned>(
    frame: &'static str,
    what: &str,
    body: Value,
) -> Result<T, DecodeError> {
    serde_json::from_value(body).map_err(|e| DecodeError::new(frame, format!("{what} body: {e}")))
}

/// A wire body as a JSON value.
pub(crate) fn to_value<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).expect("wire bodies always serialize")
}

//! Serde types of every Genesys frame and body, exactly as on the wire.
//!
//! - [`messaging`]: the Web Messaging guest API (WebSocket `action` requests, the
//!   `type`/`class`/`code`/`body` envelope, history over REST).
//! - [`guest`]: ACD Web Chat v2 "guest chat" (REST bodies and the JWT event stream).
//!
//! Decoders never panic: malformed or truncated JSON is a [`DecodeError`], and an unknown
//! `class`, topic or enum value decodes to an `Unknown` arm that keeps the raw JSON.

pub mod guest;
pub mod messaging;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A frame or body the decoder could not understand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {frame}: {reason}")]
pub struct DecodeError {
    /// Which frame or body (`web messaging frame`, `guest chat event`).
    pub frame: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(frame: &'static str, reason: impl fmt::Display) -> Self {
        DecodeError {
            frame,
            reason: reason.to_string(),
        }
    }

    /// This error as a [`cc_core::Error::Protocol`] naming the frame.
    pub fn into_error(self) -> cc_core::Error {
        cc_core::Error::protocol(cc_core::Vendor::Genesys, self.frame, self.reason)
    }
}

/// A token carried on the wire (session token, JWT): serialized as is, never printed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct WireToken(pub String);

impl WireToken {
    /// The token's text, for where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[token]")
    }
}

impl From<&str> for WireToken {
    fn from(s: &str) -> Self {
        WireToken(s.to_owned())
    }
}

impl From<String> for WireToken {
    fn from(s: String) -> Self {
        WireToken(s)
    }
}

/// ISO-8601 / RFC 3339 UTC times as Genesys writes them (`2019-06-18T16:59:22.277Z`).
pub mod time {
    /// Milliseconds since the Unix epoch from `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`; `None`
    /// when it does not parse.
    pub fn parse_ms(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut ms = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let f = &frac[..digits];
            let padded: String = f.chars().chain("000".chars()).take(3).collect();
            ms = padded.parse().ok()?;
            rest = &frac[digits..];
        }
        let offset_min = match rest {
            "Z" | "z" | "" => 0,
            o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
                let oh: i64 = o.get(1..3)?.parse().ok()?;
                let om: i64 = o.get(4..6)?.parse().ok()?;
                let v = oh * 60 + om;
                if o.starts_with('-') { -v } else { v }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        Some(((days * 86_400 + h * 3600 + mi * 60 + se) - offset_min * 60) * 1000 + ms)
    }

    /// `YYYY-MM-DDTHH:MM:SS.fffZ` from milliseconds since the Unix epoch.
    pub fn format_ms(ms: i64) -> String {
        let secs = ms.div_euclid(1000);
        let milli = ms.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
            assert_eq!(
                parse_ms("2019-06-18T16:59:22.277Z"),
                Some(1_560_877_162_277)
            );
            assert_eq!(format_ms(1_560_877_162_277), "2019-06-18T16:59:22.277Z");
            assert_eq!(
                parse_ms("2019-06-18T18:59:22.277+02:00"),
                Some(1_560_877_162_277)
            );
            assert_eq!(parse_ms("2019-06-18"), None);
            assert_eq!(parse_ms("2019-13-18T16:59:22Z"), None);
            for ms in [0, 1, 951_782_400_000, 4_102_444_799_999] {
                assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
            }
        }
    }
}

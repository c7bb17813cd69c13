//! What travels between the widget client and TVox, in two layers:
//!
//! - [`model`]: the widget library's data model (VERIFIED names from the vendor's
//!   documentation): sessions, steps, chat events, service status, enums;
//! - [`codec`]: the PROPOSED envelope and method catalogue (JSON-RPC 2.0 over WebSocket).
//!   It is the only layer that changes if real traffic is ever captured.
//!
//! [`time`] converts the ISO-8601 strings of the model to and from [`cc_core::Timestamp`].

pub mod codec;
pub mod model;

pub use codec::{Call, DecodeError, Incoming, RpcError, RpcId};
pub use model::*;

/// ISO-8601 / RFC 3339 times (UTC) ↔ epoch milliseconds, without a date library.
pub mod time {
    use cc_core::Timestamp;

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn format(t: Timestamp) -> String {
        let ms = t.0.rem_euclid(1000);
        let secs = t.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`; `None` when it is not such a time.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
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
            "" | "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let o = rest[1..].replace(':', "");
                if o.len() != 4 || !o.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let oh: i64 = o[..2].parse().ok()?;
                let om: i64 = o[2..].parse().ok()?;
                sign * (oh * 60 + om)
            }
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
        Some(Timestamp(secs * 1000 + ms))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            for ms in [0, 1_700_000_000_123, 951_782_400_000, -1000] {
                assert_eq!(parse(&format(Timestamp(ms))), Some(Timestamp(ms)));
            }
            assert_eq!(
                parse("2026-11-23T12:00:00+01:00"),
                parse("2026-11-23T11:00:00Z")
            );
            assert_eq!(parse("2026-11-23"), None);
            assert_eq!(parse("2026-13-23T11:00:00Z"), None);
        }
    }
}

//! Bot-history handoff: a bot conversation rendered for the agent who takes over.
//!
//! # The machinery
//!
//! When a bot hands a customer to a human agent, the agent should see what was said.
//! Vendors take that in one of three shapes, and a [`HandoffFormat`] renders each from the
//! same list of [`BotTurn`]s:
//!
//! - one transcript text sent as chat message(s): [`HandoffFormat::chunks`] renders the
//!   turns as labelled lines and cuts the text into messages no longer than the vendor's
//!   limit ([`LengthLimit`], in characters or bytes). Cuts fall on line boundaries when a
//!   line fits, else on a space, else between two characters, never inside a UTF-8 character;
//! - one message per turn: [`HandoffFormat::line_messages`], each line itself cut when it is
//!   longer than the limit;
//! - a context entry for vendors that take user data or custom attributes:
//!   [`UserData::new`] puts the turns as JSON under one key (`botHistory` by default),
//!   dropping the oldest turns when the vendor limits the size.
//!
//! A line reads `[12:03:04] Customer: text`: the time (UTC, [`TimeStyle`]), the role label
//! ([`RoleLabels`]) and the text.
//!
//! ```
//! use cc_chat::{BotTurn, HandoffFormat, LengthLimit, Role, Timestamp};
//! let turns = vec![
//!     BotTurn { role: Role::Customer, text: "I lost my card".into(), time: Timestamp(0) },
//!     BotTurn { role: Role::Bot, text: "Let me get you an agent.".into(), time: Timestamp(61_000) },
//! ];
//! let text = HandoffFormat::default().text(&turns);
//! assert_eq!(text, "[00:00:00] Customer: I lost my card\n[00:01:01] Bot: Let me get you an agent.");
//! let chunks = HandoffFormat::default().chunks(&turns, LengthLimit::Chars(40)).unwrap();
//! assert_eq!(chunks.len(), 2);
//! ```

use std::collections::BTreeMap;

use cc_core::{BotTurn, Error, Result, Role, Timestamp};

/// The label shown for each role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleLabels {
    /// The customer.
    pub customer: String,
    /// A human agent.
    pub agent: String,
    /// The bot.
    pub bot: String,
    /// The system.
    pub system: String,
}

impl Default for RoleLabels {
    fn default() -> Self {
        RoleLabels {
            customer: "Customer".into(),
            agent: "Agent".into(),
            bot: "Bot".into(),
            system: "System".into(),
        }
    }
}

impl RoleLabels {
    /// The label of `role`.
    pub fn label(&self, role: Role) -> &str {
        match role {
            Role::Customer => &self.customer,
            Role::Agent => &self.agent,
            Role::Bot => &self.bot,
            Role::System => &self.system,
        }
    }
}

/// How times are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeStyle {
    /// No time.
    None,
    /// `[HH:MM:SS]`, UTC.
    #[default]
    Time,
    /// `[YYYY-MM-DDTHH:MM:SSZ]`, UTC (RFC 3339).
    DateTime,
}

/// A vendor's message length limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthLimit {
    /// At most this many characters (Unicode scalar values).
    Chars(usize),
    /// At most this many bytes of UTF-8.
    Bytes(usize),
}

impl LengthLimit {
    fn len(self, s: &str) -> usize {
        match self {
            LengthLimit::Chars(_) => s.chars().count(),
            LengthLimit::Bytes(_) => s.len(),
        }
    }

    fn max(self) -> usize {
        match self {
            LengthLimit::Chars(n) | LengthLimit::Bytes(n) => n,
        }
    }

    /// The byte index of the longest prefix of `s` within the limit (at a char boundary).
    fn prefix_end(self, s: &str) -> usize {
        match self {
            LengthLimit::Chars(n) => s.char_indices().nth(n).map_or(s.len(), |(i, _)| i),
            LengthLimit::Bytes(n) => {
                if n >= s.len() {
                    s.len()
                } else {
                    (0..=n).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
                }
            }
        }
    }
}

/// How a bot conversation is rendered; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoffFormat {
    /// Role labels.
    pub labels: RoleLabels,
    /// Time style.
    pub time: TimeStyle,
    /// A first line before the turns (`Conversation with the bot:`), if any.
    pub header: Option<String>,
}

impl HandoffFormat {
    /// One turn as a line: `[time] Label: text`.
    pub fn line(&self, turn: &BotTurn) -> String {
        let label = self.labels.label(turn.role);
        match self.time {
            TimeStyle::None => format!("{label}: {}", turn.text),
            TimeStyle::Time => format!("[{}] {label}: {}", clock(turn.time), turn.text),
            TimeStyle::DateTime => format!("[{}] {label}: {}", rfc3339(turn.time), turn.text),
        }
    }

    /// Every turn as a line, in the order given.
    pub fn lines(&self, turns: &[BotTurn]) -> Vec<String> {
        turns.iter().map(|t| self.line(t)).collect()
    }

    /// The whole conversation as one text: the header, then one line per turn.
    pub fn text(&self, turns: &[BotTurn]) -> String {
        self.header
            .iter()
            .cloned()
            .chain(self.lines(turns))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The whole conversation cut into messages within `limit`; see [`chunk`].
    pub fn chunks(&self, turns: &[BotTurn], limit: LengthLimit) -> Result<Vec<String>> {
        if turns.is_empty() {
            return Ok(Vec::new());
        }
        chunk(&self.text(turns), limit)
    }

    /// One message per turn (and one for the header), each cut when longer than `limit`.
    pub fn line_messages(&self, turns: &[BotTurn], limit: LengthLimit) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if turns.is_empty() {
            return Ok(out);
        }
        for line in self.header.iter().cloned().chain(self.lines(turns)) {
            out.extend(chunk(&line, limit)?);
        }
        Ok(out)
    }
}

/// Cuts `text` into pieces within `limit`: at the last line break that fits, else the last
/// space, else the last character boundary. Line breaks and spaces at a cut are dropped;
/// nothing else is. An empty text gives no pieces.
///
/// A limit of 0, or a byte limit smaller than a character of the text, is an
/// [`Error::InvalidInput`] naming `max_len`.
pub fn chunk(text: &str, limit: LengthLimit) -> Result<Vec<String>> {
    if limit.max() == 0 {
        return Err(Error::invalid(None, "max_len", "must be at least 1"));
    }
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if limit.len(rest) <= limit.max() {
            out.push(rest.to_owned());
            break;
        }
        let end = limit.prefix_end(rest);
        if end == 0 {
            return Err(Error::invalid(
                None,
                "max_len",
                format!(
                    "{} bytes cannot hold the character {:?}",
                    limit.max(),
                    rest.chars().next().unwrap_or_default()
                ),
            ));
        }
        // The cut may fall right after the prefix, on a separator.
        let window = &rest[..end];
        let next_is_sep = rest[end..].starts_with(['\n', ' ']);
        let (piece, skip) = if next_is_sep && rest[end..].starts_with('\n') {
            (end, end + 1)
        } else if let Some(i) = window.rfind('\n').filter(|i| *i > 0) {
            (i, i + 1)
        } else if next_is_sep {
            (end, end + 1)
        } else if let Some(i) = window.rfind(' ').filter(|i| *i > 0) {
            (i, i + 1)
        } else {
            (end, end)
        };
        let p = rest[..piece].trim_end_matches(['\n', '\r']);
        if !p.is_empty() {
            out.push(p.to_owned());
        }
        rest = rest[skip..].trim_start_matches(['\n', '\r']);
    }
    Ok(out)
}

/// The bot conversation as a user-data entry, for vendors that take context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserData {
    /// The entries: one key, the turns as a JSON array of
    /// `{"role":"bot","text":"…","time":<ms since the epoch>}`.
    pub entries: BTreeMap<String, String>,
    /// How many of the oldest turns were left out to fit the size limit.
    pub dropped: usize,
}

impl UserData {
    /// The usual key.
    pub const DEFAULT_KEY: &'static str = "botHistory";

    /// The turns as JSON under `key`; with `max_bytes`, the oldest turns are dropped until
    /// the value fits (possibly all of them: then the value is `[]`, or the entry is left
    /// out when even that does not fit).
    pub fn new(turns: &[BotTurn], key: &str, max_bytes: Option<usize>) -> UserData {
        let json = |turns: &[BotTurn]| {
            serde_json::to_string(turns).expect("bot turns always serialize to JSON")
        };
        let mut dropped = 0;
        let mut value = json(turns);
        if let Some(max) = max_bytes {
            while value.len() > max && dropped < turns.len() {
                dropped += 1;
                value = json(&turns[dropped..]);
            }
            if value.len() > max {
                return UserData {
                    entries: BTreeMap::new(),
                    dropped,
                };
            }
        }
        UserData {
            entries: BTreeMap::from([(key.to_owned(), value)]),
            dropped,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split(t: Timestamp) -> (i64, i64) {
    let secs = t.unix_ms().div_euclid(1000);
    (secs.div_euclid(86_400), secs.rem_euclid(86_400))
}

fn clock(t: Timestamp) -> String {
    let (_, s) = split(t);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn rfc3339(t: Timestamp) -> String {
    let (days, _) = split(t);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{}Z", clock(t))
}

#[cfg(test)]
mod tests;

//! Snapshots of the frames a simulator recorded, made stable for review.
//!
//! After a scenario passes, the suite snapshots what went over the wire, so that any change
//! to what an adapter sends shows up in review. Three things would make the snapshot
//! differ from run to run; each is dealt with here:
//!
//! - **Ids and tokens** (UUIDs, JWTs, long hex or alphanumeric ids) become `<id-1>`,
//!   `<id-2>`, … in order of first appearance, so a snapshot still shows which frames
//!   carry the same id. The same text always gets the same placeholder within a snapshot.
//! - **Times** (RFC 3339 strings, epoch seconds or milliseconds as numbers between the
//!   years 2001 and 2286) become `<ts>`.
//! - **Ordering.** Frames on different channels (a WebSocket and HTTP requests, say) are
//!   sent by different tasks, and server frames race client frames, so their interleaving
//!   varies. By default ([`SnapshotFrames::ClientToServer`]) only client-to-server frames
//!   are kept, grouped by channel (channels sorted by their id-free name, frames within a
//!   channel in the order sent). The order within one channel is what the adapter
//!   controls; the order across channels is not part of the contract.
//!   [`SnapshotFrames::PerChannel`] adds the server's frames the same way, as separate
//!   channels, for simulators whose own output is deterministic.
//!
//! Maps are sorted (insta's `sort_maps`). Snapshots go to the adapter's
//! `tests/snapshots/<scenario>@<vendor>[-<transport>].snap`. With `CI=true` insta writes
//! nothing and fails on any difference or missing snapshot; locally, review new or changed
//! snapshots with `cargo insta review`, or accept them with `INSTA_UPDATE=always` and read
//! the git diff.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::{Direction, Frame};

/// Which recorded frames a snapshot keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotFrames {
    /// No snapshot.
    Off,
    /// Client-to-server frames only, grouped by channel (the default).
    #[default]
    ClientToServer,
    /// Both directions, each direction and channel its own group.
    PerChannel,
}

/// Replaces ids with `<id-N>` (by first appearance) and times with `<ts>`.
#[derive(Debug, Default)]
pub struct Redactor {
    ids: HashMap<String, String>,
    /// Every id becomes `<id>`: for sort keys.
    anonymous: bool,
}

static TS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?").unwrap()
});
static ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // JWT: three base64url segments, the header starting `eyJ` (`{"`).
        r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
        // UUID.
        r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
        // Any other run of id characters; kept only when it looks like an id (see below).
        r"|[A-Za-z0-9_-]{16,}",
    ))
    .unwrap()
});

/// Whether a run of id characters is an id rather than a word: 16+ characters with both
/// letters and digits (`a1b2c3…`, base64 ids), or 16+ hex digits.
fn looks_like_id(s: &str) -> bool {
    if s.starts_with("eyJ") && s.contains('.') {
        return true;
    }
    let hex = s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let digit = s.chars().any(|c| c.is_ascii_digit());
    let alpha = s.chars().any(|c| c.is_ascii_alphabetic());
    digit && (hex || alpha)
}

/// Epoch seconds or milliseconds from 2001 to 2286.
fn looks_like_epoch(n: &serde_json::Number) -> bool {
    let Some(v) = n.as_u64() else { return false };
    (1_000_000_000..10_000_000_000).contains(&v)
        || (1_000_000_000_000..10_000_000_000_000).contains(&v)
}

impl Redactor {
    /// A redactor with no ids seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Redacts ids and times in a string.
    pub fn text(&mut self, s: &str) -> String {
        let s = TS.replace_all(s, "<ts>");
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for m in ID.find_iter(&s) {
            if !looks_like_id(m.as_str()) {
                continue;
            }
            out.push_str(&s[last..m.start()]);
            if self.anonymous {
                out.push_str("<id>");
                last = m.end();
                continue;
            }
            let next = self.ids.len() + 1;
            let id = self
                .ids
                .entry(m.as_str().to_owned())
                .or_insert_with(|| format!("<id-{next}>"));
            out.push_str(id);
            last = m.end();
        }
        out.push_str(&s[last..]);
        out
    }

    /// Redacts ids and times in a JSON value, walking object keys in sorted order so that
    /// numbering does not depend on map order.
    pub fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Number(n) if looks_like_epoch(n) => Value::String("<ts>".to_owned()),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    let key = self.text(k);
                    let val = self.value(&map[k]);
                    out.insert(key, val);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

/// The channel's name with every id replaced by `<id>` (no numbering): the stable key
/// channels are sorted by.
fn channel_shape(channel: &str) -> String {
    Redactor {
        anonymous: true,
        ..Redactor::default()
    }
    .text(channel)
}

/// The stable JSON document a snapshot holds: the kept frames, grouped by channel, with
/// ids and times redacted. Pure, so it is tested on its own.
pub fn normalize(frames: &[Frame], mode: SnapshotFrames) -> Value {
    let mut kept: Vec<&Frame> = frames
        .iter()
        .filter(|f| match mode {
            SnapshotFrames::Off => false,
            SnapshotFrames::ClientToServer => f.direction == Direction::ClientToServer,
            SnapshotFrames::PerChannel => true,
        })
        .collect();
    let key = |f: &Frame| {
        let dir = match f.direction {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        };
        (dir, channel_shape(&f.channel))
    };
    // Stable: frames keep their order within a group.
    kept.sort_by_cached_key(|f| key(f));
    let mut redactor = Redactor::new();
    let out: Vec<Value> = kept
        .iter()
        .map(|f| {
            let arrow = match f.direction {
                Direction::ClientToServer => "->",
                Direction::ServerToClient => "<-",
            };
            let mut obj = Map::new();
            obj.insert(
                "channel".to_owned(),
                Value::String(format!("{arrow} {}", redactor.text(&f.channel))),
            );
            obj.insert("body".to_owned(), redactor.value(&f.body));
            Value::Object(obj)
        })
        .collect();
    Value::Array(out)
}

/// Where and how to snapshot one trial.
#[derive(Clone, Debug)]
pub struct SnapshotSpec<'a> {
    /// The adapter's snapshot folder (absolute).
    pub dir: &'a Path,
    /// The snapshot's name: the scenario.
    pub name: &'a str,
    /// The suffix after `@`: the vendor, plus `-<transport>` when the target names one.
    pub suffix: &'a str,
    /// Extra insta redactions (selector, replacement), e.g. `("[].body.token", "[token]")`.
    pub redactions: &'a [(&'static str, &'static str)],
}

/// Asserts the snapshot `<dir>/<name>@<suffix>.snap` of `doc` (from [`normalize`]).
/// Panics on a difference, as insta does.
pub fn assert_frames_snapshot(spec: &SnapshotSpec<'_>, doc: &Value) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(spec.dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_suffix(spec.suffix);
    settings.set_sort_maps(true);
    settings.set_omit_expression(true);
    settings.set_description(format!(
        "client frames of conformance scenario `{}` ({})",
        spec.name, spec.suffix
    ));
    for (selector, replacement) in spec.redactions {
        settings.add_redaction(selector, *replacement);
    }
    settings.bind(|| {
        insta::assert_json_snapshot!(spec.name, doc);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(direction: Direction, channel: &str, body: Value) -> Frame {
        Frame {
            direction,
            channel: channel.to_owned(),
            body,
        }
    }

    #[test]
    fn ids_are_numbered_by_first_appearance() {
        let mut r = Redactor::new();
        let a = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
        let b = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(r.text(a), "<id-1>");
        assert_eq!(
            r.text(&format!("/conversations/{b}/messages/{a}")),
            "/conversations/<id-2>/messages/<id-1>"
        );
        assert_eq!(r.text(b), "<id-2>");
    }

    #[test]
    fn jwts_hex_and_alnum_ids_are_redacted_words_are_not() {
        let mut r = Redactor::new();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjdXN0b21lciJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_eq!(r.text(&format!("Bearer {jwt}")), "Bearer <id-1>");
        assert_eq!(r.text("deadbeefdeadbeef1234"), "<id-2>");
        assert_eq!(r.text("a8Kd92LmQz0PxY7w"), "<id-3>");
        // Long words without digits, short ids and prose stay.
        assert_eq!(r.text("conversation_identifier"), "conversation_identifier");
        assert_eq!(r.text("msg-42"), "msg-42");
        assert_eq!(r.text("hello from the customer"), "hello from the customer");
    }

    #[test]
    fn times_become_ts() {
        let mut r = Redactor::new();
        assert_eq!(r.text("2026-11-23T11:42:22.123Z"), "<ts>");
        assert_eq!(r.text("at 2026-11-23T11:42:22+01:00 ok"), "at <ts> ok");
        let v =
            r.value(&json!({"sent": 1_763_897_542_123u64, "secs": 1_763_897_542u64, "size": 1234}));
        assert_eq!(v, json!({"sent": "<ts>", "secs": "<ts>", "size": 1234}));
    }

    #[test]
    fn keys_are_walked_in_sorted_order() {
        let a = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
        let b = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let v = Redactor::new().value(&json!({"z": a, "a": b}));
        assert_eq!(v, json!({"a": "<id-1>", "z": "<id-2>"}));
    }

    #[test]
    fn normalize_keeps_client_frames_grouped_by_channel() {
        let conv = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
        let upload = format!("POST /conversations/{conv}/upload");
        let frames = vec![
            frame(
                Direction::ClientToServer,
                "ws",
                json!({"n": 1, "conv": conv}),
            ),
            frame(Direction::ServerToClient, "ws", json!({"agent": "hi"})),
            frame(Direction::ClientToServer, &upload, json!("file")),
            frame(Direction::ClientToServer, "ws", json!({"n": 2})),
        ];
        let doc = normalize(&frames, SnapshotFrames::ClientToServer);
        // `POST …` sorts before `ws`; frames on `ws` keep their order; ids are numbered
        // in the order of the sorted document.
        assert_eq!(
            doc,
            json!([
                {"channel": "-> POST /conversations/<id-1>/upload", "body": "file"},
                {"channel": "-> ws", "body": {"n": 1, "conv": "<id-1>"}},
                {"channel": "-> ws", "body": {"n": 2}},
            ])
        );
        // The same frames interleaved differently across channels give the same document.
        let swapped = vec![
            frames[2].clone(),
            frames[0].clone(),
            frames[3].clone(),
            frames[1].clone(),
        ];
        assert_eq!(normalize(&swapped, SnapshotFrames::ClientToServer), doc);
    }

    #[test]
    fn normalize_per_channel_adds_server_frames_after_client_ones() {
        let frames = vec![
            frame(Direction::ServerToClient, "ws", json!({"agent": "hi"})),
            frame(Direction::ClientToServer, "ws", json!({"n": 1})),
        ];
        let doc = normalize(&frames, SnapshotFrames::PerChannel);
        assert_eq!(
            doc,
            json!([
                {"channel": "-> ws", "body": {"n": 1}},
                {"channel": "<- ws", "body": {"agent": "hi"}},
            ])
        );
        assert_eq!(normalize(&frames, SnapshotFrames::Off), json!([]));
    }

    fn write_snap(dir: &Path, file: &str, doc: &Value) {
        let text = format!(
            "---\nsource: cc-testkit/src/snapshot.rs\n---\n{}\n",
            serde_json::to_string_pretty(doc).unwrap()
        );
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn snapshot_lands_in_the_adapter_folder_with_the_vendor_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let doc = json!([{"channel": "-> ws", "body": {"b": 2, "a": 1}}]);
        write_snap(
            dir.path(),
            "chat_happy_path@genesys-web-messaging.snap",
            &doc,
        );
        let spec = SnapshotSpec {
            dir: dir.path(),
            name: "chat_happy_path",
            suffix: "genesys-web-messaging",
            redactions: &[],
        };
        assert_frames_snapshot(&spec, &doc);

        if accepting_snapshots() {
            return;
        }
        // A different document fails (and, outside CI, leaves a `.snap.new` beside it).
        let changed = json!([{"channel": "-> ws", "body": {"b": 3, "a": 1}}]);
        let failed = std::panic::catch_unwind(|| assert_frames_snapshot(&spec, &changed));
        assert!(failed.is_err(), "a changed snapshot must fail");
    }

    /// Whoever runs the tests told insta to accept every snapshot: mismatches pass then.
    fn accepting_snapshots() -> bool {
        std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always")
            || std::env::var("INSTA_FORCE_PASS").is_ok_and(|v| v == "1")
    }

    #[test]
    fn a_missing_snapshot_fails() {
        if accepting_snapshots() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spec = SnapshotSpec {
            dir: dir.path(),
            name: "never_recorded",
            suffix: "tvox",
            redactions: &[],
        };
        let failed = std::panic::catch_unwind(|| assert_frames_snapshot(&spec, &json!([])));
        assert!(failed.is_err(), "a missing snapshot must fail");
        assert!(!dir.path().join("never_recorded@tvox.snap").exists());
    }

    #[test]
    fn extra_redactions_apply() {
        let dir = tempfile::tempdir().unwrap();
        write_snap(
            dir.path(),
            "token_refresh@avaya.snap",
            &json!([{"channel": "-> ws", "body": {"token": "[token]"}}]),
        );
        let spec = SnapshotSpec {
            dir: dir.path(),
            name: "token_refresh",
            suffix: "avaya",
            redactions: &[("[].body.token", "[token]")],
        };
        assert_frames_snapshot(
            &spec,
            &json!([{"channel": "-> ws", "body": {"token": "short"}}]),
        );
    }
}

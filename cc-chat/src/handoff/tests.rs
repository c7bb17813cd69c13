use super::*;
use proptest::prelude::*;

fn turn(role: Role, text: &str, ms: i64) -> BotTurn {
    BotTurn {
        role,
        text: text.into(),
        time: Timestamp(ms),
    }
}

fn turns() -> Vec<BotTurn> {
    vec![
        turn(Role::Customer, "Hello, I need help", 1_700_000_000_000),
        turn(Role::Bot, "Sure — what is it about?", 1_700_000_001_000),
        turn(
            Role::Customer,
            "Rückerstattung für 🎫 bitte",
            1_700_000_062_500,
        ),
    ]
}

#[test]
fn lines_with_labels_and_times() {
    let f = HandoffFormat::default();
    assert_eq!(
        f.lines(&turns()),
        [
            "[22:13:20] Customer: Hello, I need help",
            "[22:13:21] Bot: Sure — what is it about?",
            "[22:14:22] Customer: Rückerstattung für 🎫 bitte",
        ]
    );
    let f = HandoffFormat {
        labels: RoleLabels {
            customer: "Cliente".into(),
            ..RoleLabels::default()
        },
        time: TimeStyle::DateTime,
        header: Some("Bot conversation:".into()),
    };
    assert_eq!(
        f.text(&turns()[..1]),
        "Bot conversation:\n[2023-11-14T22:13:20Z] Cliente: Hello, I need help"
    );
    let f = HandoffFormat {
        time: TimeStyle::None,
        ..HandoffFormat::default()
    };
    assert_eq!(f.line(&turn(Role::Agent, "x", 0)), "Agent: x");
    assert_eq!(f.line(&turn(Role::System, "y", 0)), "System: y");
}

#[test]
fn dates_are_gregorian_utc() {
    assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(Timestamp(951_782_400_000)), "2000-02-29T00:00:00Z");
    assert_eq!(
        rfc3339(Timestamp(1_795_435_199_999)),
        "2026-11-23T11:59:59Z"
    );
    assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59Z");
    assert_eq!(
        rfc3339(Timestamp(4_107_542_400_000)),
        "2100-03-01T00:00:00Z"
    );
}

#[test]
fn chunks_prefer_line_boundaries() {
    let f = HandoffFormat::default();
    let text = f.text(&turns());
    let chunks = f.chunks(&turns(), LengthLimit::Chars(60)).unwrap();
    // Each line fits alone; two do not: one line per chunk, newline dropped at the cut.
    assert_eq!(chunks, f.lines(&turns()));
    let all = f.chunks(&turns(), LengthLimit::Chars(1000)).unwrap();
    assert_eq!(all, [text]);
    assert!(f.chunks(&[], LengthLimit::Chars(10)).unwrap().is_empty());
}

#[test]
fn long_lines_cut_at_spaces_then_anywhere() {
    assert_eq!(
        chunk("aaaa bbbb cccc", LengthLimit::Chars(9)).unwrap(),
        ["aaaa bbbb", "cccc"]
    );
    assert_eq!(
        chunk("abcdefghij", LengthLimit::Chars(4)).unwrap(),
        ["abcd", "efgh", "ij"]
    );
    assert_eq!(
        chunk("one\ntwo three four", LengthLimit::Chars(10)).unwrap(),
        ["one", "two three", "four"]
    );
    assert_eq!(
        chunk("a\n\n\nb", LengthLimit::Chars(2)).unwrap(),
        ["a", "b"]
    );
    assert!(chunk("", LengthLimit::Chars(3)).unwrap().is_empty());
}

#[test]
fn multibyte_characters_are_never_split() {
    // 'é' is 2 bytes, '🎫' is 4 bytes.
    let text = "éé🎫é🎫🎫";
    let by_bytes = chunk(text, LengthLimit::Bytes(5)).unwrap();
    assert_eq!(by_bytes, ["éé", "🎫", "é", "🎫", "🎫"]);
    assert!(by_bytes.iter().all(|c| c.len() <= 5));
    let by_chars = chunk(text, LengthLimit::Chars(4)).unwrap();
    assert_eq!(by_chars, ["éé🎫é", "🎫🎫"]);
    let err = chunk("🎫", LengthLimit::Bytes(3)).unwrap_err();
    assert!(err.to_string().contains("max_len"), "{err}");
    assert!(chunk("x", LengthLimit::Chars(0)).is_err());
    let f = HandoffFormat {
        time: TimeStyle::None,
        ..HandoffFormat::default()
    };
    for c in f.chunks(&turns(), LengthLimit::Bytes(13)).unwrap() {
        assert!(c.len() <= 13, "{c:?}");
    }
}

#[test]
fn line_messages_one_per_turn() {
    let f = HandoffFormat {
        time: TimeStyle::None,
        header: Some("History".into()),
        ..HandoffFormat::default()
    };
    let msgs = f.line_messages(&turns(), LengthLimit::Chars(100)).unwrap();
    assert_eq!(
        msgs,
        [
            "History",
            "Customer: Hello, I need help",
            "Bot: Sure — what is it about?",
            "Customer: Rückerstattung für 🎫 bitte"
        ]
    );
    let short = f
        .line_messages(&turns()[..1], LengthLimit::Chars(16))
        .unwrap();
    assert_eq!(short, ["History", "Customer: Hello,", "I need help"]);
    assert!(
        f.line_messages(&[], LengthLimit::Chars(10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn user_data_as_json_with_size_limit() {
    let turns = turns();
    let u = UserData::new(&turns, UserData::DEFAULT_KEY, None);
    assert_eq!(u.dropped, 0);
    let value = &u.entries["botHistory"];
    let parsed: Vec<BotTurn> = serde_json::from_str(value).unwrap();
    assert_eq!(parsed, turns);
    let json: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(json[1]["role"], "bot");
    assert_eq!(json[1]["time"], 1_700_000_001_000i64);

    let last_only = serde_json::to_string(&turns[2..]).unwrap();
    let u = UserData::new(&turns, "ctx", Some(last_only.len()));
    assert_eq!(u.dropped, 2);
    assert_eq!(u.entries["ctx"], last_only);
    let u = UserData::new(&turns, "ctx", Some(2));
    assert_eq!((u.dropped, u.entries["ctx"].as_str()), (3, "[]"));
    let u = UserData::new(&turns, "ctx", Some(1));
    assert!(u.entries.is_empty());
}

proptest! {
    /// Every piece is within the limit and not empty; nothing but separators at the cuts
    /// is lost.
    #[test]
    fn chunk_invariants(text in "[a-cé🎫 \n]{0,60}", n in 4usize..12, bytes in any::<bool>()) {
        let limit = if bytes { LengthLimit::Bytes(n) } else { LengthLimit::Chars(n) };
        let pieces = chunk(&text, limit).unwrap();
        for p in &pieces {
            prop_assert!(!p.is_empty());
            prop_assert!(limit.len(p) <= n, "{:?} over {:?}", p, limit);
        }
        let strip = |s: &str| s.chars().filter(|c| *c != ' ' && *c != '\n').collect::<String>();
        prop_assert_eq!(strip(&pieces.concat()), strip(&text));
    }
}

use super::*;
use cc_core::{Content, EngagementId, Participant, Role};
use proptest::prelude::*;

fn msg(id: Option<&str>, server: Option<i64>, local: i64, text: &str) -> Message {
    Message {
        id: id.map(MessageId::from),
        client_id: None,
        engagement: EngagementId::from("e"),
        sender: Participant::new(Role::Agent),
        content: Content::text(text),
        server_time: server.map(Timestamp),
        local_time: Timestamp(local),
        state: DeliveryState::Sent,
        hidden: false,
    }
}

fn texts(t: &Transcript) -> Vec<String> {
    t.iter()
        .map(|m| m.content.as_text().unwrap().to_owned())
        .collect()
}

#[test]
fn orders_by_server_time_then_local_time_then_arrival() {
    let mut t = Transcript::new();
    assert!(t.is_empty());
    assert_eq!(t.upsert(msg(Some("3"), Some(30), 0, "c")), Upsert::Inserted);
    assert_eq!(
        t.upsert(msg(Some("1"), Some(10), 99, "a")),
        Upsert::Inserted
    );
    // No server time: the local time orders it.
    assert_eq!(t.upsert(msg(None, None, 20, "b")), Upsert::Inserted);
    // Equal times keep arrival order.
    t.upsert(msg(Some("4"), Some(30), 0, "d"));
    t.upsert(msg(Some("0"), Some(30), 0, "e"));
    assert_eq!(texts(&t), ["a", "b", "c", "d", "e"]);
    assert_eq!(t.len(), 5);
    assert_eq!(t.oldest_id(), Some(&MessageId::from("1")));
    assert_eq!(t.newest_id(), Some(&MessageId::from("0")));
    assert_eq!(t.last().unwrap().content, Content::text("e"));
}

#[test]
fn dedupes_by_vendor_id() {
    let mut t = Transcript::new();
    t.upsert(msg(Some("1"), Some(10), 0, "a"));
    assert_eq!(
        t.upsert(msg(Some("1"), Some(10), 5, "a")),
        Upsert::Unchanged
    );
    assert_eq!(t.len(), 1);
    // An edit of the same message updates it in place.
    assert_eq!(t.upsert(msg(Some("1"), Some(10), 5, "a!")), Upsert::Updated);
    assert_eq!(texts(&t), ["a!"]);
    assert!(t.contains(&MessageId::from("1")));
    assert_eq!(
        t.get(&MessageId::from("1")).unwrap().local_time,
        Timestamp(0)
    );
}

#[test]
fn anonymous_messages_dedupe_by_role_content_and_server_time() {
    let mut t = Transcript::new();
    t.upsert(msg(None, Some(10), 0, "notice"));
    assert_eq!(
        t.upsert(msg(None, Some(10), 3, "notice")),
        Upsert::Unchanged
    );
    assert_eq!(t.upsert(msg(None, Some(11), 3, "notice")), Upsert::Inserted);
    let mut other_role = msg(None, Some(10), 0, "notice");
    other_role.sender = Participant::new(Role::System);
    assert_eq!(t.upsert(other_role), Upsert::Inserted);
    // Without a server time nothing vouches for two copies being one.
    assert_eq!(t.upsert(msg(None, None, 10, "notice")), Upsert::Inserted);
    assert_eq!(t.len(), 4);
}

#[test]
fn own_message_merges_with_its_echo() {
    let mut t = Transcript::new();
    let cid = ClientMessageId::new();
    let mut mine = msg(None, None, 1_000, "hello");
    mine.sender = Participant::new(Role::Customer);
    mine.client_id = Some(cid);
    mine.state = DeliveryState::Pending;
    t.upsert(mine.clone());
    // An agent message arrives after; our message's server time then places it after it.
    t.upsert(msg(Some("a1"), Some(1_500), 1_600, "agent"));
    assert_eq!(texts(&t), ["hello", "agent"]);
    let mut echo = mine;
    echo.id = Some(MessageId::from("v1"));
    echo.server_time = Some(Timestamp(2_000));
    echo.state = DeliveryState::Sent;
    echo.sender = Participant::new(Role::Customer).with_id("guest");
    assert_eq!(t.upsert(echo), Upsert::Updated);
    assert_eq!(t.len(), 2);
    assert_eq!(texts(&t), ["agent", "hello"]);
    let m = t.get(&MessageId::from("v1")).unwrap();
    assert_eq!(m.client_id, Some(cid));
    assert_eq!(m.state, DeliveryState::Sent);
    assert_eq!(m.sender.id.as_deref(), Some("guest"));
    assert_eq!(t.get_by_client_id(cid).unwrap().id, m.id);
    // History later shows it again, without our client id: still once.
    let mut again = msg(Some("v1"), Some(2_000), 9_999, "hello");
    again.sender = Participant::new(Role::Customer);
    assert_eq!(t.upsert(again), Upsert::Unchanged);
    assert_eq!(t.len(), 2);
}

#[test]
fn echo_first_then_ack_with_client_id_folds_two_entries_into_one() {
    let mut t = Transcript::new();
    let cid = ClientMessageId::new();
    let mut mine = msg(None, None, 1_000, "hi");
    mine.client_id = Some(cid);
    mine.state = DeliveryState::Pending;
    t.upsert(mine.clone());
    // The echo arrived without a client id and was stored on its own.
    t.upsert(msg(Some("v1"), Some(1_100), 1_100, "hi"));
    assert_eq!(t.len(), 2);
    // Then the ack ties them together.
    let mut acked = mine;
    acked.id = Some(MessageId::from("v1"));
    acked.state = DeliveryState::Sent;
    assert_eq!(t.upsert(acked), Upsert::Updated);
    assert_eq!(t.len(), 1);
    let m = t.get(&MessageId::from("v1")).unwrap();
    assert_eq!(m.client_id, Some(cid));
    assert_eq!(m.server_time, Some(Timestamp(1_100)));
    assert_eq!(t.get_by_client_id(cid).unwrap().id, m.id);
}

#[test]
fn same_client_id_with_another_vendor_id_is_another_message() {
    let mut t = Transcript::new();
    let cid = ClientMessageId::new();
    let mut a = msg(Some("v1"), Some(1), 1, "a");
    a.client_id = Some(cid);
    t.upsert(a);
    let mut b = msg(Some("v2"), Some(2), 2, "b");
    b.client_id = Some(cid);
    assert_eq!(t.upsert(b), Upsert::Inserted);
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.get_by_client_id(cid).unwrap().id,
        Some(MessageId::from("v1"))
    );
}

#[test]
fn delivery_state_never_goes_backwards() {
    let mut t = Transcript::new();
    let cid = ClientMessageId::new();
    let mut mine = msg(Some("v1"), Some(1), 1, "x");
    mine.client_id = Some(cid);
    mine.state = DeliveryState::Sent;
    t.upsert(mine.clone());
    let read = t
        .set_state(Some(&MessageId::from("v1")), None, DeliveryState::Read)
        .unwrap();
    assert_eq!(read.state, DeliveryState::Read);
    assert_eq!(
        t.set_state(None, Some(cid), DeliveryState::Delivered),
        None,
        "a late Delivered does not overwrite Read"
    );
    assert_eq!(t.get_by_client_id(cid).unwrap().state, DeliveryState::Read);
    // A stale copy of the message does not move it back either.
    assert_eq!(t.upsert(mine), Upsert::Unchanged);
    assert_eq!(t.get_by_client_id(cid).unwrap().state, DeliveryState::Read);
    assert_eq!(
        t.set_state(Some(&MessageId::from("nope")), None, DeliveryState::Read),
        None
    );
    // By client id when the vendor id is unknown to the transcript.
    let cid2 = ClientMessageId::new();
    let mut pending = msg(None, None, 5, "y");
    pending.client_id = Some(cid2);
    pending.state = DeliveryState::Pending;
    t.upsert(pending);
    assert!(
        t.set_state(
            Some(&MessageId::from("unknown")),
            Some(cid2),
            DeliveryState::Sent
        )
        .is_some()
    );
}

#[test]
fn a_receipt_before_its_message_is_applied_on_arrival() {
    let mut t = Transcript::new();
    let early = MessageId::from("v7");
    assert_eq!(
        t.set_state(Some(&early), None, DeliveryState::Delivered),
        None
    );
    assert_eq!(t.set_state(Some(&early), None, DeliveryState::Read), None);
    assert_eq!(
        t.set_state(Some(&early), None, DeliveryState::Delivered),
        None
    );
    assert_eq!(t.upsert(msg(Some("v7"), Some(1), 0, "x")), Upsert::Inserted);
    assert_eq!(t.get(&early).unwrap().state, DeliveryState::Read);
    // Held once: a later copy does not re-apply anything, and the hold is bounded.
    for i in 0..(EARLY_STATES + 10) {
        let id = MessageId::from(format!("u{i}"));
        t.set_state(Some(&id), None, DeliveryState::Read);
    }
    assert_eq!(t.upsert(msg(Some("u0"), Some(2), 0, "y")), Upsert::Inserted);
    assert_eq!(
        t.get(&MessageId::from("u0")).unwrap().state,
        DeliveryState::Sent
    );
    let last = format!("u{}", EARLY_STATES + 9);
    t.upsert(msg(Some(&last), Some(3), 0, "z"));
    assert_eq!(
        t.get(&MessageId::from(last)).unwrap().state,
        DeliveryState::Read
    );
}

#[test]
fn hidden_messages_are_kept_but_not_visible() {
    let mut t = Transcript::new();
    t.upsert(msg(Some("1"), Some(1), 0, "a"));
    let mut h = msg(Some("2"), Some(2), 0, "secret");
    h.hidden = true;
    t.upsert(h);
    t.upsert(msg(Some("3"), Some(3), 0, "c"));
    assert_eq!(t.messages().len(), 3);
    let visible: Vec<_> = t.visible().into_iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(visible, [MessageId::from("1"), MessageId::from("3")]);
    // A copy without the flag does not reveal it.
    t.upsert(msg(Some("2"), Some(2), 0, "secret"));
    assert_eq!(t.visible().len(), 2);
}

#[test]
fn merge_page_reports_counts() {
    let mut t = Transcript::new();
    t.upsert(msg(Some("2"), Some(2), 0, "b"));
    let page = HistoryPage {
        messages: vec![
            msg(Some("1"), Some(1), 0, "a"),
            msg(Some("2"), Some(2), 0, "b"),
            msg(Some("3"), Some(3), 0, "c"),
        ],
        has_older: false,
        has_newer: false,
    };
    let r = t.merge_page(&page);
    assert_eq!(
        r,
        MergeReport {
            inserted: 2,
            updated: 0,
            unchanged: 1
        }
    );
    assert_eq!(t.merge_page(&page).unchanged, 3);
    assert_eq!(texts(&t), ["a", "b", "c"]);
}

#[test]
fn in_order_appends_stay_sorted_at_scale() {
    let mut t = Transcript::new();
    for i in 0..10_000 {
        t.upsert(msg(Some(&i.to_string()), Some(i), 0, "x"));
    }
    assert_eq!(t.len(), 10_000);
    assert!(
        t.iter()
            .zip(t.iter().skip(1))
            .all(|(a, b)| a.sort_time() <= b.sort_time())
    );
}

/// One logical message of the property test: id, optional time, rank of its state.
#[derive(Clone, Debug)]
struct Spec {
    id: u8,
    server: Option<i64>,
    local: i64,
    state: u8,
}

fn state_of(rank: u8) -> DeliveryState {
    match rank {
        0 => DeliveryState::Pending,
        1 => DeliveryState::Sent,
        2 => DeliveryState::Delivered,
        _ => DeliveryState::Read,
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (any::<u8>(), prop::option::of(0i64..20), 0i64..20, 0u8..4).prop_map(
        |(id, server, local, state)| Spec {
            id: id % 24,
            server,
            local,
            state,
        },
    )
}

proptest! {
    /// Whatever the arrival order and duplication, the transcript holds each vendor id once,
    /// sorted by sort time with ties in first-arrival order, each with its highest state.
    #[test]
    fn order_and_dedupe_invariant(specs in prop::collection::vec(spec(), 0..80)) {
        // The server time and local time of one id are those of its first copy: copies
        // differ in delivery state only, as real copies do.
        let mut first: HashMap<u8, Spec> = HashMap::new();
        let mut arrival = Vec::new();
        let mut max_state: HashMap<u8, u8> = HashMap::new();
        let mut t = Transcript::new();
        for s in &specs {
            let f = first.entry(s.id).or_insert_with(|| { arrival.push(s.id); s.clone() }).clone();
            let e = max_state.entry(s.id).or_insert(0);
            *e = (*e).max(s.state);
            let mut m = msg(Some(&s.id.to_string()), f.server, f.local, "x");
            m.state = state_of(s.state);
            t.upsert(m);
        }
        let mut expected = arrival;
        expected.sort_by_key(|id| { let f = &first[id]; f.server.unwrap_or(f.local) });
        let got: Vec<u8> = t.iter().map(|m| m.id.as_ref().unwrap().as_str().parse().unwrap()).collect();
        prop_assert_eq!(&got, &expected);
        for m in t.iter() {
            let id: u8 = m.id.as_ref().unwrap().as_str().parse().unwrap();
            prop_assert_eq!(m.state.rank(), max_state[&id]);
        }
    }

    /// Our own messages (client id first, vendor id later) and their echoes (vendor id
    /// only, or both) end up once each, whatever the order.
    #[test]
    fn own_messages_and_echoes_appear_once(
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        echo_has_client_id in prop::collection::vec(any::<bool>(), 4),
    ) {
        let cids: Vec<_> = (0..4).map(|_| ClientMessageId::new()).collect();
        // Per message k: 0 = local pending copy, 1 = ack (both ids), 2 = echo.
        let mut t = Transcript::new();
        for i in order {
            let (k, kind) = (i / 3, i % 3);
            let mut m = msg(None, None, k as i64, &format!("m{k}"));
            match kind {
                0 => { m.client_id = Some(cids[k]); m.state = DeliveryState::Pending; }
                1 => { m.client_id = Some(cids[k]); m.id = Some(MessageId::from(format!("v{k}"))); }
                _ => {
                    m.id = Some(MessageId::from(format!("v{k}")));
                    m.server_time = Some(Timestamp(100 + k as i64));
                    if echo_has_client_id[k] { m.client_id = Some(cids[k]); }
                }
            }
            t.upsert(m);
        }
        prop_assert_eq!(t.len(), 4);
        for (k, cid) in cids.iter().enumerate() {
            let m = t.get_by_client_id(*cid).unwrap();
            prop_assert_eq!(m.id.as_ref().unwrap().as_str(), format!("v{k}"));
            prop_assert_eq!(m.server_time, Some(Timestamp(100 + k as i64)));
            prop_assert_eq!(&m.state, &DeliveryState::Sent);
        }
        prop_assert_eq!(texts(&t), ["m0", "m1", "m2", "m3"]);
    }
}

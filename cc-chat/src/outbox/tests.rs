use super::*;
use cc_core::{Role, Vendor};

const SEC: Duration = Duration::from_secs(1);

fn outbox(config: OutboxConfig) -> Outbox {
    Outbox::new(
        Vendor::Genesys,
        EngagementId::from("e-1"),
        Participant::new(Role::Customer),
        config,
    )
}

fn connected(config: OutboxConfig) -> Outbox {
    let mut o = outbox(config);
    o.on_connected();
    o
}

/// A message as the vendor shows it (echo or history), from the customer.
fn seen(text: &str, id: Option<&str>, server_time: Option<i64>) -> Message {
    Message {
        id: id.map(MessageId::from),
        client_id: None,
        engagement: EngagementId::from("e-1"),
        sender: Participant::new(Role::Customer).with_id("guest-1"),
        content: Content::text(text),
        server_time: server_time.map(Timestamp),
        local_time: Timestamp(0),
        state: DeliveryState::Sent,
        hidden: false,
    }
}

fn send(o: &mut Outbox, now: Instant) -> Outgoing {
    match o.poll(now) {
        Poll::Send(out) => {
            assert!(o.on_written(out.client_id(), now));
            out
        }
        other => panic!("expected Send, got {other:?}"),
    }
}

fn text(out: &Outgoing) -> &str {
    out.message.content.as_text().unwrap()
}

fn transport_error() -> Error {
    Error::transport(Vendor::Genesys, "send message", "socket closed")
}

#[test]
fn push_records_pending_with_a_client_id() {
    let t0 = Instant::now();
    let mut o = outbox(OutboxConfig::default());
    let m = o.push(Content::text("hi"), Timestamp(5), t0);
    assert_eq!(m.state, DeliveryState::Pending);
    assert_eq!(m.local_time, Timestamp(5));
    assert_eq!(m.sender.role, Role::Customer);
    assert!(m.id.is_none());
    let cid = m.client_id.unwrap();
    assert_eq!(o.get(cid), Some(&m));
    assert_eq!(o.pending(), vec![m.clone()]);
    let sent = crate::sent_message(&m);
    assert_eq!(sent.client_id, cid);
    assert_eq!(sent.state, DeliveryState::Pending);
    let h = o.push_hidden(Content::text("x"), Timestamp(6), t0);
    assert!(h.hidden);
    assert_ne!(h.client_id, m.client_id);
}

#[test]
fn queued_while_disconnected_sent_once_after_reconnect_in_order() {
    let t0 = Instant::now();
    let mut o = outbox(OutboxConfig::default());
    for t in ["one", "two", "three"] {
        o.push(Content::text(t), Timestamp(1), t0);
    }
    assert_eq!(o.poll(t0), Poll::Idle, "nothing goes while disconnected");
    o.on_connected();
    let mut written = Vec::new();
    loop {
        match o.poll(t0) {
            Poll::Send(out) => {
                o.on_written(out.client_id(), t0);
                written.push(text(&out).to_owned());
            }
            Poll::Idle => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(written, ["one", "two", "three"]);
    // The echoes confirm them; a further reconnect sends nothing again.
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        let echo = seen(t, Some(&format!("v{i}")), Some(1));
        assert!(matches!(o.on_echo(&echo, t0), EchoMatch::Confirmed(_)));
    }
    o.on_disconnected();
    o.on_connected();
    assert_eq!(o.poll(t0), Poll::Idle);
    assert_eq!(o.pending_len(), 0);
}

#[test]
fn disconnect_then_reconnect_with_new_messages_keeps_order_and_sends_each_once() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("a"), Timestamp(1_000), t0);
    let a = send(&mut o, t0);
    o.on_disconnected();
    o.push(Content::text("b"), Timestamp(2_000), t0 + SEC);
    assert_eq!(o.poll(t0 + SEC), Poll::Idle);
    o.on_connected();
    let t1 = t0 + 5 * SEC;
    assert_eq!(
        o.poll(t1),
        Poll::Reconcile,
        "b must not overtake uncertain a"
    );
    // The server shows nothing: a is resent first, then b, each once.
    let report = o.reconcile(&[], t1);
    assert_eq!(report.requeued, vec![a.client_id()]);
    let a2 = send(&mut o, t1);
    assert_eq!(a2.client_id(), a.client_id());
    assert_eq!(a2.attempt, 2);
    let b = send(&mut o, t1);
    assert_eq!(text(&b), "b");
    assert_eq!(b.attempt, 1);
    assert_eq!(o.poll(t1), Poll::Idle);
}

#[test]
fn echo_matched_by_client_id() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("hi"), Timestamp(1), t0);
    let out = send(&mut o, t0);
    let mut echo = seen("hi (reformatted)", Some("v1"), Some(10));
    echo.client_id = Some(out.client_id());
    let EchoMatch::Confirmed(m) = o.on_echo(&echo, t0 + SEC) else {
        panic!("expected a match");
    };
    assert_eq!(m.client_id, Some(out.client_id()));
    assert_eq!(m.id, Some(MessageId::from("v1")));
    assert_eq!(m.server_time, Some(Timestamp(10)));
    assert_eq!(m.state, DeliveryState::Sent);
    assert_eq!(m.sender.id.as_deref(), Some("guest-1"));
    // A second copy is not a new message.
    assert!(matches!(
        o.on_echo(&echo, t0 + SEC),
        EchoMatch::AlreadyConfirmed(_)
    ));
    // An echo carrying someone else's client id is not ours, whatever its text.
    let mut other = seen("hi", None, None);
    other.client_id = Some(ClientMessageId::new());
    o.push(Content::text("hi"), Timestamp(2), t0);
    send(&mut o, t0);
    assert_eq!(o.on_echo(&other, t0), EchoMatch::Unmatched);
}

#[test]
fn ack_then_echo_by_vendor_id() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("hi"), Timestamp(1), t0);
    let out = send(&mut o, t0);
    let acked = o
        .on_acked(out.client_id(), Some(MessageId::from("v9")), None, t0)
        .expect("first confirmation");
    assert_eq!(acked.state, DeliveryState::Sent);
    assert_eq!(acked.id, Some(MessageId::from("v9")));
    assert_eq!(
        o.on_acked(out.client_id(), None, None, t0),
        None,
        "only once"
    );
    // The later echo has a vendor id only.
    let echo = seen("hi", Some("v9"), Some(77));
    let EchoMatch::AlreadyConfirmed(m) = o.on_echo(&echo, t0) else {
        panic!("expected the acked message");
    };
    assert_eq!(m.client_id, Some(out.client_id()));
    assert_eq!(m.server_time, Some(Timestamp(77)));
    // An echo with another vendor id and the same text is not this message.
    assert_eq!(
        o.on_echo(&seen("hi", Some("v10"), None), t0),
        EchoMatch::Unmatched
    );
}

#[test]
fn ack_without_id_then_echo_by_content() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("hello"), Timestamp(1), t0);
    let out = send(&mut o, t0);
    assert!(o.on_acked(out.client_id(), None, None, t0).is_some());
    let EchoMatch::AlreadyConfirmed(m) = o.on_echo(&seen("hello", Some("v1"), None), t0) else {
        panic!("expected a content match");
    };
    assert_eq!(m.id, Some(MessageId::from("v1")));
}

#[test]
fn echo_matched_by_content_within_window() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        echo_window: 30 * SEC,
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    o.push(Content::text("late"), Timestamp(1_000), t0);
    let out = send(&mut o, t0);
    // Another role with the same text is not our echo.
    let mut agent = seen("late", Some("a1"), None);
    agent.sender = Participant::new(Role::Agent);
    assert_eq!(o.on_echo(&agent, t0), EchoMatch::Unmatched);
    // Too late and no server time to vouch for it.
    assert_eq!(
        o.on_echo(&seen("late", Some("v1"), None), t0 + 31 * SEC),
        EchoMatch::Unmatched
    );
    // Late, but the server time says it was written then.
    let EchoMatch::Confirmed(m) = o.on_echo(&seen("late", Some("v1"), Some(3_000)), t0 + 60 * SEC)
    else {
        panic!("server time within the window");
    };
    assert_eq!(m.client_id, Some(out.client_id()));
    // Different text never matches.
    o.push(Content::text("x"), Timestamp(1_000), t0);
    send(&mut o, t0);
    assert_eq!(o.on_echo(&seen("y", None, None), t0), EchoMatch::Unmatched);
}

#[test]
fn identical_texts_sent_close_together_match_one_to_one() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("ok"), Timestamp(1), t0);
    o.push(Content::text("ok"), Timestamp(2), t0);
    let first = send(&mut o, t0);
    let second = send(&mut o, t0 + Duration::from_millis(10));
    let EchoMatch::Confirmed(m1) = o.on_echo(&seen("ok", Some("v1"), None), t0 + SEC) else {
        panic!()
    };
    // The second copy of the first echo does not take the second message.
    assert!(matches!(
        o.on_echo(&seen("ok", Some("v1"), None), t0 + SEC),
        EchoMatch::AlreadyConfirmed(_)
    ));
    let EchoMatch::Confirmed(m2) = o.on_echo(&seen("ok", Some("v2"), None), t0 + SEC) else {
        panic!()
    };
    assert_eq!(m1.client_id, Some(first.client_id()));
    assert_eq!(m2.client_id, Some(second.client_id()));
    // A third echo has nothing left to match.
    assert_eq!(
        o.on_echo(&seen("ok", Some("v3"), None), t0 + SEC),
        EchoMatch::Unmatched
    );
    // Identical echoes without any id still pair one-to-one.
    o.push(Content::text("same"), Timestamp(3), t0);
    o.push(Content::text("same"), Timestamp(4), t0);
    let a = send(&mut o, t0);
    let b = send(&mut o, t0);
    let EchoMatch::Confirmed(x) = o.on_echo(&seen("same", None, None), t0) else {
        panic!()
    };
    let EchoMatch::Confirmed(y) = o.on_echo(&seen("same", None, None), t0) else {
        panic!()
    };
    assert_eq!(x.client_id, Some(a.client_id()));
    assert_eq!(y.client_id, Some(b.client_id()));
}

#[test]
fn failure_after_retries_with_backoff() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        max_attempts: 3,
        retry_backoff: SEC,
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    let m = o.push(Content::text("doomed"), Timestamp(1), t0);
    o.push(Content::text("behind"), Timestamp(2), t0);
    let cid = m.client_id.unwrap();

    let out = send(&mut o, t0);
    assert_eq!(out.attempt, 1);
    let SendErrorOutcome::Retry(at) = o.on_send_error(cid, transport_error(), t0) else {
        panic!()
    };
    assert_eq!(at, t0 + SEC);
    // The message behind waits too: order is kept.
    assert_eq!(o.poll(t0), Poll::WaitUntil(t0 + SEC));
    let out = send(&mut o, t0 + SEC);
    assert_eq!((out.client_id(), out.attempt), (cid, 2));
    let SendErrorOutcome::Retry(at) = o.on_send_error(cid, transport_error(), t0 + SEC) else {
        panic!()
    };
    assert_eq!(at, t0 + 3 * SEC, "back-off grows with the attempt");
    let out = send(&mut o, at);
    assert_eq!(out.attempt, 3);
    let SendErrorOutcome::Failed(f) = o.on_send_error(cid, transport_error(), at) else {
        panic!("attempts used up")
    };
    assert_eq!(f.client_id(), cid);
    assert!(matches!(
        f.message.state,
        DeliveryState::Failed {
            retryable: true,
            ..
        }
    ));
    let Event::MessageFailed {
        engagement,
        client_id,
        error,
    } = f.event()
    else {
        panic!()
    };
    assert_eq!((engagement.as_str(), client_id), ("e-1", cid));
    assert!(error.is_retryable());
    assert!(o.get(cid).is_none());
    // The next message goes now.
    assert_eq!(text(&send(&mut o, at)), "behind");
    assert!(matches!(
        o.on_send_error(cid, transport_error(), at),
        SendErrorOutcome::Unknown
    ));
}

#[test]
fn permanent_error_fails_at_once_and_retry_after_is_honoured() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    let m = o.push(Content::text("bad"), Timestamp(1), t0);
    send(&mut o, t0);
    let rejected = Error::Rejected {
        vendor: Vendor::Genesys,
        code: "4001".into(),
        message: "message too long".into(),
        retry_after: None,
    };
    let SendErrorOutcome::Failed(f) = o.on_send_error(m.client_id.unwrap(), rejected, t0) else {
        panic!()
    };
    let DeliveryState::Failed { reason, retryable } = &f.message.state else {
        panic!()
    };
    assert!(!retryable);
    assert!(reason.contains("message too long"), "{reason}");

    let m = o.push(Content::text("limited"), Timestamp(1), t0);
    send(&mut o, t0);
    let limited = Error::Rejected {
        vendor: Vendor::Genesys,
        code: "429".into(),
        message: "slow down".into(),
        retry_after: Some(7 * SEC),
    };
    let SendErrorOutcome::Retry(at) = o.on_send_error(m.client_id.unwrap(), limited, t0) else {
        panic!()
    };
    assert_eq!(at, t0 + 7 * SEC);
}

#[test]
fn reconcile_confirms_what_the_server_has_and_resends_the_rest() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    // Local wall clock 100 s at t0.
    o.push(Content::text("ok"), Timestamp(100_000), t0);
    o.push(Content::text("ok"), Timestamp(100_000), t0);
    o.push(Content::text("lost"), Timestamp(100_000), t0);
    let a = send(&mut o, t0);
    let b = send(&mut o, t0 + SEC);
    let c = send(&mut o, t0 + 2 * SEC);
    o.on_disconnected();
    assert_eq!(o.poll(t0 + 3 * SEC), Poll::Idle);
    o.on_connected();
    assert_eq!(o.poll(t0 + 10 * SEC), Poll::Reconcile);
    assert!(o.has_uncertain());

    // History: one "ok" from us (the server got only the first), an agent's "lost", an old
    // "ok" of ours from long before, newest first.
    let mut agent_lost = seen("lost", Some("h3"), Some(101_500));
    agent_lost.sender = Participant::new(Role::Agent);
    let history = vec![
        agent_lost,
        seen("ok", Some("h2"), Some(100_400)),
        seen("ok", Some("h0"), Some(10_000)),
    ];
    let report = o.reconcile(&history, t0 + 10 * SEC);
    assert_eq!(report.confirmed.len(), 1);
    assert_eq!(report.confirmed[0].client_id, Some(a.client_id()));
    assert_eq!(report.confirmed[0].id, Some(MessageId::from("h2")));
    assert_eq!(report.requeued, vec![b.client_id(), c.client_id()]);
    assert!(report.failed.is_empty());
    assert!(!o.has_uncertain());

    // Resent in order, once each.
    let t1 = t0 + 10 * SEC;
    assert_eq!(send(&mut o, t1).client_id(), b.client_id());
    assert_eq!(send(&mut o, t1).client_id(), c.client_id());
    assert_eq!(o.poll(t1), Poll::Idle);
    // An echo of the confirmed one's id does not confirm anything new.
    assert!(matches!(
        o.on_echo(&seen("ok", Some("h2"), None), t1),
        EchoMatch::AlreadyConfirmed(_)
    ));
}

#[test]
fn reconcile_by_client_id_and_known_ids_confirm_once() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("a"), Timestamp(0), t0);
    o.push(Content::text("a"), Timestamp(0), t0);
    let first = send(&mut o, t0);
    let second = send(&mut o, t0);
    // The first was echoed before the drop.
    o.on_echo(&seen("a", Some("v1"), Some(0)), t0);
    o.on_disconnected();
    o.on_connected();
    let mut carrying = seen("a (edited by the server)", Some("v2"), None);
    carrying.client_id = Some(second.client_id());
    // v1 is the first message's id: it cannot confirm the second one as well.
    let report = o.reconcile(&[seen("a", Some("v1"), Some(0)), carrying], t0);
    assert_eq!(report.confirmed.len(), 1);
    assert_eq!(report.confirmed[0].client_id, Some(second.client_id()));
    assert_eq!(report.confirmed[0].id, Some(MessageId::from("v2")));
    assert!(report.requeued.is_empty());
    assert_ne!(first.client_id(), second.client_id());
    assert_eq!(o.poll(t0), Poll::Idle);
}

#[test]
fn uncertain_messages_fail_when_attempts_are_used_up() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        max_attempts: 2,
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    let m = o.push(Content::text("flaky"), Timestamp(0), t0);
    for round in 1..=2 {
        let out = send(&mut o, t0);
        assert_eq!(out.attempt, round);
        o.on_disconnected();
        o.on_connected();
        let report = o.reconcile(&[], t0);
        if round == 1 {
            assert_eq!(report.requeued, vec![m.client_id.unwrap()]);
        } else {
            assert_eq!(report.failed.len(), 1);
            let f = &report.failed[0];
            assert_eq!(f.client_id(), m.client_id.unwrap());
            assert!(f.error.is_retryable());
            assert!(matches!(f.event(), Event::MessageFailed { .. }));
        }
    }
    assert_eq!(o.poll(t0), Poll::Idle);
    assert_eq!(o.pending_len(), 0);
}

#[test]
fn late_echo_or_ack_of_a_requeued_message_prevents_the_resend() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("x"), Timestamp(0), t0);
    let out = send(&mut o, t0);
    o.on_disconnected();
    o.on_connected();
    o.reconcile(&[], t0);
    // Before the resend goes, the first copy's echo arrives.
    assert!(matches!(
        o.on_echo(&seen("x", Some("v1"), None), t0 + SEC),
        EchoMatch::Confirmed(_)
    ));
    assert_eq!(o.poll(t0 + SEC), Poll::Idle);

    o.push(Content::text("y"), Timestamp(0), t0);
    let out2 = send(&mut o, t0);
    o.on_disconnected();
    o.on_connected();
    o.reconcile(&[], t0);
    assert!(o.on_acked(out2.client_id(), None, None, t0).is_some());
    assert_eq!(o.poll(t0), Poll::Idle);
    assert_ne!(out.client_id(), out2.client_id());
}

#[test]
fn pacing_queues_and_never_drops() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        rate: Some(Rate::per_second(2)),
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    for i in 0..5 {
        o.push(Content::text(format!("m{i}")), Timestamp(0), t0);
    }
    let ms = Duration::from_millis;
    assert_eq!(text(&send(&mut o, t0)), "m0");
    assert_eq!(text(&send(&mut o, t0)), "m1");
    assert_eq!(o.poll(t0), Poll::WaitUntil(t0 + ms(500)));
    assert_eq!(o.poll(t0 + ms(499)), Poll::WaitUntil(t0 + ms(500)));
    assert_eq!(text(&send(&mut o, t0 + ms(500))), "m2");
    assert_eq!(o.poll(t0 + ms(500)), Poll::WaitUntil(t0 + ms(1000)));
    assert_eq!(text(&send(&mut o, t0 + ms(1000))), "m3");
    assert_eq!(text(&send(&mut o, t0 + ms(1500))), "m4");
    assert_eq!(o.poll(t0 + ms(1500)), Poll::Idle);
}

#[test]
fn pacer_token_bucket() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut p = Pacer::new(Rate::per_second(2));
    assert!(p.is_ready(t0));
    assert_eq!(p.try_acquire(t0), Ok(()));
    assert_eq!(p.try_acquire(t0), Ok(()));
    assert_eq!(p.try_acquire(t0), Err(t0 + ms(500)));
    assert_eq!(p.ready_at(t0 + ms(200)), t0 + ms(500));
    assert_eq!(p.try_acquire(t0 + ms(500)), Ok(()));
    // After a quiet spell the burst is back, but no more than the burst.
    let later = t0 + ms(10_000);
    assert_eq!(p.try_acquire(later), Ok(()));
    assert_eq!(p.try_acquire(later), Ok(()));
    assert_eq!(p.try_acquire(later), Err(later + ms(500)));
    // No burst: evenly spaced.
    let mut even = Pacer::new(Rate::new(1, Duration::from_secs(2)).with_burst(1));
    assert_eq!(even.try_acquire(t0), Ok(()));
    assert_eq!(even.try_acquire(t0 + ms(1999)), Err(t0 + ms(2000)));
    assert_eq!(even.try_acquire(t0 + ms(2000)), Ok(()));
    // Over any 1 s span, a 2/s pacer never lets more than 3 through (burst 2 + 1 refill).
    let mut p = Pacer::new(Rate::per_second(2));
    let mut sent = Vec::new();
    for step in 0..100u64 {
        let now = t0 + ms(step * 50);
        while p.try_acquire(now).is_ok() {
            sent.push(now);
        }
    }
    for (i, t) in sent.iter().enumerate() {
        let in_window = sent[i..].iter().filter(|u| **u < *t + SEC).count();
        assert!(in_window <= 3, "{in_window} in one second");
    }
    assert!(sent.len() >= 10);
}

#[test]
fn overdue_ack_makes_the_message_uncertain() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        ack_timeout: Some(10 * SEC),
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    o.push(Content::text("a"), Timestamp(0), t0);
    let a = send(&mut o, t0);
    assert_eq!(o.poll(t0 + SEC), Poll::WaitUntil(t0 + 10 * SEC));
    assert_eq!(o.poll(t0 + 10 * SEC), Poll::Reconcile);
    // The server shows it: confirmed, not resent.
    let report = o.reconcile(&[seen("a", Some("v1"), Some(100))], t0 + 10 * SEC);
    assert_eq!(report.confirmed[0].client_id, Some(a.client_id()));
    assert_eq!(o.poll(t0 + 10 * SEC), Poll::Idle);
    // Acked in time: no deadline left.
    o.push(Content::text("b"), Timestamp(0), t0);
    let b = send(&mut o, t0 + 11 * SEC);
    o.on_acked(b.client_id(), None, None, t0 + 12 * SEC);
    assert_eq!(o.poll(t0 + 30 * SEC), Poll::Idle);
}

#[test]
fn max_in_flight_waits_for_confirmation() {
    let t0 = Instant::now();
    let cfg = OutboxConfig {
        max_in_flight: Some(1),
        ..OutboxConfig::default()
    };
    let mut o = connected(cfg);
    o.push(Content::text("a"), Timestamp(0), t0);
    o.push(Content::text("b"), Timestamp(0), t0);
    let a = send(&mut o, t0);
    assert_eq!(o.poll(t0), Poll::Idle);
    o.on_acked(a.client_id(), None, None, t0);
    assert_eq!(text(&send(&mut o, t0)), "b");
}

#[test]
fn confirmed_messages_are_forgotten_after_the_window() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("a"), Timestamp(0), t0);
    let a = send(&mut o, t0);
    o.on_acked(a.client_id(), Some(MessageId::from("v1")), None, t0);
    assert!(o.get(a.client_id()).is_some());
    assert_eq!(o.pending_len(), 0);
    o.poll(t0 + 31 * SEC);
    assert!(o.get(a.client_id()).is_none());
    assert_eq!(
        o.on_echo(&seen("a", Some("v1"), None), t0 + 31 * SEC),
        EchoMatch::Unmatched
    );
}

#[test]
fn close_fails_everything_unconfirmed() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    o.push(Content::text("a"), Timestamp(0), t0);
    o.push(Content::text("b"), Timestamp(0), t0);
    o.push(Content::text("c"), Timestamp(0), t0);
    let a = send(&mut o, t0);
    o.on_acked(a.client_id(), None, None, t0);
    send(&mut o, t0);
    let failures = o.close(Error::closed(Vendor::Genesys, "engagement"));
    let texts: Vec<_> = failures
        .iter()
        .map(|f| f.message.content.as_text().unwrap())
        .collect();
    assert_eq!(texts, ["b", "c"]);
    assert!(failures.iter().all(|f| matches!(
        f.message.state,
        DeliveryState::Failed {
            retryable: false,
            ..
        }
    )));
    assert_eq!(o.poll(t0), Poll::Idle);
}

#[test]
fn unknown_ids_are_reported() {
    let t0 = Instant::now();
    let mut o = connected(OutboxConfig::default());
    let stranger = ClientMessageId::new();
    assert!(!o.on_written(stranger, t0));
    assert_eq!(o.on_acked(stranger, None, None, t0), None);
    assert!(matches!(
        o.on_send_error(stranger, transport_error(), t0),
        SendErrorOutcome::Unknown
    ));
    assert_eq!(o.reconcile(&[], t0).requeued.len(), 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Push,
        Poll,
        Drop,
        Reconnect,
        EchoOldest,
        FailOldest,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Push),
            4 => Just(Step::Poll),
            1 => Just(Step::Drop),
            1 => Just(Step::Reconnect),
            2 => Just(Step::EchoOldest),
            1 => Just(Step::FailOldest),
        ]
    }

    proptest! {
        /// Whatever happens, every message ends up confirmed or failed once the link is
        /// stable, none is confirmed twice, and each first write of a message happens in
        /// push order.
        #[test]
        fn every_message_is_confirmed_or_failed_once(steps in prop::collection::vec(step(), 1..60)) {
            let t0 = Instant::now();
            let mut o = outbox(OutboxConfig { retry_backoff: Duration::ZERO, ..OutboxConfig::default() });
            let mut pushed = Vec::new();
            let mut first_writes = Vec::new();
            let mut in_flight: Vec<ClientMessageId> = Vec::new();
            let mut confirmed = Vec::new();
            let mut failed = Vec::new();
            let mut n = 0u32;
            for s in steps {
                match s {
                    Step::Push => {
                        n += 1;
                        let m = o.push(Content::text(format!("m{n}")), Timestamp(0), t0);
                        pushed.push(m.client_id.unwrap());
                    }
                    Step::Poll => match o.poll(t0) {
                        Poll::Send(out) => {
                            if out.attempt == 1 { first_writes.push(out.client_id()); }
                            in_flight.push(out.client_id());
                        }
                        Poll::Reconcile => {
                            let r = o.reconcile(&[], t0);
                            failed.extend(r.failed.iter().map(Failure::client_id));
                            in_flight.clear();
                        }
                        _ => {}
                    },
                    Step::Drop => o.on_disconnected(),
                    Step::Reconnect => o.on_connected(),
                    Step::EchoOldest => {
                        if !in_flight.is_empty() {
                            let cid = in_flight.remove(0);
                            let text = o.get(cid).map(|m| m.content.clone());
                            if let Some(Content::Text(t)) = text {
                                let mut echo = seen(&t, None, None);
                                echo.client_id = Some(cid);
                                if let EchoMatch::Confirmed(m) = o.on_echo(&echo, t0) {
                                    confirmed.push(m.client_id.unwrap());
                                }
                            }
                        }
                    }
                    Step::FailOldest => {
                        if !in_flight.is_empty() {
                            let cid = in_flight.remove(0);
                            if let SendErrorOutcome::Failed(f) = o.on_send_error(cid, transport_error(), t0) {
                                failed.push(f.client_id());
                            }
                        }
                    }
                }
            }
            // Stable link: the writes still in flight are echoed, then everything is
            // drained, echoing each write.
            o.on_connected();
            for cid in in_flight {
                let text = o.get(cid).map(|m| m.content.clone());
                if let Some(Content::Text(t)) = text {
                    let mut echo = seen(&t, None, None);
                    echo.client_id = Some(cid);
                    if let EchoMatch::Confirmed(m) = o.on_echo(&echo, t0) {
                        confirmed.push(m.client_id.unwrap());
                    }
                }
            }
            for _ in 0..1000 {
                match o.poll(t0) {
                    Poll::Send(out) => {
                        if out.attempt == 1 { first_writes.push(out.client_id()); }
                        let Message { content: Content::Text(t), .. } = &out.message else { unreachable!() };
                        let mut echo = seen(t, None, None);
                        echo.client_id = Some(out.client_id());
                        match o.on_echo(&echo, t0) {
                            EchoMatch::Confirmed(m) => confirmed.push(m.client_id.unwrap()),
                            other => prop_assert!(false, "unexpected {:?}", other),
                        }
                    }
                    Poll::Reconcile => {
                        let r = o.reconcile(&[], t0);
                        failed.extend(r.failed.iter().map(Failure::client_id));
                    }
                    Poll::Idle => break,
                    Poll::WaitUntil(t) => prop_assert!(false, "unexpected wait {:?}", t - t0),
                }
            }
            prop_assert_eq!(o.pending_len(), 0);
            let mut done: Vec<_> = confirmed.iter().chain(&failed).copied().collect();
            done.sort();
            let before = done.len();
            done.dedup();
            prop_assert_eq!(before, done.len(), "a message confirmed or failed twice");
            let mut all = pushed.clone();
            all.sort();
            prop_assert_eq!(done, all);
            let order: Vec<_> = pushed.iter().filter(|c| first_writes.contains(c)).copied().collect();
            prop_assert_eq!(first_writes, order);
        }
    }
}

use super::*;

const S: Duration = Duration::from_secs(1);

fn timers() -> Timers {
    Timers {
        idle: 300 * S,
        grace: 60 * S,
        reconnection: 120 * S,
    }
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Emit(e) if !matches!(e, Event::Vendor { .. }) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn vendor_names(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Emit(Event::Vendor { name, .. }) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn token_reminder_exactly_180_s_before_exp_then_expired() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    let wall = 1_700_000_000_000i64;
    e.set_token(t0, wall, 1_700_000_000 + 250);
    assert_eq!(e.next_timeout(), Some(t0 + 70 * S));
    assert!(events(&e.on_timeout(t0 + 70 * S - Duration::from_millis(1))).is_empty());
    let out = e.on_timeout(t0 + 70 * S);
    assert!(matches!(events(&out)[..], [Event::TokenExpiring { in_ }] if in_ == 180 * S));
    assert_eq!(vendor_names(&out), ["TOKEN_EXPIRY_REMINDER"]);
    assert_eq!(e.next_timeout(), Some(t0 + 250 * S));
    let out = e.on_timeout(t0 + 250 * S);
    assert!(matches!(events(&out)[..], [Event::TokenExpired]));
}

#[test]
fn a_token_with_less_than_180_s_left_reminds_at_once() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.set_token(t0, 0, 100);
    assert_eq!(e.next_timeout(), Some(t0));
    let out = e.on_timeout(t0);
    assert!(matches!(events(&out)[..], [Event::TokenExpiring { in_ }] if in_ == 100 * S));
}

#[test]
fn idle_then_grace_then_shutdown_and_activity_resets() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.activity(t0 + 100 * S);
    assert_eq!(e.next_timeout(), Some(t0 + 400 * S));
    let out = e.on_timeout(t0 + 400 * S);
    assert!(
        matches!(events(&out)[..], [Event::IdleWarning { engagement: None, grace }] if grace == 60 * S)
    );
    assert_eq!(e.timer(), ActivityTimer::Grace(t0 + 460 * S));
    // keep_alive during grace: back to idle.
    e.activity(t0 + 430 * S);
    assert_eq!(e.timer(), ActivityTimer::Idle(t0 + 730 * S));
    e.on_timeout(t0 + 730 * S);
    let out = e.on_timeout(t0 + 790 * S);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Shutdown("USER_INACTIVE")))
    );
    assert!(e.ended());
    assert_eq!(e.next_timeout(), None);
}

#[test]
fn network_failure_retries_with_fibonacci_backoff_until_the_reconnection_timeout() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0).with_seed(7);
    e.start_stream();
    assert!(e.poll_due(t0));
    let out = e.poll_ok(t0);
    assert!(out.iter().any(|o| matches!(o, Output::StreamUp)));
    let out = e.poll_failed(t0 + S, PollFailure::Network);
    assert!(out.iter().any(|o| matches!(o, Output::StreamDown)));
    let Stream::Retry { attempt: 1, at } = e.stream() else {
        panic!("{:?}", e.stream())
    };
    let d = at - (t0 + S);
    assert!(d >= S && d < 2 * S, "{d:?}");
    assert_eq!(e.timer(), ActivityTimer::Reconnection(t0 + 121 * S));
    // Activity during reconnection does nothing.
    e.activity(t0 + 2 * S);
    assert_eq!(e.timer(), ActivityTimer::Reconnection(t0 + 121 * S));
    let mut now = at;
    let mut delays = Vec::new();
    for _ in 0..4 {
        assert!(e.poll_due(now));
        assert_eq!(
            vendor_names(&e.begin_poll(now)),
            ["EVENT_STREAM_CONNECTING"]
        );
        // While the attempt is under way nothing else is due (no timer in the past).
        assert!(!e.poll_due(now));
        assert!(e.next_timeout().is_none_or(|t| t > now));
        e.poll_failed(now, PollFailure::ServerError);
        let Stream::Retry { at, .. } = e.stream() else {
            panic!()
        };
        delays.push((at - now).as_secs());
        now = at;
    }
    assert_eq!(delays, [1, 2, 3, 5]);
    let out = e.on_timeout(t0 + 121 * S);
    assert_eq!(e.stream(), Stream::Failed);
    assert!(events(&out).iter().any(|e| matches!(e, Event::Connection(ConnectionState::Disconnected { reason }) if &**reason == "RECONNECTION_TIMEOUT")));
    assert!(!e.poll_due(t0 + 1000 * S));
    // A manual retry, then success: connected with a fresh idle timer.
    e.retry_connection(t0 + 200 * S).unwrap();
    assert!(e.poll_due(t0 + 200 * S));
    e.poll_ok(t0 + 200 * S);
    assert_eq!(e.stream(), Stream::Connected);
    assert_eq!(e.timer(), ActivityTimer::Idle(t0 + 500 * S));
    assert!(e.retry_connection(t0).is_err());
}

#[test]
fn a_probe_answering_during_an_attempt_connects_without_waiting_for_the_held_poll() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0).with_seed(3);
    e.start_stream();
    e.poll_ok(t0);
    // Outside an attempt a probe's answer changes nothing.
    assert!(!e.reconnecting());
    assert!(e.probe_ok(t0).is_empty());
    assert_eq!(e.stream(), Stream::Connected);
    e.poll_failed(t0 + S, PollFailure::Network);
    assert!(!e.reconnecting());
    assert!(
        e.probe_ok(t0 + S).is_empty(),
        "no attempt yet: still waiting"
    );
    let Stream::Retry { at, .. } = e.stream() else {
        panic!("{:?}", e.stream())
    };
    e.begin_poll(at);
    assert!(e.reconnecting());
    let out = e.probe_ok(at);
    assert_eq!(vendor_names(&out), ["EVENT_STREAM_CONNECTED"]);
    assert!(matches!(
        events(&out)[..],
        [Event::Connection(ConnectionState::Connected)]
    ));
    assert!(out.iter().any(|o| matches!(o, Output::StreamUp)));
    assert_eq!(e.stream(), Stream::Connected);
    assert_eq!(e.timer(), ActivityTimer::Idle(at + 300 * S));
    // The held poll answering later is an ordinary poll: no second Connected.
    assert!(e.poll_ok(at + 25 * S).is_empty());
    // The back-off starts over after the reconnection.
    e.poll_failed(at + 30 * S, PollFailure::Network);
    assert!(matches!(e.stream(), Stream::Retry { attempt: 1, .. }));
}

#[test]
fn the_first_poll_after_a_new_token_or_a_manual_retry_is_a_reconnection() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.set_token(t0, 0, i64::MAX / 2000);
    e.start_stream();
    // A new stream's first poll is answered at once: no probe.
    assert!(!e.reconnecting());
    e.poll_ok(t0);
    e.poll_failed(t0, PollFailure::Unauthorized);
    assert!(!e.reconnecting(), "paused: no poll");
    e.set_token(t0 + S, 0, i64::MAX / 2000);
    assert_eq!(e.stream(), Stream::Connecting);
    assert!(e.reconnecting());
    let out = e.probe_ok(t0 + S);
    assert!(matches!(
        events(&out)[..],
        [Event::Connection(ConnectionState::Connected)]
    ));
    assert!(!e.reconnecting());
    // Failed, then retry_connection: the one poll is a reconnection too.
    e.poll_failed(t0 + 2 * S, PollFailure::Network);
    e.on_timeout(t0 + 200 * S);
    assert_eq!(e.stream(), Stream::Failed);
    assert!(!e.reconnecting());
    e.retry_connection(t0 + 201 * S).unwrap();
    assert!(e.reconnecting());
    e.poll_ok(t0 + 201 * S);
    assert!(!e.reconnecting());
    assert!(e.probe_ok(t0 + 202 * S).is_empty());
    // Stopping and starting the stream again is a fresh start.
    e.poll_failed(t0 + 203 * S, PollFailure::Unauthorized);
    e.stop_stream(t0 + 204 * S);
    e.set_token(t0 + 205 * S, 0, i64::MAX / 2000);
    e.start_stream();
    assert!(!e.reconnecting());
}

#[test]
fn unauthorized_pauses_until_a_new_token() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.set_token(t0, 0, 3600);
    e.start_stream();
    e.poll_ok(t0);
    let out = e.poll_failed(t0, PollFailure::Unauthorized);
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::TokenExpired))
    );
    assert_eq!(e.stream(), Stream::Paused(Pause::Unauthorized));
    assert!(!e.poll_due(t0 + 10 * S));
    e.set_token(t0 + 10 * S, 10_000, 7200);
    assert!(e.poll_due(t0 + 10 * S));
    let out = e.poll_ok(t0 + 10 * S);
    assert!(out.iter().any(|o| matches!(o, Output::StreamUp)));
}

#[test]
fn session_not_found_ends_everything() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.start_stream();
    let out = e.poll_failed(t0, PollFailure::SessionNotFound);
    assert!(out.iter().any(|o| matches!(o, Output::SessionGone)));
    assert_eq!(
        vendor_names(&out),
        ["EVENT_STREAM_CLOSED", "EVENT_STREAM_FAILED"]
    );
    assert!(e.ended());
    assert_eq!(e.next_timeout(), None);
}

#[test]
fn fibonacci_sequence() {
    let v: Vec<u64> = (1..=7).map(|n| fibonacci(n).as_secs()).collect();
    assert_eq!(v, [1, 1, 2, 3, 5, 8, 13]);
}

#[test]
fn token_expiry_pauses_a_running_stream_until_set_token() {
    let t0 = Instant::now();
    let mut e = Engine::new(timers(), t0);
    e.set_token(t0, 0, 200);
    e.start_stream();
    e.poll_ok(t0);
    e.on_timeout(t0 + 20 * S);
    assert_eq!(
        e.stream(),
        Stream::Connected,
        "the reminder does not stop polling"
    );
    let out = e.on_timeout(t0 + 200 * S);
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::TokenExpired))
    );
    assert!(out.iter().any(|o| matches!(o, Output::StreamDown)));
    assert_eq!(e.stream(), Stream::Paused(Pause::Unauthorized));
    assert!(!e.poll_due(t0 + 300 * S));
    // The server's 401 afterwards adds no second TokenExpired.
    let out = e.poll_failed(t0 + 201 * S, PollFailure::Unauthorized);
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::TokenExpired))
    );
    e.set_token(t0 + 250 * S, 250_000, 4000);
    assert!(e.poll_due(t0 + 250 * S));
}

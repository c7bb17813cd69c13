//! The long-poll loop, under simulated time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cc_core::{Error, Result, Vendor};
use cc_transport::{BackoffPolicy, LongPoll, LongPollConfig, PollEvent, PollEvents};
use tokio::time::Instant;

type Script = Arc<Mutex<VecDeque<Result<Vec<u32>>>>>;
type Fetch = std::pin::Pin<Box<dyn Future<Output = Result<Vec<u32>>> + Send>>;

/// A fetch that plays `script`, then waits forever (a long poll with nothing to say).
fn scripted(script: Vec<Result<Vec<u32>>>) -> (Script, impl FnMut() -> Fetch) {
    let script: Script = Arc::new(Mutex::new(script.into()));
    let s = script.clone();
    let fetch = move || {
        let next = s.lock().unwrap().pop_front();
        Box::pin(async move {
            match next {
                Some(r) => r,
                None => std::future::pending().await,
            }
        }) as Fetch
    };
    (script, fetch)
}

fn server_error() -> Error {
    Error::Rejected {
        vendor: Vendor::Avaya,
        code: "500".to_owned(),
        message: "boom".to_owned(),
        retry_after: None,
    }
}

async fn next<T: std::fmt::Debug>(events: &mut PollEvents<T>) -> PollEvent<T> {
    tokio::time::timeout(Duration::from_secs(3600), events.recv())
        .await
        .expect("no event")
        .expect("ended")
}

#[tokio::test(start_paused = true)]
async fn delivers_in_order_and_backs_off_on_errors() {
    let (_script, fetch) = scripted(vec![
        Ok(vec![1, 2]),
        Ok(vec![]),
        Err(server_error()),
        Err(server_error()),
        Ok(vec![3]),
    ]);
    let policy = BackoffPolicy::fixed(Duration::from_secs(2));
    let (handle, mut events) = LongPoll::spawn(LongPollConfig::new(Vendor::Avaya, policy), fetch);
    let t0 = Instant::now();
    assert!(matches!(next(&mut events).await, PollEvent::Connected));
    assert!(matches!(next(&mut events).await, PollEvent::Item(1)));
    assert!(matches!(next(&mut events).await, PollEvent::Item(2)));
    for attempt in 1..=2 {
        match next(&mut events).await {
            PollEvent::Failed {
                error,
                attempt: a,
                retry_in,
            } => {
                assert_eq!(a, attempt);
                assert_eq!(retry_in, Duration::from_secs(2));
                assert_eq!(error.vendor_code(), Some("500"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(next(&mut events).await, PollEvent::Connected));
    assert!(matches!(next(&mut events).await, PollEvent::Item(3)));
    assert_eq!(t0.elapsed(), Duration::from_secs(4));
    handle.stop();
    assert!(matches!(next(&mut events).await, PollEvent::Stopped));
    assert!(events.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn honors_retry_after() {
    let busy = Error::Rejected {
        vendor: Vendor::Genesys,
        code: "429".to_owned(),
        message: "slow down".to_owned(),
        retry_after: Some(Duration::from_secs(17)),
    };
    let (_script, fetch) = scripted(vec![Err(busy), Ok(vec![9])]);
    let policy = BackoffPolicy::genesys_rest();
    let (_handle, mut events) =
        LongPoll::spawn(LongPollConfig::new(Vendor::Genesys, policy), fetch);
    let t0 = Instant::now();
    assert!(matches!(
        next(&mut events).await,
        PollEvent::Failed { retry_in, .. } if retry_in == Duration::from_secs(17)
    ));
    assert!(matches!(next(&mut events).await, PollEvent::Connected));
    assert!(matches!(next(&mut events).await, PollEvent::Item(9)));
    assert_eq!(t0.elapsed(), Duration::from_secs(17));
}

#[tokio::test(start_paused = true)]
async fn terminal_errors_and_exhausted_policies_give_up() {
    let auth = Error::Auth {
        vendor: Vendor::Avaya,
        code: Some("401".to_owned()),
        message: "expired".to_owned(),
    };
    let (_s, fetch) = scripted(vec![Err(auth)]);
    let (_h, mut events) = LongPoll::spawn(
        LongPollConfig::new(Vendor::Avaya, BackoffPolicy::default()),
        fetch,
    );
    assert!(matches!(
        next(&mut events).await,
        PollEvent::GaveUp { error } if matches!(*error, Error::Auth { .. })
    ));
    assert!(events.recv().await.is_none());

    let (_s, fetch) = scripted((0..5).map(|_| Err(server_error())).collect());
    let policy = BackoffPolicy::tetherfi_poll().with_max_attempts(Some(2));
    let (_h, mut events) = LongPoll::spawn(LongPollConfig::new(Vendor::Tetherfi, policy), fetch);
    let t0 = Instant::now();
    assert!(matches!(
        next(&mut events).await,
        PollEvent::Failed { attempt: 1, .. }
    ));
    assert!(matches!(
        next(&mut events).await,
        PollEvent::Failed { attempt: 2, .. }
    ));
    assert!(matches!(next(&mut events).await, PollEvent::GaveUp { .. }));
    assert_eq!(t0.elapsed(), Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn retry_now_cuts_the_wait_short() {
    let (_s, fetch) = scripted(vec![Err(server_error()), Ok(vec![1])]);
    let policy = BackoffPolicy::fixed(Duration::from_secs(600));
    let (handle, mut events) = LongPoll::spawn(LongPollConfig::new(Vendor::Avaya, policy), fetch);
    let t0 = Instant::now();
    assert!(matches!(next(&mut events).await, PollEvent::Failed { .. }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.retry_now();
    assert!(matches!(next(&mut events).await, PollEvent::Connected));
    assert!(matches!(next(&mut events).await, PollEvent::Item(1)));
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Stop while a fetch is pending.
    handle.stop();
    assert!(matches!(next(&mut events).await, PollEvent::Stopped));
}

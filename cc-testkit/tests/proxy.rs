//! The fault proxy against a local echo server.

use std::net::SocketAddr;
use std::time::Duration;

use cc_testkit::{Flow, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Generous bound for things that should happen at once.
const SOON: Duration = Duration::from_secs(5);

/// An echo server on 127.0.0.1:0; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn setup() -> Proxy {
    Proxy::start(echo_server().await).await.unwrap()
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    timeout(SOON, s.read_exact(&mut got))
        .await
        .expect("echo within the bound")
        .unwrap();
    assert_eq!(got, msg);
}

/// Reads until the connection closes (EOF or reset); returns the bytes read before.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match timeout(SOON, s.read(&mut buf)).await {
            Err(_) => panic!("the connection stayed open; read so far: {all:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + SOON;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {SOON:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn forwards_both_ways_and_counts_connections() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"hello").await;
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut b, b"world").await;
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.open(), 2);
    assert_eq!(proxy.cuts(), 0);
    // A client that closes is forgotten.
    drop(a);
    eventually(|| proxy.open() == 1, "one connection open").await;
}

#[tokio::test]
async fn cut_all_closes_open_connections_and_new_ones_work() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"before").await;
    proxy.cut_all();
    assert!(read_until_closed(&mut a).await.is_empty());
    assert_eq!(proxy.cuts(), 1);
    eventually(|| proxy.open() == 0, "no connection open").await;
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut b, b"after").await;
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn down_cuts_and_refuses_until_up() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"x").await;
    proxy.set_down(true);
    assert!(proxy.is_down());
    assert!(read_until_closed(&mut a).await.is_empty());

    // While down, a new connection is reset before any byte passes.
    for _ in 0..2 {
        if let Ok(mut c) = TcpStream::connect(proxy.addr()).await {
            let _ = c.write_all(b"anyone?").await;
            assert!(read_until_closed(&mut c).await.is_empty());
        }
    }
    eventually(|| proxy.refused() == 2, "two refused").await;
    assert_eq!(proxy.accepted(), 1);

    proxy.set_down(false);
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut b, b"back").await;
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn cut_after_n_bytes_counts_both_directions() {
    let proxy = setup().await;
    proxy.cut_after(Some(10));
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    // 6 bytes up pass; of the 6 echoed back only 4 fit in the budget, then the cut.
    a.write_all(b"abcdef").await.unwrap();
    assert_eq!(read_until_closed(&mut a).await, b"abcd");
    assert_eq!(proxy.cuts(), 1);

    // Each new connection gets the same budget.
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    b.write_all(b"0123456789ab").await.unwrap();
    assert!(
        read_until_closed(&mut b).await.is_empty(),
        "the budget went upstream"
    );

    // Lifted: no cut.
    proxy.cut_after(None);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, &[7u8; 100]).await;
}

#[tokio::test]
async fn cut_after_applies_to_open_connections_from_now() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, &[1u8; 50]).await;
    proxy.cut_after(Some(4));
    a.write_all(b"ab").await.unwrap();
    assert_eq!(read_until_closed(&mut a).await, b"ab");
}

#[tokio::test]
async fn stall_holds_bytes_without_closing() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"one").await;
    proxy.stall(true);
    a.write_all(b"two").await.unwrap();
    let mut buf = [0u8; 3];
    // Nothing comes back while stalled (the proxy forwards nothing), and the socket stays open.
    assert!(
        timeout(Duration::from_millis(300), a.read(&mut buf))
            .await
            .is_err(),
        "bytes passed a stalled proxy"
    );
    assert_eq!(proxy.open(), 1);
    proxy.stall(false);
    timeout(SOON, a.read_exact(&mut buf))
        .await
        .expect("held bytes delivered on resume")
        .unwrap();
    assert_eq!(&buf, b"two");
    round_trip(&mut a, b"three").await;
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let proxy = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"warm").await;
    proxy.latency(Flow::ToServer, Duration::from_millis(150));
    proxy.latency(Flow::ToClient, Duration::from_millis(100));
    let t0 = Instant::now();
    round_trip(&mut a, b"slow").await;
    let rtt = t0.elapsed();
    // The proxy holds each chunk for its latency, so the lower bound is exact; the upper
    // bound is only a sanity check.
    assert!(rtt >= Duration::from_millis(250), "round trip {rtt:?}");
    assert!(rtt < SOON, "round trip {rtt:?}");

    // Latency delays but does not serialize: ten chunks in a row take about one latency.
    proxy.latency(Flow::ToClient, Duration::ZERO);
    let t0 = Instant::now();
    for i in 0..10u8 {
        a.write_all(&[i]).await.unwrap();
    }
    let mut got = [0u8; 10];
    timeout(SOON, a.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150), "took {took:?}");
    assert!(
        took < Duration::from_millis(1400),
        "chunks were delayed one after another: {took:?}"
    );

    proxy.latency(Flow::ToServer, Duration::ZERO);
    round_trip(&mut a, b"fast").await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_everything() {
    let proxy = setup().await;
    let addr = proxy.addr();
    let mut a = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut a, b"x").await;
    drop(proxy);
    assert!(read_until_closed(&mut a).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_target_is_a_reset() {
    // Bind and drop a listener: its port now refuses.
    let dead = {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(dead).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(read_until_closed(&mut a).await.is_empty());
}

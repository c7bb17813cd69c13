//! Measures the resident memory of idle WebSocket connections held by [`WsClient`].
//!
//! Run with `cargo run -p cc-transport --release --example ws_idle_memory [connections]`.
//! The server runs in a child process (this program with the argument `server`), so only
//! the client side is measured. Linux only (reads `/proc/self/status`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use cc_core::Vendor;
use cc_transport::{UrlProvider, WsClient, WsConfig, WsEvent, WsEvents, WsHandle};
use futures_util::StreamExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => return server(),
        Some("client") => {
            return client(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap());
        }
        _ => {}
    }
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!("ws://{}/", line.trim());
    // Each size in a fresh process, so one run's freed memory does not hide the next one's.
    for read_buffer_size in [1024, 2 * 1024, 8 * 1024, 128 * 1024] {
        let status = Command::new(&exe)
            .args([
                "client",
                &url,
                &read_buffer_size.to_string(),
                &count.to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

fn client(url: &str, read_buffer_size: usize, count: usize) {
    let url = url::Url::parse(url).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm up the runtime and the allocator.
        let warm = open(&url, read_buffer_size, 20).await;
        let before = rss_kib();
        let held = open(&url, read_buffer_size, count).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = rss_kib();
        let added = after.saturating_sub(before);
        println!(
            "read_buffer_size {read_buffer_size:>6} B: {count} idle connections add {added} KiB RSS, {:.1} KiB each",
            added as f64 / count as f64
        );
        for (h, _) in held.into_iter().chain(warm) {
            h.close().await;
        }
    });
}

async fn open(url: &url::Url, read_buffer_size: usize, n: usize) -> Vec<(WsHandle, WsEvents)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = WsConfig::new(Vendor::Genesys, UrlProvider::fixed(url.clone()));
        c.read_buffer_size = read_buffer_size;
        c.event_capacity = 16;
        c.queue_capacity = 16;
        let (handle, mut events) = WsClient::connect(c);
        loop {
            match events.recv().await {
                Some(WsEvent::Connected { connection, .. }) => {
                    handle.ready(connection);
                    break;
                }
                Some(WsEvent::GaveUp { reason, .. }) => panic!("{reason}"),
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
        out.push((handle, events));
    }
    out
}

fn rss_kib() -> u64 {
    let mut s = String::new();
    std::fs::File::open("/proc/self/status")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Accepts WebSockets on 127.0.0.1 and holds them until stdin closes.
fn server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        std::thread::spawn(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
}

//! What the SDK adds to a round trip on loopback.
//!
//! Baseline: a raw WebSocket client sends a text frame to an echo server (on the simulator's
//! thread, like the simulators) and waits for the echo. SDK: `Engagement::send` until the
//! vendor's acknowledgement (`MessageSent`) against each adapter's simulator, sends spaced
//! by the vendor's rate limit so no message waits in the adapter's pacing queue. Both are
//! medians; the SDK's figure minus the baseline is the SDK's (and the simulator's) share.

use std::time::{Duration, Instant};

use cc_bench::{
    BoxError, SimThread, chat_request, full_run, lane_name, lanes, median, report, send_gap,
    wait_for,
};
use cc_sdk::{Content, Event, Role};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() -> Result<(), BoxError> {
    let full = full_run();
    let (raw_samples, sdk_samples) = if full { (2000, 40) } else { (20, 3) };
    let lanes = lanes(true)?;
    // The echo server lives on a simulator thread, like the simulators themselves.
    let host = SimThread::start(lanes[0].0, lanes[0].1)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let raw = rt.block_on(raw_ws(&host, raw_samples))?;
    drop(host);
    eprintln!("raw WebSocket echo on loopback: median {raw:.1} µs over {raw_samples} round trips");
    report("raw_ws_round_trip", "loopback", raw, "us");
    let mut failed = Vec::new();
    for (entry, transport) in lanes {
        let lane = lane_name(&entry, transport);
        let run = || -> Result<f64, BoxError> {
            let sim = SimThread::start(entry, transport)?;
            rt.block_on(sdk_round_trip(&sim, sdk_samples))
        };
        let sdk = match run() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{lane}: FAILED: {e}");
                failed.push(lane);
                continue;
            }
        };
        eprintln!(
            "{lane}: send -> MessageSent median {sdk:.1} µs over {sdk_samples} messages, \
             {:.1} µs over the raw WebSocket",
            sdk - raw
        );
        report("sdk_send_round_trip", &lane, sdk, "us");
        report("sdk_added_latency", &lane, sdk - raw, "us");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed lanes: {}", failed.join(", ")).into())
    }
}

async fn raw_ws(host: &SimThread, samples: usize) -> Result<f64, BoxError> {
    let listener = host
        .handle
        .spawn(async { tokio::net::TcpListener::bind("127.0.0.1:0").await })
        .await??;
    let addr = listener.local_addr()?;
    host.handle.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    // About the size of a vendor's message frame.
    let payload = format!(
        r#"{{"type":"message","body":{{"text":"{}","id":"0123456789abcdef"}}}}"#,
        "x".repeat(160)
    );
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let t0 = Instant::now();
        ws.send(Message::text(payload.clone())).await?;
        loop {
            match ws.next().await {
                Some(Ok(m)) if m.is_text() => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("the echo server closed".into()),
            }
        }
        // The first tenth warms up.
        if i >= samples / 10 {
            rtts.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(median(&rtts))
}

async fn sdk_round_trip(sim: &SimThread, samples: usize) -> Result<f64, BoxError> {
    let step = Duration::from_secs(20);
    let session = cc_sdk::connect(&sim.config).await?;
    let mut events = session.events();
    let chat = session.start_chat(chat_request("Latency Customer")).await?;
    let sc = sim
        .run(move |c| async move { c.wait_for_chat(step).await })
        .await?;
    sim.run(move |c| async move { c.agent_joins(&sc, "Latency Agent").await })
        .await?;
    wait_for(&mut events, "the agent joining", step, |e| {
        matches!(e, Event::ParticipantJoined { participant, .. } if participant.role == Role::Agent)
    })
    .await?;
    let gap = send_gap(session.capabilities().messages_per_second);
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..=samples {
        tokio::time::sleep(gap).await;
        let t0 = Instant::now();
        let sent = chat
            .send(Content::text(format!("latency sample {i}")))
            .await?;
        let id = sent.client_id;
        wait_for(
            &mut events,
            "MessageSent",
            step,
            move |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(id)),
        )
        .await?;
        // The first one warms up.
        if i > 0 {
            rtts.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    let _ = session.shutdown().await;
    Ok(median(&rtts))
}

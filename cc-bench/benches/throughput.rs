//! Agent messages decoded and dispatched per second per core, per adapter and transport.
//!
//! The simulator runs on its own thread; the client session runs on a current-thread runtime
//! on this thread, so the CPU time of this thread is what the SDK spends reading frames,
//! decoding them, updating the transcript and dispatching `MessageReceived` to a subscriber.
//! The agent sends a burst of messages, at most 64 ahead of what the client has dispatched;
//! the figure is messages ÷ this thread's CPU seconds, median of several bursts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cc_bench::{
    BoxError, SimThread, chat_request, full_run, lane_name, lanes, median, report, thread_cpu,
    wait_for,
};
use cc_sdk::{Event, Role};
use futures::StreamExt;

/// Agent messages in flight at most.
const WINDOW: u64 = 64;

fn main() -> Result<(), BoxError> {
    let full = full_run();
    let (messages, bursts) = if full { (3000, 5) } else { (40, 1) };
    let mut failed = Vec::new();
    for (entry, transport) in lanes(false)? {
        let lane = lane_name(&entry, transport);
        let run = || -> Result<(f64, f64), BoxError> {
            let sim = SimThread::start(entry, transport)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(measure(&sim, messages, bursts))
        };
        let (per_core, wall) = match run() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{lane}: FAILED: {e}");
                failed.push(lane);
                continue;
            }
        };
        eprintln!(
            "{lane}: {per_core:.0} messages per CPU-second of the client thread \
             ({wall:.0} per wall second), median of {bursts} bursts of {messages}"
        );
        report("decode_dispatch_per_core", &lane, per_core, "msg/s");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed lanes: {}", failed.join(", ")).into())
    }
}

async fn measure(sim: &SimThread, messages: usize, bursts: usize) -> Result<(f64, f64), BoxError> {
    let step = Duration::from_secs(20);
    let session = cc_sdk::connect(&sim.config).await?;
    let mut events = session.events();
    let _chat = session.start_chat(chat_request("Bench Customer")).await?;
    let chat = sim
        .run(move |c| async move { c.wait_for_chat(step).await })
        .await?;
    let joined = chat.clone();
    sim.run(move |c| async move { c.agent_joins(&joined, "Bench Agent").await })
        .await?;
    wait_for(&mut events, "the agent joining", step, |e| {
        matches!(e, Event::ParticipantJoined { participant, .. } if participant.role == Role::Agent)
    })
    .await?;

    let mut per_core = Vec::new();
    let mut per_wall = Vec::new();
    for burst in 0..bursts {
        let cpu0 = thread_cpu()?;
        let t0 = Instant::now();
        let c = chat.clone();
        let control = std::sync::Arc::clone(&sim.control);
        // The agent keeps at most WINDOW messages in flight, as a busy agent pool would:
        // the pipeline stays full without overrunning the simulator's send buffers.
        let consumed = std::sync::Arc::new(AtomicU64::new(0));
        let window = std::sync::Arc::clone(&consumed);
        let driver = sim.handle.spawn(async move {
            for i in 0..messages as u64 {
                while i >= window.load(Ordering::Acquire) + WINDOW {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                control
                    .agent_says(&c, &format!("burst {burst} message {i} from the agent"))
                    .await?;
            }
            Ok::<(), cc_sdk::Error>(())
        });
        let mut seen = 0u64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while seen < messages as u64 {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(Event::MessageReceived(_))) => {
                    seen += 1;
                    consumed.store(seen, Ordering::Release);
                }
                // Missed by this subscriber, but decoded and dispatched all the same.
                Ok(Some(Event::Lagged { missed })) => {
                    seen += missed;
                    consumed.store(seen, Ordering::Release);
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("the session closed".into()),
                Err(_) => {
                    return Err(format!("only {seen} of {messages} messages within 120 s").into());
                }
            }
        }
        let cpu = (thread_cpu()? - cpu0).as_secs_f64();
        let wall = t0.elapsed().as_secs_f64();
        driver.await??;
        per_core.push(messages as f64 / cpu);
        per_wall.push(messages as f64 / wall);
    }
    let _ = session.shutdown().await;
    Ok((median(&per_core), median(&per_wall)))
}

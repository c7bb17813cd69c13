//! `cc-cli status`: a health check (connect, how long it took, the connection state) and the
//! service status where the vendor exposes it: availability, agents, queue, expected wait,
//! opening hours.

use std::io::Write;
use std::time::{Duration, Instant};

use cc_sdk::{
    Availability, ConnectionState, ErrorKind, Event, ServiceStatus, StatusQuery, Weekday,
};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::target::{BoxError, Target, TargetArgs};

/// Flags of `cc-cli status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// The queue, service or entry point to ask about; the configured one when not given.
    #[arg(long)]
    queue: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// How long the health check may take.
    #[arg(long, default_value = "10s", value_parser = crate::target::parse_duration)]
    timeout: Duration,
}

/// What the check found.
#[derive(Debug)]
struct Report {
    target: String,
    vendor: cc_sdk::Vendor,
    connect: Result<Duration, String>,
    connection: Option<String>,
    status: StatusOutcome,
}

#[derive(Debug)]
enum StatusOutcome {
    Known(ServiceStatus),
    Unsupported,
    Failed(String),
    NotAsked,
}

impl Report {
    fn healthy(&self) -> bool {
        self.connect.is_ok() && !matches!(self.status, StatusOutcome::Failed(_))
    }
}

/// Asks, prints, and fails when the health check fails.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(check(args))
        .map_err(|e| e as Box<dyn std::error::Error>)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &render_json(&report))?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&report).as_bytes())?;
    }
    out.flush()?;
    runtime.shutdown_background();
    if report.healthy() {
        Ok(())
    } else {
        Err("health check failed".into())
    }
}

async fn check(args: &Args) -> Result<Report, BoxError> {
    let target = Target::open(&args.target).await?;
    let mut report = Report {
        target: target.describe(),
        vendor: target.config.vendor,
        connect: Err(String::new()),
        connection: None,
        status: StatusOutcome::NotAsked,
    };
    let t0 = Instant::now();
    let session = match tokio::time::timeout(args.timeout, cc_sdk::connect(&target.config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            report.connect = Err(e.to_string());
            return Ok(report);
        }
        Err(_) => {
            report.connect = Err(format!("no answer within {:?}", args.timeout));
            return Ok(report);
        }
    };
    report.connect = Ok(t0.elapsed());
    // The latest connection state the session reports right after connecting.
    let mut events = session.events();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        if let Event::Connection(state) = ev {
            report.connection = Some(match state {
                ConnectionState::Connecting => "connecting".to_owned(),
                ConnectionState::Connected => "connected".to_owned(),
                ConnectionState::Reconnecting { attempt, .. } => {
                    format!("reconnecting (attempt {attempt})")
                }
                ConnectionState::Disconnected { reason } => format!("disconnected: {reason}"),
            });
        }
    }
    let query = StatusQuery {
        queue: args.queue.clone(),
    };
    report.status = match tokio::time::timeout(args.timeout, session.service_status(query)).await {
        Ok(Ok(s)) => StatusOutcome::Known(s),
        Ok(Err(e)) if e.kind() == ErrorKind::Unsupported => StatusOutcome::Unsupported,
        Ok(Err(e)) => StatusOutcome::Failed(e.to_string()),
        Err(_) => StatusOutcome::Failed(format!("no answer within {:?}", args.timeout)),
    };
    let _ = session.shutdown().await;
    Ok(report)
}

fn availability(a: Availability) -> &'static str {
    match a {
        Availability::Open => "open",
        Availability::OutOfService => "out of service",
        Availability::ClosedByCalendar => "closed (opening hours)",
        Availability::Unknown => "unknown",
    }
}

fn day(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn render_text(r: &Report) -> String {
    let mut s = format!("target: {}\n", r.target);
    match &r.connect {
        Ok(d) => s.push_str(&format!(
            "health: ok (connected in {:.1} ms{})\n",
            d.as_secs_f64() * 1000.0,
            r.connection
                .as_deref()
                .map(|c| format!(", state {c}"))
                .unwrap_or_default()
        )),
        Err(e) => s.push_str(&format!("health: FAILED: cannot connect: {e}\n")),
    }
    match &r.status {
        StatusOutcome::NotAsked => {}
        StatusOutcome::Unsupported => s.push_str(&format!(
            "service status: not exposed by the {} adapter\n",
            r.vendor.key()
        )),
        StatusOutcome::Failed(e) => s.push_str(&format!("service status: FAILED: {e}\n")),
        StatusOutcome::Known(st) => {
            s.push_str(&format!(
                "service status: {}\n",
                availability(st.availability)
            ));
            let unknown = || "unknown".to_owned();
            s.push_str(&format!(
                "  agents available: {}\n",
                st.agents_available.map_or_else(unknown, |n| n.to_string())
            ));
            s.push_str(&format!(
                "  queue length: {}\n",
                st.queue_length.map_or_else(unknown, |n| n.to_string())
            ));
            s.push_str(&format!(
                "  expected wait: {}\n",
                st.expected_wait
                    .map_or_else(unknown, |w| format!("{} s", w.as_secs()))
            ));
            match &st.opening_hours {
                None => s.push_str("  opening hours: unknown\n"),
                Some(h) => {
                    s.push_str(&format!(
                        "  opening hours ({}):\n",
                        h.time_zone.as_deref().unwrap_or("time zone unknown")
                    ));
                    for w in &h.windows {
                        s.push_str(&format!(
                            "    {} {}-{}\n",
                            day(w.day),
                            hhmm(w.open_minute),
                            hhmm(w.close_minute)
                        ));
                    }
                }
            }
        }
    }
    s
}

fn render_json(r: &Report) -> Value {
    let status = match &r.status {
        StatusOutcome::Known(st) => json!({
            "supported": true,
            "availability": st.availability,
            "agents_available": st.agents_available,
            "queue_length": st.queue_length,
            "expected_wait_s": st.expected_wait.map(|w| w.as_secs_f64()),
            "opening_hours": st.opening_hours,
        }),
        StatusOutcome::Unsupported => json!({"supported": false}),
        StatusOutcome::Failed(e) => json!({"supported": true, "error": e}),
        StatusOutcome::NotAsked => Value::Null,
    };
    json!({
        "target": r.target,
        "vendor": r.vendor.key(),
        "healthy": r.healthy(),
        "connect_ms": r.connect.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
        "connect_error": r.connect.as_ref().err(),
        "connection": r.connection,
        "service_status": status,
    })
}

#[cfg(test)]
mod tests {
    use cc_sdk::{OpeningHours, OpeningWindow, Vendor};

    use super::*;

    fn report(status: StatusOutcome) -> Report {
        Report {
            target: "t".into(),
            vendor: Vendor::Tvox,
            connect: Ok(Duration::from_micros(2500)),
            connection: Some("connected".into()),
            status,
        }
    }

    #[test]
    fn a_known_status_lists_queue_wait_and_hours() {
        let r = report(StatusOutcome::Known(ServiceStatus {
            availability: Availability::Open,
            agents_available: Some(3),
            queue_length: Some(2),
            expected_wait: Some(Duration::from_secs(45)),
            opening_hours: Some(OpeningHours {
                time_zone: Some("Europe/Rome".into()),
                windows: vec![OpeningWindow {
                    day: Weekday::Mon,
                    open_minute: 9 * 60,
                    close_minute: 17 * 60 + 30,
                }],
            }),
        }));
        assert!(r.healthy());
        assert_eq!(
            render_text(&r),
            "target: t\n\
             health: ok (connected in 2.5 ms, state connected)\n\
             service status: open\n\
             \x20 agents available: 3\n\
             \x20 queue length: 2\n\
             \x20 expected wait: 45 s\n\
             \x20 opening hours (Europe/Rome):\n\
             \x20   Mon 09:00-17:30\n"
        );
        let j = render_json(&r);
        assert_eq!(j["service_status"]["availability"], "open");
        assert_eq!(j["service_status"]["expected_wait_s"], 45.0);
        assert_eq!(j["healthy"], true);
    }

    #[test]
    fn unsupported_status_is_healthy_but_a_failed_one_is_not() {
        let r = report(StatusOutcome::Unsupported);
        assert!(r.healthy());
        assert!(render_text(&r).contains("service status: not exposed by the tvox adapter"));
        let r = report(StatusOutcome::Failed("boom".into()));
        assert!(!r.healthy());
        let mut r = report(StatusOutcome::NotAsked);
        r.connect = Err("refused".into());
        assert!(!r.healthy());
        assert!(render_text(&r).contains("health: FAILED: cannot connect: refused"));
    }
}

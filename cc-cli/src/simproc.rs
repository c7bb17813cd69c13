//! A simulator in a child process, played through a line protocol on its stdin and stdout:
//! what `cc-cli load --sim` runs its customers against.
//!
//! In one process, thousands of customers and the simulator would share one open-file limit
//! (a held long poll costs a descriptor on each side) and one heap, so the report's memory
//! figure would count the server too. The child is this same program, started as
//! `cc-cli sim-worker VENDOR`; it ends when its stdin closes.
//!
//! The protocol is one JSON object per line. The child's first line is
//! `{"config": TOML, "addr": "127.0.0.1:PORT", "transport": NAME}`; after it, the child
//! announces every new chat as `{"chat": SimChat}` and answers each request
//! `{"id": N, "op": "join"|"say"|"received", "chat": SimChat, "agent"?: NAME, "text"?: TEXT}`
//! with `{"id": N, "ok": VALUE}` or `{"id": N, "error": MESSAGE}`, in any order.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cc_sdk::testkit::{Received, SimChat, SimControl};
use cc_sdk::{Config, Vendor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::target::{BoxError, config_toml, raise_open_files, start_sim};

/// Flags of the hidden `cc-cli sim-worker` subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The vendor to simulate.
    vendor: Vendor,
    /// The simulator's transport; the vendor's default when not given.
    #[arg(long)]
    transport: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// A request to the child.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Join { chat: SimChat, agent: String },
    Say { chat: SimChat, text: String },
    Received { chat: SimChat },
}

/// Serves the simulator until stdin closes (the parent ended or dropped it).
pub(crate) fn run_worker(
    args: &WorkerArgs,
    _out: &mut dyn Write,
) -> Result<(), Box<dyn std::error::Error>> {
    // Each customer holds at least one connection or long poll here: take what may be had
    // (up to Linux's default ceiling, `fs.nr_open`).
    raise_open_files(1 << 20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| e as Box<dyn std::error::Error>)
}

async fn serve(args: &WorkerArgs) -> Result<(), BoxError> {
    let sim = start_sim(args.vendor, args.transport.clone(), args.port).await?;
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    tx.send(
        json!({
            "config": config_toml(&sim.config)?,
            "addr": sim.addr.to_string(),
            "transport": sim.transport,
        })
        .to_string(),
    )?;
    let writer = tokio::spawn(write_lines(rx, tokio::io::stdout()));
    let control = Arc::clone(&sim.control);
    let announcer = {
        let (control, tx) = (Arc::clone(&control), tx.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(chat) = control.wait_for_chat(Duration::from_secs(3600)).await
                    && tx.send(json!({ "chat": chat }).to_string()).is_err()
                {
                    break;
                }
            }
        })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sim-worker: ignoring a request that does not parse ({e}): {line}");
                continue;
            }
        };
        let (control, tx) = (Arc::clone(&control), tx.clone());
        tokio::spawn(async move {
            let answer = match perform(control.as_ref(), request.op).await {
                Ok(v) => json!({ "id": request.id, "ok": v }),
                Err(e) => json!({ "id": request.id, "error": e.to_string() }),
            };
            let _ = tx.send(answer.to_string());
        });
    }
    announcer.abort();
    drop(tx);
    let _ = writer.await;
    drop(sim);
    Ok(())
}

/// Writes each line of `lines` to `out`, as many per write as are waiting, until either end
/// closes.
async fn write_lines(
    mut lines: mpsc::UnboundedReceiver<String>,
    mut out: impl tokio::io::AsyncWrite + Unpin,
) {
    while let Some(line) = lines.recv().await {
        let mut batch = line;
        batch.push('\n');
        while let Ok(more) = lines.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
            break;
        }
    }
}

async fn perform(control: &dyn SimControl, op: Op) -> cc_sdk::Result<Value> {
    Ok(match op {
        Op::Join { chat, agent } => {
            control.agent_joins(&chat, &agent).await?;
            Value::Null
        }
        Op::Say { chat, text } => Value::String(control.agent_says(&chat, &text).await?),
        Op::Received { chat } => serde_json::to_value(control.received(&chat).await?)
            .map_err(|e| cc_sdk::Error::transport(control.vendor(), "received", e))?,
    })
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// The parent's side: the child process, its configuration, and its agent.
pub(crate) struct SimProcess {
    child: tokio::process::Child,
    /// A configuration that points a client at the child's simulator.
    pub(crate) config: Config,
    /// Where the simulator listens.
    pub(crate) addr: String,
    /// The transport it serves.
    pub(crate) transport: String,
    requests: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: AtomicU64,
}

impl std::fmt::Debug for SimProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimProcess")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl SimProcess {
    /// Starts `cc-cli sim-worker` for `vendor` and waits for its configuration. Also returns
    /// the chats customers start, as the simulator sees them.
    pub(crate) async fn start(
        vendor: Vendor,
        transport: Option<&str>,
        port: u16,
    ) -> Result<(SimProcess, mpsc::UnboundedReceiver<SimChat>), BoxError> {
        let exe = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(["sim-worker", vendor.key(), "--port", &port.to_string()]);
        if let Some(t) = transport {
            cmd.args(["--transport", t]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the simulator process {}: {e}", exe.display()))?;
        let stdin = child.stdin.take().ok_or("simulator process: no stdin")?;
        let mut lines =
            BufReader::new(child.stdout.take().ok_or("simulator process: no stdout")?).lines();
        let hello = match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = child.wait().await?;
                return Err(
                    format!("the simulator process ended before it served ({status})").into(),
                );
            }
            Ok(Err(e)) => return Err(format!("simulator process: {e}").into()),
            Err(_) => return Err("the simulator process did not start within 30 s".into()),
        };
        let hello: Value = serde_json::from_str(&hello)
            .map_err(|e| format!("simulator process: first line is not JSON ({e}): {hello}"))?;
        let field = |k: &str| {
            hello[k]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("simulator process: first line has no `{k}`: {hello}"))
        };
        let config = Config::from_toml(&field("config")?)?;
        let (addr, transport) = (field("addr")?, field("transport")?);

        let (requests, queue) = mpsc::unbounded_channel::<String>();
        tokio::spawn(write_lines(queue, stdin));
        let pending: Pending = Arc::default();
        let (chat_tx, chat_rx) = mpsc::unbounded_channel();
        let answers = Arc::clone(&pending);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("simulator process: a line that is not JSON: {line}");
                    continue;
                };
                if let Some(chat) = v.get("chat") {
                    if let Ok(chat) = serde_json::from_value::<SimChat>(chat.clone()) {
                        let _ = chat_tx.send(chat);
                    }
                    continue;
                }
                let Some(id) = v["id"].as_u64() else { continue };
                let waiter = answers.lock().expect("pending").remove(&id);
                if let Some(w) = waiter {
                    let answer = match v.get("error") {
                        Some(e) => Err(e.as_str().unwrap_or("error").to_owned()),
                        None => Ok(v["ok"].clone()),
                    };
                    let _ = w.send(answer);
                }
            }
            // The child is gone: nothing pending will be answered.
            answers.lock().expect("pending").clear();
        });
        let sim = SimProcess {
            child,
            config,
            addr,
            transport,
            requests,
            pending,
            next_id: AtomicU64::new(1),
        };
        Ok((sim, chat_rx))
    }

    /// The simulator process's peak resident memory (`VmHWM`), in bytes.
    pub(crate) fn peak_memory(&self) -> Option<u64> {
        crate::target::proc_status_kb(&format!("/proc/{}/status", self.child.id()?), "VmHWM:")
            .map(|kb| kb * 1024)
    }

    async fn call(&self, op: Op) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = serde_json::to_string(&Request { id, op }).map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id, tx);
        if self.requests.send(line).is_err() {
            self.pending.lock().expect("pending").remove(&id);
            return Err("the simulator process is gone".into());
        }
        rx.await
            .map_err(|_| "the simulator process ended before it answered".to_owned())?
    }

    /// An agent named `agent` joins the chat.
    pub(crate) async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<(), String> {
        self.call(Op::Join {
            chat: chat.clone(),
            agent: agent.to_owned(),
        })
        .await
        .map(drop)
    }

    /// The agent writes `text`; returns the vendor's message id.
    pub(crate) async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String, String> {
        let v = self
            .call(Op::Say {
                chat: chat.clone(),
                text: text.to_owned(),
            })
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("simulator process: a message id that is not a string: {v}"))
    }

    /// What the simulator received from the customer in this chat.
    pub(crate) async fn received(&self, chat: &SimChat) -> Result<Vec<Received>, String> {
        let v = self.call(Op::Received { chat: chat.clone() }).await?;
        serde_json::from_value(v).map_err(|e| format!("simulator process: received: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_flat_json_object() {
        let chat = SimChat {
            id: "c1".into(),
            customer_name: Some("n".into()),
        };
        let line = serde_json::to_string(&Request {
            id: 7,
            op: Op::Say {
                chat: chat.clone(),
                text: "hi".into(),
            },
        })
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({"id": 7, "op": "say", "chat": {"id": "c1", "customer_name": "n"}, "text": "hi"})
        );
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back.op, Op::Say { chat: c, text } if c == chat && text == "hi"));
    }
}

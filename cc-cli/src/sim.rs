//! `cc-cli sim VENDOR`: serves a vendor simulator on 127.0.0.1 for app developers, prints a
//! configuration that points a client at it, and reads an agent console on stdin.
//!
//! New chats are announced and numbered; what customers send is printed as it arrives. The
//! console acts on the current chat (the newest, or the one chosen with `/use N`):
//! `/join NAME`, `/say TEXT` (or just the text), `/type on|off`, `/queue POS [SECONDS]`,
//! `/file PATH`, `/read`, `/transfer NAME`, `/leave`, `/end`, `/idle SECONDS`; and on the
//! whole simulator: `/chats`, `/drop` (cut every connection), `/restart`, `/expire` (the
//! session token), `/quit`. At the end of stdin the simulator keeps serving until Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cc_sdk::Vendor;
use cc_sdk::testkit::{Received, SimChat, SimControl};
use tokio::io::AsyncBufReadExt;

use crate::target::{BoxError, config_toml, start_sim};

/// Flags of `cc-cli sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The vendor to simulate (expertflow, tvox, avaya, genesys, tetherfi).
    vendor: Vendor,
    /// The port on 127.0.0.1; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The transport to serve; the vendor's default when not given.
    #[arg(long)]
    transport: Option<String>,
    /// Also write the client configuration (TOML) to this file.
    #[arg(long, value_name = "FILE")]
    config_out: Option<PathBuf>,
}

/// Serves until `/quit` or Ctrl-C.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(args, out));
    runtime.shutdown_background();
    result.map_err(|e| e as Box<dyn std::error::Error>)
}

/// Lines printed by background tasks and by the console, one writer at a time.
#[derive(Clone)]
struct Console {
    chats: Arc<Mutex<Vec<SimChat>>>,
    current: Arc<Mutex<Option<usize>>>,
}

fn say(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

async fn serve(args: &Args, out: &mut dyn Write) -> Result<(), BoxError> {
    let sim = start_sim(args.vendor, args.transport.clone(), args.port).await?;
    let toml = config_toml(&sim.config)?;
    if let Some(path) = &args.config_out {
        std::fs::write(path, &toml).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    writeln!(
        out,
        "{} simulator ({}) listening on {}",
        args.vendor.display_name(),
        sim.transport,
        sim.addr
    )?;
    writeln!(
        out,
        "# client configuration for `cc-cli chat --config FILE` (or cc_sdk::Config::from_toml):"
    )?;
    write!(out, "{toml}")?;
    writeln!(out, "# end of configuration")?;
    writeln!(out, "agent console ready: /help lists the commands")?;
    out.flush()?;

    let control = Arc::clone(&sim.control);
    let console = Console {
        chats: Arc::new(Mutex::new(Vec::new())),
        current: Arc::new(Mutex::new(None)),
    };
    tokio::spawn(watch_chats(Arc::clone(&control), console.clone()));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    match console.exec(control.as_ref(), &line).await {
                        Ok(Flow::Quit) => break,
                        Ok(Flow::Go) => {}
                        Err(e) => say(&format!("! {e}")),
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    say("console closed; serving until Ctrl-C");
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    say("simulator stopped");
    drop(sim);
    Ok(())
}

enum Flow {
    Go,
    Quit,
}

const HELP: &str = "\
commands on the current chat: /join NAME, /say TEXT (or just TEXT), /type on|off,
  /queue POS [SECONDS], /file PATH, /read, /transfer NAME, /leave, /end, /idle SECONDS,
  /received, /use N (choose the current chat)
commands on the simulator: /chats, /drop (cut every connection), /restart, /expire (token),
  /quit";

impl Console {
    fn current(&self) -> Result<(usize, SimChat), BoxError> {
        let chats = self.chats.lock().expect("chat list");
        let i = self
            .current
            .lock()
            .expect("current chat")
            .ok_or("no chat yet: wait for a customer to start one")?;
        Ok((i, chats[i].clone()))
    }

    async fn exec(&self, control: &dyn SimControl, line: &str) -> Result<Flow, BoxError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Flow::Go);
        }
        let (cmd, arg) = match line.strip_prefix('/') {
            Some(c) => {
                let (n, a) = c.split_once(' ').unwrap_or((c, ""));
                (n, a.trim())
            }
            None => ("say", line),
        };
        match cmd {
            "help" => say(HELP),
            "quit" => return Ok(Flow::Quit),
            "chats" => {
                let chats = self.chats.lock().expect("chat list").clone();
                let current = *self.current.lock().expect("current chat");
                if chats.is_empty() {
                    say("no chats yet");
                }
                for (i, c) in chats.iter().enumerate() {
                    let mark = if Some(i) == current { "*" } else { " " };
                    say(&format!(
                        "{mark} chat {} {} from {}",
                        i + 1,
                        c.id,
                        c.customer_name.as_deref().unwrap_or("?")
                    ));
                }
            }
            "use" => {
                let n: usize = arg.parse().map_err(|_| "/use N: N is a chat number")?;
                let len = self.chats.lock().expect("chat list").len();
                if n == 0 || n > len {
                    return Err(format!("no chat {n} (there are {len})").into());
                }
                *self.current.lock().expect("current chat") = Some(n - 1);
                say(&format!("chat {n} is current"));
            }
            "drop" => {
                control.drop_connections().await?;
                say("every connection dropped");
            }
            "restart" => {
                control.restart().await?;
                say("simulator restarted (connections dropped, chats kept)");
            }
            "expire" => {
                control.expire_token().await?;
                say("session token expired");
            }
            _ => {
                let (i, chat) = self.current()?;
                let n = i + 1;
                match (cmd, arg) {
                    ("join", name) if !name.is_empty() => {
                        control.agent_joins(&chat, name).await?;
                        say(&format!("chat {n}: {name} joined"));
                    }
                    ("say", text) if !text.is_empty() => {
                        let id = control.agent_says(&chat, text).await?;
                        say(&format!("chat {n}: sent (id {id})"));
                    }
                    ("type", "on") => control.agent_typing(&chat, true).await?,
                    ("type", "off") => control.agent_typing(&chat, false).await?,
                    ("queue", rest) if !rest.is_empty() => {
                        let mut parts = rest.split_whitespace();
                        let pos: u32 = parts
                            .next()
                            .and_then(|p| p.parse().ok())
                            .ok_or("/queue POS [SECONDS]: POS is a number")?;
                        let wait = match parts.next() {
                            Some(s) => Some(Duration::from_secs(
                                s.parse().map_err(|_| "/queue POS [SECONDS]: bad SECONDS")?,
                            )),
                            None => None,
                        };
                        control.queue(&chat, pos, wait).await?;
                        say(&format!("chat {n}: queue position {pos}"));
                    }
                    ("file", path) if !path.is_empty() => {
                        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                        let name = std::path::Path::new(path)
                            .file_name()
                            .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
                        let id = control
                            .agent_sends_file(&chat, &name, "application/octet-stream", &bytes)
                            .await?;
                        say(&format!("chat {n}: file sent (id {id})"));
                    }
                    ("read", "") => control.agent_reads(&chat).await?,
                    ("transfer", name) if !name.is_empty() => {
                        control.transfer(&chat, name).await?;
                        say(&format!("chat {n}: transferred to {name}"));
                    }
                    ("leave", "") => {
                        control.agent_leaves(&chat).await?;
                        say(&format!("chat {n}: the agent left"));
                    }
                    ("end", "") => {
                        control.agent_ends(&chat).await?;
                        say(&format!("chat {n}: ended by the agent"));
                    }
                    ("idle", secs) if !secs.is_empty() => {
                        let s: u64 = secs.parse().map_err(|_| "/idle SECONDS")?;
                        control.idle_warning(&chat, Duration::from_secs(s)).await?;
                    }
                    ("received", "") => {
                        for r in control.received(&chat).await? {
                            say(&format!("chat {n}: {}", render_received(&r)));
                        }
                    }
                    _ => {
                        return Err(format!("unknown or incomplete command: {line} (/help)").into());
                    }
                }
            }
        }
        Ok(Flow::Go)
    }
}

fn render_received(r: &Received) -> String {
    match r {
        Received::Text {
            text,
            hidden: false,
        } => format!("customer: {text}"),
        Received::Text { text, hidden: true } => format!("customer (hidden): {text}"),
        Received::File { name, size } => format!("customer sent a file: {name} ({size} bytes)"),
        Received::Notice { kind } => format!("customer sent a notice: {kind}"),
        Received::Typing { on: true } => "customer is typing".to_owned(),
        Received::Typing { on: false } => "customer stopped typing".to_owned(),
        Received::Receipt { message_id, state } => {
            format!("customer receipt: {message_id} {state}")
        }
        Received::Ended => "customer ended the chat".to_owned(),
    }
}

/// Announces new chats and prints what customers send, as it arrives.
async fn watch_chats(control: Arc<dyn SimControl>, console: Console) {
    let seen: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
    let poll = {
        let control = Arc::clone(&control);
        let console = console.clone();
        let seen = Arc::clone(&seen);
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let chats = console.chats.lock().expect("chat list").clone();
                for (i, chat) in chats.iter().enumerate() {
                    let Ok(got) = control.received(chat).await else {
                        continue;
                    };
                    let from = seen.lock().expect("seen")[i];
                    for r in got.iter().skip(from) {
                        say(&format!("chat {}: {}", i + 1, render_received(r)));
                    }
                    seen.lock().expect("seen")[i] = got.len().max(from);
                }
            }
        }
    };
    let announce = async move {
        loop {
            let Ok(chat) = control.wait_for_chat(Duration::from_secs(3600)).await else {
                continue;
            };
            let n = {
                let mut chats = console.chats.lock().expect("chat list");
                chats.push(chat.clone());
                seen.lock().expect("seen").push(0);
                chats.len()
            };
            *console.current.lock().expect("current chat") = Some(n - 1);
            say(&format!(
                "chat {n}: new chat {} from {} (now current)",
                chat.id,
                chat.customer_name.as_deref().unwrap_or("?")
            ));
        }
    };
    tokio::join!(poll, announce);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_items_render_for_the_agent() {
        assert_eq!(
            render_received(&Received::Text {
                text: "hi".into(),
                hidden: false
            }),
            "customer: hi"
        );
        assert_eq!(
            render_received(&Received::File {
                name: "a.txt".into(),
                size: 3
            }),
            "customer sent a file: a.txt (3 bytes)"
        );
        assert_eq!(render_received(&Received::Ended), "customer ended the chat");
    }
}

//! `chat`, `sim`, `status` and `load`, run as a user runs them, against every simulator
//! compiled into the program. A build without any simulator fails here rather than passing
//! with nothing checked.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cc_sdk::Vendor;

const BIN: &str = env!("CARGO_BIN_EXE_cc-cli");
const WAIT: Duration = Duration::from_secs(15);

/// The vendors with a simulator in this build; never empty.
fn sim_vendors() -> Vec<Vendor> {
    let vendors: Vec<Vendor> = cc_sdk::sims().iter().map(|s| s.vendor).collect();
    assert!(
        !vendors.is_empty(),
        "no simulator is compiled in: these tests would check nothing"
    );
    vendors
}

/// Runs `check` for every vendor with a simulator, and fails afterwards naming each vendor
/// whose check failed, so one vendor's failure does not hide another's.
fn for_each_vendor(check: impl Fn(Vendor)) {
    let mut failed = Vec::new();
    for vendor in sim_vendors() {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(vendor))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{vendor}: {}", msg.lines().next().unwrap_or("")));
        }
    }
    assert!(failed.is_empty(), "failed for:\n{}", failed.join("\n"));
}

/// The default transport's capabilities of `vendor`'s adapter.
fn default_caps(vendor: Vendor) -> cc_sdk::Capabilities {
    let entry = cc_sdk::adapter(vendor).expect("a simulator's adapter is compiled in");
    (entry.profiles)()[0].1
}

fn cc_cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run cc-cli")
}

/// A running cc-cli with its stdout read line by line.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, args: &[&str], dir: &Path) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cc-cli");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to cc-cli");
        stdin.flush().expect("flush");
    }

    /// Waits for a line containing `want`; returns it.
    fn expect(&mut self, want: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line containing {want:?} within {WAIT:?}; output so far:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line until the process exits, and its success.
    fn finish(mut self) -> (bool, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return (status.success(), std::mem::take(&mut self.seen));
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit; output:\n{}",
                self.name,
                self.seen.join("\n")
            );
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -INT {}", self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn chat_plain_mode_talks_to_the_simulated_agent_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), b"twelve bytes").unwrap();
    for_each_vendor(|vendor| {
        let caps = default_caps(vendor);
        let mut chat = Proc::spawn(
            &format!("chat --sim {vendor}"),
            &["chat", "--sim", vendor.key(), "--plain", "--name", "Pat"],
            dir.path(),
        );
        chat.expect("* chat started");
        chat.expect(" joined");
        chat.expect(": Hello, I am Sam, a simulated agent");
        chat.send("where is my order?");
        chat.expect("you: where is my order?");
        if caps.typing_in {
            chat.expect(" is typing");
        }
        chat.expect(": You said: where is my order?");
        if caps.attachments {
            chat.send("/file note.txt");
            chat.expect("* sending file note.txt (12 bytes)");
            chat.expect(": I got your file note.txt (12 bytes).");
        }
        chat.send("/nonsense");
        chat.expect("! unknown command /nonsense");
        chat.send("/end");
        chat.expect("* the chat was ended");
        let (ok, lines) = chat.finish();
        assert!(ok, "{vendor}: chat failed:\n{}", lines.join("\n"));
    });
}

/// Reads the configuration a `cc-cli sim` printed, up to its end marker.
fn printed_config(sim: &mut Proc) -> String {
    sim.expect("# client configuration");
    let mut toml = String::new();
    loop {
        let line = sim.lines.recv_timeout(WAIT).expect("configuration lines");
        sim.seen.push(line.clone());
        if line == "# end of configuration" {
            return toml;
        }
        toml.push_str(&line);
        toml.push('\n');
    }
}

#[test]
fn sim_console_plays_the_agent_for_a_chat_that_leaves_and_comes_back() {
    for_each_vendor(|vendor| {
        let caps = default_caps(vendor);
        let dir = tempfile::tempdir().unwrap();
        let mut sim = Proc::spawn(
            &format!("sim {vendor}"),
            &["sim", vendor.key(), "--config-out", "sim.toml"],
            dir.path(),
        );
        sim.expect("simulator");
        let printed = printed_config(&mut sim);
        sim.expect("agent console ready");
        let written = std::fs::read_to_string(dir.path().join("sim.toml")).unwrap();
        assert_eq!(
            printed, written,
            "{vendor}: printed and written configs differ"
        );
        let config = cc_sdk::Config::from_toml(&written).unwrap();
        assert_eq!(config.vendor, vendor);

        let args = [
            "chat",
            "--config",
            "sim.toml",
            "--state",
            "state.json",
            "--plain",
            "--name",
            "Tess",
        ];
        let mut chat = Proc::spawn(&format!("chat {vendor}"), &args, dir.path());
        chat.expect("* chat started");
        sim.expect("new chat");
        sim.send("/chats");
        sim.expect("* chat 1 ");
        sim.send("/queue 3 60");
        sim.expect("queue position 3");
        sim.send("/join Alex Agent");
        chat.expect(" joined");
        chat.send("hello from Tess");
        chat.expect("you: hello from Tess");
        sim.expect("customer: hello from Tess");
        if caps.typing_in {
            sim.send("/type on");
            chat.expect(" is typing");
        }
        sim.send("/say Hi Tess, how can I help?");
        chat.expect(": Hi Tess, how can I help?");
        sim.send("/bogus");
        sim.expect("! unknown or incomplete command");

        // Ctrl-C: leave the chat open where the adapter can.
        chat.interrupt();
        let (ok, lines) = chat.finish();
        assert!(ok, "{vendor}: chat failed:\n{}", lines.join("\n"));
        let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
        if caps.leave {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("* left the chat; it stays open")),
                "{vendor}:\n{}",
                lines.join("\n")
            );
            assert!(state.contains("\"engagement\": \""), "{state}");
            sim.send("/received");
            sim.expect("customer: hello from Tess");
            assert!(
                !sim.seen
                    .iter()
                    .any(|l| l.contains("customer ended the chat")),
                "{vendor}: leaving ended the chat:\n{}",
                sim.seen.join("\n")
            );
        } else {
            assert!(lines.iter().any(|l| l.contains("cannot keep a chat open")));
            assert!(state.contains("\"engagement\": null"), "{state}");
            sim.expect("customer ended the chat");
        }

        // A later run continues the same chat.
        if caps.leave && caps.resume {
            let mut again = Proc::spawn(&format!("chat {vendor} again"), &args, dir.path());
            again.expect("* chat resumed");
            if caps.history {
                // The earlier exchange is shown again (transcript or server history).
                again.expect(": Hi Tess, how can I help?");
            }
            sim.send("/say welcome back");
            again.expect(": welcome back");
            again.send("/end");
            again.expect("* the chat was ended");
            let (ok, lines) = again.finish();
            assert!(ok, "{vendor}: chat failed:\n{}", lines.join("\n"));
            sim.expect("customer ended the chat");
        }
        sim.send("/quit");
        sim.expect("simulator stopped");
    });
}

#[test]
fn status_reports_health_and_fails_when_nothing_answers() {
    for_each_vendor(|vendor| {
        let out = cc_cli(&["status", "--sim", vendor.key()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{vendor}: {out:?}");
        assert!(text.contains("health: ok (connected in"), "{text}");
        assert!(text.contains("service status: "), "{text}");

        let out = cc_cli(&["status", "--sim", vendor.key(), "--json"]);
        assert!(out.status.success(), "{vendor}: {out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["healthy"], true);
        assert_eq!(v["vendor"], vendor.key());
        let supported = default_caps(vendor).service_status;
        assert_eq!(v["service_status"]["supported"], supported, "{v}");

        // A configuration whose simulator is gone.
        let dir = tempfile::tempdir().unwrap();
        let mut sim = Proc::spawn(
            "sim",
            &["sim", vendor.key(), "--config-out", "c.toml"],
            dir.path(),
        );
        sim.expect("agent console ready");
        sim.send("/quit");
        let (ok, _) = sim.finish();
        assert!(ok);
        let config = dir.path().join("c.toml");
        let out = cc_cli(&[
            "status",
            "--config",
            config.to_str().unwrap(),
            "--timeout",
            "3s",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{vendor}: {text}");
        assert!(text.contains("health: FAILED"), "{vendor}: {text}");
    });
}

#[test]
fn load_with_a_few_customers_loses_and_duplicates_nothing() {
    for_each_vendor(|vendor| {
        let out = cc_cli(&[
            "load",
            "--sim",
            vendor.key(),
            "--customers",
            "8",
            "--duration",
            "1200ms",
            "--ramp",
            "200ms",
            "--think",
            "100ms",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{vendor}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["sessions"]["started"], 8, "{r}");
        assert_eq!(r["sessions"]["completed"], 8, "{r}");
        assert_eq!(r["sessions"]["failed"], 0, "{r}");
        let m = &r["messages"];
        assert_eq!(m["lost"], 0, "{r}");
        assert_eq!(m["duplicated"], 0, "{r}");
        let sent = m["sent"].as_u64().unwrap();
        assert!(sent >= 8, "every customer sent at least once: {r}");
        assert_eq!(m["acknowledged"], sent, "{r}");
        assert_eq!(m["received"], m["agent_sent"], "{r}");
        assert_eq!(r["round_trip"]["send"]["n"], sent, "{r}");
        assert!(r["round_trip"]["send"]["p99_ms"].as_f64().unwrap() > 0.0);
        assert!(r["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    });
}

#[test]
fn load_refuses_a_target_that_is_not_loopback() {
    let vendor = sim_vendors()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Proc::spawn("sim", &["sim", vendor.key()], dir.path());
    let config = printed_config(&mut sim);
    assert!(config.contains("127.0.0.1"), "{config}");
    let remote = dir.path().join("remote.toml");
    std::fs::write(&remote, config.replace("127.0.0.1", "192.0.2.1")).unwrap();
    let out = cc_cli(&[
        "load",
        "--config",
        remote.to_str().unwrap(),
        "--customers",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("192.0.2.1 is not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
}

#[test]
fn chat_and_load_name_the_missing_target() {
    let out = cc_cli(&["chat", "--plain"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--config"), "{err}");
    let out = cc_cli(&["load", "--config", "/nonexistent/cc.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/cc.toml"), "{err}");
}

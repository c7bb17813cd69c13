//! A fault-injecting TCP proxy for reconnect tests.
//!
//! [`Proxy::start`] listens on `127.0.0.1:0` and forwards every connection to one target
//! (a simulator). The client under test connects to [`Proxy::addr`] instead of the
//! simulator, and the test breaks the network between them:
//!
//! - [`Proxy::cut_all`] resets every open connection now;
//! - [`Proxy::set_down`] resets every open connection and resets each new one at once until
//!   the proxy is up again: the "server unreachable" state;
//! - [`Proxy::cut_after`] resets each connection after a number of bytes;
//! - [`Proxy::stall`] stops forwarding while keeping the sockets open;
//! - [`Proxy::latency`] delays each direction by a fixed time.
//!
//! A cut is an abortive close (TCP reset) of both sockets, as a real network failure
//! looks to the client. TLS passes through untouched: the proxy only moves bytes.
//!
//! Each connection is two pumps, one per direction. A pump reads a chunk, stamps it with
//! its due time (now + latency), and hands it to a writer that waits for the due time and
//! for the stall to end, then writes it; so latency delays every chunk by the same time
//! without slowing the stream down.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which way bytes flow through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// From the client to the target (upstream).
    ToServer,
    /// From the target to the client (downstream).
    ToClient,
}

/// A fault-injecting TCP proxy. Cheap to clone; it stops (and resets every connection)
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

#[derive(Debug)]
struct Owner {
    stop: CancellationToken,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    target: SocketAddr,
    stop: CancellationToken,
    down: watch::Sender<bool>,
    stalled: watch::Sender<bool>,
    latency_up: Mutex<Duration>,
    latency_down: Mutex<Duration>,
    cut_after: Mutex<Option<u64>>,
    conns: Mutex<HashMap<u64, Conn>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
}

#[derive(Debug)]
struct Conn {
    cut: CancellationToken,
    /// Bytes left before the connection is cut, counted over both directions.
    budget: Arc<Mutex<Option<u64>>>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `target`. Needs a tokio runtime with
    /// I/O and time enabled; the proxy's tasks live on it.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            addr,
            target,
            stop: stop.clone(),
            down: watch::channel(false).0,
            stalled: watch::channel(false).0,
            latency_up: Mutex::new(Duration::ZERO),
            latency_down: Mutex::new(Duration::ZERO),
            cut_after: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            shared,
            _owner: Arc::new(Owner { stop }),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Resets every open connection now. New connections are accepted as usual.
    pub fn cut_all(&self) {
        let conns: Vec<Conn> = lock(&self.shared.conns).drain().map(|(_, c)| c).collect();
        for conn in conns {
            self.shared.cuts.fetch_add(1, Ordering::Relaxed);
            conn.cut.cancel();
        }
    }

    /// Takes the "server" down (`true`): every open connection is reset, and every new one
    /// is reset as soon as it is accepted, until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.shared.down.send_replace(down);
        if down {
            self.cut_all();
        }
    }

    /// Whether the proxy is down.
    pub fn is_down(&self) -> bool {
        *self.shared.down.borrow()
    }

    /// Resets each connection once `n` bytes (both directions counted together) have been
    /// forwarded: open connections count from now, new ones from their start. The bytes up
    /// to the limit are delivered, the rest is not. `None` lifts the limit.
    pub fn cut_after(&self, n: Option<u64>) {
        *lock(&self.shared.cut_after) = n;
        for conn in lock(&self.shared.conns).values() {
            *lock(&conn.budget) = n;
        }
    }

    /// Stops forwarding (`true`) while keeping every socket open, or resumes (`false`).
    /// Bytes that arrive meanwhile are held and delivered, in order, on resume.
    pub fn stall(&self, on: bool) {
        self.shared.stalled.send_replace(on);
    }

    /// Delays every chunk flowing `flow` by `delay` (zero for none), from now on.
    pub fn latency(&self, flow: Flow, delay: Duration) {
        let slot = match flow {
            Flow::ToServer => &self.shared.latency_up,
            Flow::ToClient => &self.shared.latency_down,
        };
        *lock(slot) = delay;
    }

    /// How many connections were accepted and forwarded (not counting those reset while down).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections were reset on arrival because the proxy was down.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// How many open connections were cut (by [`Proxy::cut_all`], [`Proxy::set_down`] or
    /// [`Proxy::cut_after`]).
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        lock(&self.shared.conns).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a test thread panicked; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let Ok((client, _)) = accepted else {
            // Accept errors (e.g. too many open files) are transient for a test proxy.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *shared.down.borrow() {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            reset(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(client, shared.clone()));
    }
    // Stopped: reset everything still open.
    let conns: Vec<Conn> = lock(&shared.conns).drain().map(|(_, c)| c).collect();
    for conn in conns {
        conn.cut.cancel();
    }
}

fn reset(stream: TcpStream) {
    // Ignored: the socket is dropped right after either way.
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.target).await else {
        // The target refused: pass the refusal on as a reset.
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let cut = shared.stop.child_token();
    let budget = Arc::new(Mutex::new(*lock(&shared.cut_after)));
    lock(&shared.conns).insert(
        id,
        Conn {
            cut: cut.clone(),
            budget: budget.clone(),
        },
    );
    // Set down between accept and now: treat as cut.
    if *shared.down.borrow() {
        cut.cancel();
    }

    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let ctx = |flow| Pump {
        flow,
        shared: shared.clone(),
        cut: cut.clone(),
        budget: budget.clone(),
    };
    let up = tokio::spawn(ctx(Flow::ToServer).run(client_r, server_w));
    let down = tokio::spawn(ctx(Flow::ToClient).run(server_r, client_w));
    let (up, down) = (up.await, down.await);
    lock(&shared.conns).remove(&id);
    // If either pump ended by a cut, reset both sockets.
    if let (Ok((cr, sw)), Ok((sr, cw))) = (up, down)
        && cut.is_cancelled()
    {
        if let Ok(c) = cr.reunite(cw) {
            reset(c);
        }
        if let Ok(s) = sr.reunite(sw) {
            reset(s);
        }
    }
}

struct Pump {
    flow: Flow,
    shared: Arc<Shared>,
    cut: CancellationToken,
    budget: Arc<Mutex<Option<u64>>>,
}

struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
    /// The budget ran out with this chunk: cut after writing it.
    last: bool,
}

impl Pump {
    fn latency(&self) -> Duration {
        *lock(match self.flow {
            Flow::ToServer => &self.shared.latency_up,
            Flow::ToClient => &self.shared.latency_down,
        })
    }

    /// Moves bytes from `r` to `w` until EOF, an error or a cut; gives both halves back.
    async fn run(
        self,
        mut r: OwnedReadHalf,
        mut w: OwnedWriteHalf,
    ) -> (OwnedReadHalf, OwnedWriteHalf) {
        let (tx, rx) = mpsc::channel::<Chunk>(64);
        let writer = self.write_loop(&mut w, rx);
        let reader = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (n, last) = {
                    let mut budget = lock(&self.budget);
                    match *budget {
                        None => (n, false),
                        Some(left) => {
                            let take = n.min(usize::try_from(left).unwrap_or(usize::MAX));
                            *budget = Some(left - take as u64);
                            (take, left <= n as u64)
                        }
                    }
                };
                let chunk = Chunk {
                    due: Instant::now() + self.latency(),
                    bytes: buf[..n].to_vec(),
                    last,
                };
                if tx.send(chunk).await.is_err() || last {
                    break;
                }
            }
            // EOF or error upstream: let the writer drain what it has, then half-close.
            drop(tx);
        };
        tokio::select! {
            () = self.cut.cancelled() => {}
            ((), ()) = async { tokio::join!(reader, writer) } => {}
        }
        (r, w)
    }

    async fn write_loop(&self, w: &mut OwnedWriteHalf, mut rx: mpsc::Receiver<Chunk>) {
        let mut stalled = self.shared.stalled.subscribe();
        while let Some(chunk) = rx.recv().await {
            // Only when there is latency to add: a timer, even one already due, waits for
            // the runtime's next millisecond tick, which would add a millisecond to every
            // chunk.
            if chunk.due > Instant::now() {
                tokio::time::sleep_until(chunk.due).await;
            }
            // Hold while stalled; a closed channel means the proxy is gone.
            if stalled.wait_for(|s| !*s).await.is_err() {
                return;
            }
            if w.write_all(&chunk.bytes).await.is_err() {
                self.cut.cancel();
                return;
            }
            if chunk.last {
                self.shared.cuts.fetch_add(1, Ordering::Relaxed);
                self.cut.cancel();
                return;
            }
        }
        let _ = w.shutdown().await;
    }
}

//! The simulator's network: a listener whose connections can all be reset at once, and
//! that refuses new ones during an outage.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The kill switch: a generation counter (bumped by every kill) and the outage's end.
pub(crate) struct Net {
    generation: watch::Sender<u64>,
    down_until: Mutex<Option<Instant>>,
}

impl Net {
    pub(crate) fn new() -> Net {
        Net {
            generation: watch::channel(0).0,
            down_until: Mutex::new(None),
        }
    }

    /// Resets every connection now and refuses new ones for `outage`.
    pub(crate) fn kill(&self, outage: Duration) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + outage);
        self.generation.send_modify(|g| *g += 1);
    }

    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// A receiver that changes at the next kill.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn is_down(&self) -> bool {
        let d = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        d.is_some_and(|t| Instant::now() < t)
    }
}

/// The listener axum serves from.
pub(crate) struct SimListener {
    inner: TcpListener,
    net: Arc<Net>,
}

impl SimListener {
    pub(crate) fn new(inner: TcpListener, net: Arc<Net>) -> Self {
        SimListener { inner, net }
    }
}

impl axum::serve::Listener for SimListener {
    type Io = SimStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.net.is_down() {
                        // Refused: a reset, as from a server that is not there.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        continue;
                    }
                    // Small frames go out at once, as from a real server: with Nagle's rule
                    // a frame written right after another waits for the client's delayed
                    // ACK (about 40 ms).
                    let _ = stream.set_nodelay(true);
                    let generation = self.net.generation();
                    return (
                        SimStream {
                            inner: stream,
                            net: self.net.clone(),
                            generation,
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails once the network was killed after it was accepted.
pub(crate) struct SimStream {
    inner: TcpStream,
    net: Arc<Net>,
    generation: u64,
}

impl SimStream {
    fn dead(&self) -> bool {
        self.net.generation() != self.generation
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "simulated network failure")
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead() {
            let _ = self.inner.set_zero_linger();
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.dead() {
            let _ = self.inner.set_zero_linger();
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! A listener whose connections the simulator can cut at once (dropped connections,
//! restarts), the way a server process losing its sockets looks to a client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accepts TCP connections that end (reset) when [`Cutter::cut`] is called.
pub(crate) struct CutListener {
    pub(crate) inner: TcpListener,
    pub(crate) cuts: watch::Receiver<u64>,
}

/// Cuts every connection accepted so far.
#[derive(Debug)]
pub(crate) struct Cutter(pub(crate) watch::Sender<u64>);

impl Cutter {
    pub(crate) fn cut(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// A connection that fails every read and write once cut.
pub(crate) struct CutStream {
    inner: TcpStream,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl CutStream {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.dead && self.cut.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "cut by the simulator",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for CutStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for CutListener {
    type Io = CutStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let mut rx = self.cuts.clone();
                    rx.borrow_and_update();
                    let cut = Box::pin(async move {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    });
                    return (
                        CutStream {
                            inner: stream,
                            cut,
                            dead: false,
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

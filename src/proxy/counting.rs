//! A stream wrapper that counts the bytes read from and written to it as they pass, for the
//! close events of upstream connections (counts stay right when a relay ends in an error).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes written to the wrapped stream (towards the destination).
    pub written: AtomicU64,
    /// Bytes read from the wrapped stream (from the destination).
    pub read: AtomicU64,
}

pub struct Counting<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S> Counting<S> {
    /// Counts into `counters` (shared with whoever reports them).
    pub fn with(inner: S, counters: Arc<Counters>) -> Counting<S> {
        Counting { inner, counters }
    }

    pub fn new(inner: S) -> (Counting<S>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (
            Counting {
                inner,
                counters: counters.clone(),
            },
            counters,
        )
    }
}

impl<S> Counting<S> {
    /// Adds what a write reports having written to the `written` count, and passes it on.
    fn count_written(&self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &r {
            self.counters
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        self.count_written(r)
    }
    /// Passed through (see `Prefixed`) and counted like `poll_write`.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count_written(r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

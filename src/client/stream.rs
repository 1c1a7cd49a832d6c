//! The backend socket: TCP or Unix, driven through readiness + `try_*` calls so the
//! connection can be polled from a future or from a response body alike.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::net::{TcpStream, UnixStream};

use super::Backend;

/// A connected backend socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects to the backend. TCP sockets get TCP_NODELAY: records are written in
    /// whole batches, and Nagle plus delayed ACK would otherwise stall small writes
    /// by tens of milliseconds.
    pub(crate) async fn connect(backend: &Backend) -> io::Result<Stream> {
        let stream = Stream::connect_nagle(backend).await?;
        stream.set_nodelay()?;
        Ok(stream)
    }

    /// Connects without TCP_NODELAY, for a connection that may need only one write:
    /// Nagle's algorithm holds back a write only while an earlier one is unacknowledged,
    /// so the caller sets [`set_nodelay`](Stream::set_nodelay) before a second write
    /// and saves the `setsockopt` when there is none (the SCGI and uwsgi exchanges).
    pub(crate) async fn connect_nagle(backend: &Backend) -> io::Result<Stream> {
        match backend {
            Backend::Tcp(addr) => {
                let stream = match addr.parse::<std::net::SocketAddr>() {
                    Ok(sock) => TcpStream::connect(sock).await?,
                    Err(_) => TcpStream::connect(addr.as_str()).await?,
                };
                Ok(Stream::Tcp(stream))
            }
            Backend::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    }

    /// TCP_NODELAY (nothing to do on a Unix socket).
    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
        }
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_write_ready(cx),
            Stream::Unix(s) => s.poll_write_ready(cx),
        }
    }

    /// Reads into the spare capacity of `buf` (no zeroing).
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
        }
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write_vectored(bufs),
            Stream::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}

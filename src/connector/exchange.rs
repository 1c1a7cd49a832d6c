//! One request on one connection of its own, full duplex: the encoded head and the
//! request body go out while the response comes in, each side with its own deadline.
//!
//! Neither SCGI nor uwsgi frames the response: it ends when the server closes, so the
//! connection is never reused and nothing here is pooled. Reading happens only when
//! the response body is polled, one chunk at a time (bounded memory); the request
//! body takes its next chunk only when the previous one is on the wire.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use crate::client::Backend;
use crate::client::conn::Connection;
use crate::client::stream::Stream;
use crate::client::upload::Upload;
use crate::error::{Error, ErrorKind, Timeout};
use crate::pool::Checkout;

/// Bytes asked of the socket per read: one response chunk at most.
const READ_CHUNK: usize = 64 * 1024;

/// The first read buffer: a whole head and a small body fit. Smaller than
/// `READ_CHUNK` because freeing a 64 KiB chunk makes glibc consolidate its fast bins
/// (about 1 000 instructions per request for a 13-byte answer, callgrind); a response
/// that fills it switches to `READ_CHUNK` buffers.
const FIRST_READ: usize = 16 * 1024;

/// Spare room below which the read buffer is replaced rather than read into.
const MIN_READ: usize = 2 * 1024;

/// The timeouts of one exchange (the builder's, from `Inner`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect: Option<Duration>,
    pub(crate) head: Option<Duration>,
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
    pub(crate) total: Option<Duration>,
    /// Shut the write side down once the body is sent (see `Encode::HALF_CLOSE`).
    pub(crate) half_close: bool,
}

/// A request in flight on its own connection.
pub(crate) struct StreamExchange {
    stream: Stream,
    /// Bytes not yet written: the head, then the current body chunk.
    out: Bytes,
    /// The rest of the request body; `None` once it is all written (or abandoned).
    upload: Option<Upload>,
    /// A write that failed: kept to explain an EOF before the head.
    write_error: Option<io::Error>,
    limits: Limits,
    /// Until the head: the head deadline (fixed); then the read idle deadline. One
    /// timer for the connect, head and idle deadlines in turn, moved with
    /// `Sleep::reset` (a later deadline is a store, not a trip through the timer
    /// wheel) instead of a timer made and dropped for each (callgrind: registering
    /// and deregistering one costs ~1 000 instructions, BENCHMARKS.md issue 16).
    read_deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `read_deadline` holds the idle deadline for the current wait.
    idle_armed: bool,
    head_done: bool,
    write_deadline: Option<Pin<Box<Sleep>>>,
    total_deadline: Option<Pin<Box<Sleep>>>,
    /// Where the socket reads into; each read's bytes are split off and handed out, so
    /// consecutive small reads share one allocation and a read that finds nothing
    /// allocates nothing.
    read_buf: BytesMut,
    /// The capacity of the next read buffer: `FIRST_READ`, then `READ_CHUNK`.
    read_size: usize,
    /// Whether a write has gone out (the next one sets TCP_NODELAY first).
    wrote: bool,
    /// Whether any body bytes were taken from the upload (half-close only then).
    sent_body: bool,
    /// Whether TCP_NODELAY is set.
    nodelay: bool,
    /// The backend pool's capacity this connection uses, freed when the exchange drops.
    _permit: Permit,
}

/// A slot of the backend's pool (see `transport::send`).
pub(crate) type Permit = Checkout<Connection>;

impl StreamExchange {
    /// Connects (within the connect timeout) and queues `head` and `upload`.
    pub(crate) async fn open(
        backend: &Backend,
        head: Bytes,
        upload: Upload,
        limits: Limits,
        started: Instant,
        permit: Permit,
    ) -> Result<StreamExchange, Error> {
        // No TCP_NODELAY yet: a request whose head and body go out in one write (every
        // GET) never needs it; `poll_write` sets it before a second write.
        let connecting = Stream::connect_nagle(backend);
        let mut timer = deadline(Instant::now(), limits.connect);
        let stream = {
            let mut connecting = std::pin::pin!(connecting);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(connected) = connecting.as_mut().poll(cx) {
                    return Poll::Ready(Ok(connected));
                }
                if let Some(t) = &mut timer
                    && t.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(Error::timeout(Timeout::Connect)));
                }
                Poll::Pending
            })
            .await?
        }
        .map_err(|err| Error::with(ErrorKind::Connect, format!("{backend}: {err}")))?;
        // As for FastCGI: the head timeout runs from the start of the exchange (a body
        // read ahead or spooled does not eat it), the total from the request's.
        let head_at = limits
            .head
            .and_then(|head| Instant::now().checked_add(head));
        let read_deadline = match (timer, head_at) {
            (Some(mut t), Some(at)) => {
                t.as_mut().reset(at);
                Some(t)
            }
            (None, Some(at)) => Some(Box::pin(tokio::time::sleep_until(at))),
            (_, None) => None,
        };
        Ok(StreamExchange {
            stream,
            out: head,
            upload: Some(upload),
            write_error: None,
            limits,
            read_deadline,
            idle_armed: false,
            head_done: false,
            write_deadline: None,
            total_deadline: deadline(started, limits.total),
            read_buf: BytesMut::new(),
            read_size: FIRST_READ,
            wrote: false,
            sent_body: false,
            nodelay: false,
            _permit: permit,
        })
    }

    /// The head is parsed: from now on the read deadline is the idle timeout.
    pub(crate) fn head_done(&mut self) {
        self.head_done = true;
        self.idle_armed = false;
        if self.limits.read.is_none() {
            self.read_deadline = None;
        }
    }

    /// The next bytes of the response, `None` at EOF. Drives the request body too.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        if let Some(total) = &mut self.total_deadline
            && total.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(Error::timeout(Timeout::Total)));
        }
        if self.upload.is_some() || !self.out.is_empty() {
            match self.poll_write(cx) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                Poll::Ready(Err(WriteFailed::Body(err))) => return Poll::Ready(Err(err)),
                Poll::Ready(Err(WriteFailed::Timeout)) => {
                    return Poll::Ready(Err(Error::timeout(Timeout::Write)));
                }
                Poll::Ready(Err(WriteFailed::Socket(err))) => {
                    // The server may have answered early (a 413) and closed its side:
                    // stop writing and read what it said.
                    tracing::debug!(error = %err, "writing to the backend failed; reading its answer");
                    self.abandon_upload(err);
                }
            }
        }
        loop {
            let spare = self.read_buf.capacity() - self.read_buf.len();
            if spare < MIN_READ {
                self.read_buf = BytesMut::with_capacity(self.read_size);
            }
            let spare = self.read_buf.capacity() - self.read_buf.len();
            match self.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) => return Poll::Ready(Ok(None)),
                Ok(n) => {
                    if self.head_done {
                        // Data came: the idle deadline restarts at the next wait.
                        self.idle_armed = false;
                    }
                    if n >= spare {
                        // More may be waiting: read in full chunks from now on.
                        self.read_size = READ_CHUNK;
                    }
                    return Poll::Ready(Ok(Some(self.read_buf.split().freeze())));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(self.read_error(err))),
            }
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(self.read_error(err))),
                Poll::Pending => {}
            }
            if self.head_done
                && !self.idle_armed
                && let Some(idle) = self.limits.read
            {
                self.idle_armed = true;
                match (&mut self.read_deadline, Instant::now().checked_add(idle)) {
                    (Some(timer), Some(at)) => timer.as_mut().reset(at),
                    (slot, Some(at)) => *slot = Some(Box::pin(tokio::time::sleep_until(at))),
                    (slot, None) => *slot = None,
                }
            }
            if let Some(deadline) = &mut self.read_deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                let which = if self.head_done {
                    Timeout::Read
                } else {
                    Timeout::ResponseHead
                };
                return Poll::Ready(Err(Error::timeout(which)));
            }
            return Poll::Pending;
        }
    }

    /// The response is complete (its Content-Length is in): one more non-blocking
    /// read, so that a server that has already closed (uWSGI and flup close right
    /// after the last byte) is seen to have closed first. Closing then is the passive
    /// close: the TIME_WAIT stays with the server, as it does behind nginx, which
    /// reads to EOF too, instead of piling up on our ephemeral ports and slowing
    /// every later `connect(2)`'s port search. A server that has not closed yet is
    /// not waited for.
    pub(crate) fn finish(self) {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Ok(0) => {}
            Ok(_) => tracing::debug!("the backend sent bytes beyond its Content-Length"),
            Err(_) => {}
        }
    }

    /// Why an EOF came before the head, if a write had failed first.
    pub(crate) fn write_error(&self) -> Option<&io::Error> {
        self.write_error.as_ref()
    }

    fn read_error(&self, err: io::Error) -> Error {
        Error::io(err)
    }

    /// The request is complete: EOF tells a server that reads its input to the end
    /// (flup's SCGI `wsgi.input` is the raw socket) that nothing more comes.
    fn shutdown_write(&mut self, cx: &mut Context<'_>) {
        // tokio's sockets shut down at once (`shutdown(2)`), never Pending.
        let result = match &mut self.stream {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        };
        if let Poll::Ready(Err(err)) = result {
            tracing::debug!(error = %err, "shutting down the write side failed");
        }
    }

    fn abandon_upload(&mut self, err: io::Error) {
        self.upload = None;
        self.out = Bytes::new();
        self.write_deadline = None;
        self.write_error = Some(err);
    }

    /// Writes as much as the socket takes; `Ready(Ok)` once the body is all written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteFailed>> {
        loop {
            if self.out.is_empty() {
                let Some(upload) = &mut self.upload else {
                    return Poll::Ready(Ok(()));
                };
                // A client that is slow to send is not the backend's fault: no write
                // deadline runs while we wait for it.
                self.write_deadline = None;
                match ready!(upload.poll_chunk(cx)) {
                    Ok(Some(chunk)) => {
                        self.sent_body |= !chunk.is_empty();
                        self.out = chunk;
                    }
                    Ok(None) => {
                        self.upload = None;
                        if self.limits.half_close && self.sent_body {
                            self.shutdown_write(cx);
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Err(err) => return Poll::Ready(Err(WriteFailed::Body(err))),
                }
                continue;
            }
            if self.wrote && !self.nodelay {
                // Nagle would hold this write until the backend acknowledged the last
                // one; with a delayed ACK that is tens of milliseconds.
                self.nodelay = true;
                if let Err(err) = self.stream.set_nodelay() {
                    tracing::debug!(error = %err, "setting TCP_NODELAY failed");
                }
            }
            match self.stream.try_write_vectored(&[IoSlice::new(&self.out)]) {
                Ok(0) => {
                    return Poll::Ready(Err(WriteFailed::Socket(io::ErrorKind::WriteZero.into())));
                }
                Ok(n) => {
                    self.wrote = true;
                    self.out.advance(n.min(self.out.len()));
                    self.write_deadline = None;
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(WriteFailed::Socket(err))),
            }
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(WriteFailed::Socket(err))),
                Poll::Pending => {}
            }
            if self.write_deadline.is_none()
                && let Some(limit) = self.limits.write
            {
                self.write_deadline = Some(Box::pin(tokio::time::sleep(limit)));
            }
            if let Some(deadline) = &mut self.write_deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(WriteFailed::Timeout));
            }
            return Poll::Pending;
        }
    }
}

/// A timer `after` past `from`; none when unset or beyond what an `Instant` holds.
fn deadline(from: Instant, after: Option<Duration>) -> Option<Pin<Box<Sleep>>> {
    let at = from.checked_add(after?)?;
    Some(Box::pin(tokio::time::sleep_until(at)))
}

enum WriteFailed {
    /// The client's body failed (or was cut by a limit): the request is over.
    Body(Error),
    /// The backend stopped reading for the write timeout.
    Timeout,
    /// The socket refused the write (the backend closed).
    Socket(io::Error),
}

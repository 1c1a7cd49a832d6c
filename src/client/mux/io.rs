//! The driver task's loop: the socket of one multiplexed connection, read into the
//! demultiplexer and written from the streams' turns.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use super::demux::Notice;
use super::driver::Shared;
use super::records::abort_record;
use crate::client::stream::Stream;
use crate::error::Error;

/// Read in chunks of up to this size.
const READ_CHUNK: usize = 64 * 1024;
/// Most segments handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Reads per wake-up before the driver turns to writing.
const MAX_READS_PER_TURN: usize = 16;

/// The driver's own state: the socket and its buffers.
pub(super) struct Io {
    stream: Stream,
    read_buf: BytesMut,
    notices: Vec<Notice>,
    /// Segments taken from the shared state, being written.
    writing: VecDeque<Bytes>,
    write_stall: Option<Duration>,
    /// Armed while records wait for a socket that does not take them.
    stall_timer: Option<Pin<Box<Sleep>>>,
    idle_timeout: Option<Duration>,
    /// Armed while no stream uses the connection.
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl Io {
    pub(super) fn new(
        stream: Stream,
        write_stall: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Io {
        Io {
            stream,
            read_buf: BytesMut::new(),
            notices: Vec::new(),
            writing: VecDeque::new(),
            write_stall,
            stall_timer: None,
            idle_timeout,
            idle_timer: None,
        }
    }

    /// Reads and writes until the connection fails or nobody is left to use it.
    pub(super) fn poll_drive(
        &mut self,
        shared: &Weak<Shared>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let Some(shared) = shared.upgrade() else {
            return Poll::Ready(Ok(()));
        };
        if let Poll::Ready(Err(err)) = self.poll_read(&shared, cx) {
            return Poll::Ready(Err(err));
        }
        match self.poll_write(&shared, cx) {
            Poll::Pending => self.poll_idle(&shared, cx),
            done => done,
        }
    }

    /// A connection that carries no stream for the idle timeout is closed, as the pool
    /// closes an idle exclusive one: marked failed under the lock (so no stream can
    /// open on it in between), then the task ends and the socket closes.
    fn poll_idle(&mut self, shared: &Shared, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(limit) = self.idle_timeout else {
            return Poll::Pending;
        };
        let mut state = shared.lock();
        if state.demux.in_use() > 0 || !self.writing.is_empty() || !state.control.is_empty() {
            self.idle_timer = None;
            return Poll::Pending;
        }
        let timer = self
            .idle_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!("closing a multiplexed FastCGI connection idle for {limit:?}");
                state.failed = Some(format!("closed after {limit:?} without a request"));
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads what there is (a bounded number of reads, so a flood cannot starve the
    /// writes) and routes it. Pending once the socket has nothing more.
    fn poll_read(&mut self, shared: &Arc<Shared>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        for _ in 0..MAX_READS_PER_TURN {
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 8 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match self.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) => {
                    return Poll::Ready(Err(Error::io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the backend closed the connection",
                    ))));
                }
                Ok(_) => self.route(shared)?,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Error::io(err))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(err) => return Poll::Ready(Err(Error::io(err))),
            }
        }
        // Come back at once, after the writes.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Feeds the read bytes to the demultiplexer and acts on its notices.
    fn route(&mut self, shared: &Shared) -> Result<(), Error> {
        let mut freed = false;
        {
            let mut state = shared.lock();
            self.notices.clear();
            state.demux.feed(&mut self.read_buf, &mut self.notices)?;
            for notice in &self.notices {
                match *notice {
                    Notice::Ready(id) => state.wake(id),
                    Notice::Abort(id) => {
                        state.control.push_back(abort_record(id));
                        state.wake(id);
                    }
                    Notice::Freed(_) => freed = true,
                }
            }
        }
        if freed {
            shared.tell_freed();
        }
        Ok(())
    }

    /// Writes control records, then one record per stream per turn, until nothing is
    /// left (Pending, waiting for output) or the socket is full (Pending, waiting for
    /// it, bounded by the write stall limit).
    fn poll_write(&mut self, shared: &Shared, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if self.writing.is_empty() {
                let mut state = shared.lock();
                self.writing.extend(state.control.drain(..));
                for _ in 0..state.turns.len() {
                    let Some(mut turn) = state.turns.pop_front() else {
                        break;
                    };
                    if let Some(record) = turn.records.pop_front() {
                        self.writing.push_back(record.head);
                        if !record.body.is_empty() {
                            self.writing.push_back(record.body);
                        }
                        turn.began = true;
                    }
                    if !turn.records.is_empty() {
                        state.turns.push_back(turn);
                    } else if turn.wake_when_taken {
                        // It may queue its next body chunk now.
                        state.wake(turn.id);
                    }
                }
                if self.writing.is_empty() {
                    self.stall_timer = None;
                    if state.handles == 0 {
                        // Nobody can use the connection any more.
                        return Poll::Ready(Ok(()));
                    }
                    state.driver = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, segment) in slices.iter_mut().zip(&self.writing) {
                *slot = IoSlice::new(segment);
                count += 1;
            }
            match self
                .stream
                .try_write_vectored(slices.get(..count).unwrap_or_default())
            {
                Ok(0) => return Poll::Ready(Err(Error::io(io::ErrorKind::WriteZero.into()))),
                Ok(n) => {
                    self.advance(n);
                    self.stall_timer = None;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Error::io(err))),
                        Poll::Pending => {
                            // Registered for write readiness; also for new output.
                            shared.lock().driver = Some(cx.waker().clone());
                            return self.poll_stall(cx);
                        }
                    }
                }
                Err(err) => return Poll::Ready(Err(Error::io(err))),
            }
        }
    }

    /// The socket refuses bytes: fine for a while, but a backend that stops reading a
    /// multiplexed connection stalls every stream on it (Go's `net/http/fcgi` does when
    /// a handler leaves its body unread), so past the limit the connection fails.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(limit) = self.write_stall else {
            return Poll::Pending;
        };
        let timer = self
            .stall_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Error::msg(
                crate::error::ErrorKind::Io,
                format!("the backend read nothing of the connection for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.writing.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.writing.pop_front();
            } else {
                let _ = front.split_to(n);
                return;
            }
        }
    }
}

use std::future::Future as _;

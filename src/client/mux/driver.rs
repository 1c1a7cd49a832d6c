//! The task that owns a multiplexed connection's socket, and the stream handles that
//! share it.
//!
//! One task per connection reads records as fast as the backend sends them (into the
//! [`Demux`], whose per-stream bounds keep one slow stream from stopping the reader)
//! and writes the streams' records fairly: control records (FCGI_ABORT_REQUEST) first,
//! then one record of each stream with output per turn, round-robin, in one vectored
//! write. A [`MuxStream`] is one request on it: it queues its records, reads its events
//! and, dropped before END_REQUEST, has FCGI_ABORT_REQUEST sent and its id kept until
//! the END_REQUEST that follows is consumed (the connection stays up). A connection
//! error fails every stream on it with the same message.
//!
//! This first version takes a request whose STDIN is wholly in memory (the records
//! given to [`MuxConn::open`]); a streamed body would be pushed by its stream as the
//! driver drains it, with one chunk in flight, like `Exchange`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use super::demux::{Abandon, Demux, Notice, StreamEvent};
use crate::client::stream::Stream;
use crate::error::{Error, ErrorKind};
use crate::proto::{HEADER_LEN, Header, Record};

/// Read in chunks of up to this size.
const READ_CHUNK: usize = 64 * 1024;
/// Most segments handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Reads per wake-up before the driver turns to writing.
const MAX_READS_PER_TURN: usize = 16;

/// A multiplexed connection: cheap to clone; the driver task runs while a clone or a
/// stream lives, or until the connection fails.
#[derive(Debug)]
pub(crate) struct MuxConn {
    shared: Arc<Shared>,
}

impl Clone for MuxConn {
    fn clone(&self) -> MuxConn {
        self.shared.lock().handles += 1;
        MuxConn {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for MuxConn {
    fn drop(&mut self) {
        self.shared.release_handle();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    demux: Demux,
    /// The owner of each id waiting for an event (index `id - 1`).
    wakers: Vec<Option<Waker>>,
    /// Streams with records to write, in turn order.
    turns: VecDeque<Turn>,
    /// Written before any stream's records.
    control: VecDeque<Bytes>,
    /// The driver, to wake when there is something to write or nobody is left.
    driver: Option<Waker>,
    /// Why the connection failed (every stream then fails with it).
    failed: Option<String>,
    /// `MuxConn` clones and streams alive: at 0 the driver closes the connection.
    handles: usize,
}

/// One stream's records still to be written.
#[derive(Debug)]
struct Turn {
    id: u16,
    records: VecDeque<Bytes>,
    /// Its first record (BEGIN_REQUEST) was taken for writing: the backend knows it.
    began: bool,
}

impl MuxConn {
    /// Starts the driver task on `stream`, for at most `max_streams` requests at once,
    /// each buffering at most `budget` unread bytes.
    pub(crate) fn start(stream: Stream, max_streams: usize, budget: usize) -> MuxConn {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                demux: Demux::new(max_streams, budget),
                wakers: Vec::new(),
                turns: VecDeque::new(),
                control: VecDeque::new(),
                driver: None,
                failed: None,
                handles: 1,
            }),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut io = Io {
                stream,
                read_buf: BytesMut::new(),
                notices: Vec::new(),
                writing: VecDeque::new(),
            };
            let result = poll_fn(|cx| io.poll_drive(&weak, cx)).await;
            if let (Err(err), Some(shared)) = (result, weak.upgrade()) {
                let mut state = shared.lock();
                state.failed = Some(err.to_string());
                for waker in state.wakers.iter_mut().filter_map(Option::take) {
                    waker.wake();
                }
            }
        });
        MuxConn { shared }
    }

    /// Streams open (or abandoned, awaiting their END_REQUEST) on this connection.
    pub(crate) fn in_use(&self) -> usize {
        self.shared.lock().demux.in_use()
    }

    /// Whether the connection failed.
    pub(crate) fn is_failed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }

    /// FCGI_CANT_MPX_CONN: one stream at a time from now on.
    pub(crate) fn limit_streams(&self, max_streams: usize) {
        self.shared.lock().demux.set_max_streams(max_streams);
    }

    /// Opens a stream for `records` (BEGIN_REQUEST, PARAMS and the whole STDIN, encoded
    /// for any request id: the id is set here). `None` at the stream limit or when the
    /// connection failed.
    pub(crate) fn open(&self, records: &[u8]) -> Option<MuxStream> {
        let mut state = self.shared.lock();
        if state.failed.is_some() {
            return None;
        }
        let id = state.demux.open()?;
        let index = usize::from(id) - 1;
        if state.wakers.len() <= index {
            state.wakers.resize_with(index + 1, || None);
        }
        state.turns.push_back(Turn {
            id,
            records: with_request_id(records, id),
            began: false,
        });
        state.handles += 1;
        if let Some(driver) = state.driver.take() {
            driver.wake();
        }
        Some(MuxStream {
            shared: Arc::clone(&self.shared),
            id,
            done: false,
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle is gone: the driver may have something to write (an abort) or nobody
    /// left to serve.
    fn release_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_sub(1);
        if let Some(driver) = state.driver.take() {
            driver.wake();
        }
    }
}

/// Splits encoded records into one segment per record, each with `id` as its request id.
fn with_request_id(records: &[u8], id: u16) -> VecDeque<Bytes> {
    let mut out = VecDeque::new();
    let mut rest = records;
    while let Some(head) = rest.first_chunk::<HEADER_LEN>() {
        let len = HEADER_LEN + Header::from_bytes(head).body_len();
        let Some(record) = rest.get(..len) else {
            break;
        };
        let mut record = BytesMut::from(record);
        if let Some(field) = record.get_mut(2..4) {
            field.copy_from_slice(&id.to_be_bytes());
        }
        out.push_back(record.freeze());
        rest = rest.get(len..).unwrap_or_default();
    }
    out
}

/// One request on a multiplexed connection.
#[derive(Debug)]
pub(crate) struct MuxStream {
    shared: Arc<Shared>,
    id: u16,
    /// END_REQUEST (or an error) was read: nothing to abort on drop.
    done: bool,
}

impl MuxStream {
    /// The request id of this stream on its connection.
    pub(crate) fn id(&self) -> u16 {
        self.id
    }

    /// The next event: STDOUT, STDERR or END_REQUEST. A stream aborted for buffering
    /// too much, and a failed connection, are errors.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<StreamEvent, Error>> {
        let mut state = self.shared.lock();
        match state.demux.pop(self.id) {
            Some(StreamEvent::Overflowed) => {
                self.done = true;
                Poll::Ready(Err(Error::msg(
                    ErrorKind::Io,
                    "the response was aborted: its client read more slowly than the backend \
                     wrote, over the per-stream buffer of a multiplexed connection",
                )))
            }
            Some(event) => {
                if matches!(event, StreamEvent::End(_)) {
                    self.done = true;
                }
                Poll::Ready(Ok(event))
            }
            None => {
                if let Some(why) = &state.failed {
                    self.done = true;
                    return Poll::Ready(Err(Error::msg(
                        ErrorKind::Io,
                        format!("the multiplexed backend connection failed: {why}"),
                    )));
                }
                let index = usize::from(self.id) - 1;
                if let Some(slot) = state.wakers.get_mut(index) {
                    *slot = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            if let Some(slot) = state.wakers.get_mut(usize::from(self.id) - 1) {
                *slot = None;
            }
            // Records not yet written are dropped with the stream.
            let turn = state
                .turns
                .iter()
                .position(|t| t.id == self.id)
                .and_then(|i| state.turns.remove(i));
            let began = turn.is_none_or(|t| t.began);
            if state.failed.is_none() {
                match state.demux.abandon(self.id) {
                    Abandon::SendAbort if began => {
                        let abort = abort_record(self.id);
                        state.control.push_back(abort);
                    }
                    // The backend never heard of it: no END_REQUEST will come.
                    Abandon::SendAbort => state.demux.release(self.id),
                    Abandon::Pending | Abandon::Freed => {}
                }
            }
        }
        self.shared.release_handle();
    }
}

fn abort_record(id: u16) -> Bytes {
    let mut abort = BytesMut::new();
    Record::AbortRequest { request_id: id }.encode(&mut abort);
    abort.freeze()
}

/// The driver's own state: the socket and its buffers.
struct Io {
    stream: Stream,
    read_buf: BytesMut,
    notices: Vec<Notice>,
    /// Segments taken from the shared state, being written.
    writing: VecDeque<Bytes>,
}

impl Io {
    /// Reads and writes until the connection fails or nobody is left to use it.
    fn poll_drive(
        &mut self,
        shared: &std::sync::Weak<Shared>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let Some(shared) = shared.upgrade() else {
            return Poll::Ready(Ok(()));
        };
        // Read what there is (a bounded number of reads, so a flood cannot starve the
        // writes), then route it.
        let mut reads = 0;
        loop {
            reads += 1;
            if reads > MAX_READS_PER_TURN {
                // Come back at once, after the writes.
                cx.waker().wake_by_ref();
                break;
            }
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
                Ok(_) => {
                    let mut state = shared.lock();
                    self.notices.clear();
                    state.demux.feed(&mut self.read_buf, &mut self.notices)?;
                    for notice in &self.notices {
                        let (Notice::Ready(id) | Notice::Abort(id) | Notice::Freed(id)) = *notice;
                        if let Notice::Abort(id) = *notice {
                            state.control.push_back(abort_record(id));
                        }
                        let waker = state
                            .wakers
                            .get_mut(usize::from(id).wrapping_sub(1))
                            .and_then(Option::take);
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Error::io(err))),
                        Poll::Pending => break,
                    }
                }
                Err(err) => return Poll::Ready(Err(Error::io(err))),
            }
        }
        // Write: control records, then one record per stream per turn.
        loop {
            if self.writing.is_empty() {
                let mut state = shared.lock();
                self.writing.extend(state.control.drain(..));
                let turns = state.turns.len();
                for _ in 0..turns {
                    let Some(mut turn) = state.turns.pop_front() else {
                        break;
                    };
                    if let Some(record) = turn.records.pop_front() {
                        self.writing.push_back(record);
                        turn.began = true;
                    }
                    if !turn.records.is_empty() {
                        state.turns.push_back(turn);
                    }
                }
                if self.writing.is_empty() {
                    if state.handles == 0 {
                        // Nobody can use the connection any more.
                        return Poll::Ready(Ok(()));
                    }
                    state.driver = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            let slices: Vec<IoSlice<'_>> = self
                .writing
                .iter()
                .take(MAX_SLICES)
                .map(|b| IoSlice::new(b))
                .collect();
            match self.stream.try_write_vectored(&slices) {
                Ok(0) => return Poll::Ready(Err(Error::io(io::ErrorKind::WriteZero.into()))),
                Ok(mut n) => {
                    while n > 0 {
                        let Some(front) = self.writing.front_mut() else {
                            break;
                        };
                        if n >= front.len() {
                            n -= front.len();
                            self.writing.pop_front();
                        } else {
                            let _ = front.split_to(n);
                            n = 0;
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(Error::io(err))),
                        Poll::Pending => {
                            // Registered for write readiness; also for new output.
                            shared.lock().driver = Some(cx.waker().clone());
                            return Poll::Pending;
                        }
                    }
                }
                Err(err) => return Poll::Ready(Err(Error::io(err))),
            }
        }
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;

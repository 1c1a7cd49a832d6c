//! A multiplexed connection's shared state, and the handles that share it: the
//! [`MuxConn`] (the connection, as the service's set holds it) and [`MuxStream`]s (one
//! request each).
//!
//! One task per connection (`io.rs`) reads records as fast as the backend sends them
//! (into the [`Demux`], whose per-stream bounds keep one slow stream from stopping the
//! reader) and writes the streams' records fairly: control records (FCGI_ABORT_REQUEST)
//! first, then one record of each stream with output per turn, round-robin, in one
//! vectored write. A stream queues its BEGIN_REQUEST and PARAMS at once and its body
//! one chunk at a time (the next chunk only once the driver took the previous one), so
//! a body never piles up in memory and a stream whose application stops reading its
//! body holds back only its own chunks. Dropped before END_REQUEST, a stream has
//! FCGI_ABORT_REQUEST sent and its id kept until the END_REQUEST that follows is
//! consumed (the connection stays up). A connection error fails every stream on it with
//! the same message.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::demux::{Abandon, Demux, StreamEvent};
use super::io::Io;
use super::records::{OutRecord, abort_record, stdin_end, stdin_records, with_request_id};
use crate::client::stream::Stream;
use crate::error::{Error, ErrorKind};

/// How a multiplexed connection is run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MuxSettings {
    /// Requests at once on the connection (FCGI_MAX_REQS, or the configured limit).
    pub(crate) max_streams: usize,
    /// Unread STDOUT and STDERR bytes one stream may buffer in memory.
    pub(crate) budget: usize,
    /// Unread STDOUT bytes one stream may have in its spill file beyond that, before it
    /// is aborted.
    pub(crate) spill_limit: u64,
    /// Longest time the backend may refuse to read while records wait to be written;
    /// then the connection fails (it would stall every stream on it).
    pub(crate) write_stall: Option<Duration>,
    /// How long the connection may carry no stream before it is closed.
    pub(crate) idle_timeout: Option<Duration>,
}

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
pub(super) struct Shared {
    state: Mutex<State>,
    /// Told whenever an id becomes free or the connection fails, so a request waiting
    /// for room on the backend's connections looks again.
    freed: Arc<Notify>,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) demux: Demux,
    /// The owner of each id waiting for an event or for room to send (index `id - 1`).
    pub(super) wakers: Vec<Option<Waker>>,
    /// Streams with records to write, in turn order.
    pub(super) turns: VecDeque<Turn>,
    /// Written before any stream's records.
    pub(super) control: VecDeque<Bytes>,
    /// The driver, to wake when there is something to write or nobody is left.
    pub(super) driver: Option<Waker>,
    /// Why the connection failed (every stream then fails with it).
    pub(super) failed: Option<String>,
    /// `MuxConn` clones and streams alive: at 0 the driver closes the connection.
    pub(super) handles: usize,
    /// Streams opened on the connection so far.
    opened: u64,
}

/// One stream's records still to be written.
#[derive(Debug)]
pub(super) struct Turn {
    pub(super) id: u16,
    pub(super) records: VecDeque<OutRecord>,
    /// Its first record (BEGIN_REQUEST) was taken for writing: the backend knows it.
    pub(super) began: bool,
    /// Its owner has more to queue (a body): wake it when the driver took the last.
    pub(super) wake_when_taken: bool,
}

impl State {
    /// Wakes the owner of `id`, if it waits.
    pub(super) fn wake(&mut self, id: u16) {
        let waker = self
            .wakers
            .get_mut(usize::from(id).wrapping_sub(1))
            .and_then(Option::take);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_driver(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.wake();
        }
    }
}

impl MuxConn {
    /// Starts the driver task on `stream`; `freed` is told when an id frees up.
    pub(crate) fn start(stream: Stream, settings: MuxSettings, freed: Arc<Notify>) -> MuxConn {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                demux: Demux::new(settings.max_streams, settings.budget, settings.spill_limit),
                wakers: Vec::new(),
                turns: VecDeque::new(),
                control: VecDeque::new(),
                driver: None,
                failed: None,
                handles: 1,
                opened: 0,
            }),
            freed,
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut io = Io::new(stream, settings.write_stall, settings.idle_timeout);
            let result = std::future::poll_fn(|cx| io.poll_drive(&weak, cx)).await;
            if let (Err(err), Some(shared)) = (result, weak.upgrade()) {
                shared.fail(&err);
            }
        });
        MuxConn { shared }
    }

    /// Streams open (or abandoned, awaiting their END_REQUEST) on this connection.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.shared.lock().demux.in_use()
    }

    /// Whether the connection failed.
    pub(crate) fn is_failed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }

    /// Over half its ids are held by abandoned streams still awaiting an END_REQUEST
    /// (which a backend that ignores FCGI_ABORT_REQUEST never sends): no new stream
    /// should go on it.
    pub(crate) fn is_spent(&self) -> bool {
        let state = self.shared.lock();
        state.demux.abandoned() * 2 > state.demux.max_streams()
    }

    /// FCGI_CANT_MPX_CONN: one stream at a time from now on.
    pub(crate) fn limit_streams(&self, max_streams: usize) {
        self.shared.lock().demux.set_max_streams(max_streams);
    }

    /// Opens a stream for `begin` (BEGIN_REQUEST) and `records` (PARAMS and, unless
    /// `body_follows` through [`MuxStream::send_stdin`], the whole STDIN), encoded for
    /// any request id: the id is set here. `None` at the stream limit or when the
    /// connection failed. `reused` says whether the connection carried streams before.
    pub(crate) fn open(
        &self,
        begin: &[u8],
        records: &[u8],
        body_follows: bool,
    ) -> Option<(MuxStream, bool)> {
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
            records: VecDeque::from([with_request_id(begin, records, id)]),
            began: false,
            wake_when_taken: body_follows,
        });
        state.handles += 1;
        let reused = state.opened > 0;
        state.opened += 1;
        state.wake_driver();
        let stream = MuxStream {
            shared: Arc::clone(&self.shared),
            id,
            done: false,
        };
        Some((stream, reused))
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An id became free: a request waiting for room may take it.
    pub(super) fn tell_freed(&self) {
        self.freed.notify_waiters();
    }

    /// The connection is broken: every stream on it fails with `err`.
    fn fail(&self, err: &Error) {
        {
            let mut state = self.lock();
            state.failed = Some(err.to_string());
            for waker in state.wakers.iter_mut().filter_map(Option::take) {
                waker.wake();
            }
        }
        // Its capacity is gone: a waiting request may open another connection.
        self.tell_freed();
    }

    /// A handle is gone: the driver may have something to write (an abort) or nobody
    /// left to serve.
    fn release_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_sub(1);
        state.wake_driver();
    }
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
    #[cfg(test)]
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
                    // Reading END_REQUEST freed the id.
                    drop(state);
                    self.shared.tell_freed();
                }
                Poll::Ready(Ok(event))
            }
            None => match state.failed.clone() {
                Some(why) => {
                    self.done = true;
                    Poll::Ready(Err(failed(&why)))
                }
                None => {
                    self.register(&mut state, cx);
                    Poll::Pending
                }
            },
        }
    }

    /// Ready when the stream may queue more of its body: the driver has taken what it
    /// queued before (one chunk in flight per stream). A failed connection is an error.
    pub(crate) fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut state = self.shared.lock();
        if let Some(why) = &state.failed {
            return Poll::Ready(Err(failed(why)));
        }
        if state.turns.iter().any(|t| t.id == self.id) {
            self.register(&mut state, cx);
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a chunk of the body as STDIN records (call after
    /// [`poll_send_ready`](MuxStream::poll_send_ready)).
    pub(crate) fn send_stdin(&mut self, chunk: Bytes) {
        let mut records = VecDeque::new();
        stdin_records(self.id, chunk, &mut records);
        self.queue(records);
    }

    /// Queues the empty STDIN record that ends the body.
    pub(crate) fn send_stdin_end(&mut self) {
        self.queue(VecDeque::from([stdin_end(self.id)]));
    }

    fn queue(&mut self, mut records: VecDeque<OutRecord>) {
        let mut state = self.shared.lock();
        if let Some(turn) = state.turns.iter_mut().find(|t| t.id == self.id) {
            turn.records.append(&mut records);
        } else {
            state.turns.push_back(Turn {
                id: self.id,
                records,
                // A stream without a turn had all its earlier records taken.
                began: true,
                wake_when_taken: true,
            });
        }
        state.wake_driver();
    }

    fn register(&self, state: &mut State, cx: &Context<'_>) {
        if let Some(slot) = state.wakers.get_mut(usize::from(self.id) - 1) {
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
    }
}

fn failed(why: &str) -> Error {
    Error::msg(
        ErrorKind::Io,
        format!("the multiplexed backend connection failed: {why}"),
    )
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let mut freed = false;
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
                    Abandon::SendAbort => {
                        state.demux.release(self.id);
                        freed = true;
                    }
                    // END_REQUEST had arrived unread (a stream that read it was told).
                    Abandon::Freed => freed = !self.done,
                    // Overflowed: the id is kept until its END_REQUEST.
                    Abandon::Pending => {}
                }
            }
        }
        if freed {
            self.shared.tell_freed();
        }
        self.shared.release_handle();
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;

//! The multiplexed connections of one backend: a new stream goes on the first
//! connection with room, another connection is opened only when every open one is at
//! its stream limit (and the backend's connection limit allows), and beyond that a
//! request waits, bounded by the queue timeout, for an id to free up.
//!
//! A connection that carries no stream for the idle timeout closes itself (its driver
//! marks it failed). A failed connection leaves the set the next time a stream is
//! opened, and so does a spent one: one with over half its ids held by aborted requests
//! whose END_REQUEST never came (flup ignores FCGI_ABORT_REQUEST), which could
//! otherwise never be reused.
//! Its driver reads all the time, so a backend that closes a connection is noticed at
//! once (unlike a pooled exclusive connection, which is found stale only when used).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::driver::{MuxConn, MuxSettings, MuxStream};
use crate::client::Backend;
use crate::client::stream::Stream;
use crate::error::{Error, ErrorKind, Timeout};

/// What bounds one backend's multiplexed connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MuxLimits {
    /// Connections at most (FCGI_MAX_CONNS or the configured cap, whichever is lower).
    pub(crate) max_conns: usize,
    /// Streams per connection (FCGI_MAX_REQS or the configured limit).
    pub(crate) max_streams: usize,
    /// Unread bytes one stream may buffer in memory.
    pub(crate) budget: usize,
    /// Unread STDOUT bytes one stream may have in its spill file.
    pub(crate) spill_limit: u64,
    pub(crate) connect_timeout: Option<Duration>,
    /// Longest wait for room when every connection is full.
    pub(crate) queue_timeout: Option<Duration>,
    /// Longest time the backend may read nothing while records wait.
    pub(crate) write_stall: Option<Duration>,
    /// How long a connection may carry no stream before it is closed.
    pub(crate) idle_timeout: Option<Duration>,
}

/// A stream opened on the set.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) stream: MuxStream,
    /// The connection, to lower its stream limit on FCGI_CANT_MPX_CONN.
    pub(crate) conn: MuxConn,
    /// The connection carried streams before this one.
    pub(crate) reused: bool,
}

/// One backend's multiplexed connections.
#[derive(Debug, Default)]
pub(crate) struct MuxSet {
    state: Mutex<SetState>,
    freed: Arc<Notify>,
    /// Streams opened and not yet dropped, and requests waiting for room (for load).
    in_flight: Arc<AtomicUsize>,
    waiting: AtomicUsize,
    opened_conns: AtomicU64,
    opened_streams: AtomicU64,
}

#[derive(Debug, Default)]
struct SetState {
    conns: Vec<MuxConn>,
    /// Connections being opened (counted against the limit).
    connecting: usize,
    /// Set by FCGI_CANT_MPX_CONN: new connections carry one stream at a time.
    single_stream: bool,
}

/// What the set reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SetStats {
    pub(crate) conns: usize,
    pub(crate) in_flight: usize,
    pub(crate) waiting: usize,
    pub(crate) opened_conns: u64,
    pub(crate) opened_streams: u64,
}

impl MuxSet {
    fn lock(&self) -> MutexGuard<'_, SetState> {
        // Nothing panics under this lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stats(&self) -> SetStats {
        SetStats {
            conns: self.lock().conns.iter().filter(|c| !c.is_failed()).count(),
            in_flight: self.in_flight.load(Ordering::Acquire),
            waiting: self.waiting.load(Ordering::Acquire),
            opened_conns: self.opened_conns.load(Ordering::Acquire),
            opened_streams: self.opened_streams.load(Ordering::Acquire),
        }
    }

    /// Requests on the set's connections and requests waiting for room: atomics only,
    /// for the balancer's per-request look at every backend.
    pub(crate) fn load(&self) -> (usize, usize) {
        (
            self.in_flight.load(Ordering::Acquire),
            self.waiting.load(Ordering::Acquire),
        )
    }

    /// FCGI_CANT_MPX_CONN from `conn`: it and every later connection carry one stream
    /// at a time (the backend said it cannot multiplex, whatever GET_VALUES said).
    pub(crate) fn downgrade(&self, conn: &MuxConn) {
        conn.limit_streams(1);
        let mut state = self.lock();
        if !state.single_stream {
            tracing::warn!(
                "FastCGI backend answered FCGI_CANT_MPX_CONN; one request per connection from now on"
            );
        }
        state.single_stream = true;
        for c in &state.conns {
            c.limit_streams(1);
        }
    }

    /// Opens a stream for `begin` and `records` (a body follows through the stream when
    /// `body_follows`) on a connection with room, a new connection, or the first to
    /// have room within the queue timeout.
    pub(crate) async fn open(
        &self,
        backend: &Backend,
        begin: &[u8],
        records: &[u8],
        body_follows: bool,
        limits: &MuxLimits,
    ) -> Result<Opened, Error> {
        let deadline = limits
            .queue_timeout
            .and_then(|t| Instant::now().checked_add(t));
        let mut counted_waiting = false;
        let result = loop {
            // Registered before looking, so an id freed in between is not missed.
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let connect = {
                let mut state = self.lock();
                // A spent connection leaves the set too: its streams finish on it, and
                // it closes when the last one is gone.
                state.conns.retain(|c| !c.is_failed() && !c.is_spent());
                let found = state.conns.iter().find_map(|c| {
                    c.open(begin, records, body_follows)
                        .map(|(stream, reused)| Opened {
                            stream,
                            conn: c.clone(),
                            reused,
                        })
                });
                if let Some(opened) = found {
                    break Ok(opened);
                }
                // One connect at a time: a connection being opened will have room for
                // the requests waiting now (they are told when it is up), and a burst
                // on an empty set would otherwise open `max_conns` connections at once.
                let room = state.connecting == 0 && state.conns.len() < limits.max_conns.max(1);
                if room {
                    state.connecting += 1;
                }
                room
            };
            if connect {
                break self
                    .connect_and_open(backend, begin, records, body_follows, limits)
                    .await;
            }
            if !counted_waiting {
                counted_waiting = true;
                self.waiting.fetch_add(1, Ordering::AcqRel);
            }
            match deadline {
                Some(at) => {
                    if tokio::time::timeout_at(at, notified).await.is_err() {
                        break Err(Error::timeout(Timeout::PoolWait));
                    }
                }
                None => notified.await,
            }
        };
        if counted_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        result.inspect(|_| {
            self.opened_streams.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Opens a connection (its place already counted in `connecting`) and the stream on it.
    async fn connect_and_open(
        &self,
        backend: &Backend,
        begin: &[u8],
        records: &[u8],
        body_follows: bool,
        limits: &MuxLimits,
    ) -> Result<Opened, Error> {
        // Gives the place back if this request is dropped while connecting.
        let mut place = Place {
            set: self,
            held: true,
        };
        let connecting = Stream::connect(backend);
        let stream = match limits.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(|_| Error::timeout(Timeout::Connect)),
            None => Ok(connecting.await),
        }
        .and_then(|r| {
            r.map_err(|err| Error::with(ErrorKind::Connect, format!("{backend}: {err}")))
        });
        let stream = stream?;
        let mut state = self.lock();
        // The place becomes the connection under the same lock, so nobody sees room
        // that is not there.
        state.connecting -= 1;
        place.held = false;
        let settings = MuxSettings {
            max_streams: if state.single_stream {
                1
            } else {
                limits.max_streams
            },
            budget: limits.budget,
            spill_limit: limits.spill_limit,
            write_stall: limits.write_stall,
            idle_timeout: limits.idle_timeout,
        };
        let conn = MuxConn::start(stream, settings, Arc::clone(&self.freed));
        self.opened_conns.fetch_add(1, Ordering::Relaxed);
        let opened = conn
            .open(begin, records, body_follows)
            .map(|(stream, reused)| Opened {
                stream,
                conn: conn.clone(),
                reused,
            });
        state.conns.push(conn);
        drop(state);
        // Requests that waited while this connection was being opened may use it now.
        self.freed.notify_waiters();
        opened.ok_or_else(|| Error::msg(ErrorKind::Io, "a new multiplexed connection had no room"))
    }

    /// A counter of streams in flight, held by each stream's exchange.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(&self.in_flight))
    }
}

/// A connection being opened, counted in `connecting` until it is in the set or failed.
struct Place<'a> {
    set: &'a MuxSet,
    held: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.held {
            self.set.lock().connecting -= 1;
            // The place is free again: a waiting request may try its own connect.
            self.set.freed.notify_waiters();
        }
    }
}

/// One stream in flight on a set, counted until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

//! One request on one connection, driven full duplex.
//!
//! An [`Exchange`] owns its connection for the whole request. Each call to
//! [`poll_event`](Exchange::poll_event) first pushes request-body bytes (STDIN) as far as
//! the socket accepts them, then reads records until it has an event for the caller, so
//! a backend that answers before it has read the whole body never deadlocks, and bytes
//! move only as fast as both sides accept them:
//! - STDIN: a new body chunk is taken only once the previous one is on the wire;
//! - STDOUT: a record is read only when the caller asks for the next event, which the
//!   response body does only when the client is ready for more.

use std::io;
use std::ops::DerefMut;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

use super::conn::Connection;
use super::stderr::StderrLog;
use super::upload::Upload;
use super::write_queue::WriteQueue;
use crate::error::{Error, ErrorKind, Timeout};
use crate::proto::{BeginRequest, EndRequest, Header, ProtocolStatus, Record, RecordType, Role};

/// The request id of every non-multiplexed exchange.
pub(crate) const REQUEST_ID: u16 = 1;

/// What an exchange reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A non-empty piece of STDOUT.
    Stdout(Bytes),
    /// The request ended (END_REQUEST, or EOF right after the end of STDOUT).
    End(EndRequest),
}

/// Timeouts that apply while an exchange runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Deadlines {
    /// Longest gap between records read from the backend.
    pub(crate) read_idle: Option<Duration>,
    /// Longest time the backend may refuse request-body bytes.
    pub(crate) write_idle: Option<Duration>,
    /// When the response head must be complete.
    pub(crate) head: Option<Instant>,
    /// When the whole exchange must be complete.
    pub(crate) total: Option<Instant>,
}

/// One request in flight on an exclusive connection.
#[derive(Debug)]
pub(crate) struct Exchange<C> {
    /// The connection (in the service, the pool's handle for it).
    conn: C,
    out: WriteQueue,
    upload: Upload,
    /// The STDIN terminator has been queued.
    upload_done: bool,
    /// STDIN comes from `upload` (else it was all in the first write).
    streams_stdin: bool,
    /// A Filter's data file, streamed as FCGI_DATA after the whole of STDIN.
    data: Option<Upload>,
    /// The DATA terminator has been queued (or there is no DATA stream).
    data_done: bool,
    /// Writing failed (the backend closed its side); keep reading the response.
    write_failed: bool,
    stdout_ended: bool,
    ended: bool,
    /// BEGIN_REQUEST asked the backend to keep the connection.
    keep_conn: bool,
    /// STDOUT bytes have been received (a retry is no longer safe).
    response_started: bool,
    stderr: StderrLog,
    deadlines: Deadlines,
    last_read: Instant,
}

/// What an exchange sends, besides the body chunks it still has to read.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The role BEGIN_REQUEST asks for (Responder; Authorizer for an access check;
    /// Filter for a file sent as `data`).
    pub(crate) role: Role,
    /// BEGIN_REQUEST asks the backend to keep the connection (FCGI_KEEP_CONN).
    pub(crate) keep_conn: bool,
    /// The PARAMS stream and, when `stdin` is `None`, the whole STDIN stream after it.
    pub(crate) records: Bytes,
    /// The request body still to be sent as STDIN, as the backend accepts it.
    pub(crate) stdin: Option<Upload>,
    /// A Filter's data file, sent as FCGI_DATA after STDIN with the same flow control.
    pub(crate) data: Option<Upload>,
}

impl<C: DerefMut<Target = Connection>> Exchange<C> {
    /// Starts an exchange on `conn`, which it owns until the exchange is dropped.
    pub(crate) fn new(
        mut conn: C,
        request: Outgoing,
        deadlines: Deadlines,
        stderr_limit: usize,
    ) -> Exchange<C> {
        conn.reusable = false;
        let mut out = WriteQueue::with_segments(std::mem::take(&mut conn.spare_segments));
        out.push(Bytes::from_static(begin_record(
            request.role,
            request.keep_conn,
        )));
        out.push(request.records);
        let streams_stdin = request.stdin.is_some();
        Exchange {
            conn,
            out,
            upload: request.stdin.unwrap_or(Upload::Empty),
            upload_done: !streams_stdin,
            streams_stdin,
            data_done: request.data.is_none(),
            data: request.data,
            write_failed: false,
            stdout_ended: false,
            ended: false,
            keep_conn: request.keep_conn,
            response_started: false,
            stderr: StderrLog::new(stderr_limit),
            deadlines,
            last_read: Instant::now(),
        }
    }

    /// Whether any response byte has arrived (after which a retry would be unsafe).
    pub(crate) fn response_started(&self) -> bool {
        self.response_started
    }

    /// The response head is complete: its deadline no longer applies.
    pub(crate) fn head_done(&mut self) {
        self.deadlines.head = None;
    }

    /// Gives back what remains of the body (and of a Filter's data file), so that a
    /// request that failed before any response byte can be retried on another connection
    /// (`None` body: the whole STDIN stream was in [`Outgoing::records`]). The
    /// connection closes.
    pub(crate) fn into_uploads(self) -> (Option<Upload>, Option<Upload>) {
        (self.streams_stdin.then_some(self.upload), self.data)
    }

    /// END_REQUEST arrived: the connection may serve another exchange only if the
    /// backend was asked to keep it, the whole request body and its terminator were
    /// written, and nothing unread follows. Its holder (the pool's handle) reads the
    /// verdict when it is dropped.
    fn on_end(&mut self) {
        let reusable = self.keep_conn
            && self.upload_done
            && self.data_done
            && self.out.is_empty()
            && !self.write_failed
            && self.conn.is_clean();
        if reusable {
            // Keep the queue's allocation for the next exchange on this connection.
            self.conn.spare_segments = std::mem::take(&mut self.out.segments);
            self.conn.reusable = true;
        }
    }

    /// Drives the exchange until the next STDOUT piece or the end of the request.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if self.ended {
            return Poll::Ready(Err(Error::msg(ErrorKind::Io, "exchange already ended")));
        }
        loop {
            let write_blocked = self.poll_upload(cx)?;
            match self.conn.poll_record(cx) {
                Poll::Ready(Ok(Some(record))) => {
                    self.last_read = Instant::now();
                    if let Some(event) = self.on_record(record)? {
                        return Poll::Ready(Ok(event));
                    }
                }
                Poll::Ready(Ok(None)) => return Poll::Ready(self.on_eof()),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    ready!(self.poll_timeouts(cx, write_blocked))?;
                }
            }
        }
    }

    /// Pushes STDIN as far as the socket accepts it. `Ok(true)` when blocked on the socket
    /// (the write idle timeout runs); errors only for request-body failures.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        loop {
            if self.write_failed {
                return Ok(false);
            }
            match self.out.poll_flush(self.conn.stream(), cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => {
                    // The backend may have answered and closed its side; the read half
                    // decides whether the response is still good.
                    tracing::debug!(error = %err, "writing to the FastCGI backend failed");
                    self.write_failed = true;
                    return Ok(false);
                }
                Poll::Pending => return Ok(true),
            }
            if self.ended || (self.upload_done && self.data_done) {
                return Ok(false);
            }
            if self.upload_done {
                // STDIN is complete and on its way: a Filter's data file follows.
                if let Some(data) = &mut self.data {
                    match data.poll_chunk(cx) {
                        Poll::Pending => return Ok(false),
                        Poll::Ready(Ok(Some(chunk))) => {
                            self.out.push_stream(RecordType::Data, chunk);
                        }
                        Poll::Ready(Ok(None)) => {
                            self.out.push_data_end();
                            self.data_done = true;
                        }
                        Poll::Ready(Err(err)) => return Err(err),
                    }
                }
                continue;
            }
            match self.upload.poll_chunk(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(Some(chunk))) => self.out.push_stdin(chunk),
                Poll::Ready(Ok(None)) => {
                    self.out.push_stdin_end();
                    self.upload_done = true;
                }
                Poll::Ready(Err(err)) => return Err(err),
            }
        }
    }

    fn on_record(&mut self, record: Record) -> Result<Option<Event>, Error> {
        let id = record.request_id();
        match record {
            Record::Stdout { data, .. } if id == REQUEST_ID => {
                if data.is_empty() {
                    self.stdout_ended = true;
                    return Ok(None);
                }
                self.response_started = true;
                Ok(Some(Event::Stdout(data)))
            }
            Record::Stderr { data, .. } if id == REQUEST_ID => {
                self.stderr.push(&data);
                Ok(None)
            }
            Record::EndRequest { body, .. } if id == REQUEST_ID => {
                self.ended = true;
                self.on_end();
                self.stderr.finish();
                Ok(Some(Event::End(body)))
            }
            Record::Unknown { record_type, .. } => {
                tracing::warn!(record_type, "skipping a FastCGI record of unknown type");
                Ok(None)
            }
            Record::GetValuesResult { .. } | Record::UnknownType { .. } => {
                tracing::debug!("skipping an unsolicited FastCGI management record");
                Ok(None)
            }
            Record::Stdout { .. } | Record::Stderr { .. } | Record::EndRequest { .. } => {
                Err(Error::msg(
                    ErrorKind::Protocol,
                    format!("record for request id {id}, expected {REQUEST_ID}"),
                ))
            }
            other => Err(Error::msg(
                ErrorKind::Protocol,
                format!(
                    "the application sent a {:?} record, which only a web server may send",
                    other.record_type()
                ),
            )),
        }
    }

    fn on_eof(&mut self) -> Result<Event, Error> {
        if self.stdout_ended {
            // FastCGI 1.0 lets an application close instead of sending END_REQUEST when
            // KEEP_CONN was not set; STDOUT is complete, so the response is too.
            self.ended = true;
            self.stderr.finish();
            return Ok(Event::End(EndRequest {
                app_status: 0,
                protocol_status: ProtocolStatus::RequestComplete,
            }));
        }
        Err(Error::io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the backend closed the connection before END_REQUEST",
        )))
    }

    /// Arms the earliest applicable deadline; an error when one has passed.
    fn poll_timeouts(
        &mut self,
        cx: &mut Context<'_>,
        write_blocked: bool,
    ) -> Poll<Result<(), Error>> {
        let write_since = write_blocked.then_some(self.out.last_progress);
        let Some((at, which)) = self.deadlines.earliest(self.last_read, write_since) else {
            return Poll::Pending;
        };
        poll_deadline(&mut self.conn.timer, at, which, cx)
    }
}

impl Deadlines {
    /// The deadline that passes first, given when the last record was read and, while
    /// the backend refuses request-body bytes, since when it has.
    pub(crate) fn earliest(
        &self,
        last_read: Instant,
        write_since: Option<Instant>,
    ) -> Option<(Instant, Timeout)> {
        let candidates = [
            (self.head, Timeout::ResponseHead),
            (self.total, Timeout::Total),
            (
                self.read_idle.and_then(|d| last_read.checked_add(d)),
                Timeout::Read,
            ),
            (
                write_since
                    .zip(self.write_idle)
                    .and_then(|(s, d)| s.checked_add(d)),
                Timeout::Write,
            ),
        ];
        // The first of equal deadlines wins: the order above is the order of blame.
        candidates
            .into_iter()
            .filter_map(|(at, which)| at.map(|at| (at, which)))
            .fold(None, |best: Option<(Instant, Timeout)>, c| match best {
                Some(b) if b.0 <= c.0 => Some(b),
                _ => Some(c),
            })
    }
}

/// Waits for `at` on `timer` (kept across polls, reset only when the deadline moves);
/// the `which` timeout error once it passes.
pub(crate) fn poll_deadline(
    timer: &mut Option<Pin<Box<Sleep>>>,
    at: Instant,
    which: Timeout,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    let timer = match timer {
        Some(timer) => {
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            timer
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(at))),
    };
    ready!(timer.as_mut().poll(cx));
    Poll::Ready(Err(Error::timeout(which)))
}

use std::future::Future as _;

// Every BEGIN_REQUEST the crate sends is one of these compile-time records, so choosing
// the role costs a match, as choosing KEEP_CONN always did.
static BEGIN_KEEP: [u8; 16] = begin_request(Role::Responder, true);
static BEGIN_CLOSE: [u8; 16] = begin_request(Role::Responder, false);
static BEGIN_AUTHORIZER_KEEP: [u8; 16] = begin_request(Role::Authorizer, true);
static BEGIN_AUTHORIZER_CLOSE: [u8; 16] = begin_request(Role::Authorizer, false);
static BEGIN_FILTER_KEEP: [u8; 16] = begin_request(Role::Filter, true);
static BEGIN_FILTER_CLOSE: [u8; 16] = begin_request(Role::Filter, false);

/// The BEGIN_REQUEST record for `role`. A role the specification does not define is
/// never built by the crate; it falls back to Responder rather than sending a number
/// no backend knows.
pub(crate) fn begin_record(role: Role, keep_conn: bool) -> &'static [u8; 16] {
    match (role, keep_conn) {
        (Role::Authorizer, true) => &BEGIN_AUTHORIZER_KEEP,
        (Role::Authorizer, false) => &BEGIN_AUTHORIZER_CLOSE,
        (Role::Filter, true) => &BEGIN_FILTER_KEEP,
        (Role::Filter, false) => &BEGIN_FILTER_CLOSE,
        (Role::Responder | Role::Unknown(_), true) => &BEGIN_KEEP,
        (Role::Responder | Role::Unknown(_), false) => &BEGIN_CLOSE,
    }
}

/// A BEGIN_REQUEST record, built at compile time.
// Fixed-size arrays indexed below 8 in a const context (checked at compile time).
#[allow(clippy::indexing_slicing)]
const fn begin_request(role: Role, keep_conn: bool) -> [u8; 16] {
    let header = Header::new(RecordType::BeginRequest, REQUEST_ID, 8, 0).to_bytes();
    let body = BeginRequest { role, keep_conn }.to_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 8 {
        out[i] = header[i];
        out[i + 8] = body[i];
        i += 1;
    }
    out
}

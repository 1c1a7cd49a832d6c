//! One request on a multiplexed connection, as the service and the response body drive
//! it: the same events, timeouts, STDERR logging and body streaming as the exclusive
//! [`Exchange`](crate::client::exchange::Exchange), over a [`MuxStream`].
//!
//! The body goes one chunk at a time: the next chunk is read from the client only once
//! the driver took the previous one for writing, so an application that stops reading
//! its body holds back only this stream, and only up to the write idle timeout.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

use super::demux::StreamEvent;
use super::driver::MuxStream;
use super::set::InFlight;
use crate::client::exchange::{Deadlines, Event, poll_deadline};
use crate::client::stderr::StderrLog;
use crate::client::upload::Upload;
use crate::error::Error;

/// One request in flight on a multiplexed connection.
#[derive(Debug)]
pub(crate) struct MuxExchange {
    stream: MuxStream,
    /// The body still to send, when it did not go with the PARAMS.
    upload: Option<Upload>,
    upload_done: bool,
    /// A body chunk was queued and not yet taken by the driver.
    chunk_queued: bool,
    response_started: bool,
    ended: bool,
    stderr: StderrLog,
    deadlines: Deadlines,
    last_read: Instant,
    last_write: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    _in_flight: InFlight,
}

impl MuxExchange {
    /// Drives `stream`, whose BEGIN_REQUEST and PARAMS (and, with no `upload`, whole
    /// STDIN) are queued already.
    pub(crate) fn new(
        stream: MuxStream,
        upload: Option<Upload>,
        deadlines: Deadlines,
        stderr_limit: usize,
        in_flight: InFlight,
    ) -> MuxExchange {
        let now = Instant::now();
        MuxExchange {
            stream,
            upload_done: upload.is_none(),
            upload,
            chunk_queued: false,
            response_started: false,
            ended: false,
            stderr: StderrLog::new(stderr_limit),
            deadlines,
            last_read: now,
            last_write: now,
            timer: None,
            _in_flight: in_flight,
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

    /// What remains of the body, for a retry elsewhere (the stream is aborted).
    pub(crate) fn into_upload(self) -> Option<Upload> {
        self.upload
    }

    /// Drives the stream until the next STDOUT piece or the end of the request.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if self.ended {
            return Poll::Ready(Err(Error::msg(
                crate::error::ErrorKind::Io,
                "exchange already ended",
            )));
        }
        loop {
            let write_blocked = self.poll_upload(cx)?;
            match self.stream.poll_event(cx) {
                Poll::Ready(Ok(event)) => {
                    self.last_read = Instant::now();
                    match event {
                        StreamEvent::Stdout(data) => {
                            self.response_started = true;
                            return Poll::Ready(Ok(Event::Stdout(data)));
                        }
                        StreamEvent::Stderr(data) => self.stderr.push(&data),
                        StreamEvent::End(end) => {
                            self.ended = true;
                            self.stderr.finish();
                            return Poll::Ready(Ok(Event::End(end)));
                        }
                        // `MuxStream` reports an overflow as an error.
                        StreamEvent::Overflowed => {}
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => ready!(self.poll_timeouts(cx, write_blocked))?,
            }
        }
    }

    /// Queues body chunks as the driver takes them. `Ok(true)` while a chunk waits for
    /// the driver (the write idle timeout runs); errors only for request-body failures
    /// (a broken connection is reported by the read side).
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        while !self.upload_done {
            match self.stream.poll_send_ready(cx) {
                Poll::Pending => return Ok(true),
                Poll::Ready(Err(_)) => return Ok(false),
                Poll::Ready(Ok(())) => {}
            }
            if self.chunk_queued {
                self.chunk_queued = false;
                self.last_write = Instant::now();
            }
            let Some(upload) = &mut self.upload else {
                return Ok(false);
            };
            match upload.poll_chunk(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(Some(chunk))) => {
                    self.stream.send_stdin(chunk);
                    self.chunk_queued = true;
                    self.last_write = Instant::now();
                }
                Poll::Ready(Ok(None)) => {
                    self.stream.send_stdin_end();
                    self.upload_done = true;
                }
                Poll::Ready(Err(err)) => return Err(err),
            }
        }
        Ok(false)
    }

    /// Arms the earliest applicable deadline; an error when one has passed.
    fn poll_timeouts(
        &mut self,
        cx: &mut Context<'_>,
        write_blocked: bool,
    ) -> Poll<Result<(), Error>> {
        let write_since = write_blocked.then_some(self.last_write);
        let Some((at, which)) = self.deadlines.earliest(self.last_read, write_since) else {
            return Poll::Pending;
        };
        poll_deadline(&mut self.timer, at, which, cx)
    }
}

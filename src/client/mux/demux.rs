//! The reading half of a multiplexed connection, sans IO: records in, per-stream events
//! out, and which request ids are in use.
//!
//! Why it never blocks the connection: FastCGI has no per-stream flow control (no
//! window, no pause), so a stream whose client reads slowly cannot ask the backend to
//! slow down without stalling every other stream on the connection (HAProxy's mux stops
//! reading the whole connection then; nginx refused multiplexing for this reason). Each
//! stream therefore gets a bounded buffer in memory (`budget` bytes of STDOUT and
//! STDERR); STDOUT beyond it goes to the stream's spill file (`spill.rs`), up to
//! `spill_limit` bytes waiting there, and is read back in order as the owner catches
//! up. A record that fits neither (or STDERR over the budget) *overflows* the stream:
//! what it buffered is dropped, its owner sees [`StreamEvent::Overflowed`] (a body
//! error, never a clean end), and the driver sends FCGI_ABORT_REQUEST for it. So the
//! reader never waits, memory per stream is bounded by the budget and disk by the
//! spill limit, and only a client that falls more than both behind loses its response.
//! (Without the spill, any response larger than the budget would overflow whenever the
//! backend writes faster than the owner is scheduled, fast client or not.)
//!
//! Ids: the lowest free id is reused (FastCGI spec §3.3; HAProxy's ever-growing ids
//! are haproxy/haproxy#3358). An id whose owner went away before END_REQUEST stays
//! reserved ([`Abandon::SendAbort`]) until that END_REQUEST arrives and is consumed, so
//! a late record of the old request can never reach a new one.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::spill::Spill;
use crate::error::{Error, ErrorKind};
use crate::proto::{Decoder, EndRequest, Record};

/// What one stream's owner reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEvent {
    /// A non-empty piece of STDOUT.
    Stdout(Bytes),
    /// A non-empty piece of STDERR.
    Stderr(Bytes),
    /// END_REQUEST: the stream is over and its id is free again once this is read.
    End(EndRequest),
    /// The stream buffered more than its budget while its owner did not read: it was
    /// aborted (an error for the owner, whatever it already read).
    Overflowed,
}

/// What the driver must act on after [`Demux::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The stream has something to read: wake its owner.
    Ready(u16),
    /// The stream overflowed: send FCGI_ABORT_REQUEST for it (its owner is woken too).
    Abort(u16),
    /// An abandoned stream's END_REQUEST arrived: its id is free (a queued request may
    /// take it).
    Freed(u16),
}

/// What [`Demux::abandon`] leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abandon {
    /// END_REQUEST was already read: the id is free now.
    Freed,
    /// Send FCGI_ABORT_REQUEST; the id stays reserved until END_REQUEST arrives.
    SendAbort,
    /// Already aborted (it overflowed): the id stays reserved until END_REQUEST.
    Pending,
}

#[derive(Debug)]
enum Slot {
    Free,
    /// Free, but its last request was aborted: some backends answer FCGI_ABORT_REQUEST
    /// with an END_REQUEST at once and then let the handler finish, sending its output
    /// and a second END_REQUEST (tokio-fastcgi 1.3 does). Records for such an id are
    /// dropped, and the id is reused only when no clean one is free.
    Aborted,
    Open(Stream),
    /// The owner went away before END_REQUEST: records are dropped until it arrives.
    Abandoned,
}

/// A stream's queue entry: an event, or STDOUT bytes waiting in its spill file.
#[derive(Debug)]
enum Queued {
    Event(StreamEvent),
    Spilled(u64),
}

#[derive(Debug, Default)]
struct Stream {
    queue: VecDeque<Queued>,
    /// Payload bytes in `queue` (in memory).
    buffered: usize,
    /// STDOUT beyond the budget, while its client catches up.
    spill: Option<Spill>,
    /// END_REQUEST was read from the wire.
    ended: bool,
    /// Over budget: aborted, nothing more is queued.
    overflowed: bool,
}

/// The demultiplexer of one connection.
#[derive(Debug)]
pub(crate) struct Demux {
    decoder: Decoder,
    /// Index `i` is request id `i + 1`; grows up to `max_streams`.
    slots: Vec<Slot>,
    /// Ids in use (open or abandoned).
    in_use: usize,
    max_streams: usize,
    budget: usize,
    /// Bytes a stream may have waiting in its spill file (0: abort at the budget).
    spill_limit: u64,
}

impl Demux {
    /// A connection carrying at most `max_streams` requests at once (1..=65535), each
    /// buffering at most `budget` bytes its owner has not read in memory and
    /// `spill_limit` more STDOUT bytes in a temporary file.
    pub(crate) fn new(max_streams: usize, budget: usize, spill_limit: u64) -> Demux {
        Demux {
            decoder: Decoder::new(),
            slots: Vec::new(),
            in_use: 0,
            max_streams: max_streams.clamp(1, usize::from(u16::MAX)),
            budget,
            spill_limit,
        }
    }

    /// Ids in use: open streams and abandoned ones awaiting their END_REQUEST.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Whether another stream may open now.
    pub(crate) fn has_room(&self) -> bool {
        self.in_use < self.max_streams
    }

    /// Ids held by streams whose owner went away, awaiting their END_REQUEST.
    pub(crate) fn abandoned(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Abandoned))
            .count()
    }

    /// The streams allowed at once.
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Lowers (or raises) the streams allowed at once; FCGI_CANT_MPX_CONN drops it to 1.
    /// Streams already open are not touched.
    pub(crate) fn set_max_streams(&mut self, max_streams: usize) {
        self.max_streams = max_streams.clamp(1, usize::from(u16::MAX));
    }

    /// Opens a stream on the lowest free id, `None` at the limit.
    pub(crate) fn open(&mut self) -> Option<u16> {
        if !self.has_room() {
            return None;
        }
        let clean = self.slots.iter().position(|s| matches!(s, Slot::Free));
        let index = match clean {
            Some(i) => i,
            None if self.slots.len() < self.max_streams => {
                self.slots.push(Slot::Free);
                self.slots.len() - 1
            }
            None => self.slots.iter().position(|s| matches!(s, Slot::Aborted))?,
        };
        let id = u16::try_from(index + 1).ok()?;
        let slot = self.slots.get_mut(index)?;
        *slot = Slot::Open(Stream::default());
        self.in_use += 1;
        Some(id)
    }

    fn slot(&mut self, id: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(id).checked_sub(1)?)
    }

    fn free(&mut self, id: u16) {
        self.free_as(id, Slot::Free);
    }

    fn free_as(&mut self, id: u16, state: Slot) {
        if let Some(slot) = self.slot(id) {
            *slot = state;
            self.in_use = self.in_use.saturating_sub(1);
        }
    }

    /// The next event of stream `id`, if one is buffered (in memory or in its spill
    /// file). Reading its `End` frees the id. A spill file that cannot be read back
    /// ends the stream with `Overflowed` (its owner then abandons it, which aborts it).
    pub(crate) fn pop(&mut self, id: u16) -> Option<StreamEvent> {
        let Some(Slot::Open(stream)) = self.slot(id) else {
            return None;
        };
        let event = match stream.queue.front_mut()? {
            Queued::Spilled(waiting) => {
                let chunk = usize::try_from(*waiting).map_or(SPILL_CHUNK, |w| w.min(SPILL_CHUNK));
                match stream.spill.as_mut().map(|spill| spill.read(chunk)) {
                    Some(Ok(data)) if !data.is_empty() => {
                        *waiting -= data.len() as u64;
                        if *waiting == 0 {
                            stream.queue.pop_front();
                        }
                        return Some(StreamEvent::Stdout(data));
                    }
                    failed => {
                        tracing::warn!(id, error = ?failed.and_then(Result::err), "reading a multiplexed stream's spill file failed");
                        stream.queue.clear();
                        stream.buffered = 0;
                        stream.spill = None;
                        return Some(StreamEvent::Overflowed);
                    }
                }
            }
            Queued::Event(_) => match stream.queue.pop_front() {
                Some(Queued::Event(event)) => event,
                _ => return None,
            },
        };
        match &event {
            StreamEvent::Stdout(b) | StreamEvent::Stderr(b) => {
                stream.buffered = stream.buffered.saturating_sub(b.len());
            }
            StreamEvent::End(_) => self.free(id),
            StreamEvent::Overflowed => {}
        }
        Some(event)
    }

    /// The owner of stream `id` is gone (the client went away, or it read an error).
    pub(crate) fn abandon(&mut self, id: u16) -> Abandon {
        let Some(slot) = self.slot(id) else {
            return Abandon::Freed;
        };
        match std::mem::replace(slot, Slot::Abandoned) {
            Slot::Open(stream) if stream.ended => {
                // An aborted id may still get records of its old request.
                let state = if stream.overflowed {
                    Slot::Aborted
                } else {
                    Slot::Free
                };
                self.free_as(id, state);
                Abandon::Freed
            }
            Slot::Open(stream) if stream.overflowed => Abandon::Pending,
            Slot::Open(_) => Abandon::SendAbort,
            Slot::Abandoned => Abandon::Pending,
            free @ (Slot::Free | Slot::Aborted) => {
                *slot = free;
                Abandon::Freed
            }
        }
    }

    /// Frees an abandoned id whose BEGIN_REQUEST was never written (no END_REQUEST will
    /// come for it).
    pub(crate) fn release(&mut self, id: u16) {
        if matches!(self.slot(id), Some(Slot::Abandoned)) {
            self.free(id);
        }
    }

    /// Whether the decoder sits between records with nothing of a record read.
    #[cfg(test)]
    pub(crate) fn is_between_records(&self, buf: &BytesMut) -> bool {
        buf.is_empty() && self.decoder.is_between_records()
    }

    /// Decodes every complete record at the front of `buf` and routes it; what the
    /// driver must do goes to `notices`. An error (a broken record, a record for an id
    /// not in use, a request-side record type) fails the whole connection.
    pub(crate) fn feed(
        &mut self,
        buf: &mut BytesMut,
        notices: &mut Vec<Notice>,
    ) -> Result<(), Error> {
        while let Some(record) = self.decoder.decode(buf).map_err(Error::protocol)? {
            self.route(record, notices)?;
        }
        Ok(())
    }

    fn route(&mut self, record: Record, notices: &mut Vec<Notice>) -> Result<(), Error> {
        let (id, event) = match record {
            // Management answers (Go sends a second, empty GET_VALUES_RESULT) and
            // record types we do not know are skipped, as the spec asks.
            Record::GetValuesResult { .. }
            | Record::UnknownType { .. }
            | Record::GetValues { .. }
            | Record::Unknown { .. } => return Ok(()),
            Record::Stdout { request_id, data } => (request_id, StreamEvent::Stdout(data)),
            Record::Stderr { request_id, data } => (request_id, StreamEvent::Stderr(data)),
            Record::EndRequest { request_id, body } => (request_id, StreamEvent::End(body)),
            other => {
                return Err(Error::msg(
                    ErrorKind::Protocol,
                    format!(
                        "the backend sent a {:?} record (request id {}), which only a client sends",
                        other.record_type(),
                        other.request_id()
                    ),
                ));
            }
        };
        let budget = self.budget;
        let spill_limit = self.spill_limit;
        if matches!(self.slot(id), Some(Slot::Aborted)) {
            return Ok(());
        }
        let Some(slot) = self.slot(id).filter(|s| !matches!(s, Slot::Free)) else {
            return Err(Error::msg(
                ErrorKind::Protocol,
                format!("the backend sent a record for request id {id}, which is not in use"),
            ));
        };
        let stream = match slot {
            Slot::Abandoned => {
                if matches!(event, StreamEvent::End(_)) {
                    self.free_as(id, Slot::Aborted);
                    notices.push(Notice::Freed(id));
                }
                return Ok(());
            }
            Slot::Open(stream) => stream,
            Slot::Free | Slot::Aborted => return Ok(()),
        };
        if stream.overflowed {
            // Aborted: whatever it still sends is dropped, even after an END_REQUEST
            // (tokio-fastcgi answers the abort with one at once, then lets the
            // handler finish and sends another).
            if matches!(event, StreamEvent::End(_)) {
                stream.ended = true;
            }
            return Ok(());
        }
        if stream.ended {
            return Err(Error::msg(
                ErrorKind::Protocol,
                format!("the backend sent a record for request id {id} after its END_REQUEST"),
            ));
        }
        let len = match &event {
            // An empty STDOUT or STDERR record ends that stream: nothing to deliver.
            StreamEvent::Stdout(b) | StreamEvent::Stderr(b) if b.is_empty() => return Ok(()),
            StreamEvent::Stdout(b) | StreamEvent::Stderr(b) => b.len(),
            StreamEvent::End(_) => {
                stream.ended = true;
                0
            }
            StreamEvent::Overflowed => 0,
        };
        if stream.buffered + len > budget {
            if let StreamEvent::Stdout(data) = &event
                && spill(stream, data, spill_limit)
            {
                notices.push(Notice::Ready(id));
                return Ok(());
            }
            stream.overflowed = true;
            stream.queue.clear();
            stream.buffered = 0;
            stream.spill = None;
            stream
                .queue
                .push_back(Queued::Event(StreamEvent::Overflowed));
            notices.push(Notice::Abort(id));
            return Ok(());
        }
        stream.buffered += len;
        stream.queue.push_back(Queued::Event(event));
        notices.push(Notice::Ready(id));
        Ok(())
    }
}

/// Bytes read back from a spill file per event.
const SPILL_CHUNK: usize = 64 * 1024;

/// Puts STDOUT over the budget in the stream's spill file, within `limit`; `false`
/// when it does not fit or the file fails (the stream is then aborted).
fn spill(stream: &mut Stream, data: &[u8], limit: u64) -> bool {
    let waiting = stream.spill.as_ref().map_or(0, Spill::waiting);
    if waiting + data.len() as u64 > limit {
        return false;
    }
    if stream.spill.is_none() {
        match Spill::create() {
            Ok(file) => stream.spill = Some(file),
            Err(err) => {
                tracing::warn!(error = %err, "cannot create a spill file for a multiplexed stream");
                return false;
            }
        }
    }
    let Some(file) = stream.spill.as_mut() else {
        return false;
    };
    if let Err(err) = file.append(data) {
        tracing::warn!(error = %err, "writing a multiplexed stream's spill file failed");
        return false;
    }
    match stream.queue.back_mut() {
        Some(Queued::Spilled(n)) => *n += data.len() as u64,
        _ => stream.queue.push_back(Queued::Spilled(data.len() as u64)),
    }
    true
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;

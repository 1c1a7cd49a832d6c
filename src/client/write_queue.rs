//! The write side of an exchange: outgoing bytes as a queue of segments, written with
//! vectored I/O as the socket accepts them. Small STDIN chunks are copied next to their
//! record header (one segment); large ones are written from their own buffer.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use super::exchange::REQUEST_ID;
use super::stream::Stream;
use crate::proto::{MAX_PADDED_CONTENT_LEN, PADDING, RecordType, stream_header};

/// Body chunks up to this size are copied next to their record header (one segment);
/// larger ones are written from their own buffer (vectored I/O, no copy).
const COPY_THRESHOLD: usize = 4096;

/// Outgoing bytes as a queue of segments written with vectored I/O.
#[derive(Debug)]
pub(super) struct WriteQueue {
    pub(super) segments: VecDeque<Bytes>,
    /// Scratch space for record headers and small payloads.
    scratch: BytesMut,
    pub(super) last_progress: Instant,
}

impl WriteQueue {
    /// A queue on a (cleared) segment list from an earlier exchange, to reuse its capacity.
    pub(super) fn with_segments(mut segments: VecDeque<Bytes>) -> WriteQueue {
        segments.clear();
        WriteQueue {
            segments,
            scratch: BytesMut::new(),
            last_progress: Instant::now(),
        }
    }
}

impl WriteQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub(super) fn push(&mut self, segment: Bytes) {
        if !segment.is_empty() {
            self.segments.push_back(segment);
        }
    }

    /// Queues `data` as STDIN records.
    pub(super) fn push_stdin(&mut self, data: Bytes) {
        self.push_stream(RecordType::Stdin, data);
    }

    /// Queues `data` as records of the stream `kind` (STDIN, or DATA for a Filter).
    pub(super) fn push_stream(&mut self, kind: RecordType, mut data: Bytes) {
        while !data.is_empty() {
            let n = data.len().min(MAX_PADDED_CONTENT_LEN);
            let piece = data.split_to(n);
            let header = stream_header(kind, REQUEST_ID, n);
            let pad = crate::proto::padding_len(n) as usize;
            self.scratch.reserve(8 + COPY_THRESHOLD + 8);
            self.scratch.put_slice(&header);
            if n <= COPY_THRESHOLD {
                self.scratch.put_slice(&piece);
                self.scratch
                    .put_slice(PADDING.get(..pad).unwrap_or_default());
                let seg = self.scratch.split().freeze();
                self.push(seg);
            } else {
                let seg = self.scratch.split().freeze();
                self.push(seg);
                self.push(piece);
                self.push(Bytes::from_static(PADDING.get(..pad).unwrap_or_default()));
            }
        }
    }

    /// Queues the empty STDIN record that ends the stream.
    pub(super) fn push_stdin_end(&mut self) {
        self.push(Bytes::from_static(&STDIN_END));
    }

    /// Queues the empty DATA record that ends a Filter's data stream.
    pub(super) fn push_data_end(&mut self) {
        self.push(Bytes::from_static(&DATA_END));
    }

    pub(super) fn poll_flush(
        &mut self,
        stream: &Stream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.segments.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let mut count = 0;
            for (slot, seg) in slices.iter_mut().zip(&self.segments) {
                *slot = IoSlice::new(seg);
                count += 1;
            }
            match stream.try_write_vectored(slices.get(..count).unwrap_or_default()) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(written) => {
                    self.last_progress = Instant::now();
                    self.advance(written);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_write_ready(cx))?;
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                return;
            };
            if n < front.len() {
                bytes::Buf::advance(front, n);
                return;
            }
            n -= front.len();
            self.segments.pop_front();
        }
    }
}

/// `{FCGI_STDIN, 1, ""}`.
static STDIN_END: [u8; 8] = stream_header(RecordType::Stdin, REQUEST_ID, 0);
/// `{FCGI_DATA, 1, ""}`.
static DATA_END: [u8; 8] = stream_header(RecordType::Data, REQUEST_ID, 0);

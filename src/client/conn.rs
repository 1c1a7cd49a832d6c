//! One backend connection: the socket, its read buffer and record decoder, and whether
//! its last exchange left it fit for another one.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::time::Sleep;

use super::stream::Stream;
use crate::error::Error;
use crate::proto::{Decoder, Record};

/// Read in chunks of up to this size; php-fpm writes records of up to 64 KiB.
const READ_CHUNK: usize = 64 * 1024;
/// Grow the read buffer when less than this is free.
const MIN_READ_SPACE: usize = 8 * 1024;

/// A connection to a FastCGI backend.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    decoder: Decoder,
    /// Set by an exchange that ended cleanly (see `Exchange`); cleared when the next one
    /// starts. Whoever holds the connection reuses it only when this is set.
    pub(crate) reusable: bool,
    /// Per-request allocations kept for the next exchange on this connection: the write
    /// queue's segment list and the deadline timer.
    pub(crate) spare_segments: VecDeque<Bytes>,
    pub(crate) timer: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            read_buf: BytesMut::new(),
            decoder: Decoder::new(),
            reusable: false,
            spare_segments: VecDeque::new(),
            timer: None,
        }
    }

    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The next record, `Ok(None)` on a clean end of stream (EOF between records).
    pub(crate) fn poll_record(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Record>, Error>> {
        loop {
            if let Some(record) = self
                .decoder
                .decode(&mut self.read_buf)
                .map_err(Error::protocol)?
            {
                return Poll::Ready(Ok(Some(record)));
            }
            if self.read_buf.capacity() - self.read_buf.len() < MIN_READ_SPACE {
                self.read_buf.reserve(READ_CHUNK);
            }
            match self.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) if self.read_buf.is_empty() && self.decoder.is_between_records() => {
                    return Poll::Ready(Ok(None));
                }
                Ok(0) => {
                    return Poll::Ready(Err(Error::io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "backend closed the connection in the middle of a record",
                    ))));
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.stream.poll_read_ready(cx)).map_err(Error::io)?;
                }
                Err(err) => return Poll::Ready(Err(Error::io(err))),
            }
        }
    }

    /// Whether the connection sits cleanly between records with nothing unread, so
    /// another request can use it.
    pub(crate) fn is_clean(&self) -> bool {
        self.read_buf.is_empty() && self.decoder.is_between_records()
    }

    /// A non-blocking check that the backend has not closed the connection while it was
    /// idle: a read must find nothing to read. EOF, unexpected bytes or an error mean
    /// the connection cannot be reused.
    pub(crate) fn probe_alive(&self) -> bool {
        let mut scratch = [0u8; 8];
        matches!(self.stream.try_read(&mut scratch), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

//! The records a multiplexed stream writes, as pieces of whole records so that the
//! driver can interleave streams at record boundaries only.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::proto::{HEADER_LEN, Header, MAX_PADDED_CONTENT_LEN, Record, RecordType, stream_header};

/// One record to write: its header (or the whole record) and, for a body chunk sent
/// without a copy, its content. The driver writes both before any other stream's record.
#[derive(Debug)]
pub(crate) struct OutRecord {
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
}

/// `begin` and `records` (whole records encoded for any request id) as one piece
/// carrying `id` as the request id of every record: one copy, the ids set in place.
/// The driver writes it whole, so other streams interleave at its record boundaries.
pub(crate) fn with_request_id(begin: &[u8], records: &[u8], id: u16) -> OutRecord {
    let mut all = BytesMut::with_capacity(begin.len() + records.len());
    all.extend_from_slice(begin);
    all.extend_from_slice(records);
    let mut at = 0;
    while let Some(head) = all.get(at..).and_then(<[u8]>::first_chunk::<HEADER_LEN>) {
        let len = HEADER_LEN + Header::from_bytes(head).body_len();
        if let Some(field) = all.get_mut(at + 2..at + 4) {
            field.copy_from_slice(&id.to_be_bytes());
        }
        at += len;
    }
    // A truncated last record (never built by the crate) is not sent.
    all.truncate(at.min(all.len()));
    OutRecord {
        head: all.freeze(),
        body: Bytes::new(),
    }
}

/// `data` as STDIN records of request `id`, the content not copied. No padding: it is
/// optional (spec §3.3), and padding would cost a third segment per record.
pub(crate) fn stdin_records(id: u16, mut data: Bytes, out: &mut VecDeque<OutRecord>) {
    while !data.is_empty() {
        let piece = data.split_to(data.len().min(MAX_PADDED_CONTENT_LEN));
        let len = u16::try_from(piece.len()).unwrap_or(u16::MAX);
        let header = Header::new(RecordType::Stdin, id, len, 0).to_bytes();
        out.push_back(OutRecord {
            head: Bytes::copy_from_slice(&header),
            body: piece,
        });
    }
}

/// The empty STDIN record that ends request `id`'s body.
pub(crate) fn stdin_end(id: u16) -> OutRecord {
    OutRecord {
        head: Bytes::copy_from_slice(&stream_header(RecordType::Stdin, id, 0)),
        body: Bytes::new(),
    }
}

/// FCGI_ABORT_REQUEST for request `id`.
pub(crate) fn abort_record(id: u16) -> Bytes {
    let mut abort = BytesMut::new();
    Record::AbortRequest { request_id: id }.encode(&mut abort);
    abort.freeze()
}

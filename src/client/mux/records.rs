//! The records a multiplexed stream writes, each as whole-record pieces so that the
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

/// Splits encoded records (encoded for any request id) into one piece per record, each
/// carrying `id` as its request id: one copy of the whole, the ids set in place, and
/// the pieces views of that one buffer.
pub(crate) fn with_request_id(records: &[u8], id: u16) -> VecDeque<OutRecord> {
    let mut all = BytesMut::from(records);
    let mut out = VecDeque::new();
    while let Some(head) = all.first_chunk::<HEADER_LEN>() {
        let len = HEADER_LEN + Header::from_bytes(head).body_len();
        if len > all.len() {
            break;
        }
        if let Some(field) = all.get_mut(2..4) {
            field.copy_from_slice(&id.to_be_bytes());
        }
        out.push_back(OutRecord {
            head: all.split_to(len).freeze(),
            body: Bytes::new(),
        });
    }
    out
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

//! Backend output the benchmarks replay. Include with
//! `#[path = "support/wire.rs"] mod wire;`.

use bytes::BytesMut;
use tower_fastcgi::proto::{EndRequest, ProtocolStatus, Record, RecordType, encode_stream};

/// Ends a successful response the way php-fpm does: the empty STDOUT record, then
/// END_REQUEST (app status 0, REQUEST_COMPLETE).
pub fn end_response(wire: &mut BytesMut, request_id: u16) {
    encode_stream(wire, RecordType::Stdout, request_id, b"");
    Record::EndRequest {
        request_id,
        body: EndRequest {
            app_status: 0,
            protocol_status: ProtocolStatus::RequestComplete,
        },
    }
    .encode(wire);
}

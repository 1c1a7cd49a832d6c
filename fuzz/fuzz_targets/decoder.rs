//! Fuzzes `proto::Decoder`: arbitrary bytes, cut into reads whose sizes come from the
//! input itself, must decode without panicking, to the same records (and the same error)
//! as one read of everything, and what decodes must re-encode into valid records.
//!
//! Input layout: byte 0 gives the number `n` (0..=15) of read-size bytes that follow;
//! the rest is the FastCGI byte stream.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tower_fastcgi::proto::{
    Decoder, HEADER_LEN, Header, MAX_PADDED_CONTENT_LEN, ProtoError, Record,
};

/// A read size from one plan byte: 1..=128 bytes, or a multiple of 512 up to 64 KiB.
fn read_size(byte: u8) -> usize {
    if byte < 128 {
        usize::from(byte) + 1
    } else {
        (usize::from(byte) - 127) * 512
    }
}

/// Decodes `wire` fed in reads of the planned sizes (cycled; an empty plan is one read).
fn decode(wire: &[u8], plan: &[u8]) -> (Vec<Record>, Option<ProtoError>) {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    let mut sizes = plan.iter().copied().map(read_size).cycle();
    let mut fed = 0;
    loop {
        let n = sizes.next().unwrap_or(wire.len()).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(err) => {
                    // Sticky: nothing decodes after an error.
                    let mut good = BytesMut::from(&[1u8, 6, 0, 1, 0, 0, 0, 0][..]);
                    assert_eq!(decoder.decode(&mut good), Err(err.clone()));
                    return (records, Some(err));
                }
            }
        }
        if fed == wire.len() {
            // Everything the decoder left is the start of an incomplete record.
            assert!(buf.len() < HEADER_LEN + 65535);
            return (records, None);
        }
    }
}

/// The records `Record::encode` writes for `record`: its payload in pieces of at most
/// 65528 bytes (an empty payload stays one end-of-stream record).
fn as_sent(record: &Record) -> Vec<Record> {
    let Some(data) = record.payload().filter(|d| !d.is_empty()) else {
        return vec![record.clone()];
    };
    data.chunks(MAX_PADDED_CONTENT_LEN)
        .map(|piece| {
            let mut out = record.clone();
            if let Some(d) = out.payload_mut() {
                *d = Bytes::copy_from_slice(piece);
            }
            out
        })
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (plan, wire) = rest.split_at(n);

    let whole = decode(wire, &[]);
    let chunked = decode(wire, plan);
    assert_eq!(whole, chunked, "read split changed the decoded records");

    for record in &whole.0 {
        let ty = record.record_type();
        if ty.is_management() {
            assert_eq!(record.request_id(), 0);
        }
        if ty.is_application() {
            assert_ne!(record.request_id(), 0);
        }
    }

    // Re-encode what decoded: valid, aligned records that decode to the same content.
    let mut again = BytesMut::new();
    for record in &whole.0 {
        record.encode(&mut again);
    }
    let mut rest = &again[..];
    while let Some(head) = rest.first_chunk::<HEADER_LEN>() {
        let header = Header::from_bytes(head);
        assert!(header.content_length as usize <= MAX_PADDED_CONTENT_LEN);
        assert_eq!((HEADER_LEN + header.body_len()) % 8, 0);
        rest = &rest[HEADER_LEN + header.body_len()..];
    }
    assert!(rest.is_empty());
    let (redecoded, error) = decode(&again, plan);
    assert_eq!(error, None);
    // As documented: payloads longer than 65528 bytes come back as several records.
    let expected: Vec<Record> = whole.0.iter().flat_map(as_sent).collect();
    assert_eq!(redecoded, expected);
});

//! Unit tests of `encoder.rs`.
use super::*;
use crate::proto::{Decoder, PairIter, Record};

fn records(mut buf: BytesMut) -> Vec<Record> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    while let Some(r) = dec.decode(&mut buf).expect("valid") {
        out.push(r);
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn appendix_b_request_bytes() {
    // FastCGI 1.0 Appendix B, example 1, encoded by hand:
    // {FCGI_BEGIN_REQUEST, 1, {FCGI_RESPONDER, 0}}
    // {FCGI_PARAMS, 1, "\013\002SERVER_PORT80\013\016SERVER_ADDR199.170.183.42"}
    // {FCGI_PARAMS, 1, ""} {FCGI_STDIN, 1, ""}
    let mut buf = BytesMut::new();
    Record::BeginRequest {
        request_id: 1,
        body: crate::proto::BeginRequest {
            role: crate::proto::Role::Responder,
            keep_conn: false,
        },
    }
    .encode(&mut buf);
    let mut p = ParamsEncoder::new(&mut buf, 1);
    p.push(b"SERVER_PORT", b"80").unwrap();
    p.push(b"SERVER_ADDR", b"199.170.183.42").unwrap();
    p.finish();
    encode_stream(&mut buf, RecordType::Stdin, 1, b"");

    let mut expected: Vec<u8> = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let content = b"\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42";
    assert_eq!(content.len(), 42);
    expected.extend_from_slice(&[1, 4, 0, 1, 0, 42, 6, 0]);
    expected.extend_from_slice(content);
    expected.extend_from_slice(&[0; 6]);
    expected.extend_from_slice(&[1, 4, 0, 1, 0, 0, 0, 0]);
    expected.extend_from_slice(&[1, 5, 0, 1, 0, 0, 0, 0]);
    assert_eq!(&buf[..], &expected[..]);
}

#[test]
fn end_request_bytes() {
    let mut buf = BytesMut::new();
    Record::EndRequest {
        request_id: 1,
        body: crate::proto::EndRequest {
            app_status: 938,
            protocol_status: crate::proto::ProtocolStatus::RequestComplete,
        },
    }
    .encode(&mut buf);
    assert_eq!(
        &buf[..],
        &[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 3, 0xaa, 0, 0, 0, 0]
    );
}

#[test]
fn stream_content_at_record_boundaries() {
    for len in [
        0usize,
        1,
        7,
        8,
        65527,
        65528,
        65529,
        65535,
        65536,
        3 * 65528 + 5,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::Stdout, 7, &data);
        // Every record: content <= 65528, content + padding <= 65535, aligned to 8.
        let mut rest = &buf[..];
        let mut joined = Vec::new();
        let mut count = 0;
        while !rest.is_empty() {
            let h = Header::from_bytes(rest[..8].try_into().unwrap());
            assert!(h.content_length as usize <= MAX_PADDED_CONTENT_LEN);
            assert!(h.body_len() <= 65535);
            assert_eq!((8 + h.body_len()) % 8, 0);
            joined.extend_from_slice(&rest[8..8 + h.content_length as usize]);
            rest = &rest[8 + h.body_len()..];
            count += 1;
        }
        assert_eq!(joined, data);
        assert_eq!(count, len.div_ceil(MAX_PADDED_CONTENT_LEN).max(1));
    }
}

#[test]
fn fixed_record_of_65535_bytes_is_not_padded() {
    let mut buf = BytesMut::new();
    encode_fixed(&mut buf, RecordType::Stdout, 1, &vec![b'x'; 65535]);
    let h = Header::from_bytes(buf[..8].try_into().unwrap());
    assert_eq!(h.content_length, 65535);
    assert_eq!(h.padding_length, 0);
    assert_eq!(buf.len(), 8 + 65535);
}

#[test]
fn pairs_are_packed_whole_per_record() {
    // 40 pairs of ~3000 bytes: must spill into a second record without splitting any.
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    let value = vec![b'v'; 3000];
    for i in 0..40 {
        p.push(format!("NAME_{i}").as_bytes(), &value).unwrap();
    }
    p.finish();
    let recs = records(buf);
    assert_eq!(recs.len(), 3, "two full records and the terminator");
    let mut n = 0;
    for rec in &recs {
        let Record::Params { data, .. } = rec else {
            panic!("not params")
        };
        for pair in PairIter::new(data) {
            let (name, val) = pair.expect("pair complete within its record");
            assert_eq!(name, format!("NAME_{n}").as_bytes());
            assert_eq!(val.len(), 3000);
            n += 1;
        }
    }
    assert_eq!(n, 40);
}

#[test]
fn largest_pair_fits_and_one_more_byte_is_refused() {
    // name 4 bytes, 1-byte name length, 4-byte value length.
    let max_value = MAX_PADDED_CONTENT_LEN - 1 - 4 - 4;
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    p.push(b"NAME", &vec![b'a'; max_value]).unwrap();
    assert_eq!(
        p.push(b"NAME", &vec![b'a'; max_value + 1]),
        Err(ProtoError::PairTooLarge {
            len: MAX_PADDED_CONTENT_LEN + 1
        })
    );
    p.finish();
    let recs = records(buf);
    assert_eq!(recs.len(), 2);
}

#[test]
fn sixteen_mib_value_is_refused_not_split() {
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    let big = vec![b'x'; 16 << 20];
    assert!(matches!(
        p.push(b"BIG", &big),
        Err(ProtoError::PairTooLarge { .. })
    ));
    p.finish();
    assert_eq!(buf.len(), 8, "only the terminator was written");
}

#[test]
fn nul_is_refused_in_names_and_values() {
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    assert_eq!(p.push(b"A\0B", b"x"), Err(ProtoError::NulInParam));
    assert_eq!(
        p.push(b"SCRIPT_FILENAME", b"/x.jpg\0.php"),
        Err(ProtoError::NulInParam)
    );
    assert_eq!(
        p.push_parts(&[b"HTTP_", b"X"], &[b"a", b"\0"]),
        Err(ProtoError::NulInParam)
    );
}

#[test]
fn a_refused_pair_leaves_the_stream_as_it_was() {
    // The NUL check runs on the copied bytes; a refusal must take them back out, in an
    // open record and in one the refused pair would have opened.
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    p.push(b"A", b"1").unwrap();
    assert_eq!(
        p.push(b"B", b"long value \0 here"),
        Err(ProtoError::NulInParam)
    );
    p.push(b"C", b"3").unwrap();
    // A and C take 4 bytes each, FILL 9 plus its value: one byte of the record is left.
    let filler = vec![b'f'; MAX_PADDED_CONTENT_LEN - 8 - 9 - 1];
    p.push(b"FILL", &filler).unwrap();
    // No room left in the record: this pair would open the next one.
    assert_eq!(p.push(b"D", b"x\0"), Err(ProtoError::NulInParam));
    p.push(b"E", b"5").unwrap();
    p.finish();
    let mut pairs = Vec::new();
    for record in records(buf) {
        if let Record::Params { data, .. } = record {
            for pair in PairIter::new(&data) {
                let (name, value) = pair.unwrap();
                pairs.push((name.to_vec(), value.len()));
            }
        }
    }
    let names: Vec<_> = pairs.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(names, [&b"A"[..], b"C", b"FILL", b"E"]);
    assert_eq!(pairs[2].1, MAX_PADDED_CONTENT_LEN - 18);
}

#[test]
fn push_parts_concatenates() {
    let mut buf = BytesMut::new();
    let mut p = ParamsEncoder::new(&mut buf, 1);
    p.push_parts(&[b"HTTP_", b"COOKIE"], &[b"a=1", b"; ", b"b=2"])
        .unwrap();
    p.finish();
    let recs = records(buf);
    let Record::Params { data, .. } = &recs[0] else {
        panic!()
    };
    let pairs: Vec<_> = PairIter::new(data).map(|p| p.unwrap()).collect();
    assert_eq!(pairs, vec![(&b"HTTP_COOKIE"[..], &b"a=1; b=2"[..])]);
}

#[test]
fn empty_params_stream_is_only_the_terminator() {
    let mut buf = BytesMut::new();
    ParamsEncoder::new(&mut buf, 9).finish();
    assert_eq!(&buf[..], &[1, 4, 0, 9, 0, 0, 0, 0]);
}

#[test]
fn stream_header_matches_encode_fixed() {
    for len in [0, 1, 13, 65528] {
        let mut buf = BytesMut::new();
        encode_fixed(&mut buf, RecordType::Stdin, 3, &vec![1; len]);
        assert_eq!(stream_header(RecordType::Stdin, 3, len), buf[..8]);
    }
}

//! Property tests for the sans-IO FastCGI codec (`tower_fastcgi::proto`).
//!
//! What is checked, against the wire rules of FastCGI 1.0 (§3.3, §3.4):
//!
//! * encode → decode round-trips any sequence of records, with stream semantics: the
//!   concatenated content of each (type, request id) stream and the end-of-stream records
//!   survive, fixed-size records come back unchanged and in order;
//! * the decoder gives the same records however the byte stream is cut into reads;
//! * the decoder and [`PairIter`] are total: arbitrary bytes give records or an error
//!   value, never a panic, and agree with small reference parsers written here;
//! * every record the encoders write is aligned to eight bytes and stays within
//!   65528 content bytes (so content plus padding never exceeds 65535);
//! * [`ParamsEncoder`] packs whole pairs per record, refuses exactly the pairs that cannot
//!   fit in one record, and refuses NUL anywhere.
//!
//! Payloads of up to 200 000 bytes are produced from a length and a seed rather than as
//! random vectors, which keeps generation and shrinking cheap in debug builds.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use tower_fastcgi::proto::{
    BeginRequest, Decoder, EndRequest, HEADER_LEN, Header, MAX_CONTENT_LEN, MAX_PADDED_CONTENT_LEN,
    PADDING, PairIter, ParamsCollector, ParamsEncoder, ProtoError, ProtocolStatus, Record,
    RecordType, Role, encode_stream, encode_stream_chunk, encoded_pair_len, padding_len,
    stream_header,
};

const MAX: usize = MAX_PADDED_CONTENT_LEN;

/// Lengths around every limit the codec has: the one/four byte pair length forms, the
/// 8-byte alignment, one padded record, one record, and two records.
const BOUNDARY_LENS: &[usize] = &[
    1, 7, 8, 9, 127, 128, 129, 65527, 65528, 65529, 65535, 65536, 131055, 131056, 131057,
];

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// `len` pseudo-random bytes from a seed (xorshift32). With `avoid_nul`, no byte is 0.
fn filler(len: usize, seed: u32, avoid_nul: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let byte = (state >> 24) as u8;
            if avoid_nul && byte == 0 { 0x5a } else { byte }
        })
        .collect()
}

/// A stream payload of 0..`max` bytes: mostly small, sometimes empty (an end-of-stream
/// record), sometimes exactly on a record boundary, sometimes anywhere up to `max`.
fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    let boundaries: Vec<usize> = BOUNDARY_LENS.iter().copied().filter(|&n| n < max).collect();
    prop_oneof![
        4 => vec(any::<u8>(), 1..64).prop_map(Bytes::from),
        2 => Just(Bytes::new()),
        1 => (select(boundaries), any::<u32>())
            .prop_map(|(len, seed)| Bytes::from(filler(len, seed, false))),
        2 => (0..max, any::<u32>()).prop_map(|(len, seed)| Bytes::from(filler(len, seed, false))),
    ]
}

/// A non-zero request id; small ids are what real servers use.
fn app_id() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 1u16..=4, 1 => 1u16..=u16::MAX]
}

/// A type byte the specification does not define (0 or 12..=255).
fn unknown_type_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 12u8..=255]
}

/// Any record a peer could legitimately send: every variant, management records on id 0,
/// application records on non-zero ids, unknown types on any id.
fn record(max_payload: usize) -> impl Strategy<Value = Record> {
    let data = move || payload(max_payload);
    prop_oneof![
        (app_id(), any::<u16>(), any::<bool>()).prop_map(|(request_id, role, keep_conn)| {
            Record::BeginRequest {
                request_id,
                body: BeginRequest {
                    role: Role::from_u16(role),
                    keep_conn,
                },
            }
        }),
        app_id().prop_map(|request_id| Record::AbortRequest { request_id }),
        (app_id(), any::<u32>(), any::<u8>()).prop_map(|(request_id, app_status, status)| {
            Record::EndRequest {
                request_id,
                body: EndRequest {
                    app_status,
                    protocol_status: ProtocolStatus::from_u8(status),
                },
            }
        }),
        (app_id(), data()).prop_map(|(request_id, data)| Record::Params { request_id, data }),
        (app_id(), data()).prop_map(|(request_id, data)| Record::Stdin { request_id, data }),
        (app_id(), data()).prop_map(|(request_id, data)| Record::Stdout { request_id, data }),
        (app_id(), data()).prop_map(|(request_id, data)| Record::Stderr { request_id, data }),
        (app_id(), data()).prop_map(|(request_id, data)| Record::Data { request_id, data }),
        data().prop_map(|data| Record::GetValues { data }),
        data().prop_map(|data| Record::GetValuesResult { data }),
        any::<u8>().prop_map(|record_type| Record::UnknownType { record_type }),
        (unknown_type_byte(), any::<u16>(), data()).prop_map(|(record_type, request_id, data)| {
            Record::Unknown {
                record_type,
                request_id,
                data,
            }
        }),
    ]
}

/// Sizes of successive reads: single bytes, a few bytes, and large reads.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![
            3 => Just(1usize),
            3 => 1usize..=16,
            2 => 1usize..=1024,
            2 => 1usize..=70_000,
        ],
        1..24,
    )
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// What `Record::encode` is documented to put on the wire, as records: a payload longer
/// than one record becomes consecutive records of at most 65528 bytes; an empty payload
/// stays one (end-of-stream) record.
fn as_sent(record: &Record) -> Vec<Record> {
    match record.payload() {
        Some(data) if !data.is_empty() => (0..data.len())
            .step_by(MAX)
            .map(|start| {
                let mut piece = record.clone();
                if let Some(d) = piece.payload_mut() {
                    *d = data.slice(start..(start + MAX).min(data.len()));
                }
                piece
            })
            .collect(),
        _ => vec![record.clone()],
    }
}

fn encode_all(records: &[Record]) -> BytesMut {
    let mut wire = BytesMut::new();
    for record in records {
        record.encode(&mut wire);
    }
    wire
}

/// Walks encoder output header by header and checks the limits every record this crate
/// writes must respect. Returns the number of records.
fn check_wire(wire: &[u8]) -> usize {
    assert_eq!(wire.len() % 8, 0, "total length is a multiple of 8");
    let mut rest = wire;
    let mut count = 0;
    while !rest.is_empty() {
        let head: &[u8; HEADER_LEN] = rest
            .first_chunk()
            .expect("a whole header at every record boundary");
        let header = Header::from_bytes(head);
        let content = header.content_length as usize;
        let padding = header.padding_length as usize;
        assert_eq!(header.version, 1);
        assert_eq!(head[7], 0, "reserved byte is zero");
        assert!(content <= MAX, "content {content} > 65528");
        assert!(
            content + padding <= MAX_CONTENT_LEN,
            "content + padding > 65535"
        );
        assert!(padding < 8, "padding {padding} longer than needed");
        assert_eq!(
            (HEADER_LEN + content + padding) % 8,
            0,
            "record not aligned"
        );
        assert_eq!(padding, usize::from(padding_len(content)));
        let end = HEADER_LEN + content + padding;
        assert!(rest.len() >= end, "record runs past the end of the output");
        assert!(
            rest[HEADER_LEN + content..end].iter().all(|&b| b == 0),
            "padding is zeros"
        );
        rest = &rest[end..];
        count += 1;
    }
    count
}

/// Everything observable about decoding one byte stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    records: Vec<Record>,
    error: Option<ProtoError>,
    /// Bytes the decoder took off the front of the stream (0 after an error).
    consumed: usize,
    between_records: bool,
}

/// Feeds `wire` to a fresh decoder in reads of the given sizes (cycled; empty = one read),
/// decoding after every read until the decoder wants more bytes or fails.
fn decode_in_reads(wire: &[u8], sizes: &[usize]) -> Outcome {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    let mut fed = 0;
    let mut sizes = sizes.iter().copied().filter(|&n| n > 0).cycle();
    loop {
        let n = sizes.next().unwrap_or(wire.len()).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(err) => {
                    // Errors are sticky: the stream cannot be resynchronised.
                    let again = decoder.decode(&mut BytesMut::from(&[1u8, 6, 0, 1, 0, 0][..]));
                    assert_eq!(again, Err(err.clone()));
                    assert!(!decoder.is_between_records());
                    // How much of a failing record's padding was skipped depends on the
                    // reads, and no longer matters: the connection is closed.
                    return Outcome {
                        records,
                        error: Some(err),
                        consumed: 0,
                        between_records: false,
                    };
                }
            }
        }
        if fed == wire.len() {
            return Outcome {
                records,
                error: None,
                consumed: fed - buf.len(),
                between_records: decoder.is_between_records(),
            };
        }
    }
}

fn decode_whole(wire: &[u8]) -> Outcome {
    decode_in_reads(wire, &[])
}

type StreamKey = (u8, u16);
/// Per stream: the concatenated payload and the number of empty records.
type Streams = BTreeMap<StreamKey, (Vec<u8>, usize)>;
/// Name-value pairs, raw.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Stream view of a record sequence: per (type, id), the concatenated payload and the
/// number of empty (end-of-stream) records; plus the fixed-size records in order.
fn stream_view(records: &[Record]) -> (Streams, Vec<Record>) {
    let mut streams: BTreeMap<StreamKey, (Vec<u8>, usize)> = BTreeMap::new();
    let mut fixed = Vec::new();
    for record in records {
        match record.payload() {
            Some(data) => {
                let key = (record.record_type().as_u8(), record.request_id());
                let entry = streams.entry(key).or_default();
                entry.0.extend_from_slice(data);
                entry.1 += usize::from(data.is_empty());
            }
            None => fixed.push(record.clone()),
        }
    }
    (streams, fixed)
}

/// Rules every decoded record obeys, whatever the input.
fn check_decoded(record: &Record) {
    let ty = record.record_type();
    if ty.is_management() {
        assert_eq!(record.request_id(), 0, "{record:?}");
    }
    if ty.is_application() {
        assert_ne!(record.request_id(), 0, "{record:?}");
    }
    if let Record::Unknown { record_type, .. } = record {
        assert!(!(1..=11).contains(record_type), "{record:?}");
    }
    if let Some(data) = record.payload() {
        assert!(data.len() <= MAX_CONTENT_LEN);
    }
}

// ---------------------------------------------------------------------------------------
// Reference parsers, written independently of the crate's code
// ---------------------------------------------------------------------------------------

/// One record as raw header fields, for generating hostile-but-structured input.
#[derive(Debug, Clone)]
struct RawRecord {
    version: u8,
    ty: u8,
    id: u16,
    content: Vec<u8>,
    padding: u8,
    reserved: u8,
}

impl RawRecord {
    fn write(&self, out: &mut Vec<u8>) {
        let len = self.content.len();
        out.extend_from_slice(&[
            self.version,
            self.ty,
            (self.id >> 8) as u8,
            self.id as u8,
            (len >> 8) as u8,
            len as u8,
            self.padding,
            self.reserved,
        ]);
        out.extend_from_slice(&self.content);
        out.extend(std::iter::repeat_n(0xee, self.padding as usize));
    }
}

fn raw_record() -> impl Strategy<Value = RawRecord> {
    let version = prop_oneof![20 => Just(1u8), 1 => any::<u8>()];
    let ty = prop_oneof![6 => 1u8..=11, 1 => any::<u8>()];
    let id = prop_oneof![Just(0u16), Just(1u16), any::<u16>()];
    let content = prop_oneof![
        3 => vec(any::<u8>(), 8..=8),
        1 => Just(Vec::new()),
        3 => vec(any::<u8>(), 0..100),
        1 => (0..=MAX_CONTENT_LEN, any::<u32>()).prop_map(|(len, seed)| filler(len, seed, false)),
    ];
    let padding = prop_oneof![Just(0u8), 0u8..8, any::<u8>()];
    (version, ty, id, content, padding, any::<u8>()).prop_map(
        |(version, ty, id, content, padding, reserved)| RawRecord {
            version,
            ty,
            id,
            content,
            padding,
            reserved,
        },
    )
}

/// The records and the error the FastCGI rules give for a raw stream cut after `len` bytes.
fn reference_decode(raws: &[RawRecord], len: usize) -> (Vec<Record>, Option<ProtoError>) {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in raws {
        if offset + HEADER_LEN > len {
            break;
        }
        if raw.version != 1 {
            return (out, Some(ProtoError::UnsupportedVersion(raw.version)));
        }
        let content_len = raw.content.len();
        if offset + HEADER_LEN + content_len > len {
            break;
        }
        let ty = RecordType::from_u8(raw.ty);
        let data = Bytes::from(raw.content.clone());
        let fixed8 = |c: &[u8]| -> Option<[u8; 8]> { c.try_into().ok() };
        let bad_len = ProtoError::InvalidBodyLength {
            record_type: ty,
            len: content_len,
        };
        let result = if (9..=11).contains(&raw.ty) && raw.id != 0 {
            Err(ProtoError::ManagementRecordWithRequestId {
                record_type: ty,
                request_id: raw.id,
            })
        } else if (1..=8).contains(&raw.ty) && raw.id == 0 {
            Err(ProtoError::ApplicationRecordWithNullId(ty))
        } else {
            let request_id = raw.id;
            match raw.ty {
                1 => fixed8(&raw.content).map(|b| Record::BeginRequest {
                    request_id,
                    body: BeginRequest {
                        role: Role::from_u16(u16::from_be_bytes([b[0], b[1]])),
                        keep_conn: b[2] & 1 == 1,
                    },
                }),
                2 => raw
                    .content
                    .is_empty()
                    .then_some(Record::AbortRequest { request_id }),
                3 => fixed8(&raw.content).map(|b| Record::EndRequest {
                    request_id,
                    body: EndRequest {
                        app_status: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        protocol_status: ProtocolStatus::from_u8(b[4]),
                    },
                }),
                4 => Some(Record::Params { request_id, data }),
                5 => Some(Record::Stdin { request_id, data }),
                6 => Some(Record::Stdout { request_id, data }),
                7 => Some(Record::Stderr { request_id, data }),
                8 => Some(Record::Data { request_id, data }),
                9 => Some(Record::GetValues { data }),
                10 => Some(Record::GetValuesResult { data }),
                11 => fixed8(&raw.content).map(|b| Record::UnknownType { record_type: b[0] }),
                other => Some(Record::Unknown {
                    record_type: other,
                    request_id,
                    data,
                }),
            }
            .ok_or(bad_len)
        };
        match result {
            Ok(record) => out.push(record),
            Err(err) => return (out, Some(err)),
        }
        offset += HEADER_LEN + content_len + raw.padding as usize;
    }
    (out, None)
}

/// A straightforward index-based reading of FastCGI 1.0 §3.4: the pairs in `buf`, and
/// whether it ended inside a pair.
fn reference_pairs(buf: &[u8]) -> (Pairs, bool) {
    fn read_len(buf: &[u8], at: &mut usize) -> Option<u64> {
        let first = *buf.get(*at)?;
        if first < 0x80 {
            *at += 1;
            return Some(u64::from(first));
        }
        let b = buf.get(*at..*at + 4)?;
        *at += 4;
        Some(
            (u64::from(b[0] & 0x7f) << 24)
                | (u64::from(b[1]) << 16)
                | (u64::from(b[2]) << 8)
                | u64::from(b[3]),
        )
    }
    let mut pairs = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (Some(n), Some(v)) = (read_len(buf, &mut at), read_len(buf, &mut at)) else {
            return (pairs, true);
        };
        let end = at as u64 + n + v;
        if end > buf.len() as u64 {
            return (pairs, true);
        }
        let name_end = at + n as usize;
        pairs.push((
            buf[at..name_end].to_vec(),
            buf[name_end..end as usize].to_vec(),
        ));
        at = end as usize;
    }
    (pairs, false)
}

/// PairIter's view of `buf` in the same shape, checking that it fails at most once, last.
fn crate_pairs(buf: &[u8]) -> (Pairs, bool) {
    let mut pairs = Vec::new();
    let mut iter = PairIter::new(buf);
    while let Some(item) = iter.next() {
        match item {
            Ok((name, value)) => pairs.push((name.to_vec(), value.to_vec())),
            Err(err) => {
                assert_eq!(err, ProtoError::TruncatedPair);
                assert!(iter.next().is_none(), "PairIter stops after an error");
                return (pairs, true);
            }
        }
    }
    (pairs, false)
}

/// Name-value bytes with deliberate variety: both length forms, non-canonical four-byte
/// forms for short lengths, huge declared lengths, and truncation.
fn pair_bytes() -> impl Strategy<Value = Vec<u8>> {
    let len_form = prop_oneof![
        3 => (0u32..=127).prop_map(|n| vec![n as u8]),
        2 => (0u32..600).prop_map(|n| (n | 0x8000_0000).to_be_bytes().to_vec()),
        1 => any::<u32>().prop_map(|n| (n | 0x8000_0000).to_be_bytes().to_vec()),
    ];
    let piece = prop_oneof![
        4 => (len_form.clone(), len_form, vec(any::<u8>(), 0..700)).prop_map(|(a, b, body)| {
            let mut out = a;
            out.extend(b);
            out.extend(body);
            out
        }),
        1 => vec(any::<u8>(), 0..16),
    ];
    (vec(piece, 0..6), any::<prop::sample::Index>()).prop_map(|(pieces, cut)| {
        let all = pieces.concat();
        let keep = if all.is_empty() {
            0
        } else {
            all.len() - cut.index(all.len() / 4 + 1).min(all.len())
        };
        all[..keep].to_vec()
    })
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// encode → decode keeps every stream's content and end-of-stream records, every
    /// fixed-size record in order, and matches the documented splitting exactly.
    #[test]
    fn encode_then_decode_round_trips(records in vec(record(200_000), 0..10)) {
        let wire = encode_all(&records);
        let sent: Vec<Record> = records.iter().flat_map(as_sent).collect();
        prop_assert_eq!(check_wire(&wire), sent.len());

        let outcome = decode_whole(&wire);
        prop_assert_eq!(&outcome.error, &None);
        prop_assert_eq!(outcome.consumed, wire.len());
        prop_assert!(outcome.between_records);

        let (want_streams, want_fixed) = stream_view(&records);
        let (got_streams, got_fixed) = stream_view(&outcome.records);
        prop_assert_eq!(got_fixed, want_fixed);
        prop_assert!(got_streams == want_streams, "stream content or terminators differ");
        prop_assert!(outcome.records == sent, "records differ from the documented split");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any cut of the byte stream into reads, 1-byte reads included, decodes to the same
    /// records (and leaves the decoder in the same state) as one read of everything.
    #[test]
    fn any_read_split_decodes_the_same(
        records in vec(record(70_000), 0..8),
        sizes in read_sizes(),
    ) {
        let wire = encode_all(&records);
        let whole = decode_whole(&wire);
        let split = decode_in_reads(&wire, &sizes);
        prop_assert!(split == whole, "split decode differs");
    }

    /// The same for hostile streams (any version, type, id, length and up to 255 padding
    /// bytes, possibly cut short): same records and same error however it is read, and both
    /// equal what the wire rules say.
    #[test]
    fn hostile_streams_decode_like_the_reference(
        raws in vec(raw_record(), 0..8),
        truncate in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        sizes in read_sizes(),
    ) {
        let mut wire = Vec::new();
        for raw in &raws {
            raw.write(&mut wire);
        }
        let len = if truncate { cut.index(wire.len() + 1) } else { wire.len() };
        let wire = &wire[..len];

        let whole = decode_whole(wire);
        let split = decode_in_reads(wire, &sizes);
        prop_assert!(split == whole, "split decode differs");
        let (want_records, want_error) = reference_decode(&raws, len);
        prop_assert!(whole.records == want_records, "records differ from the reference");
        prop_assert_eq!(whole.error, want_error);
        whole.records.iter().for_each(check_decoded);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder; whatever decodes obeys the record rules,
    /// re-encodes into valid records, and decodes again as documented.
    #[test]
    fn decoder_is_total_on_arbitrary_bytes(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..512),
            // Mostly version 1: get past the first header more often.
            vec(any::<u8>(), 0..512).prop_map(|mut b| {
                b.iter_mut().step_by(8).for_each(|v| *v = 1);
                b
            }),
        ],
        sizes in read_sizes(),
    ) {
        let whole = decode_whole(&bytes);
        let split = decode_in_reads(&bytes, &sizes);
        prop_assert!(split == whole);
        prop_assert!(whole.consumed <= bytes.len());
        whole.records.iter().for_each(check_decoded);

        let again = encode_all(&whole.records);
        check_wire(&again);
        let redecoded = decode_whole(&again);
        let expected: Vec<Record> = whole.records.iter().flat_map(as_sent).collect();
        prop_assert_eq!(redecoded.error, None);
        prop_assert_eq!(redecoded.records, expected);
    }

    /// PairIter is total and agrees with the reference reading of §3.4 on arbitrary bytes.
    #[test]
    fn pair_iter_is_total_and_matches_reference(bytes in vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(crate_pairs(&bytes), reference_pairs(&bytes));
    }

    /// ... and on structured pair streams with odd length forms and truncation.
    #[test]
    fn pair_iter_matches_reference_on_structured_input(bytes in pair_bytes()) {
        prop_assert_eq!(crate_pairs(&bytes), reference_pairs(&bytes));
    }

    /// ParamsCollector keeps exactly the pushes that fit under its limit, in order.
    #[test]
    fn params_collector_enforces_its_limit(
        limit in 0usize..3000,
        pushes in vec(vec(any::<u8>(), 0..400), 0..16),
    ) {
        let mut collector = ParamsCollector::new(limit);
        let mut kept = Vec::new();
        for push in &pushes {
            let fits = kept.len() + push.len() <= limit;
            let result = collector.push(push);
            if fits {
                prop_assert_eq!(result, Ok(()));
                kept.extend_from_slice(push);
            } else {
                prop_assert_eq!(result, Err(ProtoError::ParamsTooLarge { limit }));
            }
        }
        prop_assert_eq!(&collector.finish()[..], &kept[..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every stream encoder output is a run of aligned records within the size limits that
    /// carries the data unchanged.
    #[test]
    fn stream_encoders_respect_record_limits(
        len in prop_oneof![select(BOUNDARY_LENS.to_vec()), 0usize..200_000],
        seed in any::<u32>(),
        id in any::<u16>(),
        ty in any::<u8>(),
    ) {
        let ty = RecordType::from_u8(ty);
        let data = filler(len, seed, false);

        let mut wire = BytesMut::new();
        encode_stream(&mut wire, ty, id, &data);
        prop_assert_eq!(check_wire(&wire), len.div_ceil(MAX).max(1));
        let mut joined = Vec::new();
        let mut rest = &wire[..];
        while let Some(head) = rest.first_chunk::<HEADER_LEN>() {
            let header = Header::from_bytes(head);
            prop_assert_eq!(header.record_type, ty);
            prop_assert_eq!(header.request_id, id);
            let content = header.content_length as usize;
            joined.extend_from_slice(&rest[HEADER_LEN..HEADER_LEN + content]);
            rest = &rest[HEADER_LEN + header.body_len()..];
        }
        prop_assert!(joined == data);

        // One chunk at a time, and by hand with stream_header + content + PADDING.
        let mut chunked = BytesMut::new();
        let mut vectored = Vec::new();
        let mut at = 0;
        loop {
            let n = encode_stream_chunk(&mut chunked, ty, id, &data[at..]);
            prop_assert_eq!(n, (len - at).min(MAX));
            let header = stream_header(ty, id, n);
            vectored.extend_from_slice(&header);
            vectored.extend_from_slice(&data[at..at + n]);
            vectored.extend_from_slice(&PADDING[..header[6] as usize]);
            at += n;
            if at == len {
                break;
            }
        }
        check_wire(&chunked);
        prop_assert!(chunked == wire);
        prop_assert!(vectored[..] == wire[..]);
    }

    /// Fixed-size records from the dedicated encoders are valid records too.
    #[test]
    fn fixed_encoders_respect_record_limits(
        id in any::<u16>(),
        role in any::<u16>(),
        keep_conn in any::<bool>(),
        app_status in any::<u32>(),
        status in any::<u8>(),
    ) {
        let mut wire = BytesMut::new();
        let begin = BeginRequest { role: Role::from_u16(role), keep_conn };
        let end = EndRequest { app_status, protocol_status: ProtocolStatus::from_u8(status) };
        Record::BeginRequest {
            request_id: id,
            body: begin,
        }
        .encode(&mut wire);
        Record::EndRequest {
            request_id: id,
            body: end,
        }
        .encode(&mut wire);
        prop_assert_eq!(check_wire(&wire), 2);
        prop_assert_eq!(wire.len(), 32);
        if id != 0 {
            let outcome = decode_whole(&wire);
            prop_assert_eq!(
                outcome.records,
                vec![
                    Record::BeginRequest { request_id: id, body: begin },
                    Record::EndRequest { request_id: id, body: end },
                ]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// ParamsEncoder
// ---------------------------------------------------------------------------------------

/// A name or value without NUL: short text, lengths around 127/128, or anything to 70 000.
fn param_field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(1u8..=255, 0..40),
        2 => (select(vec![0usize, 1, 126, 127, 128, 129, 255, 256]), any::<u32>())
            .prop_map(|(len, seed)| filler(len, seed, true)),
        2 => (0usize..70_000, any::<u32>()).prop_map(|(len, seed)| filler(len, seed, true)),
    ]
}

/// A pair of any size, or one whose encoded length is within 3 bytes of 65528.
fn param_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    prop_oneof![
        4 => (param_field(), param_field()),
        1 => (vec(1u8..=255, 0..200), -3i64..=3, any::<u32>()).prop_map(|(name, delta, seed)| {
            let name_prefix = if name.len() <= 127 { 1 } else { 4 };
            let value_len = (MAX - name_prefix - 4 - name.len()) as i64 + delta;
            let value = filler(value_len as usize, seed, true);
            assert_eq!(encoded_pair_len(name.len(), value.len()) as i64, MAX as i64 + delta);
            (name, value)
        }),
    ]
}

type Pair = (Vec<u8>, Vec<u8>);

/// Decodes ParamsEncoder output: each record's content parsed on its own.
fn params_records(wire: &BytesMut, id: u16) -> Vec<(usize, Vec<Pair>)> {
    let outcome = decode_whole(wire);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.consumed, wire.len());
    let mut out = Vec::new();
    for record in &outcome.records {
        let Record::Params { request_id, data } = record else {
            panic!("not a PARAMS record: {record:?}");
        };
        assert_eq!(*request_id, id);
        let pairs = PairIter::new(data)
            .map(|item| {
                let (name, value) = item.expect("every pair is complete within its record");
                (name.to_vec(), value.to_vec())
            })
            .collect();
        out.push((data.len(), pairs));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Pairs are accepted exactly when they fit in one record; accepted pairs come back in
    /// order, each PARAMS record parses on its own, records are filled before a new one
    /// starts, and the stream ends with one empty record.
    #[test]
    fn params_encoder_packs_whole_pairs(
        pairs in vec(param_pair(), 0..12),
        id in 1u16..=u16::MAX,
    ) {
        let mut wire = BytesMut::new();
        let mut accepted = Vec::new();
        let mut encoder = ParamsEncoder::new(&mut wire, id);
        for (name, value) in &pairs {
            let len = encoded_pair_len(name.len(), value.len());
            let result = encoder.push(name, value);
            if len > MAX {
                prop_assert_eq!(result, Err(ProtoError::PairTooLarge { len }));
            } else {
                prop_assert_eq!(result, Ok(()));
                accepted.push((name.clone(), value.clone()));
            }
        }
        encoder.finish();
        check_wire(&wire);

        let records = params_records(&wire, id);
        let (last, full) = records.split_last().expect("at least the terminator");
        prop_assert_eq!(last, &(0, Vec::new()), "stream ends with one empty record");
        for (len, pairs) in full {
            prop_assert!(*len > 0 && !pairs.is_empty(), "no empty record mid-stream");
        }
        // Greedy packing: a record was closed only because the next pair did not fit.
        for window in full.windows(2) {
            let (len, _) = &window[0];
            let (name, value) = &window[1].1[0];
            prop_assert!(len + encoded_pair_len(name.len(), value.len()) > MAX);
        }
        let got: Vec<Pair> = full.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
        prop_assert!(got == accepted, "pairs differ");

        // The application side joins the stream and reads the same pairs.
        let mut collector = ParamsCollector::new(usize::MAX);
        let outcome = decode_whole(&wire);
        for record in &outcome.records {
            if let Record::Params { data, .. } = record {
                collector.push(data).expect("no limit");
            }
        }
        let joined = collector.finish();
        let (again, truncated) = crate_pairs(&joined);
        prop_assert!(!truncated);
        prop_assert!(again == accepted);
    }

    /// A NUL anywhere in a name or value is refused, whatever the pair's size, and
    /// nothing is written for it.
    #[test]
    fn params_encoder_refuses_nul(
        (name, value) in param_pair(),
        in_value in any::<bool>(),
        at in any::<prop::sample::Index>(),
    ) {
        let (mut name, mut value) = (name, value);
        let field = if in_value || name.is_empty() { &mut value } else { &mut name };
        if field.is_empty() {
            field.push(0);
        } else {
            let i = at.index(field.len());
            field[i] = 0;
        }
        let mut wire = BytesMut::new();
        let mut encoder = ParamsEncoder::new(&mut wire, 1);
        prop_assert_eq!(encoder.push(&name, &value), Err(ProtoError::NulInParam));
        prop_assert_eq!(
            encoder.push_parts(&[&name[..], b""], &[b"", &value[..]]),
            Err(ProtoError::NulInParam)
        );
        encoder.finish();
        prop_assert_eq!(&wire[..], &[1, 4, 0, 1, 0, 0, 0, 0][..]);
    }

    /// push_parts writes the same bytes as push of the joined name and value.
    #[test]
    fn push_parts_equals_push(
        pairs in vec((vec(1u8..=255, 0..300), vec(1u8..=255, 0..300)), 0..8),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let split = |field: &[u8]| -> Vec<Vec<u8>> {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(field.len() + 1)).collect();
            points.sort_unstable();
            let mut parts = Vec::new();
            let mut start = 0;
            for p in points {
                parts.push(field[start..p].to_vec());
                start = p;
            }
            parts.push(field[start..].to_vec());
            parts
        };
        let mut joined = BytesMut::new();
        let mut parted = BytesMut::new();
        let mut a = ParamsEncoder::new(&mut joined, 3);
        let mut b = ParamsEncoder::new(&mut parted, 3);
        for (name, value) in &pairs {
            let name_parts = split(name);
            let value_parts = split(value);
            let name_refs: Vec<&[u8]> = name_parts.iter().map(Vec::as_slice).collect();
            let value_refs: Vec<&[u8]> = value_parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(a.push(name, value), Ok(()));
            prop_assert_eq!(b.push_parts(&name_refs, &value_refs), Ok(()));
        }
        a.finish();
        b.finish();
        prop_assert!(joined == parted);
    }
}

// ---------------------------------------------------------------------------------------
// Boundary cases
// ---------------------------------------------------------------------------------------

#[test]
fn pair_lengths_at_127_and_128() {
    for name_len in [0usize, 1, 127, 128, 129] {
        for value_len in [0usize, 1, 127, 128, 129] {
            let name = filler(name_len, 1, true);
            let value = filler(value_len, 2, true);
            let mut wire = BytesMut::new();
            let mut encoder = ParamsEncoder::new(&mut wire, 1);
            encoder.push(&name, &value).unwrap();
            encoder.finish();
            let records = params_records(&wire, 1);
            assert_eq!(records.len(), 2);
            assert_eq!(records[0].1, vec![(name.clone(), value.clone())]);
            assert_eq!(records[0].0, encoded_pair_len(name_len, value_len));

            // The length prefixes on the wire: one byte up to 127, four bytes from 128.
            let content = &wire[HEADER_LEN..];
            let (name_prefix, rest): (&[u8], &[u8]) = if name_len <= 127 {
                content.split_at(1)
            } else {
                content.split_at(4)
            };
            let value_prefix = if value_len <= 127 {
                &rest[..1]
            } else {
                &rest[..4]
            };
            for (prefix, len) in [(name_prefix, name_len), (value_prefix, value_len)] {
                if len <= 127 {
                    assert_eq!(prefix, &[len as u8]);
                } else {
                    assert_eq!(prefix, &(len as u32 | 0x8000_0000).to_be_bytes());
                }
            }
        }
    }
}

#[test]
fn sixteen_mib_value_decodes_through_records_and_collector() {
    // A value too large for any one record, sent the way the specification allows (a pair
    // straddling PARAMS records, here of 65535 content bytes and 255 padding bytes) and
    // read the way libfcgi and Go read it: join the stream, then parse.
    let value = filler(16 << 20, 3, true);
    let mut stream = vec![3u8];
    stream.extend_from_slice(&((value.len() as u32) | 0x8000_0000).to_be_bytes());
    stream.extend_from_slice(b"BIG");
    stream.extend_from_slice(&value);

    let mut wire = Vec::new();
    for chunk in stream.chunks(MAX_CONTENT_LEN).chain([&[][..]]) {
        RawRecord {
            version: 1,
            ty: 4,
            id: 1,
            content: chunk.to_vec(),
            padding: 255,
            reserved: 0,
        }
        .write(&mut wire);
    }
    let outcome = decode_in_reads(&wire, &[100_000, 1, 7, 65_543]);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.consumed, wire.len());
    let mut collector = ParamsCollector::new(17 << 20);
    for record in &outcome.records {
        let Record::Params { data, .. } = record else {
            panic!("{record:?}")
        };
        collector.push(data).unwrap();
    }
    let joined = collector.finish();
    let pairs: Vec<_> = PairIter::new(&joined).collect();
    assert_eq!(pairs.len(), 1);
    let (name, got) = pairs[0].clone().unwrap();
    assert_eq!(name, b"BIG");
    assert!(got == &value[..]);

    // The encoder refuses it rather than splitting it (php-fpm could not read it).
    let mut out = BytesMut::new();
    let mut encoder = ParamsEncoder::new(&mut out, 1);
    assert_eq!(
        encoder.push(b"BIG", &value),
        Err(ProtoError::PairTooLarge {
            len: 1 + 4 + 3 + (16 << 20)
        })
    );
    encoder.finish();
    assert_eq!(out.len(), HEADER_LEN);

    // And a collector with a smaller limit stops it.
    let mut small = ParamsCollector::new(1 << 20);
    let refused = outcome.records.iter().find_map(|record| match record {
        Record::Params { data, .. } => small.push(data).err(),
        _ => None,
    });
    assert_eq!(refused, Some(ProtoError::ParamsTooLarge { limit: 1 << 20 }));
}

#[test]
fn content_lengths_0_65535_and_65536() {
    // Content 0 with the largest padding: an end-of-stream record.
    let mut wire = Vec::new();
    let raw = |content: Vec<u8>, padding: u8| RawRecord {
        version: 1,
        ty: 6,
        id: 1,
        content,
        padding,
        reserved: 0xff,
    };
    raw(Vec::new(), 255).write(&mut wire);
    // The largest content, unpadded and with the largest padding.
    let big = filler(MAX_CONTENT_LEN, 4, false);
    raw(big.clone(), 0).write(&mut wire);
    raw(big.clone(), 255).write(&mut wire);
    for sizes in [&[][..], &[1][..], &[8, 65535, 255][..]] {
        let outcome = decode_in_reads(&wire, sizes);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.consumed, wire.len());
        assert!(outcome.between_records);
        let lens: Vec<usize> = outcome
            .records
            .iter()
            .map(|r| r.payload().unwrap().len())
            .collect();
        assert_eq!(lens, [0, MAX_CONTENT_LEN, MAX_CONTENT_LEN]);
        assert!(outcome.records[2].payload().unwrap()[..] == big[..]);
    }

    // 65536 bytes cannot be one record: the encoder writes 65528 + 8.
    let data = filler(65536, 5, false);
    let mut out = BytesMut::new();
    encode_stream(&mut out, RecordType::Stdout, 1, &data);
    assert_eq!(check_wire(&out), 2);
    let outcome = decode_whole(&out);
    let lens: Vec<usize> = outcome
        .records
        .iter()
        .map(|r| r.payload().unwrap().len())
        .collect();
    assert_eq!(lens, [MAX, 8]);
    // The one-record helpers clamp to 65528 as well.
    assert_eq!(
        encode_stream_chunk(&mut BytesMut::new(), RecordType::Stdin, 1, &data),
        MAX
    );
    let header = Header::from_bytes(&stream_header(RecordType::Stdin, 1, 65536));
    assert_eq!((header.content_length, header.padding_length), (65528, 0));
    let header = Header::from_bytes(&stream_header(RecordType::Stdin, 1, 65535));
    assert_eq!(header.content_length, 65528);

    // A fixed-size record with 65535 content bytes is a protocol error, not a panic.
    let mut wire = Vec::new();
    RawRecord {
        ty: 3,
        ..raw(big, 0)
    }
    .write(&mut wire);
    assert_eq!(
        decode_whole(&wire).error,
        Some(ProtoError::InvalidBodyLength {
            record_type: RecordType::EndRequest,
            len: MAX_CONTENT_LEN
        })
    );
}

#[test]
fn padding_len_keeps_every_record_within_65535() {
    for len in 0..=MAX_CONTENT_LEN {
        let pad = padding_len(len) as usize;
        assert!(len + pad <= MAX_CONTENT_LEN, "len {len}");
        if len <= MAX {
            assert_eq!((len + pad) % 8, 0, "len {len}");
            assert!(pad < 8);
        } else {
            assert_eq!(pad, 0, "len {len}");
        }
    }
}

#[test]
fn largest_pair_alone_fills_one_record() {
    // encoded_pair_len == 65528: accepted, alone in its record, with no padding.
    let name = b"HTTP_COOKIE";
    let value = filler(MAX - 1 - 4 - name.len(), 6, true);
    assert_eq!(encoded_pair_len(name.len(), value.len()), MAX);
    let mut wire = BytesMut::new();
    let mut encoder = ParamsEncoder::new(&mut wire, 1);
    encoder.push(b"A", b"1").unwrap();
    encoder.push(name, &value).unwrap();
    encoder.push(b"B", b"2").unwrap();
    encoder.finish();
    check_wire(&wire);
    let records = params_records(&wire, 1);
    let lens: Vec<usize> = records.iter().map(|(len, _)| *len).collect();
    assert_eq!(lens, [4, MAX, 4, 0]);
}

//! Fuzzes the name-value pair code: `PairIter` over arbitrary bytes, `ParamsCollector`
//! joining arbitrary pieces under a limit, and `ParamsEncoder` re-encoding what parsed.
//!
//! Input layout: byte 0 picks the collector's limit and byte 1 the piece size; the whole
//! input (those two bytes included) is also parsed as name-value pairs.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tower_fastcgi::proto::{
    Decoder, MAX_PADDED_CONTENT_LEN, PairIter, ParamsCollector, ParamsEncoder, ProtoError, Record,
    encoded_pair_len,
};

/// Parses `buf` with PairIter and checks the shape of the result: pairs are in-bounds,
/// in order and non-overlapping; an error comes at most once, last; without an error the
/// last pair ends exactly at the end of `buf`.
fn parse(buf: &[u8]) -> (Vec<(&[u8], &[u8])>, bool) {
    let base = buf.as_ptr() as usize;
    let mut pairs = Vec::new();
    let mut end = 0;
    let mut iter = PairIter::new(buf);
    while let Some(item) = iter.next() {
        match item {
            Ok((name, value)) => {
                let name_at = name.as_ptr() as usize - base;
                let value_at = value.as_ptr() as usize - base;
                // Two to eight bytes of length prefixes, then name, then value.
                assert!(name_at >= end + 2 && name_at <= end + 8);
                assert_eq!(value_at, name_at + name.len());
                end = value_at + value.len();
                assert!(end <= buf.len());
                pairs.push((name, value));
            }
            Err(err) => {
                assert_eq!(err, ProtoError::TruncatedPair);
                assert!(iter.next().is_none());
                return (pairs, true);
            }
        }
    }
    assert_eq!(end, buf.len());
    (pairs, false)
}

/// `value` repeated to `len` bytes (the same bytes as `value.iter().cycle().take(len)`),
/// by doubling with memcpy: a byte-at-a-time iterator over 64 KiB was most of the
/// target's time per input (each step instrumented for coverage and comparisons).
fn stretch(value: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(value.get(..len).unwrap_or(value));
    while out.len() < len {
        let more = out.len().min(len - out.len());
        out.extend_from_within(..more);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let (pairs, truncated) = parse(input);

    // ParamsCollector: pieces of the input under a limit; the pushes that fit are kept.
    if let [limit_byte, piece_byte, ..] = *input {
        let limit = usize::from(limit_byte) * 16;
        let piece = usize::from(piece_byte % 64) + 1;
        let mut collector = ParamsCollector::new(limit);
        let mut kept = Vec::new();
        for chunk in input.chunks(piece) {
            let fits = kept.len() + chunk.len() <= limit;
            match collector.push(chunk) {
                Ok(()) => {
                    assert!(fits);
                    kept.extend_from_slice(chunk);
                }
                Err(err) => {
                    assert!(!fits);
                    assert_eq!(err, ProtoError::ParamsTooLarge { limit });
                }
            }
        }
        let joined = collector.finish();
        assert_eq!(&joined[..], &kept[..]);
        if kept.len() == input.len() {
            // Joining the pieces back gives the same pairs as the original bytes.
            assert_eq!(parse(&joined), (pairs.clone(), truncated));
        }
    }

    // Pairs near the one-record limit without needing 64 KiB inputs: the first two
    // non-empty values are also tried stretched (repeated) to an encoded size within 128
    // bytes of 65528.
    let stretched: Vec<(&[u8], Vec<u8>)> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .take(2)
        .zip(input.iter().rev())
        .map(|(&(name, value), &offset)| {
            let target = (MAX_PADDED_CONTENT_LEN + usize::from(offset)).saturating_sub(128);
            let value_len = target.saturating_sub(name.len() + 8);
            (name, stretch(value, value_len))
        })
        .collect();

    // ParamsEncoder: re-encode the parsed pairs; NUL and oversized pairs are refused, the
    // rest come back whole, one record's content at a time.
    // Sized up front: growing by doubling past 64 KiB was a copy and a fresh (large,
    // freshly poisoned) allocation per step.
    let total: usize = pairs
        .iter()
        .map(|(n, v)| encoded_pair_len(n.len(), v.len()))
        .chain(
            stretched
                .iter()
                .map(|(n, v)| encoded_pair_len(n.len(), v.len())),
        )
        .sum();
    let mut wire = BytesMut::with_capacity(total + 16 * (total / 32768 + 4));
    let mut accepted = Vec::new();
    let mut encoder = ParamsEncoder::new(&mut wire, 1);
    let all = pairs
        .iter()
        .copied()
        .chain(stretched.iter().map(|(name, value)| (*name, &value[..])));
    for (name, value) in all {
        let result = encoder.push(name, value);
        let len = encoded_pair_len(name.len(), value.len());
        if name.contains(&0) || value.contains(&0) {
            assert_eq!(result, Err(ProtoError::NulInParam));
        } else if len > MAX_PADDED_CONTENT_LEN {
            assert_eq!(result, Err(ProtoError::PairTooLarge { len }));
        } else {
            assert_eq!(result, Ok(()));
            accepted.push((name, value));
        }
    }
    encoder.finish();
    assert_eq!(wire.len() % 8, 0);
    // The records' contents are kept and the pairs compared in place: no copies of
    // the stretched values.
    let mut decoder = Decoder::new();
    let mut contents = Vec::new();
    while let Some(record) = decoder.decode(&mut wire).expect("encoder output decodes") {
        let Record::Params {
            request_id: 1,
            data,
        } = record
        else {
            panic!("unexpected {record:?}");
        };
        assert!(
            contents.last().is_none_or(|d: &bytes::Bytes| !d.is_empty()),
            "records after the terminator"
        );
        contents.push(data);
    }
    assert!(contents.last().is_some_and(|d| d.is_empty()) && wire.is_empty());
    let got: Vec<(&[u8], &[u8])> = contents
        .iter()
        .flat_map(|data| {
            PairIter::new(data).map(|pair| pair.expect("no pair straddles two records"))
        })
        .collect();
    assert!(got == accepted);
});

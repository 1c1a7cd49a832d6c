use bytes::BufMut;
use proptest::prelude::*;

use super::*;
use crate::proto::ProtocolStatus;

fn end() -> EndRequest {
    EndRequest {
        app_status: 0,
        protocol_status: ProtocolStatus::RequestComplete,
    }
}

fn encode(records: &[Record]) -> BytesMut {
    let mut buf = BytesMut::new();
    for r in records {
        r.encode(&mut buf);
    }
    buf
}

fn stdout(id: u16, data: &'static [u8]) -> Record {
    Record::Stdout {
        request_id: id,
        data: Bytes::from_static(data),
    }
}

fn end_of(id: u16) -> Record {
    Record::EndRequest {
        request_id: id,
        body: end(),
    }
}

#[test]
fn the_lowest_free_id_is_reused_and_the_limit_holds() {
    let mut d = Demux::new(3, 1024, 0);
    assert_eq!((d.open(), d.open(), d.open()), (Some(1), Some(2), Some(3)));
    assert_eq!(d.open(), None, "at the limit");
    // Stream 2 ends and its END is read: id 2 is the lowest free one.
    let mut buf = encode(&[end_of(2)]);
    let mut notices = Vec::new();
    d.feed(&mut buf, &mut notices).unwrap();
    assert_eq!(notices, [Notice::Ready(2)]);
    assert_eq!(d.pop(2), Some(StreamEvent::End(end())));
    assert_eq!(d.in_use(), 2);
    assert_eq!(d.open(), Some(2));
    d.set_max_streams(1);
    assert!(
        !d.has_room(),
        "CANT_MPX_CONN: nothing new while three are open"
    );
}

#[test]
fn an_abandoned_id_stays_reserved_until_its_end_request_is_consumed() {
    let mut d = Demux::new(4, 1024, 0);
    let id = d.open().unwrap();
    assert_eq!(d.abandon(id), Abandon::SendAbort);
    assert_eq!(d.open(), Some(2), "id 1 is still reserved");
    let mut notices = Vec::new();
    let mut buf = encode(&[stdout(id, b"late output"), end_of(id)]);
    d.feed(&mut buf, &mut notices).unwrap();
    assert_eq!(
        notices,
        [Notice::Freed(id)],
        "late output dropped, END consumed"
    );
    assert_eq!(d.pop(id), None);
    // A second END and late output for the aborted id (tokio-fastcgi) are dropped.
    let mut buf = encode(&[stdout(id, b"later still"), end_of(id)]);
    notices.clear();
    d.feed(&mut buf, &mut notices).unwrap();
    assert!(notices.is_empty());
    assert_eq!(d.open(), Some(3), "a clean id first");
    assert_eq!(d.open(), Some(4));
    assert_eq!(
        d.open(),
        Some(1),
        "the aborted one when no clean id is left"
    );
}

#[test]
fn a_stream_over_its_budget_is_aborted_and_the_others_go_on() {
    let mut d = Demux::new(4, 16, 0);
    let slow = d.open().unwrap();
    let fast = d.open().unwrap();
    let mut notices = Vec::new();
    let mut buf = encode(&[
        stdout(slow, b"0123456789"),
        stdout(fast, b"a"),
        stdout(slow, b"0123456789"),
        stdout(fast, b"b"),
        stdout(slow, b"more"),
        end_of(fast),
    ]);
    d.feed(&mut buf, &mut notices).unwrap();
    assert!(notices.contains(&Notice::Abort(slow)), "{notices:?}");
    assert_eq!(
        notices
            .iter()
            .filter(|n| **n == Notice::Abort(slow))
            .count(),
        1,
        "aborted once"
    );
    assert_eq!(d.pop(slow), Some(StreamEvent::Overflowed));
    assert_eq!(d.pop(slow), None);
    assert_eq!(
        d.pop(fast),
        Some(StreamEvent::Stdout(Bytes::from_static(b"a")))
    );
    assert_eq!(
        d.pop(fast),
        Some(StreamEvent::Stdout(Bytes::from_static(b"b")))
    );
    assert_eq!(d.pop(fast), Some(StreamEvent::End(end())));
    // The owner of the aborted stream drops it: no second abort, reserved until END.
    assert_eq!(d.abandon(slow), Abandon::Pending);
    let mut buf = encode(&[end_of(slow)]);
    notices.clear();
    d.feed(&mut buf, &mut notices).unwrap();
    assert_eq!(notices, [Notice::Freed(slow)]);
    assert_eq!(d.in_use(), 0);
}

/// Over the memory budget, STDOUT goes to the spill file and comes back in order,
/// interleaved correctly with what stayed in memory; past the spill limit the stream
/// overflows.
#[test]
fn stdout_over_the_budget_is_spilled_in_order_up_to_the_limit() {
    let mut d = Demux::new(2, 16, 32);
    let id = d.open().unwrap();
    let mut notices = Vec::new();
    let mut buf = encode(&[
        stdout(id, b"0123456789"),
        stdout(id, b"abcdefghij"),
        stdout(id, b"ABCDEFGHIJ"),
        end_of(id),
    ]);
    d.feed(&mut buf, &mut notices).unwrap();
    let mut got = Vec::new();
    while let Some(event) = d.pop(id) {
        match event {
            StreamEvent::Stdout(b) => got.extend_from_slice(&b),
            StreamEvent::End(_) => got.extend_from_slice(b"|end"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(&got[..], b"0123456789abcdefghijABCDEFGHIJ|end");
    assert_eq!(d.in_use(), 0);

    let id = d.open().unwrap();
    let mut buf = encode(&[
        stdout(id, b"0123456789"),
        stdout(id, b"0123456789abcdefghij"),
        stdout(id, b"0123456789abcdefghij"),
    ]);
    notices.clear();
    d.feed(&mut buf, &mut notices).unwrap();
    assert!(notices.contains(&Notice::Abort(id)), "{notices:?}");
    assert_eq!(d.pop(id), Some(StreamEvent::Overflowed));
}

/// Abandoned ids are counted until their END_REQUEST (a connection with too many is
/// spent: flup never ends an aborted request).
#[test]
fn abandoned_ids_are_counted_until_their_end_request() {
    let mut d = Demux::new(4, 1024, 0);
    let ids: Vec<u16> = (0..3).map(|_| d.open().unwrap()).collect();
    for &id in &ids {
        assert_eq!(d.abandon(id), Abandon::SendAbort);
    }
    assert_eq!(d.abandoned(), 3);
    let mut notices = Vec::new();
    let mut buf = encode(&[end_of(ids[0])]);
    d.feed(&mut buf, &mut notices).unwrap();
    assert_eq!(d.abandoned(), 2);
}

/// An aborted (overflowed) stream's backend may answer the abort with END_REQUEST and
/// still send output and a second END_REQUEST (tokio-fastcgi 1.3): dropped, the
/// connection stays up, and the id is reused last.
#[test]
fn records_after_an_aborted_streams_end_are_dropped() {
    let mut d = Demux::new(2, 4, 0);
    let id = d.open().unwrap();
    let mut notices = Vec::new();
    let mut buf = encode(&[
        stdout(id, b"0123456789"),
        end_of(id),
        stdout(id, b"late"),
        end_of(id),
    ]);
    d.feed(&mut buf, &mut notices).unwrap();
    assert_eq!(d.pop(id), Some(StreamEvent::Overflowed));
    assert_eq!(d.abandon(id), Abandon::Freed);
    let mut buf = encode(&[stdout(id, b"later still")]);
    d.feed(&mut buf, &mut notices).unwrap();
    let other = d.open().unwrap();
    assert_ne!(other, id, "the aborted id is reused last");
}

#[test]
fn records_for_ids_not_in_use_or_of_the_client_side_fail_the_connection() {
    let mut notices = Vec::new();
    let mut d = Demux::new(4, 1024, 0);
    assert!(
        d.feed(&mut encode(&[stdout(1, b"x")]), &mut notices)
            .is_err()
    );
    let mut d = Demux::new(4, 1024, 0);
    let id = d.open().unwrap();
    let stdin = Record::Stdin {
        request_id: id,
        data: Bytes::from_static(b"x"),
    };
    assert!(d.feed(&mut encode(&[stdin]), &mut notices).is_err());
    let mut d = Demux::new(4, 1024, 0);
    let id = d.open().unwrap();
    let twice = encode(&[end_of(id), stdout(id, b"x")]);
    assert!(d.feed(&mut twice.clone(), &mut notices).is_err());
    // Management answers and unknown types are skipped.
    let mut d = Demux::new(4, 1024, 0);
    let mut skip = encode(&[Record::GetValuesResult { data: Bytes::new() }]);
    skip.put_slice(&encode(&[Record::UnknownType { record_type: 99 }]));
    d.feed(&mut skip, &mut notices).unwrap();
}

/// One stream's output: chunks of STDOUT and STDERR, then END_REQUEST.
fn stream_output() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    prop::collection::vec(
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)),
        0..6,
    )
}

proptest! {
    /// Interleaved records of many ids, delivered in any split: every stream gets exactly
    /// its own bytes, in order, then its END, and every id is free at the end.
    #[test]
    fn interleaved_records_of_many_ids_in_any_split_reach_their_streams(
        outputs in prop::collection::vec(stream_output(), 1..24),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        reader_lag in 0usize..3,
    ) {
        let mut d = Demux::new(outputs.len(), usize::MAX, 0);
        let ids: Vec<u16> = outputs.iter().map(|_| d.open().unwrap()).collect();
        // Per-stream queues of records, then an interleaving that keeps each one's order.
        let mut pending: Vec<VecDeque<Record>> = outputs
            .iter()
            .zip(&ids)
            .map(|(chunks, &id)| {
                let mut q: VecDeque<Record> = chunks
                    .iter()
                    .map(|(err, bytes)| {
                        let data = Bytes::from(bytes.clone());
                        if *err {
                            Record::Stderr { request_id: id, data }
                        } else {
                            Record::Stdout { request_id: id, data }
                        }
                    })
                    .collect();
                q.push_back(Record::Stdout { request_id: id, data: Bytes::new() });
                q.push_back(end_of(id));
                q
            })
            .collect();
        let mut wire = Vec::new();
        let mut picks = order.iter();
        while pending.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..pending.len()).filter(|&i| !pending[i].is_empty()).collect();
            let i = picks.next().map_or(live[0], |p| live[p.index(live.len())]);
            if let Some(r) = pending[i].pop_front() {
                wire.push(r);
            }
        }
        let bytes = encode(&wire);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(bytes.len());
        points.sort_unstable();
        let mut got: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![Default::default(); ids.len()];
        let mut buf = BytesMut::new();
        let mut from = 0;
        let mut notices = Vec::new();
        for (n, to) in points.into_iter().enumerate() {
            buf.extend_from_slice(&bytes[from..to]);
            from = to;
            d.feed(&mut buf, &mut notices).unwrap();
            // A reader that sometimes lags behind the wire.
            if n % (reader_lag + 1) != 0 {
                continue;
            }
            for (k, &id) in ids.iter().enumerate() {
                while let Some(event) = d.pop(id) {
                    match event {
                        StreamEvent::Stdout(b) => got[k].0.extend_from_slice(&b),
                        StreamEvent::Stderr(b) => got[k].1.extend_from_slice(&b),
                        StreamEvent::End(_) => got[k].2 = true,
                        StreamEvent::Overflowed => prop_assert!(false, "no budget here"),
                    }
                }
            }
        }
        for (k, &id) in ids.iter().enumerate() {
            while let Some(event) = d.pop(id) {
                match event {
                    StreamEvent::Stdout(b) => got[k].0.extend_from_slice(&b),
                    StreamEvent::Stderr(b) => got[k].1.extend_from_slice(&b),
                    StreamEvent::End(_) => got[k].2 = true,
                    StreamEvent::Overflowed => prop_assert!(false, "no budget here"),
                }
            }
        }
        prop_assert!(d.is_between_records(&buf));
        prop_assert_eq!(d.in_use(), 0);
        prop_assert!(notices.iter().all(|n| matches!(n, Notice::Ready(_))));
        for (k, chunks) in outputs.iter().enumerate() {
            let out: Vec<u8> = chunks.iter().filter(|c| !c.0).flat_map(|c| c.1.clone()).collect();
            let err: Vec<u8> = chunks.iter().filter(|c| c.0).flat_map(|c| c.1.clone()).collect();
            prop_assert_eq!(&got[k].0, &out);
            prop_assert_eq!(&got[k].1, &err);
            prop_assert!(got[k].2, "stream {} saw its END", k);
        }
    }

    /// Whatever bytes arrive, feeding never panics, and it either routes them or fails.
    #[test]
    fn feeding_arbitrary_bytes_is_total(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        open in 0usize..5,
    ) {
        let mut d = Demux::new(4, 64, 0);
        for _ in 0..open {
            let _ = d.open();
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let mut notices = Vec::new();
        let _ = d.feed(&mut buf, &mut notices);
        for id in 1..=4 {
            while d.pop(id).is_some() {}
            let _ = d.abandon(id);
        }
    }
}

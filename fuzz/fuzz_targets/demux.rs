//! Fuzzes the multiplexed connection's demultiplexer (`client::mux::demux`): arbitrary
//! backend bytes, with 1..=16 streams open and a per-stream budget from the input, cut
//! into pieces whose sizes come from the input, must route to the same per-stream events
//! (or fail the connection alike) as one piece; no stream ever holds more than its
//! budget plus its spill limit plus one record, and a stream that overflowed gets
//! nothing after it.
//!
//! Input layout: byte 0: streams (low 4 bits + 1) and the number of cut bytes (high 4
//! bits); byte 1: budget (256 × byte; the spill limit is twice that when the byte is
//! odd, else 0: no spill file); then the cut bytes; the rest is the wire.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "common/cuts.rs"]
mod cuts;
use tower_fastcgi::bench_hooks::demux_feed;

fuzz_target!(|input: &[u8]| {
    let [config, budget, rest @ ..] = input else {
        return;
    };
    let streams = u16::from(config & 0x0f) + 1;
    let spill = if budget & 1 == 1 { u64::from(*budget) * 512 } else { 0 };
    let budget = usize::from(*budget) * 256;
    let n = usize::from(config >> 4).min(rest.len());
    let (plan, wire) = rest.split_at(n);
    let whole = demux_feed(streams, budget, spill, &[Bytes::copy_from_slice(wire)]);
    let chunks = cuts::chunks(plan, wire);
    let split = demux_feed(streams, budget, spill, &chunks);
    assert_eq!(whole, split, "cuts changed the routing");
    let Ok(per_stream) = whole else {
        return;
    };
    for events in per_stream {
        let held: u64 = events.iter().filter(|(k, _)| *k < 2).map(|(_, l)| *l).sum();
        // A record (at most 65,535 bytes) is queued whole before the budget is checked.
        assert!(
            held <= budget as u64 + spill + 65_535,
            "held {held} over budget {budget} + spill {spill}"
        );
        if let Some(at) = events.iter().position(|(k, _)| *k == 3) {
            assert_eq!(at + 1, events.len(), "events after an overflow: {events:?}");
        }
    }
});

//! Fuzzes the SCGI/uwsgi response head parser (the stream dialect: an optional
//! `HTTP/1.x` status line, CGI fields, the 64 KiB cap): arbitrary bytes, cut into pushes
//! whose sizes come from the input, must parse without panicking to the same answer as
//! one push of everything, whatever the cuts.
//!
//! Input layout: byte 0 gives the number `n` (0..=15) of cut bytes that follow; the rest
//! is the response stream.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "common/cuts.rs"]
mod cuts;
use tower_fastcgi::bench_hooks::parse_stream_response_head;

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(first & 0x0f).min(rest.len());
    let (plan, wire) = rest.split_at(n);
    let whole = parse_stream_response_head(&[Bytes::copy_from_slice(wire)]);
    let chunks = cuts::chunks(plan, wire);
    let split = parse_stream_response_head(&chunks);
    // A head longer than the cap may be refused at a different push, but refused alike;
    // everything else must not depend on the cuts.
    assert_eq!(whole, split, "cuts changed the answer");
});

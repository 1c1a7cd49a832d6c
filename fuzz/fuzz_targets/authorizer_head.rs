//! Fuzzes an Authorizer's answer head (the CGI head parser in its authorizer mode, which
//! keeps `Variable-NAME` fields apart for the inner request): arbitrary bytes, cut into
//! pushes whose sizes come from the input, must parse without panicking to the same
//! answer as one push of everything; a variable's name (what follows the one
//! `Variable-` prefix) is never empty.
//!
//! Input layout: byte 0 gives the number `n` (0..=15) of cut bytes that follow; the rest
//! is the STDOUT stream.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "common/cuts.rs"]
mod cuts;
use tower_fastcgi::bench_hooks::parse_authorizer_head;

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(first & 0x0f).min(rest.len());
    let (plan, wire) = rest.split_at(n);
    let whole = parse_authorizer_head(&[Bytes::copy_from_slice(wire)]);
    let chunks = cuts::chunks(plan, wire);
    let split = parse_authorizer_head(&chunks);
    assert_eq!(whole, split, "cuts changed the answer");
    if let Ok(Some((status, _, variables, _))) = whole {
        assert!((100..=999).contains(&status));
        // (A name may itself start with `Variable-`: `Variable-Variable-X` names the
        // variable `Variable-X`; the campaign's one finding was this check being wrong.)
        for (name, _) in &variables {
            assert!(!name.is_empty(), "an empty variable name");
        }
    }
});

//! Shared by the targets that push their input in pieces: the wire cut into chunks whose
//! sizes (1..=256 bytes, cycling) come from the `plan` bytes of the input; one chunk of
//! everything when the plan is empty.

use bytes::Bytes;

pub fn chunks(plan: &[u8], wire: &[u8]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut at = 0;
    for &cut in plan.iter().cycle() {
        if at >= wire.len() {
            break;
        }
        let len = (usize::from(cut) + 1).min(wire.len() - at);
        chunks.push(Bytes::copy_from_slice(&wire[at..at + len]));
        at += len;
    }
    if chunks.is_empty() {
        chunks.push(Bytes::copy_from_slice(wire));
    }
    chunks
}

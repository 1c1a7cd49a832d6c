//! Encoders: fixed records, stream chunking with padding, and PARAMS packing.

use bytes::{BufMut, BytesMut};

use super::params::{encoded_pair_len, len_prefixes, parts_len};
use super::{HEADER_LEN, Header, MAX_PADDED_CONTENT_LEN, ProtoError, RecordType};

/// Eight zero bytes: the padding source for vectored writes.
pub static PADDING: [u8; 8] = [0; 8];

/// Padding that brings `content_len` to a multiple of eight, or none when that would push
/// content plus padding past 65535 (only possible for content above 65528).
///
/// ```
/// use tower_fastcgi::proto::padding_len;
/// assert_eq!(padding_len(0), 0);
/// assert_eq!(padding_len(13), 3);
/// assert_eq!(padding_len(65528), 0);
/// assert_eq!(padding_len(65535), 0);
/// ```
pub const fn padding_len(content_len: usize) -> u8 {
    if content_len > MAX_PADDED_CONTENT_LEN {
        0
    } else {
        ((8 - content_len % 8) % 8) as u8
    }
}

/// The header of one stream record carrying `len` content bytes, and its padding length.
///
/// For writers that send the content from its own buffer (vectored I/O): write the header,
/// then the content, then `&PADDING[..padding]`. `len` must not exceed
/// [`MAX_PADDED_CONTENT_LEN`]; larger values are clamped, so split content first with
/// [`encode_stream_chunk`]'s rule.
pub const fn stream_header(ty: RecordType, request_id: u16, len: usize) -> [u8; HEADER_LEN] {
    let len = if len > MAX_PADDED_CONTENT_LEN {
        MAX_PADDED_CONTENT_LEN
    } else {
        len
    };
    Header::new(ty, request_id, len as u16, padding_len(len)).to_bytes()
}

/// Appends one record whose content fits in a single record (at most 65535 bytes).
pub(crate) fn encode_fixed(dst: &mut BytesMut, ty: RecordType, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= super::MAX_CONTENT_LEN);
    let len = content.len().min(super::MAX_CONTENT_LEN);
    let pad = padding_len(len);
    dst.reserve(HEADER_LEN + len + pad as usize);
    dst.put_slice(&Header::new(ty, request_id, len as u16, pad).to_bytes());
    dst.put_slice(content.get(..len).unwrap_or_default());
    dst.put_slice(PADDING.get(..pad as usize).unwrap_or_default());
}

/// Appends `data` as records of type `ty`, at most [`MAX_PADDED_CONTENT_LEN`] bytes each,
/// each padded to a multiple of eight.
///
/// An empty `data` appends the empty end-of-stream record; a non-empty `data` does not end
/// the stream (call again with `b""`).
///
/// ```
/// use bytes::BytesMut;
/// use tower_fastcgi::proto::{encode_stream, RecordType};
///
/// let mut buf = BytesMut::new();
/// encode_stream(&mut buf, RecordType::Stdin, 1, b"quantity=100&item=3047936");
/// encode_stream(&mut buf, RecordType::Stdin, 1, b"");
/// assert_eq!(&buf[..8], &[1, 5, 0, 1, 0, 25, 7, 0]);
/// assert_eq!(buf.len(), 8 + 25 + 7 + 8);
/// ```
pub fn encode_stream(dst: &mut BytesMut, ty: RecordType, request_id: u16, data: &[u8]) {
    if data.is_empty() {
        encode_fixed(dst, ty, request_id, &[]);
        return;
    }
    for chunk in data.chunks(MAX_PADDED_CONTENT_LEN) {
        encode_fixed(dst, ty, request_id, chunk);
    }
}

/// Appends the first record of `data` (at most [`MAX_PADDED_CONTENT_LEN`] bytes) and returns
/// how many bytes of `data` it consumed. Useful for writers that interleave records.
pub fn encode_stream_chunk(
    dst: &mut BytesMut,
    ty: RecordType,
    request_id: u16,
    data: &[u8],
) -> usize {
    let n = data.len().min(MAX_PADDED_CONTENT_LEN);
    encode_fixed(dst, ty, request_id, data.get(..n).unwrap_or_default());
    n
}

/// Writes name-value pairs as FCGI_PARAMS records straight into an output buffer.
///
/// Pairs are packed whole: a record is closed when the next pair would not fit in
/// [`MAX_PADDED_CONTENT_LEN`] bytes, so no pair ever straddles two records (php-fpm and flup
/// reject that). A single pair larger than one record is refused with
/// [`ProtoError::PairTooLarge`]; names and values containing NUL are refused with
/// [`ProtoError::NulInParam`]. [`finish`](ParamsEncoder::finish) closes the last record
/// and writes the empty PARAMS record that ends the stream.
///
/// The same encoder writes FCGI_GET_VALUES queries and FCGI_GET_VALUES_RESULT answers
/// ([`ParamsEncoder::with_type`]).
///
/// ```
/// use bytes::BytesMut;
/// use tower_fastcgi::proto::ParamsEncoder;
///
/// let mut buf = BytesMut::new();
/// let mut params = ParamsEncoder::new(&mut buf, 1);
/// params.push(b"SERVER_PORT", b"80").unwrap();
/// params.push(b"SERVER_ADDR", b"199.170.183.42").unwrap();
/// params.finish();
/// // {FCGI_PARAMS, 1, "\013\002SERVER_PORT80\013\016SERVER_ADDR199.170.183.42"} + padding,
/// // then {FCGI_PARAMS, 1, ""} (FastCGI 1.0, Appendix B).
/// assert_eq!(&buf[8..10], &[11, 2]);
/// assert_eq!(buf.len(), 8 + 42 + 6 + 8); // header, pairs, padding, terminator
/// ```
#[derive(Debug)]
pub struct ParamsEncoder<'a> {
    dst: &'a mut BytesMut,
    ty: RecordType,
    request_id: u16,
    /// Offset of the open record's header in `dst`, if a record is open.
    open: Option<usize>,
}

impl<'a> ParamsEncoder<'a> {
    /// Starts a PARAMS stream for `request_id`, appending to `dst`.
    pub fn new(dst: &'a mut BytesMut, request_id: u16) -> ParamsEncoder<'a> {
        ParamsEncoder::with_type(dst, RecordType::Params, request_id)
    }

    /// Starts a name-value stream of another record type (GET_VALUES, GET_VALUES_RESULT).
    pub fn with_type(dst: &'a mut BytesMut, ty: RecordType, request_id: u16) -> ParamsEncoder<'a> {
        ParamsEncoder {
            dst,
            ty,
            request_id,
            open: None,
        }
    }

    /// Appends one pair.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
        self.push_parts(&[name], &[value])
    }

    /// Appends one pair whose name and value are each the concatenation of several slices,
    /// so callers can build `HTTP_`-prefixed names or joined values without a temporary.
    pub fn push_parts(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), ProtoError> {
        self.push_sized(name, parts_len(name), value, parts_len(value))
    }

    /// [`push_parts`](Self::push_parts) for a caller that has already summed the part
    /// lengths (the CGI writer does, for its total cap): summing twice was ~30
    /// instructions a pair. `name_len` and `value_len` must be those sums.
    pub(crate) fn push_sized(
        &mut self,
        name: &[&[u8]],
        name_len: usize,
        value: &[&[u8]],
        value_len: usize,
    ) -> Result<(), ProtoError> {
        debug_assert_eq!(name_len, parts_len(name));
        debug_assert_eq!(value_len, parts_len(value));
        let pair_len = encoded_pair_len(name_len, value_len);
        if pair_len > MAX_PADDED_CONTENT_LEN {
            // A NUL is the more specific refusal, as when the check came first.
            if name.iter().chain(value).any(|p| super::has_nul(p)) {
                return Err(ProtoError::NulInParam);
            }
            return Err(ProtoError::PairTooLarge { len: pair_len });
        }
        let opened_here = match self.open {
            Some(start)
                if self.dst.len() - start - HEADER_LEN + pair_len <= MAX_PADDED_CONTENT_LEN =>
            {
                false
            }
            Some(_) => {
                self.close_record();
                true
            }
            None => true,
        };
        let rollback = self.dst.len();
        if opened_here {
            self.open = Some(rollback);
            self.dst.reserve(HEADER_LEN + pair_len.max(512));
            self.dst.put_slice(&[0; HEADER_LEN]);
        } else {
            self.dst.reserve(pair_len);
        }
        // Both length prefixes in one copy (two `put_u8`s each re-checked capacity). The
        // usual two short lengths are a fixed-size copy, which compiles to a store; a
        // variable-length one would be a `memcpy` call.
        if name_len <= 127 && value_len <= 127 {
            self.dst
                .extend_from_slice(&[name_len as u8, value_len as u8]);
        } else {
            let (prefix, prefix_len) = len_prefixes(name_len, value_len);
            self.dst
                .extend_from_slice(prefix.get(..prefix_len).unwrap_or_default());
        }
        // The name and value are checked for NUL where they landed: one contiguous run
        // per pair instead of one check per part (each with its own short tail), which
        // was a fifth of the environment's cost (callgrind, bench/profile_tiny.sh).
        let text = self.dst.len();
        for part in name.iter().chain(value) {
            self.dst.extend_from_slice(part);
        }
        if self.dst.get(text..).is_some_and(super::has_nul) {
            // Leave the buffer as it was: the caller may carry on without this pair.
            self.dst.truncate(rollback);
            if opened_here {
                self.open = None;
            }
            return Err(ProtoError::NulInParam);
        }
        Ok(())
    }

    /// Ends the stream: closes the open record (if any) and appends the empty record.
    pub fn finish(mut self) {
        self.close_record();
        encode_fixed(self.dst, self.ty, self.request_id, &[]);
    }

    /// Closes the open record without ending the stream (for a name-value list that is
    /// not a stream, such as GET_VALUES, which is a single record).
    pub fn finish_record(mut self) {
        if self.open.is_none() {
            encode_fixed(self.dst, self.ty, self.request_id, &[]);
        }
        self.close_record();
    }

    /// Fills in the open record's header and pads it.
    fn close_record(&mut self) {
        let Some(start) = self.open.take() else {
            return;
        };
        let len = self.dst.len() - start - HEADER_LEN;
        let pad = padding_len(len);
        let header = Header::new(self.ty, self.request_id, len as u16, pad).to_bytes();
        if let Some(slot) = self.dst.get_mut(start..start + HEADER_LEN) {
            slot.copy_from_slice(&header);
        }
        self.dst
            .put_slice(PADDING.get(..pad as usize).unwrap_or_default());
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;

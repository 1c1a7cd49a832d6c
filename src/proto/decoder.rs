//! The incremental record decoder.

use bytes::{Buf, BytesMut};

use super::{HEADER_LEN, Header, ProtoError, Record, VERSION_1};

/// Decodes records from a byte stream delivered in pieces of any size.
///
/// Call [`decode`](Decoder::decode) after each read; it consumes whole records from the
/// front of the buffer and leaves partial ones in place, so the result does not depend on
/// how the stream was split. A record is returned as soon as its content is complete;
/// its padding is skipped as it arrives, even when it spans later reads.
///
/// Memory is bounded by the caller's buffer: one record is at most
/// 8 + 65535 + 255 bytes, and the decoder reserves at most that.
///
/// After an error the stream is out of sync and the connection must be closed; further
/// calls return the same error.
///
/// ```
/// use bytes::BytesMut;
/// use tower_fastcgi::proto::{Decoder, Record};
///
/// // {FCGI_STDOUT, 1, "hi"} padded with 6 bytes, delivered one byte at a time.
/// let wire = [1, 6, 0, 1, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0];
/// let mut decoder = Decoder::new();
/// let mut buf = BytesMut::new();
/// let mut seen = Vec::new();
/// for byte in wire {
///     buf.extend_from_slice(&[byte]);
///     while let Some(record) = decoder.decode(&mut buf).unwrap() {
///         seen.push(record);
///     }
/// }
/// assert_eq!(seen.len(), 1);
/// assert!(buf.is_empty(), "padding was skipped");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    /// Padding bytes of the last record that have not arrived yet.
    skip: usize,
    /// Set after an error: the stream cannot be resynchronised.
    failed: Option<ProtoError>,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Whether the decoder sits exactly between records (no padding still to skip).
    /// A connection may only be reused in this state with an empty buffer.
    pub fn is_between_records(&self) -> bool {
        self.skip == 0 && self.failed.is_none()
    }

    /// Decodes the next complete record from the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed; in that case `buf` has been reserved
    /// to hold the rest of the current record.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, ProtoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.skip_padding(buf) {
            return Ok(None);
        }
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            buf.reserve(HEADER_LEN);
            return Ok(None);
        };
        let header = Header::from_bytes(head);
        if header.version != VERSION_1 {
            return Err(self.fail(ProtoError::UnsupportedVersion(header.version)));
        }
        let content_len = header.content_length as usize;
        if buf.len() < HEADER_LEN + content_len {
            buf.reserve(HEADER_LEN + header.body_len() - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let content = buf.split_to(content_len).freeze();
        self.skip = header.padding_length as usize;
        self.skip_padding(buf);
        match Record::from_parts(&header, content) {
            Ok(record) => Ok(Some(record)),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Drops pending padding from the front of `buf`; true when none is left to skip.
    fn skip_padding(&mut self, buf: &mut BytesMut) -> bool {
        let n = self.skip.min(buf.len());
        buf.advance(n);
        self.skip -= n;
        self.skip == 0
    }

    fn fail(&mut self, err: ProtoError) -> ProtoError {
        self.failed = Some(err.clone());
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{EndRequest, ProtocolStatus, RecordType, encode_stream};
    use bytes::Bytes;

    /// Appendix B, example 3 (STDERR interleaved with STDOUT, non-zero appStatus),
    /// written as the application would send it, padded as php-fpm pads.
    fn example_three() -> BytesMut {
        let mut buf = BytesMut::new();
        encode_stream(
            &mut buf,
            RecordType::Stdout,
            1,
            b"Content-type: text/html\r\n\r\n<ht",
        );
        encode_stream(
            &mut buf,
            RecordType::Stderr,
            1,
            b"config error: missing SI_UID\n",
        );
        encode_stream(&mut buf, RecordType::Stdout, 1, b"ml>\n<head> ... ");
        encode_stream(&mut buf, RecordType::Stdout, 1, b"");
        encode_stream(&mut buf, RecordType::Stderr, 1, b"");
        Record::EndRequest {
            request_id: 1,
            body: EndRequest {
                app_status: 938,
                protocol_status: ProtocolStatus::RequestComplete,
            },
        }
        .encode(&mut buf);
        buf
    }

    fn decode_all(dec: &mut Decoder, buf: &mut BytesMut) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(r) = dec.decode(buf).unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn appendix_b_example_three_in_every_split() {
        let wire = example_three().freeze();
        let whole = decode_all(&mut Decoder::new(), &mut BytesMut::from(&wire[..]));
        assert_eq!(whole.len(), 6);
        assert_eq!(
            whole[5],
            Record::EndRequest {
                request_id: 1,
                body: EndRequest {
                    app_status: 938,
                    protocol_status: ProtocolStatus::RequestComplete
                }
            }
        );
        // Split the stream at every single position: same records.
        for cut in 0..=wire.len() {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = decode_all(&mut dec, &mut buf);
            buf.extend_from_slice(&wire[cut..]);
            got.extend(decode_all(&mut dec, &mut buf));
            assert_eq!(got, whole, "split at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn padding_spanning_reads_is_skipped() {
        // Record with 255 bytes of padding, followed by another record.
        let mut wire = vec![1, 6, 0, 1, 0, 1, 255, 0, b'a'];
        wire.extend(std::iter::repeat_n(0u8, 255));
        wire.extend_from_slice(&[1, 6, 0, 1, 0, 0, 0, 0]);
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..100]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Record::Stdout {
                request_id: 1,
                data: Bytes::from_static(b"a")
            })
        );
        assert!(!dec.is_between_records());
        assert!(buf.is_empty());
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&wire[100..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Record::Stdout {
                request_id: 1,
                data: Bytes::new()
            })
        );
        assert!(dec.is_between_records());
    }

    #[test]
    fn bad_version_is_sticky() {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(dec.decode(&mut buf), Err(ProtoError::UnsupportedVersion(2)));
        let mut good = BytesMut::from(&[1u8, 6, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(
            dec.decode(&mut good),
            Err(ProtoError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn max_content_and_padding() {
        let mut wire = vec![1, 6, 0, 1, 0xff, 0xff, 0xff, 0];
        wire.extend(std::iter::repeat_n(b'x', 65535));
        wire.extend(std::iter::repeat_n(0, 255));
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..]);
        let Some(Record::Stdout { data, .. }) = dec.decode(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(data.len(), 65535);
        assert!(buf.is_empty());
    }

    #[test]
    fn reserve_is_bounded_by_one_record() {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&[1u8, 6, 0, 1, 0xff, 0xff, 0xff, 0][..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 8 + 65535 + 255);
        assert!(buf.capacity() < 4 * (8 + 65535 + 255));
    }

    #[test]
    fn payload_is_a_slice_not_a_copy() {
        let mut wire = BytesMut::new();
        encode_stream(&mut wire, RecordType::Stdout, 1, &[7u8; 1000]);
        let base = wire.as_ptr() as usize;
        let Some(Record::Stdout { data, .. }) = Decoder::new().decode(&mut wire).unwrap() else {
            panic!()
        };
        assert_eq!(data.as_ptr() as usize, base + 8);
    }

    #[test]
    fn management_and_unknown_records() {
        let mut buf = BytesMut::new();
        // {FCGI_UNKNOWN_TYPE, 0, {42}}, {type 99, id 5, "zz"}, {FCGI_GET_VALUES_RESULT, 0, ...}
        buf.extend_from_slice(&[1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(&[1, 99, 0, 5, 0, 2, 6, 0, b'z', b'z', 0, 0, 0, 0, 0, 0]);
        let mut p =
            crate::proto::ParamsEncoder::with_type(&mut buf, RecordType::GetValuesResult, 0);
        p.push(b"FCGI_MPXS_CONNS", b"0").unwrap();
        p.finish_record();
        let recs = decode_all(&mut Decoder::new(), &mut buf);
        assert_eq!(recs[0], Record::UnknownType { record_type: 42 });
        assert_eq!(
            recs[1],
            Record::Unknown {
                record_type: 99,
                request_id: 5,
                data: Bytes::from_static(b"zz")
            }
        );
        let Record::GetValuesResult { data } = &recs[2] else {
            panic!()
        };
        let pairs: Vec<_> = crate::proto::PairIter::new(data)
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(pairs, vec![(&b"FCGI_MPXS_CONNS"[..], &b"0"[..])]);
    }
}

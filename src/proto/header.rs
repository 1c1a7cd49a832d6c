//! The fixed 8-byte record header and the record type byte.

use super::{HEADER_LEN, VERSION_1};

/// The type of a FastCGI record (the header's second byte).
///
/// Types the specification does not define are kept as [`RecordType::Unknown`] so that a
/// receiver can skip them (and an application can answer with FCGI_UNKNOWN_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1), web server to application.
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2), web server to application.
    AbortRequest,
    /// `FCGI_END_REQUEST` (3), application to web server.
    EndRequest,
    /// `FCGI_PARAMS` (4), a stream of name-value pairs, web server to application.
    Params,
    /// `FCGI_STDIN` (5), the request body stream.
    Stdin,
    /// `FCGI_STDOUT` (6), the response stream.
    Stdout,
    /// `FCGI_STDERR` (7), the error stream.
    Stderr,
    /// `FCGI_DATA` (8), the Filter role's file data stream.
    Data,
    /// `FCGI_GET_VALUES` (9), a management query.
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10), the answer to a management query.
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11), the answer to a management record the application does not know.
    UnknownType,
    /// Any other type byte (0 or 12..=255).
    Unknown(u8),
}

impl RecordType {
    /// The type byte on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Unknown(other) => other,
        }
    }

    /// The record type for a type byte.
    pub const fn from_u8(byte: u8) -> RecordType {
        match byte {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => RecordType::Unknown(other),
        }
    }

    /// Management records (GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE) use request id 0.
    pub const fn is_management(self) -> bool {
        matches!(
            self,
            RecordType::GetValues | RecordType::GetValuesResult | RecordType::UnknownType
        )
    }

    /// Application records defined by the specification (types 1..=8) need a non-zero id.
    pub const fn is_application(self) -> bool {
        matches!(self.as_u8(), 1..=8)
    }

    /// Stream types: a series of non-empty records ended by an empty one.
    pub const fn is_stream(self) -> bool {
        matches!(
            self,
            RecordType::Params
                | RecordType::Stdin
                | RecordType::Stdout
                | RecordType::Stderr
                | RecordType::Data
        )
    }
}

/// The 8-byte header in front of every record.
///
/// ```
/// use tower_fastcgi::proto::{Header, RecordType};
///
/// let header = Header::new(RecordType::Stdin, 1, 25, 7);
/// let bytes = header.to_bytes();
/// assert_eq!(bytes, [1, 5, 0, 1, 0, 25, 7, 0]);
/// assert_eq!(Header::from_bytes(&bytes), header);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Protocol version; always [`VERSION_1`] for records this crate writes.
    pub version: u8,
    /// The record type.
    pub record_type: RecordType,
    /// The request id (0 for management records).
    pub request_id: u16,
    /// Number of content bytes following the header.
    pub content_length: u16,
    /// Number of padding bytes following the content, to be skipped.
    pub padding_length: u8,
}

impl Header {
    /// A version-1 header.
    pub const fn new(
        record_type: RecordType,
        request_id: u16,
        content_length: u16,
        padding_length: u8,
    ) -> Header {
        Header {
            version: VERSION_1,
            record_type,
            request_id,
            content_length,
            padding_length,
        }
    }

    /// Reads a header from exactly 8 bytes. The reserved byte is ignored, as the
    /// specification asks; the version is reported as is (the [`Decoder`](super::Decoder)
    /// rejects versions other than 1).
    pub const fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: bytes[0],
            record_type: RecordType::from_u8(bytes[1]),
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        }
    }

    /// The 8 bytes on the wire (reserved byte zero).
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type.as_u8(),
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Content plus padding: the bytes that follow the header.
    pub const fn body_len(&self) -> usize {
        self.content_length as usize + self.padding_length as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_byte_round_trips() {
        for byte in 0..=u8::MAX {
            assert_eq!(RecordType::from_u8(byte).as_u8(), byte);
        }
    }

    #[test]
    fn type_values_match_the_spec_constants() {
        // FastCGI 1.0 §8.
        let expected = [
            (RecordType::BeginRequest, 1),
            (RecordType::AbortRequest, 2),
            (RecordType::EndRequest, 3),
            (RecordType::Params, 4),
            (RecordType::Stdin, 5),
            (RecordType::Stdout, 6),
            (RecordType::Stderr, 7),
            (RecordType::Data, 8),
            (RecordType::GetValues, 9),
            (RecordType::GetValuesResult, 10),
            (RecordType::UnknownType, 11),
        ];
        for (ty, byte) in expected {
            assert_eq!(ty.as_u8(), byte);
        }
    }

    #[test]
    fn classification_follows_appendix_a() {
        assert!(RecordType::GetValues.is_management());
        assert!(RecordType::GetValuesResult.is_management());
        assert!(RecordType::UnknownType.is_management());
        assert!(!RecordType::Stdout.is_management());
        for ty in [1u8, 2, 3, 4, 5, 6, 7, 8] {
            assert!(RecordType::from_u8(ty).is_application());
        }
        assert!(!RecordType::Unknown(0).is_application());
        assert!(!RecordType::Unknown(12).is_application());
        assert!(RecordType::Params.is_stream() && RecordType::Data.is_stream());
        assert!(!RecordType::BeginRequest.is_stream());
    }

    #[test]
    fn header_is_big_endian_and_ignores_reserved() {
        let bytes = [1, 6, 0x12, 0x34, 0xff, 0xfe, 255, 0xaa];
        let h = Header::from_bytes(&bytes);
        assert_eq!(h.request_id, 0x1234);
        assert_eq!(h.content_length, 0xfffe);
        assert_eq!(h.padding_length, 255);
        assert_eq!(h.body_len(), 0xfffe + 255);
        // The reserved byte is written as zero.
        assert_eq!(h.to_bytes(), [1, 6, 0x12, 0x34, 0xff, 0xfe, 255, 0]);
    }
}

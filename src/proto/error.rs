use std::fmt;

use super::RecordType;

/// A violation of the FastCGI wire format, found while decoding or refused while encoding.
///
/// Every variant is a value, never a panic: the decoder is total on arbitrary input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The header's version byte is not 1.
    UnsupportedVersion(u8),
    /// A fixed-size record body (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE: 8 bytes;
    /// ABORT_REQUEST: 0 bytes) has another length.
    InvalidBodyLength {
        /// The record's type.
        record_type: RecordType,
        /// Its content length.
        len: usize,
    },
    /// A management record (GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE) with a non-zero id.
    ManagementRecordWithRequestId {
        /// The record's type.
        record_type: RecordType,
        /// The id it carried.
        request_id: u16,
    },
    /// An application record (types 1 to 8) with the null request id.
    ApplicationRecordWithNullId(RecordType),
    /// A name-value pair whose length prefix runs past the end of its record.
    TruncatedPair,
    /// A name-value stream grew beyond the collector's limit.
    ParamsTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A name-value pair too large to fit in one PARAMS record; php-fpm and flup cannot
    /// receive a pair split across records, so the encoder refuses it.
    PairTooLarge {
        /// Encoded size of the pair (length prefixes included).
        len: usize,
    },
    /// A name or value contains a NUL byte, which CGI forbids (and C backends would truncate at).
    NulInParam,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::UnsupportedVersion(v) => write!(f, "unsupported FastCGI version {v}"),
            ProtoError::InvalidBodyLength { record_type, len } => {
                write!(f, "{record_type:?} record with invalid length {len}")
            }
            ProtoError::ManagementRecordWithRequestId {
                record_type,
                request_id,
            } => write!(
                f,
                "management record {record_type:?} with non-zero request id {request_id}"
            ),
            ProtoError::ApplicationRecordWithNullId(ty) => {
                write!(f, "application record {ty:?} with request id 0")
            }
            ProtoError::TruncatedPair => f.write_str("name-value pair runs past its record"),
            ProtoError::ParamsTooLarge { limit } => {
                write!(f, "name-value stream larger than {limit} bytes")
            }
            ProtoError::PairTooLarge { len } => write!(
                f,
                "name-value pair of {len} bytes does not fit in one PARAMS record"
            ),
            ProtoError::NulInParam => f.write_str("NUL byte in a parameter name or value"),
        }
    }
}

impl std::error::Error for ProtoError {}

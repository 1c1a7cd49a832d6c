//! Typed records and the fixed-size record bodies.

use bytes::Bytes;

use super::{Header, KEEP_CONN, ProtoError, RecordType};

/// The role an application plays for a request (BEGIN_REQUEST body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `FCGI_RESPONDER` (1): CGI/1.1 semantics, the usual role.
    Responder,
    /// `FCGI_AUTHORIZER` (2): decides whether a request is allowed.
    Authorizer,
    /// `FCGI_FILTER` (3): like Responder, plus a data file on FCGI_DATA.
    Filter,
    /// A role number the specification does not define.
    Unknown(u16),
}

impl Role {
    /// The role number on the wire.
    pub const fn as_u16(self) -> u16 {
        match self {
            Role::Responder => 1,
            Role::Authorizer => 2,
            Role::Filter => 3,
            Role::Unknown(other) => other,
        }
    }

    /// The role for a role number.
    pub const fn from_u16(value: u16) -> Role {
        match value {
            1 => Role::Responder,
            2 => Role::Authorizer,
            3 => Role::Filter,
            other => Role::Unknown(other),
        }
    }
}

/// The body of FCGI_BEGIN_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BeginRequest {
    /// The role the application is asked to play.
    pub role: Role,
    /// `FCGI_KEEP_CONN`: keep the connection open after this request.
    pub keep_conn: bool,
}

impl BeginRequest {
    /// The 8-byte body on the wire.
    pub const fn to_bytes(&self) -> [u8; 8] {
        let role = self.role.as_u16().to_be_bytes();
        let flags = if self.keep_conn { KEEP_CONN } else { 0 };
        [role[0], role[1], flags, 0, 0, 0, 0, 0]
    }

    /// Reads the 8-byte body; reserved bytes and unknown flag bits are ignored.
    pub const fn from_bytes(bytes: &[u8; 8]) -> BeginRequest {
        BeginRequest {
            role: Role::from_u16(u16::from_be_bytes([bytes[0], bytes[1]])),
            keep_conn: bytes[2] & KEEP_CONN != 0,
        }
    }
}

/// The `protocolStatus` of FCGI_END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): the application rejected a concurrent request on a connection.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application ran out of a resource and rejected the request.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the application does not play the requested role.
    UnknownRole,
    /// A status the specification does not define.
    Unknown(u8),
}

impl ProtocolStatus {
    /// The status byte on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
            ProtocolStatus::Unknown(other) => other,
        }
    }

    /// The status for a status byte.
    pub const fn from_u8(value: u8) -> ProtocolStatus {
        match value {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            other => ProtocolStatus::Unknown(other),
        }
    }
}

/// The body of FCGI_END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndRequest {
    /// The application's exit status (for a Responder, what a CGI program would `exit` with).
    pub app_status: u32,
    /// Whether the request completed or was rejected.
    pub protocol_status: ProtocolStatus,
}

impl EndRequest {
    /// The 8-byte body on the wire.
    pub const fn to_bytes(&self) -> [u8; 8] {
        let s = self.app_status.to_be_bytes();
        [
            s[0],
            s[1],
            s[2],
            s[3],
            self.protocol_status.as_u8(),
            0,
            0,
            0,
        ]
    }

    /// Reads the 8-byte body; reserved bytes are ignored.
    pub const fn from_bytes(bytes: &[u8; 8]) -> EndRequest {
        EndRequest {
            app_status: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            protocol_status: ProtocolStatus::from_u8(bytes[4]),
        }
    }
}

/// One decoded FastCGI record, typed and validated.
///
/// Stream payloads are [`Bytes`] slices of the decoder's input buffer (no copy).
/// An empty `data` marks the end of that stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// FCGI_BEGIN_REQUEST.
    BeginRequest {
        /// The request id.
        request_id: u16,
        /// Role and flags.
        body: BeginRequest,
    },
    /// FCGI_ABORT_REQUEST.
    AbortRequest {
        /// The request id.
        request_id: u16,
    },
    /// FCGI_END_REQUEST.
    EndRequest {
        /// The request id.
        request_id: u16,
        /// Application and protocol status.
        body: EndRequest,
    },
    /// FCGI_PARAMS stream record (name-value pairs).
    Params {
        /// The request id.
        request_id: u16,
        /// The record's pairs; empty at end of stream.
        data: Bytes,
    },
    /// FCGI_STDIN stream record.
    Stdin {
        /// The request id.
        request_id: u16,
        /// The payload; empty at end of stream.
        data: Bytes,
    },
    /// FCGI_STDOUT stream record.
    Stdout {
        /// The request id.
        request_id: u16,
        /// The payload; empty at end of stream.
        data: Bytes,
    },
    /// FCGI_STDERR stream record.
    Stderr {
        /// The request id.
        request_id: u16,
        /// The payload; empty at end of stream.
        data: Bytes,
    },
    /// FCGI_DATA stream record (Filter role).
    Data {
        /// The request id.
        request_id: u16,
        /// The payload; empty at end of stream.
        data: Bytes,
    },
    /// FCGI_GET_VALUES management query: name-value pairs with empty values.
    GetValues {
        /// The pairs.
        data: Bytes,
    },
    /// FCGI_GET_VALUES_RESULT management answer.
    GetValuesResult {
        /// The pairs.
        data: Bytes,
    },
    /// FCGI_UNKNOWN_TYPE: the application did not understand a management record of this type.
    UnknownType {
        /// The type it did not understand.
        record_type: u8,
    },
    /// A record of a type the specification does not define; receivers skip it.
    Unknown {
        /// The type byte.
        record_type: u8,
        /// The request id.
        request_id: u16,
        /// The content.
        data: Bytes,
    },
}

impl Record {
    /// Builds a typed record from a header and its content, checking the rules that
    /// depend on the type: fixed body sizes and which types may use the null request id.
    pub fn from_parts(header: &Header, data: Bytes) -> Result<Record, ProtoError> {
        let ty = header.record_type;
        let request_id = header.request_id;
        if ty.is_management() && request_id != 0 {
            return Err(ProtoError::ManagementRecordWithRequestId {
                record_type: ty,
                request_id,
            });
        }
        if ty.is_application() && request_id == 0 {
            return Err(ProtoError::ApplicationRecordWithNullId(ty));
        }
        let fixed = |len: usize| -> Result<[u8; 8], ProtoError> {
            <[u8; 8]>::try_from(&data[..]).map_err(|_| ProtoError::InvalidBodyLength {
                record_type: ty,
                len,
            })
        };
        Ok(match ty {
            RecordType::BeginRequest => Record::BeginRequest {
                request_id,
                body: BeginRequest::from_bytes(&fixed(data.len())?),
            },
            RecordType::AbortRequest => {
                if !data.is_empty() {
                    return Err(ProtoError::InvalidBodyLength {
                        record_type: ty,
                        len: data.len(),
                    });
                }
                Record::AbortRequest { request_id }
            }
            RecordType::EndRequest => Record::EndRequest {
                request_id,
                body: EndRequest::from_bytes(&fixed(data.len())?),
            },
            RecordType::Params => Record::Params { request_id, data },
            RecordType::Stdin => Record::Stdin { request_id, data },
            RecordType::Stdout => Record::Stdout { request_id, data },
            RecordType::Stderr => Record::Stderr { request_id, data },
            RecordType::Data => Record::Data { request_id, data },
            RecordType::GetValues => Record::GetValues { data },
            RecordType::GetValuesResult => Record::GetValuesResult { data },
            RecordType::UnknownType => Record::UnknownType {
                record_type: fixed(data.len())?[0],
            },
            RecordType::Unknown(record_type) => Record::Unknown {
                record_type,
                request_id,
                data,
            },
        })
    }

    /// The record's type.
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::BeginRequest { .. } => RecordType::BeginRequest,
            Record::AbortRequest { .. } => RecordType::AbortRequest,
            Record::EndRequest { .. } => RecordType::EndRequest,
            Record::Params { .. } => RecordType::Params,
            Record::Stdin { .. } => RecordType::Stdin,
            Record::Stdout { .. } => RecordType::Stdout,
            Record::Stderr { .. } => RecordType::Stderr,
            Record::Data { .. } => RecordType::Data,
            Record::GetValues { .. } => RecordType::GetValues,
            Record::GetValuesResult { .. } => RecordType::GetValuesResult,
            Record::UnknownType { .. } => RecordType::UnknownType,
            Record::Unknown { record_type, .. } => RecordType::Unknown(*record_type),
        }
    }

    /// The record's request id (0 for management records).
    pub fn request_id(&self) -> u16 {
        match self {
            Record::BeginRequest { request_id, .. }
            | Record::AbortRequest { request_id }
            | Record::EndRequest { request_id, .. }
            | Record::Params { request_id, .. }
            | Record::Stdin { request_id, .. }
            | Record::Stdout { request_id, .. }
            | Record::Stderr { request_id, .. }
            | Record::Data { request_id, .. }
            | Record::Unknown { request_id, .. } => *request_id,
            Record::GetValues { .. }
            | Record::GetValuesResult { .. }
            | Record::UnknownType { .. } => 0,
        }
    }

    /// The variable-length content of a stream or name-value record (PARAMS, STDIN,
    /// STDOUT, STDERR, DATA, GET_VALUES, GET_VALUES_RESULT, or a record of unknown type);
    /// `None` for the fixed-size bodies.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_fastcgi::proto::Record;
    ///
    /// let out = Record::Stdout { request_id: 1, data: Bytes::from_static(b"hi") };
    /// assert_eq!(out.payload().map(|d| &d[..]), Some(&b"hi"[..]));
    /// assert_eq!(Record::AbortRequest { request_id: 1 }.payload(), None);
    /// ```
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Record::Params { data, .. }
            | Record::Stdin { data, .. }
            | Record::Stdout { data, .. }
            | Record::Stderr { data, .. }
            | Record::Data { data, .. }
            | Record::GetValues { data }
            | Record::GetValuesResult { data }
            | Record::Unknown { data, .. } => Some(data),
            Record::BeginRequest { .. }
            | Record::AbortRequest { .. }
            | Record::EndRequest { .. }
            | Record::UnknownType { .. } => None,
        }
    }

    /// Mutable access to the content [`payload`](Record::payload) returns.
    pub fn payload_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Record::Params { data, .. }
            | Record::Stdin { data, .. }
            | Record::Stdout { data, .. }
            | Record::Stderr { data, .. }
            | Record::Data { data, .. }
            | Record::GetValues { data }
            | Record::GetValuesResult { data }
            | Record::Unknown { data, .. } => Some(data),
            Record::BeginRequest { .. }
            | Record::AbortRequest { .. }
            | Record::EndRequest { .. }
            | Record::UnknownType { .. } => None,
        }
    }

    /// Appends the record to `dst`, padded to a multiple of eight bytes.
    ///
    /// Stream and management payloads longer than one record are split into several records
    /// of at most [`MAX_PADDED_CONTENT_LEN`](super::MAX_PADDED_CONTENT_LEN) bytes; an empty
    /// stream payload writes the end-of-stream record.
    pub fn encode(&self, dst: &mut bytes::BytesMut) {
        use super::encoder::{encode_fixed, encode_stream};
        let ty = self.record_type();
        let id = self.request_id();
        match self {
            Record::BeginRequest { body, .. } => encode_fixed(dst, ty, id, &body.to_bytes()),
            Record::AbortRequest { .. } => encode_fixed(dst, ty, id, &[]),
            Record::EndRequest { body, .. } => encode_fixed(dst, ty, id, &body.to_bytes()),
            Record::UnknownType { record_type } => {
                encode_fixed(dst, ty, id, &[*record_type, 0, 0, 0, 0, 0, 0, 0])
            }
            Record::Params { data, .. }
            | Record::Stdin { data, .. }
            | Record::Stdout { data, .. }
            | Record::Stderr { data, .. }
            | Record::Data { data, .. }
            | Record::GetValues { data }
            | Record::GetValuesResult { data }
            | Record::Unknown { data, .. } => encode_stream(dst, ty, id, data),
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

//! Sans-IO FastCGI 1.0: records, name-value pairs, an incremental decoder and encoders.
//!
//! This module does no I/O and knows nothing about tokio or sockets, in the spirit of
//! `quinn-proto`, h2's frame layer and `httparse`: it turns bytes into [`Record`]s and
//! records into bytes, so the same code serves the web-server side (this crate's client)
//! and the application side (test responders, the quickstart's embedded app).
//!
//! # Wire format
//!
//! Every record starts with an 8-byte [`Header`]: version (always 1), [`RecordType`],
//! a big-endian request id, a big-endian content length (0..=65535) and a padding length
//! (0..=255) that receivers must skip. Stream records (PARAMS, STDIN, STDOUT, ...) end
//! with an empty record of the same type.
//!
//! # Decoding
//!
//! [`Decoder`] takes any split of the byte stream, one byte at a time or megabytes at once,
//! and yields the same records. Payloads are sliced out of the caller's
//! [`BytesMut`](bytes::BytesMut) without copying.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tower_fastcgi::proto::{Decoder, Record};
//!
//! let mut wire = BytesMut::new();
//! let head = Bytes::from_static(b"Content-Type: text/plain\r\n\r\nhi");
//! Record::Stdout { request_id: 1, data: head }.encode(&mut wire);
//! Record::Stdout { request_id: 1, data: Bytes::new() }.encode(&mut wire); // end of STDOUT
//!
//! let mut decoder = Decoder::new();
//! match decoder.decode(&mut wire).unwrap() {
//!     Some(Record::Stdout { request_id: 1, data }) => assert!(data.ends_with(b"hi")),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! # Encoding
//!
//! There is one public way to encode each record: [`Record::encode`] for a record you
//! hold, and [`ParamsEncoder`] for a PARAMS (or GET_VALUES) stream built pair by pair.
//! Outgoing records are padded to a multiple of eight bytes, as the specification
//! recommends, and never carry more than [`MAX_PADDED_CONTENT_LEN`] content bytes so that
//! content plus padding stays within 65535 (php-fpm rejects anything larger).
//! [`ParamsEncoder`] packs whole name-value pairs into PARAMS records, because php-fpm and
//! flup parse every PARAMS record on its own and reject a pair that straddles two records.
//!
//! # Unstable helpers
//!
//! With the `unstable` feature this module also exports the byte-level helpers the crate
//! itself writes with: `encode_stream` and `encode_stream_chunk` (stream records straight
//! from a byte slice, without a `Bytes`), `stream_header`, `padding_len` and `PADDING`
//! (for vectored writers that send content from its own buffer) and `encoded_pair_len`.
//! They exist for benchmarks, fuzzing and test responders, and may change in any release.

mod decoder;
// Without `unstable`, the byte-level helpers are crate-private; they stay `pub` in the
// module so that the feature only changes the re-export.
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod encoder;
mod error;
mod header;
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub))]
mod params;
mod record;

pub use decoder::Decoder;
pub use encoder::ParamsEncoder;
#[cfg(feature = "unstable")]
pub use encoder::{PADDING, encode_stream, encode_stream_chunk, padding_len, stream_header};
#[cfg(not(feature = "unstable"))]
pub(crate) use encoder::{PADDING, encode_stream, padding_len, stream_header};
pub use error::ProtoError;
pub use header::{Header, RecordType};
#[cfg(feature = "unstable")]
pub use params::encoded_pair_len;
#[cfg(not(feature = "unstable"))]
pub(crate) use params::encoded_pair_len;
pub use params::{PairIter, ParamsCollector};
pub(crate) use params::{has_nul, word_has_nul};
pub use record::{BeginRequest, EndRequest, ProtocolStatus, Record, Role};

/// The only protocol version, `FCGI_VERSION_1`.
pub const VERSION_1: u8 = 1;

/// Length of a record header, `FCGI_HEADER_LEN`.
pub const HEADER_LEN: usize = 8;

/// Largest content length a record can carry (a 16-bit field).
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

/// Largest content length this crate puts in one record: the largest multiple of eight that
/// leaves room for padding without exceeding 65535 bytes of content plus padding.
pub const MAX_PADDED_CONTENT_LEN: usize = 65528;

/// `FCGI_NULL_REQUEST_ID`: the request id of management records.
pub const NULL_REQUEST_ID: u16 = 0;

/// `FCGI_KEEP_CONN`: the BEGIN_REQUEST flag asking the application to keep the connection open.
pub const KEEP_CONN: u8 = 1;

/// Names of the management variables queried with FCGI_GET_VALUES.
pub mod values {
    /// `FCGI_MAX_CONNS`: how many concurrent transport connections the application accepts.
    pub const MAX_CONNS: &str = "FCGI_MAX_CONNS";
    /// `FCGI_MAX_REQS`: how many concurrent requests the application accepts.
    pub const MAX_REQS: &str = "FCGI_MAX_REQS";
    /// `FCGI_MPXS_CONNS`: `"1"` if the application multiplexes requests on one connection.
    pub const MPXS_CONNS: &str = "FCGI_MPXS_CONNS";
}

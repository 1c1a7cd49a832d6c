//! [`ParamSink`]: where the CGI writer's pairs go, and its FastCGI implementation.

use crate::proto::{ParamsEncoder, ProtoError};

/// Where the variables go: one call per pair, in order. Names and values may be split
/// in parts (`HTTP_` + the header name, joined values) so no temporary is built.
pub(crate) trait ParamSink {
    /// Appends one pair; the protocol refuses what it cannot carry (NUL, a length over
    /// its field size) with [`ProtoError::NulInParam`] or [`ProtoError::PairTooLarge`].
    fn pair(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), ProtoError>;

    /// [`pair`](Self::pair) with the part lengths already summed (the writer sums them
    /// for its total cap), for sinks that would otherwise sum them again.
    #[inline]
    fn pair_sized(
        &mut self,
        name: &[&[u8]],
        name_len: usize,
        value: &[&[u8]],
        value_len: usize,
    ) -> Result<(), ProtoError> {
        let _ = (name_len, value_len);
        self.pair(name, value)
    }
}

impl ParamSink for ParamsEncoder<'_> {
    // Static dispatch (write_params is generic): the FastCGI path compiles to the same
    // direct call as before the trait existed.
    #[inline]
    fn pair(&mut self, name: &[&[u8]], value: &[&[u8]]) -> Result<(), ProtoError> {
        self.push_parts(name, value)
    }

    #[inline]
    fn pair_sized(
        &mut self,
        name: &[&[u8]],
        name_len: usize,
        value: &[&[u8]],
        value_len: usize,
    ) -> Result<(), ProtoError> {
        self.push_sized(name, name_len, value, value_len)
    }
}

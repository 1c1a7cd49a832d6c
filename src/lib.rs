//! FastCGI for tower and axum.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod proto;

mod cgi;
mod error;

pub use cgi::{ConnectionInfo, RequestParams};
pub use error::{BoxError, Error, ErrorKind, Timeout};

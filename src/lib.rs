//! FastCGI for tower and axum.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod proto;

mod body;
mod cgi;
mod client;
mod error;
mod pool;
pub mod service;

pub use body::FcgiBody;
pub use cgi::{ConnectionInfo, RequestParams};
pub use client::upload::UnknownLengthBody;
pub use client::{Backend, ParseBackendError};
pub use error::{BoxError, Error, ErrorKind, Timeout};
pub use pool::PoolStats;
pub use service::{Builder, FcgiService};

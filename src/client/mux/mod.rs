//! Multiplexed connections (issue 13): several requests at once on one connection, for
//! backends that answer `FCGI_MPXS_CONNS=1` (Go's `net/http/fcgi`, flup with
//! `multiplexed=True`, tokio-fastcgi, fastcgi++).
//!
//! - [`demux`], sans IO: routes the records read from a connection to per-stream
//!   bounded buffers and keeps the request ids;
//! - [`driver`]: the task that owns the socket (reads into the demultiplexer, writes the
//!   streams' records round-robin, vectored) and [`MuxStream`](driver::MuxStream), one
//!   request on it.
//!
//! Not wired into the service yet: the per-backend set of connections (fewest streams
//! below `FCGI_MAX_REQS` first, another connection only when all are full), streamed
//! request bodies and the `Exchange`/`MuxStream` enum the service and `FcgiBody` read
//! are the next step. Until then only the tests use this module.
#![allow(dead_code)]

pub(crate) mod demux;
pub(crate) mod driver;

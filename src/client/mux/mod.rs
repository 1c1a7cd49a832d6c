//! Multiplexed connections (issue 13): several requests at once on one connection, for
//! backends that answer `FCGI_MPXS_CONNS=1` (Go's `net/http/fcgi`, flup with
//! `multiplexed=True`, tokio-fastcgi, fastcgi++).
//!
//! So far the sans-IO half: [`demux`] routes the records read from a connection to
//! per-stream bounded buffers and keeps the request ids. The connection driver (a task
//! that owns the socket, feeds the demultiplexer and writes the streams' records
//! round-robin) and the stream type the service reads like an `Exchange` come next; until
//! then nothing outside the tests uses this module.
#![allow(dead_code)]

pub(crate) mod demux;

//! Multiplexed connections: several requests at once on one connection, for backends
//! that answer `FCGI_MPXS_CONNS=1` (Go's `net/http/fcgi`, flup with `multiplexed=True`,
//! tokio-fastcgi, fastcgi++), or when multiplexing is forced
//! ([`Multiplex::On`](crate::Multiplex::On)).
//!
//! - [`demux`], sans network IO: routes the records read from a connection to
//!   per-stream bounded buffers (spilling to a temporary file, `spill`) and keeps the
//!   request ids;
//! - [`driver`]: the state one connection's task and its streams share, the
//!   [`MuxConn`](driver::MuxConn) and [`MuxStream`](driver::MuxStream) handles; `io`:
//!   the task (reads into the demultiplexer, writes the streams' records round-robin,
//!   vectored); [`records`]: the records a stream writes;
//! - [`set`]: one backend's connections (first with room, a new one only when all are
//!   full);
//! - [`exchange`]: one request on a stream, as the service and `FcgiBody` drive it.

pub(crate) mod demux;
pub(crate) mod driver;
pub(crate) mod exchange;
mod io;
pub(crate) mod records;
pub(crate) mod set;
mod spill;

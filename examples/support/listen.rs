//! A TCP listener for the examples whose accepted connections have `TCP_NODELAY`.
//!
//! Responses leave in several writes as the backend produces them (head, body pieces);
//! with Nagle's algorithm a small last write waits for the client's delayed ACK, about
//! 40 ms. Linux copies `TCP_NODELAY` from the listening socket to every accepted one, so
//! setting it here keeps the plain `TcpListener` type that `ConnectionInfo` works with.

use std::io;

use tokio::net::{TcpListener, TcpSocket};

/// Binds `addr` (`host:port`) with `SO_REUSEADDR` and `TCP_NODELAY`.
pub async fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut last_err = io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: no address"));
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(1024),
            Err(err) => last_err = err,
        }
    }
    Err(last_err)
}

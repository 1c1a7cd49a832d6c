//! [`ConnectionInfo`]: the client connection's addresses, and how axum provides them.

use std::net::SocketAddr;

/// The client connection's addresses, for REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR,
/// SERVER_PORT and HTTPS.
///
/// Insert it as a request extension, or (with the `axum` feature) let axum do it, for a
/// `TcpListener`, a `UnixListener`, or any other listener (such as `tap_io`'s) wrapped in
/// [`ConnectionInfoListener`]:
///
/// ```no_run
/// # #[cfg(feature = "axum")]
/// # async fn demo(app: axum::Router) {
/// use tower_fastcgi::ConnectionInfo;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
/// axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>())
///     .await
///     .unwrap();
/// # }
/// ```
///
/// On a Unix-socket listener the client has no network address. The backend then sees
/// what nginx sends for a `listen unix:` server: `REMOTE_ADDR=unix:`, an empty
/// `REMOTE_PORT` and `SERVER_ADDR=unix:` (nginx appends the socket path there; it is the
/// server's own configuration, not connection data, so it is not copied). SERVER_PORT
/// comes from the `Host` header or the scheme's default port, as for any request without
/// a local address; nginx sends it empty, which makes applications build `http://host:/`.
///
/// axum's plain `ConnectInfo<SocketAddr>` is used for REMOTE_ADDR when this type is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// Our address on the accepted connection.
    pub local: Option<SocketAddr>,
    /// Whether the client connection uses TLS (sets `HTTPS=on`).
    pub tls: bool,
    /// Whether the client connected over a Unix domain socket (then `remote` and
    /// `local` are `None`, and REMOTE_ADDR is `unix:` as nginx sets it).
    pub unix_socket: bool,
}

/// What [`ConnectionInfo`] reads from an accepted connection. Implemented for tokio's
/// `TcpStream` and `UnixStream`; implement it for the stream of your own listener (a TLS
/// acceptor's, say, setting `tls`) to use it with [`ConnectionInfoListener`].
#[cfg(feature = "axum")]
pub trait ListenerIo {
    /// The connection's addresses (and TLS, Unix-socket flags).
    fn connection_info(&self) -> ConnectionInfo;
}

#[cfg(feature = "axum")]
impl ListenerIo for tokio::net::TcpStream {
    fn connection_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            remote: self.peer_addr().ok(),
            local: self.local_addr().ok(),
            ..ConnectionInfo::default()
        }
    }
}

#[cfg(all(feature = "axum", unix))]
impl ListenerIo for tokio::net::UnixStream {
    fn connection_info(&self) -> ConnectionInfo {
        ConnectionInfo::unix()
    }
}

/// An axum `Listener` whose address is the accepted connection's [`ConnectionInfo`], for
/// any listener whose stream implements [`ListenerIo`]: a `TcpListener` or `UnixListener`
/// wrapped in axum's `tap_io` (the axum 0.8 way to set TCP_NODELAY), or your own.
///
/// axum provides `Connected` for the address type of a `TapIo` listener, and the compiler
/// cannot let this crate add one for `ConnectionInfo` beside it (coherence: the address
/// type of an arbitrary listener could be `ConnectionInfo`), so a listener whose address
/// *is* `ConnectionInfo` is the way to keep SERVER_ADDR with `tap_io`:
///
/// ```no_run
/// # async fn demo(app: axum::Router) -> std::io::Result<()> {
/// use axum::serve::ListenerExt;
/// use tower_fastcgi::{ConnectionInfo, ConnectionInfoListener};
///
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let listener = ConnectionInfoListener::new(tcp.tap_io(|tcp| {
///     let _ = tcp.set_nodelay(true);
/// }));
/// axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>()).await
/// # }
/// ```
///
/// `ConnectionInfoListener::new(tcp).tap_io(..)` works as well (axum's own impl then
/// applies). A plain `TcpListener` or `UnixListener` needs no wrapper.
#[cfg(feature = "axum")]
#[derive(Debug)]
pub struct ConnectionInfoListener<L> {
    inner: L,
}

#[cfg(feature = "axum")]
impl<L> ConnectionInfoListener<L> {
    /// Wraps `listener`.
    pub fn new(listener: L) -> ConnectionInfoListener<L> {
        ConnectionInfoListener { inner: listener }
    }

    /// The wrapped listener.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

#[cfg(feature = "axum")]
impl<L> axum::serve::Listener for ConnectionInfoListener<L>
where
    L: axum::serve::Listener,
    L::Io: ListenerIo,
    L::Addr: ListenerAddr,
{
    type Io = L::Io;
    type Addr = ConnectionInfo;

    async fn accept(&mut self) -> (L::Io, ConnectionInfo) {
        let (io, _) = self.inner.accept().await;
        let info = io.connection_info();
        (io, info)
    }

    fn local_addr(&self) -> std::io::Result<ConnectionInfo> {
        self.inner.local_addr().map(|addr| addr.listening())
    }
}

/// The address type of a listener [`ConnectionInfoListener`] wraps: what its own
/// `local_addr` reports as a [`ConnectionInfo`]. Implemented for `std::net::SocketAddr`
/// and tokio's Unix `SocketAddr`.
#[cfg(feature = "axum")]
pub trait ListenerAddr {
    /// The listening address as a [`ConnectionInfo`] (`local` set, no peer).
    fn listening(self) -> ConnectionInfo;
}

#[cfg(feature = "axum")]
impl ListenerAddr for SocketAddr {
    fn listening(self) -> ConnectionInfo {
        ConnectionInfo {
            local: Some(self),
            ..ConnectionInfo::default()
        }
    }
}

#[cfg(all(feature = "axum", unix))]
impl ListenerAddr for tokio::net::unix::SocketAddr {
    fn listening(self) -> ConnectionInfo {
        ConnectionInfo::unix()
    }
}

#[cfg(feature = "axum")]
impl<L>
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, ConnectionInfoListener<L>>,
    > for ConnectionInfo
where
    ConnectionInfoListener<L>: axum::serve::Listener<Addr = ConnectionInfo>,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ConnectionInfoListener<L>>) -> Self {
        *stream.remote_addr()
    }
}

#[cfg(feature = "axum")]
impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ConnectionInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ConnectionInfo {
            remote: Some(*stream.remote_addr()),
            local: stream.io().local_addr().ok(),
            ..ConnectionInfo::default()
        }
    }
}

#[cfg(all(feature = "axum", unix))]
impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for ConnectionInfo
{
    fn connect_info(_: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        ConnectionInfo::unix()
    }
}

impl ConnectionInfo {
    #[cfg(all(feature = "axum", unix))]
    fn unix() -> ConnectionInfo {
        ConnectionInfo {
            unix_socket: true,
            ..ConnectionInfo::default()
        }
    }

    /// Finds the connection info among a request's extensions.
    pub(crate) fn from_extensions(ext: &http::Extensions) -> Option<ConnectionInfo> {
        if let Some(info) = ext.get::<ConnectionInfo>() {
            return Some(*info);
        }
        #[cfg(feature = "axum")]
        {
            use axum::extract::ConnectInfo;
            if let Some(ConnectInfo(info)) = ext.get::<ConnectInfo<ConnectionInfo>>() {
                return Some(*info);
            }
            if let Some(ConnectInfo(addr)) = ext.get::<ConnectInfo<SocketAddr>>() {
                return Some(ConnectionInfo {
                    remote: Some(*addr),
                    ..ConnectionInfo::default()
                });
            }
        }
        None
    }
}

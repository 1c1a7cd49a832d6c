//! Bytes in, bytes out: for what a client library would hide or refuse (a reason phrase,
//! a malformed request, the exact status line).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::REQUEST_TIMEOUT;

/// What came back on a raw connection: every byte until the server closed it.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub bytes: Vec<u8>,
}

impl RawReply {
    /// The first line, `HTTP/1.1 200 OK` ("" if nothing came back).
    pub fn status_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_owned()
    }

    /// Everything after the first blank line (the body, still chunk-encoded if it was).
    pub fn body(&self) -> &[u8] {
        match self.bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => &self.bytes[at + 4..],
            None => &[],
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Connects to `addr`, writes `request` as is and reads until the server closes (send
/// `Connection: close`). Errors end the exchange early instead of failing the test: a
/// server may answer and close before it has read everything, and what it answered is
/// what the test checks.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    raw_on(&mut stream, request).await
}

/// [`raw`] on a connection the test opened itself (to know its local port, say).
pub async fn raw_on(stream: &mut tokio::net::TcpStream, request: &[u8]) -> RawReply {
    let exchange = async {
        let _ = stream.write_all(request).await;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(bytes) => RawReply { bytes },
        Err(_) => panic!("raw request: the server did not close in {REQUEST_TIMEOUT:?}"),
    }
}

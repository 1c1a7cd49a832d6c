//! Unit tests of `upload.rs`.
use super::*;
use http_body_util::{BodyExt, Full, Limited};

/// An error that only names the limit error as its source, as `axum::Error` does.
#[derive(Debug)]
struct Wrapped(BoxError);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrapped body error")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

async fn limit_error() -> BoxError {
    let body = Limited::new(Full::new(Bytes::from_static(b"0123456789")), 4);
    match body.collect().await {
        Ok(_) => panic!("the limit did not apply"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn a_length_limit_anywhere_in_the_chain_is_413() {
    let direct = body_error(limit_error().await);
    assert_eq!(direct.kind(), ErrorKind::RequestBodyTooLarge);
    let wrapped = body_error(Box::new(Wrapped(limit_error().await)));
    assert_eq!(wrapped.kind(), ErrorKind::RequestBodyTooLarge);
    assert_eq!(wrapped.status_code(), http::StatusCode::PAYLOAD_TOO_LARGE);
    let other = body_error("connection reset".into());
    assert_eq!(other.kind(), ErrorKind::RequestBody);
}

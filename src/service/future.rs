//! Opaque response futures, so the implementation behind them can change freely.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::FcgiBody;
use crate::error::Error;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The future returned by [`FcgiService`](crate::FcgiService)'s `Service::call`.
pub struct ResponseFuture {
    inner: BoxFuture<Result<Response<FcgiBody>, Infallible>>,
}

impl ResponseFuture {
    pub(crate) fn new(
        fut: impl Future<Output = Result<Response<FcgiBody>, Infallible>> + Send + 'static,
    ) -> ResponseFuture {
        ResponseFuture {
            inner: Box::pin(fut),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<FcgiBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

/// The future returned by [`Fallible`](crate::service::Fallible)'s `Service::call`.
pub struct FallibleFuture {
    inner: BoxFuture<Result<Response<FcgiBody>, Error>>,
}

impl FallibleFuture {
    pub(crate) fn new(
        fut: impl Future<Output = Result<Response<FcgiBody>, Error>> + Send + 'static,
    ) -> FallibleFuture {
        FallibleFuture {
            inner: Box::pin(fut),
        }
    }
}

impl Future for FallibleFuture {
    type Output = Result<Response<FcgiBody>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for FallibleFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FallibleFuture")
    }
}

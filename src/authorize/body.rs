//! The response body of [`FcgiAuthorizer`](super::FcgiAuthorizer): the inner service's,
//! or the authorizer's own (a refusal, a failure), without boxing either.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::body::FcgiBody;
use crate::error::BoxError;

pin_project! {
    /// The body of a response from [`FcgiAuthorizer`](crate::FcgiAuthorizer): the
    /// wrapped service's body when the request was allowed, else the authorizer's
    /// answer (its refusal, or the 502/503/504 of a failed check).
    #[derive(Debug)]
    pub struct AuthorizerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Authorizer { #[pin] body: FcgiBody },
    }
}

impl<B> AuthorizerBody<B> {
    pub(crate) fn inner(body: B) -> AuthorizerBody<B> {
        AuthorizerBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn authorizer(body: FcgiBody) -> AuthorizerBody<B> {
        AuthorizerBody {
            kind: Kind::Authorizer { body },
        }
    }
}

impl<B> Body for AuthorizerBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body
                .poll_frame(cx)
                .map(|item| item.map(|frame| frame.map_err(Into::into))),
            KindProj::Authorizer { body } => body
                .poll_frame(cx)
                .map(|item| item.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Authorizer { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Authorizer { body } => body.size_hint(),
        }
    }
}

//! One request on a backend connection, whichever kind: an [`Exchange`] that owns its
//! connection, or a [`MuxExchange`] that shares one. The service and the response body
//! drive both through the same calls.

use std::ops::DerefMut;
use std::task::{Context, Poll};

use super::conn::Connection;
use super::exchange::{Event, Exchange};
use super::mux::exchange::MuxExchange;
use super::upload::Upload;
use crate::error::Error;

/// A request in flight on an exclusive (`C`: the pool's handle) or a multiplexed connection.
#[derive(Debug)]
pub(crate) enum Call<C> {
    Exclusive(Exchange<C>),
    Multiplexed(MuxExchange),
}

impl<C: DerefMut<Target = Connection>> Call<C> {
    /// Drives the request until the next STDOUT piece or its end.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        match self {
            Call::Exclusive(exchange) => exchange.poll_event(cx),
            Call::Multiplexed(exchange) => exchange.poll_event(cx),
        }
    }

    /// Whether any response byte has arrived (after which a retry would be unsafe).
    pub(crate) fn response_started(&self) -> bool {
        match self {
            Call::Exclusive(exchange) => exchange.response_started(),
            Call::Multiplexed(exchange) => exchange.response_started(),
        }
    }

    /// The response head is complete: its deadline no longer applies.
    pub(crate) fn head_done(&mut self) {
        match self {
            Call::Exclusive(exchange) => exchange.head_done(),
            Call::Multiplexed(exchange) => exchange.head_done(),
        }
    }

    /// What remains of the body and of a Filter's data file, for a retry.
    pub(crate) fn into_uploads(self) -> (Option<Upload>, Option<Upload>) {
        match self {
            Call::Exclusive(exchange) => exchange.into_uploads(),
            Call::Multiplexed(exchange) => (exchange.into_upload(), None),
        }
    }
}

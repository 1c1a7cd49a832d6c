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
///
/// Both kinds live on the heap, so a `Call` is two words. It is moved many times
/// between its start and the response body (through every `async fn` of the send path,
/// `Head`, `Result`s, the body): inline, the exclusive exchange was 624 bytes and those
/// moves were ~13 `memcpy` calls per tiny request (callgrind, bench/profile_tiny.sh).
/// One allocation pays for them; the response body no longer boxes its state, so the
/// count per request is unchanged.
#[derive(Debug)]
pub(crate) enum Call<C> {
    Exclusive(Box<Exchange<C>>),
    Multiplexed(Box<MuxExchange>),
}

impl<C> Call<C> {
    pub(crate) fn exclusive(exchange: Exchange<C>) -> Call<C> {
        Call::Exclusive(Box::new(exchange))
    }

    pub(crate) fn multiplexed(exchange: MuxExchange) -> Call<C> {
        Call::Multiplexed(Box::new(exchange))
    }
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
            Call::Exclusive(exchange) => (*exchange).into_uploads(),
            Call::Multiplexed(exchange) => ((*exchange).into_upload(), None),
        }
    }
}

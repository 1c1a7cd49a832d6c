//! Backends that come and go at run time: the [`Change`]s a discovery stream sends
//! ([`FcgiServiceBuilder::discover`]), and the [`Resolve`]r behind DNS re-resolution
//! ([`FcgiServiceBuilder::resolve_every`]).
//!
//! The shape is tower's `discover::Discover` (a stream of `Insert`/`Remove`), with the
//! difference that a change names only the backend's address: the service builds each
//! backend's connection pool itself, with the builder's settings, so a backend that
//! joins later is configured like those listed at build.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

#[cfg(doc)]
use crate::FcgiServiceBuilder;
use crate::client::Backend;

/// A change to the set of backends of a service, sent by a discovery stream
/// ([`FcgiServiceBuilder::discover`]): Kubernetes endpoints, Consul, a config reload.
///
/// ```
/// use tower_fastcgi::{Backend, Change};
///
/// let join = Change::Insert(Backend::tcp("10.0.0.7:9000"));
/// let leave = Change::Remove("tcp://10.0.0.3:9000".parse().unwrap());
/// # let _ = (join, leave);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The backend joins: it gets its own pool (capped by
    /// [`backend_max_connections`](FcgiServiceBuilder::backend_max_connections) if one
    /// names it, else `max_connections`) and takes requests at once. Inserting a
    /// backend the service already has changes nothing (its pool and health are kept),
    /// so a source may repeat its whole set. A backend inserted again while it still
    /// drains from an earlier removal gets a fresh pool; the old one finishes draining.
    Insert(Backend),
    /// The backend drains: it takes no new requests, the requests it is serving
    /// complete, and its connections close (idle ones at once, busy ones when their
    /// response ends). It is listed by `backend_stats()` with `draining: true` until
    /// its last connection has closed. Removing a backend the service does not have
    /// changes nothing; removing the last one leaves a service that answers 503 (with
    /// `Retry-After`) until a backend is inserted.
    Remove(Backend),
}

/// What [`Resolve::resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Looks up a host name's addresses for DNS re-resolution
/// ([`FcgiServiceBuilder::resolve_every`]). The default is the system resolver
/// ([`SystemResolver`]); implement this to use another one, or to give tests a
/// resolver whose answer they control.
pub trait Resolve: Send + Sync + 'static {
    /// Every address of `host` (A and AAAA records alike).
    fn resolve(&self, host: &str) -> Resolving;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> Resolving {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The host and port of a `tcp://` backend whose host is a name rather than an IP
/// literal: the backends DNS re-resolution watches. `None` for the rest.
pub(crate) fn named_host(backend: &Backend) -> Option<(String, u16)> {
    let Backend::Tcp(addr) = backend else {
        return None;
    };
    if addr.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    // A bracketed IPv6 literal that failed to parse above is malformed, not a name.
    (!host.is_empty() && !host.starts_with('[')).then(|| (host.to_owned(), port))
}

/// The backends for a DNS answer, in a stable order (sorted, duplicates removed), so
/// that a resolver returning the same set in another order changes nothing.
pub(crate) fn backends_for(answer: &[IpAddr], port: u16) -> Vec<Backend> {
    let mut addrs: Vec<SocketAddr> = answer.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
        .into_iter()
        .map(|a| Backend::tcp(a.to_string()))
        .collect()
}

/// What turns the set `current` into `next`: inserts first, so a backend that is
/// replaced never leaves the service with fewer members than it needs.
pub(crate) fn diff(current: &[Backend], next: &[Backend]) -> Vec<Change> {
    let joined = next
        .iter()
        .filter(|b| !current.contains(b))
        .map(|b| Change::Insert(b.clone()));
    let left = current
        .iter()
        .filter(|b| !next.contains(b))
        .map(|b| Change::Remove(b.clone()));
    joined.chain(left).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> Backend {
        Backend::tcp(s)
    }

    #[test]
    fn only_tcp_names_are_watched() {
        assert_eq!(named_host(&tcp("php:9000")), Some(("php".into(), 9000)));
        assert_eq!(
            named_host(&tcp("fpm.default.svc.cluster.local:9000")),
            Some(("fpm.default.svc.cluster.local".into(), 9000))
        );
        assert_eq!(named_host(&tcp("127.0.0.1:9000")), None);
        assert_eq!(named_host(&tcp("[::1]:9000")), None);
        assert_eq!(named_host(&Backend::unix("/run/php.sock")), None);
        assert_eq!(named_host(&tcp("php:http")), None);
    }

    #[test]
    fn an_answer_becomes_sorted_distinct_backends() {
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            backends_for(&[v6, v4, one, v4], 9000),
            [
                tcp("10.0.0.1:9000"),
                tcp("10.0.0.2:9000"),
                tcp("[fd00::1]:9000")
            ]
        );
    }

    #[test]
    fn diff_inserts_what_appeared_and_removes_what_vanished() {
        let (a, b, c) = (tcp("10.0.0.1:1"), tcp("10.0.0.2:1"), tcp("10.0.0.3:1"));
        let one = std::slice::from_ref(&a);
        assert_eq!(diff(one, one), []);
        assert_eq!(
            diff(&[a.clone(), b.clone()], &[b.clone(), c.clone()]),
            [Change::Insert(c.clone()), Change::Remove(a.clone())]
        );
        assert_eq!(diff(&[], one), [Change::Insert(a.clone())]);
        assert_eq!(diff(one, &[]), [Change::Remove(a.clone())]);
    }
}

//! The discovery settings of [`FcgiServiceBuilder`]: a stream of backend changes and
//! DNS re-resolution, and the assembly of the fleet they change. (The defaults table is
//! on the builder, in `builder.rs`.)

use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;

use super::{BuildError, FcgiServiceBuilder};
use crate::client::Backend;
#[cfg(doc)]
use crate::defaults;
use crate::discover::{Change, Resolve, SystemResolver, named_host};
use crate::error::BoxError;
use crate::fleet::Fleet;
use crate::service::backend::BackendPool;
use crate::service::discover::{Changes, Discovery, Factory, Watcher};

/// What the builder collects for discovery.
#[derive(Default)]
pub(crate) struct DiscoverySettings {
    streams: Vec<Changes>,
    resolve_every: Option<Duration>,
    resolver: Option<Arc<dyn Resolve>>,
}

impl DiscoverySettings {
    /// Backends may arrive after the build: none is required at build, and a cap may
    /// name a backend that is not there yet.
    pub(crate) fn is_dynamic(&self) -> bool {
        !self.streams.is_empty()
    }
}

impl FcgiServiceBuilder {
    /// Change the set of backends at run time with a stream of [`Change`]s (the shape
    /// of `tower::discover::Discover`): Kubernetes endpoints, Consul, a config reload.
    /// A backend inserted gets its own pool with this builder's settings; one removed
    /// drains (no new requests, those in flight complete, its connections close).
    /// The backends set at build are the starting set (it may be empty with a
    /// stream). A stream error is logged and the set left as it is; a stream that ends
    /// leaves the set as it is. The stream is polled by a task spawned at build, or by
    /// the first request when no tokio runtime is current at build; it stops when the
    /// service and all its clones are dropped. Default: none (the backends set at
    /// build are the backends).
    ///
    /// ```
    /// use futures_core::Stream;
    /// use tower_fastcgi::{Backend, Change, FcgiService};
    ///
    /// fn php(changes: impl Stream<Item = Result<Change, std::io::Error>> + Send + 'static) -> FcgiService {
    ///     FcgiService::builder()
    ///         .tcp("10.0.0.1:9000")
    ///         .discover(changes)
    ///         .build()
    /// }
    /// ```
    pub fn discover<D, E>(mut self, changes: D) -> FcgiServiceBuilder
    where
        D: Stream<Item = Result<Change, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.discovery
            .streams
            .push(Box::pin(ErrInto(Box::pin(changes))));
        self
    }

    /// Re-resolve every `tcp://name:port` backend (a host name, not an IP literal)
    /// every `period`: each A/AAAA address becomes a backend of its own with its own
    /// pool, addresses that appear join and those that vanish drain. Until the first
    /// answer (and while lookups fail or come back empty, which keeps the last set)
    /// the name is used as it is. A cap set on the name applies to each address.
    /// Default: off ([`RESOLVE_EVERY`](defaults::RESOLVE_EVERY)): a name is one
    /// backend, looked up by the system at each connect and the first address that
    /// accepts is used, because making every address a member changes what an
    /// ordinary `localhost:9000` means (its `::1` would be a member that refuses).
    pub fn resolve_every(mut self, period: Duration) -> FcgiServiceBuilder {
        self.discovery.resolve_every = Some(period);
        self
    }

    /// The resolver [`resolve_every`](FcgiServiceBuilder::resolve_every) asks. Default:
    /// the system resolver ([`SystemResolver`](crate::discover::SystemResolver)).
    pub fn resolver(mut self, resolver: impl Resolve) -> FcgiServiceBuilder {
        self.discovery.resolver = Some(Arc::new(resolver));
        self
    }

    /// The fleet of the configured backends and the discovery that will change it.
    pub(super) fn assemble(&mut self) -> Result<(Arc<Fleet<BackendPool>>, Discovery), BuildError> {
        let settings = std::mem::take(&mut self.discovery);
        if settings.resolve_every == Some(Duration::ZERO) {
            return Err(BuildError::new("resolve_every must be longer than zero"));
        }
        let factory = Factory {
            base: self.pool_config(),
            max_idle: self.max_idle,
            caps: std::mem::take(&mut self.backend_caps),
        };
        let backends = std::mem::take(&mut self.backends);
        let mut watchers: Vec<Watcher> =
            settings.streams.into_iter().map(Watcher::Stream).collect();
        if let Some(every) = settings.resolve_every {
            let resolver = settings
                .resolver
                .unwrap_or_else(|| Arc::new(SystemResolver));
            for name in &backends {
                if let Some((host, port)) = named_host(name) {
                    watchers.push(Watcher::Dns {
                        name: name.clone(),
                        host,
                        port,
                        every,
                        resolver: Arc::clone(&resolver),
                    });
                }
            }
        }
        watchers.extend(self.health_check.take().map(Watcher::Probe));
        let members: Vec<(Backend, BackendPool)> = backends
            .into_iter()
            .map(|b| {
                let pool = factory.pool(&b, None);
                (b, pool)
            })
            .collect();
        let fleet = Fleet::new(members, self.health, self.budget);
        Ok((Arc::new(fleet), Discovery::new(factory, watchers)))
    }
}

/// A discovery stream with its error boxed.
struct ErrInto<D>(std::pin::Pin<Box<D>>);

impl<D, E> Stream for ErrInto<D>
where
    D: Stream<Item = Result<Change, E>>,
    E: Into<BoxError>,
{
    type Item = Result<Change, BoxError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(Into::into)))
    }
}

//! When no backend is in rotation: an early trial, then routing to the ejected ones
//! anyway ("panic routing").
//!
//! Ejections outlive the faults that caused them. A reload or a kill -9 of one
//! php-fpm master, while another one is briefly stopped, can leave every backend
//! ejected for up to a second although two of three answer again at once. Without a
//! fallback every request in that window gets a 503 (the hour-long chaos soak saw
//! bursts of them, RELIABILITY.md). So, in this order:
//!
//! 1. the early trial: the backend whose backoff ends first gets one trial request
//!    now (at most one per backend per first `backoff`); its answer readmits it;
//! 2. panic routing (on by default, `route_when_all_ejected`): the other requests go
//!    to the ejected backends by load (power of two choices), as nginx does when all
//!    its peers are down (it forgets their failure counts and tries again) and as
//!    Envoy does below its panic threshold. An answer readmits that backend (it is as
//!    good a proof as a trial); a failure changes nothing (it is not the trial, so it
//!    does not lengthen the backoff), and the request is retried on another backend
//!    within the retry budget as usual;
//! 3. backends whose latest active health probe failed are left out of both: a probe
//!    already says they are down, and routing there would only turn a fast 503 into
//!    a slow failure. When that leaves nothing, the answer is the 503 at once.
//!
//! The cost, for a fleet that is really down: requests fail at the backend (a refused
//! connection is as fast as the 503; a black-holed one takes `connect_timeout`)
//! instead of at the gateway. `route_when_all_ejected(false)` restores the 503.

use std::sync::Arc;

use tokio::time::Instant;

use super::balance::p2c;
use super::{Endpoint, Fleet, Load, Loaded, Pick};

impl<S: Load> Fleet<S> {
    /// A pick for when no untried member is in rotation or due (see the module docs);
    /// `None` answers 503.
    pub(super) fn pick_in_outage(
        &self,
        members: &[Arc<Endpoint<S>>],
        untried: impl Fn(&&Arc<Endpoint<S>>) -> bool,
        now: Instant,
    ) -> Option<Pick<'_, S>> {
        let mut out: Vec<&Arc<Endpoint<S>>> = members
            .iter()
            .filter(|e| untried(e) && !e.health.probe_failing())
            .collect();
        out.sort_by_key(|e| e.health.out_until());
        if let Some(endpoint) = out.iter().find(|e| e.health.begin_early_trial(now)) {
            return Some(Pick::new(self, Arc::clone(endpoint), true, false));
        }
        if !self.health.route_when_all_ejected {
            return None;
        }
        let gone = Loaded {
            saturated: true,
            pending: usize::MAX,
        };
        let load = |k: usize| out.get(k).map_or(gone, |e| e.service.load());
        let (chosen, _) = p2c(out.len(), &self.rng, load)?;
        let endpoint = out.get(chosen)?;
        let mut pick = Pick::new(self, Arc::clone(endpoint), false, false);
        pick.panic = true;
        Some(pick)
    }
}

//! Remembered allow decisions (off unless asked for): the authorizer is asked once per
//! key and TTL. Only allows are remembered, never refusals or failures, so a revoked
//! credential stops working at most one TTL later and nothing else changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;
use tokio::time::Instant;

use super::variables::AuthorizerVariables;
use crate::cgi::Mount;

/// Allow decisions by key, each until its deadline.
#[derive(Debug)]
pub(crate) struct AllowCache {
    header: HeaderName,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Vec<u8>, (Instant, AuthorizerVariables)>>,
}

impl AllowCache {
    pub(crate) fn new(header: HeaderName, ttl: Duration, capacity: usize) -> AllowCache {
        AllowCache {
            header,
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn with_capacity(&self, capacity: usize) -> AllowCache {
        AllowCache::new(self.header.clone(), self.ttl, capacity)
    }

    /// The key of a request: the named header's value, with the method and the whole
    /// target, because an authorizer may decide by path (`/admin` is not `/public`) and
    /// by method. `None` (never cached) without the header.
    pub(crate) fn key(&self, parts: &Parts) -> Option<Vec<u8>> {
        let value = parts.headers.get(&self.header)?.as_bytes();
        let target = Mount::of(parts).request_uri.as_bytes();
        let method = parts.method.as_str().as_bytes();
        let mut key = Vec::with_capacity(method.len() + target.len() + value.len() + 2);
        for (i, part) in [method, target, value].into_iter().enumerate() {
            if i > 0 {
                // NUL never occurs in a method, a request target or a header value.
                key.push(0);
            }
            key.extend_from_slice(part);
        }
        Some(key)
    }

    /// The variables of a remembered allow that has not expired.
    pub(crate) fn get(&self, key: &[u8]) -> Option<AuthorizerVariables> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((until, vars)) if *until > Instant::now() => Some(vars.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers an allow for the TTL, if there is room once expired entries are gone.
    pub(crate) fn put(&self, key: Vec<u8>, vars: &AuthorizerVariables) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(key, (now + self.ttl, vars.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, auth: Option<&str>) -> Parts {
        let mut req = http::Request::builder().method(method).uri(target);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[tokio::test(start_paused = true)]
    async fn allows_are_remembered_per_credential_method_and_target_until_the_ttl() {
        let cache = AllowCache::new(http::header::AUTHORIZATION, Duration::from_secs(10), 2);
        let vars = AuthorizerVariables::default();
        assert!(
            cache.key(&parts("GET", "/a", None)).is_none(),
            "no header, no caching"
        );
        let key = cache
            .key(&parts("GET", "/a?x=1", Some("Bearer t")))
            .unwrap();
        cache.put(key.clone(), &vars);
        assert!(cache.get(&key).is_some());
        for other in [
            parts("GET", "/a?x=2", Some("Bearer t")),
            parts("POST", "/a?x=1", Some("Bearer t")),
            parts("GET", "/a?x=1", Some("Bearer u")),
        ] {
            assert!(cache.get(&cache.key(&other).unwrap()).is_none());
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(cache.get(&key).is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_expired_entries_and_otherwise_stops_remembering() {
        let cache = AllowCache::new(http::header::AUTHORIZATION, Duration::from_secs(10), 2);
        let vars = AuthorizerVariables::default();
        cache.put(b"a".to_vec(), &vars);
        cache.put(b"b".to_vec(), &vars);
        cache.put(b"c".to_vec(), &vars);
        assert!(cache.get(b"c").is_none(), "no room");
        tokio::time::advance(Duration::from_secs(11)).await;
        cache.put(b"c".to_vec(), &vars);
        assert!(cache.get(b"c").is_some(), "room after expiry");
    }
}

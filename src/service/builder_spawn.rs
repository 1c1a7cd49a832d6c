//! [`FcgiServiceBuilder::spawn`]: the service starts its own backends and supervises
//! them (the supervisor is in `src/spawn/`).

use super::{BuildError, FcgiServiceBuilder};
use crate::spawn::{SpawnConfig, Supervisor};

impl FcgiServiceBuilder {
    /// Start the FastCGI program of `config` and serve from its processes: each
    /// process listens on a Unix socket of its own (passed as fd 0) and is a backend of
    /// this service, capped at
    /// [`connections_per_process`](SpawnConfig::connections_per_process) connections.
    /// The processes start at build, are restarted when they exit (with a backoff, and
    /// not at all for a while in a crash loop) and are stopped when the service's last
    /// clone is dropped: SIGTERM, then SIGKILL after the grace period. A program that
    /// is missing or not executable is a [`BuildError`]. Backends set with
    /// [`tcp`](FcgiServiceBuilder::tcp) and the like are kept beside the spawned ones;
    /// calling this again replaces the program set before. Default: none (the service connects to backends it did not start).
    ///
    /// ```no_run
    /// use tower_fastcgi::{FcgiService, SpawnConfig};
    ///
    /// // php-cgi alone, no php-fpm: four processes, each retiring after 500 requests.
    /// let php = FcgiService::builder()
    ///     .spawn(SpawnConfig::new("php-cgi").procs(4).env("PHP_FCGI_MAX_REQUESTS", "500"))
    ///     .document_root("/srv/www")
    ///     .build();
    /// # let _ = php;
    /// ```
    pub fn spawn(mut self, config: SpawnConfig) -> FcgiServiceBuilder {
        self.spawn = Some(config);
        self
    }

    /// Starts the processes of [`spawn`](FcgiServiceBuilder::spawn), if set, and makes
    /// them backends; the supervisor rides on the discovery stream, which the service
    /// owns and drops with its last clone.
    pub(super) fn start_spawned(&mut self) -> Result<(), BuildError> {
        let Some(config) = self.spawn.take() else {
            return Ok(());
        };
        let plan = config.plan().map_err(BuildError::new)?;
        let (changes, members) = Supervisor::start(plan).map_err(BuildError::new)?;
        for (backend, cap) in members {
            if let crate::client::Backend::Unix(path) = &backend {
                self.spawned_dir = path.parent().map(std::path::Path::to_path_buf);
            }
            self.backend_caps.push((backend.clone(), cap));
            self.backends.push(backend);
        }
        let this = std::mem::take(self);
        *self = this.discover(changes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::client::Backend;

    /// A process recording its pid, then idling (it never serves: only caps and the
    /// lifetime are under test here).
    fn idler(dir: &std::path::Path) -> SpawnConfig {
        let script = format!("echo $$ >> '{}'; exec sleep 30", dir.join("pids").display());
        SpawnConfig::new("/bin/sh").args(["-c", script.as_str()])
    }

    fn pids(dir: &std::path::Path) -> Vec<u32> {
        std::fs::read_to_string(dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    }

    fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    #[test]
    fn each_process_is_a_backend_capped_by_what_was_started_and_dies_with_the_service() {
        let dir = tempfile::tempdir().unwrap();
        // Built and dropped outside any runtime: nothing here needs one.
        let svc = FcgiServiceBuilder::new()
            .spawn(idler(dir.path()).procs(2).env("PHP_FCGI_CHILDREN", "3"))
            .max_connections(8)
            .try_build()
            .expect("a valid configuration");
        let members = svc.inner.fleet.members();
        let caps: Vec<usize> = members.iter().map(|m| m.service.cap).collect();
        assert_eq!(caps, [3, 3], "PHP_FCGI_CHILDREN, not max_connections");
        assert!(members.iter().all(|m| matches!(m.key(), Backend::Unix(_))));
        drop(members);
        assert!(wait_for(Duration::from_secs(5), || pids(dir.path()).len() == 2));
        let started = pids(dir.path());
        assert!(started.iter().all(|p| alive(*p)), "{started:?}");
        drop(svc);
        assert!(
            wait_for(Duration::from_secs(5), || !started
                .iter()
                .any(|p| alive(*p))),
            "still running after the service was dropped: {started:?}"
        );
    }

    #[test]
    fn a_single_request_program_gets_one_connection_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let svc = FcgiServiceBuilder::new()
            .spawn(idler(dir.path()).procs(3))
            .try_build()
            .expect("a valid configuration");
        let caps: Vec<usize> = svc
            .inner
            .fleet
            .members()
            .iter()
            .map(|m| m.service.cap)
            .collect();
        assert_eq!(caps, [1, 1, 1], "never the default of 4");
    }

    #[test]
    fn a_missing_program_is_a_build_error_and_starts_nothing() {
        let err = FcgiServiceBuilder::new()
            .spawn(SpawnConfig::new("/nonexistent/app"))
            .try_build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/app"), "{err}");
    }
}

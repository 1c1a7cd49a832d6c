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
    /// [`tcp`](FcgiServiceBuilder::tcp) and the like are kept beside the spawned ones.
    /// Default: none (the service connects to backends it did not start).
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
            self.backend_caps.push((backend.clone(), cap));
            self.backends.push(backend);
        }
        let this = std::mem::take(self);
        *self = this.discover(changes);
        Ok(())
    }
}

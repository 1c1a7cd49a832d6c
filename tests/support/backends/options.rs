//! How a test wants its backend set up ([`Options`]), and the PHP settings both PHP
//! backends derive from it.

use std::path::PathBuf;
use std::time::Duration;

/// Settings for a backend; [`Options::default`] suits most tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker processes: php-fpm `pm.max_children` (pm = static), php-cgi
    /// `PHP_FCGI_CHILDREN`, fcgiwrap `-c`; flup keeps at least 16 spare threads whatever
    /// this says (fewer make it queue connections behind kept-alive ones). Default 4.
    pub workers: usize,
    /// Requests a worker serves before it is replaced: php-fpm `pm.max_requests`, php-cgi
    /// `PHP_FCGI_MAX_REQUESTS`. 0 (the default) means no limit. Ignored by flup and fcgiwrap.
    pub max_requests: u32,
    /// PHP settings added after the defaults (php-fpm `php_admin_value[...]`, php-cgi `-d`).
    pub ini: Vec<(String, String)>,
    /// Extra php-fpm pool directives, e.g. `("request_terminate_timeout", "5s")`.
    pub fpm_pool: Vec<(String, String)>,
    /// flup: serve with `multiplexed=True` (concurrent requests on one connection).
    pub multiplexed: bool,
    /// fcgiwrap: pass `-f` so that CGI stderr travels as FCGI_STDERR (the default); without
    /// it the scripts' stderr goes to fcgiwrap's own stderr, i.e. [`RunningBackend::log`](super::RunningBackend::log).
    pub cgi_stderr_over_fcgi: bool,
    /// How long to wait for the backend to accept connections. Default 10 s.
    pub startup_timeout: Duration,
    /// Serve this existing directory (an application such as DokuWiki) instead of a
    /// fresh document root holding copies of the fixtures. Default: `None`.
    pub document_root: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: 4,
            max_requests: 0,
            ini: Vec::new(),
            fpm_pool: Vec::new(),
            multiplexed: false,
            cgi_stderr_over_fcgi: true,
            startup_timeout: Duration::from_secs(10),
            document_root: None,
        }
    }
}

impl Options {
    pub fn workers(mut self, workers: usize) -> Options {
        self.workers = workers;
        self
    }

    pub fn max_requests(mut self, max_requests: u32) -> Options {
        self.max_requests = max_requests;
        self
    }

    pub fn ini(mut self, name: &str, value: &str) -> Options {
        self.ini.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn fpm_pool(mut self, name: &str, value: &str) -> Options {
        self.fpm_pool.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn multiplexed(mut self, multiplexed: bool) -> Options {
        self.multiplexed = multiplexed;
        self
    }

    pub fn cgi_stderr_over_fcgi(mut self, on: bool) -> Options {
        self.cgi_stderr_over_fcgi = on;
        self
    }

    pub fn startup_timeout(mut self, timeout: Duration) -> Options {
        self.startup_timeout = timeout;
        self
    }

    pub fn document_root(mut self, root: impl Into<PathBuf>) -> Options {
        self.document_root = Some(root.into());
        self
    }

    /// The PHP settings both PHP backends get, then the test's own ([`Options::ini`]),
    /// one entry per name.
    pub fn php_ini(&self) -> Vec<(String, String)> {
        let defaults = [
            ("post_max_size", "2G"),
            ("upload_max_filesize", "2G"),
            ("memory_limit", "256M"),
            ("max_execution_time", "60"),
            ("output_buffering", "0"),
            ("html_errors", "0"),
            ("display_errors", "0"),
            ("log_errors", "1"),
            ("date.timezone", "UTC"),
        ];
        let mut ini: Vec<(String, String)> = defaults
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // One entry per name: php-fpm keeps the first php_admin_value of a name, not the last.
        for (name, value) in &self.ini {
            match ini.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = value.clone(),
                None => ini.push((name.clone(), value.clone())),
            }
        }
        ini
    }
}

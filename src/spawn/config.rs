//! [`SpawnConfig`]: what to start and how to keep it running, and its check at build
//! time ([`SpawnConfig::plan`]) that turns it into a [`Plan`].

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::policy::RestartConfig;
use crate::defaults;

/// A FastCGI program for [`FcgiServiceBuilder::spawn`](crate::FcgiServiceBuilder::spawn)
/// to start and supervise (feature `spawn`, on by default; Unix).
///
/// Each of the [`procs`](SpawnConfig::procs) processes gets a Unix socket of its own,
/// created by the supervisor in a private temporary directory and passed as fd 0
/// (`FCGI_LISTENSOCK_FILENO`), the way mod_fcgid and lighttpd start php-cgi. Each
/// process is one backend of the service's fleet, capped at
/// [`connections_per_process`](SpawnConfig::connections_per_process).
///
/// | setting | default |
/// |---|---|
/// | [`args`](SpawnConfig::args) | none |
/// | [`procs`](SpawnConfig::procs) | 4 |
/// | [`connections_per_process`](SpawnConfig::connections_per_process) | `PHP_FCGI_CHILDREN` if set (and > 0), else 1 |
/// | [`allow_env`](SpawnConfig::allow_env) | `PATH`, `LANG`, `LC_ALL`, `TZ` from the parent |
/// | [`env`](SpawnConfig::env) | none |
/// | [`current_dir`](SpawnConfig::current_dir) | the parent's |
/// | [`restart_backoff`](SpawnConfig::restart_backoff) | at once, then 100 ms, doubling up to 10 s |
/// | [`crash_loop`](SpawnConfig::crash_loop) | 5 failures within 10 s stop restarts for 30 s |
/// | [`grace_period`](SpawnConfig::grace_period) | 5 s between SIGTERM and SIGKILL |
/// | [`log_line_limit`](SpawnConfig::log_line_limit) | 4096 bytes per output line |
///
/// ```no_run
/// use tower_fastcgi::{FcgiService, SpawnConfig};
///
/// let php = FcgiService::builder()
///     .spawn(
///         SpawnConfig::new("/usr/bin/php-cgi")
///             .procs(4)
///             .env("PHP_FCGI_MAX_REQUESTS", "500"),
///     )
///     .document_root("/srv/www")
///     .build();
/// # let _ = php;
/// ```
#[derive(Clone)]
#[must_use]
pub struct SpawnConfig {
    program: PathBuf,
    args: Vec<OsString>,
    procs: usize,
    per_process: Option<usize>,
    allow_env: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    restart: RestartConfig,
    grace: Duration,
    line_limit: usize,
}

impl SpawnConfig {
    /// Start `program`: a path, or a bare name looked up in the parent's `PATH` at
    /// build. A program that does not exist or is not executable is a
    /// [`BuildError`](crate::BuildError).
    pub fn new(program: impl Into<PathBuf>) -> SpawnConfig {
        SpawnConfig {
            program: program.into(),
            args: Vec::new(),
            procs: defaults::SPAWN_PROCS,
            per_process: None,
            allow_env: defaults::SPAWN_ALLOW_ENV
                .iter()
                .map(OsString::from)
                .collect(),
            env: Vec::new(),
            current_dir: None,
            restart: RestartConfig {
                backoff: defaults::SPAWN_RESTART_BACKOFF,
                max_backoff: defaults::SPAWN_RESTART_BACKOFF_MAX,
                crash_failures: defaults::SPAWN_CRASH_LOOP_FAILURES,
                crash_window: defaults::SPAWN_CRASH_LOOP_WINDOW,
                crash_retry: defaults::SPAWN_CRASH_LOOP_RETRY,
                min_uptime: defaults::SPAWN_MIN_UPTIME,
            },
            grace: defaults::SPAWN_GRACE_PERIOD,
            line_limit: defaults::SPAWN_LOG_LINE_LIMIT,
        }
    }

    /// Arguments, appended to those set before. Default: none.
    pub fn args<I, S>(mut self, args: I) -> SpawnConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How many processes to start (at least 1). Default: 4
    /// ([`SPAWN_PROCS`](defaults::SPAWN_PROCS)).
    pub fn procs(mut self, n: usize) -> SpawnConfig {
        self.procs = n;
        self
    }

    /// Connections the service opens to each process (its fleet cap). A program that
    /// serves one request at a time (php-cgi without `PHP_FCGI_CHILDREN`, fcgiwrap
    /// without `-c`) must get 1: a kept-alive connection holds the process, and a
    /// second connection waits behind it until it times out. Threaded or concurrent
    /// programs (flup, Go) can take more. Default: `PHP_FCGI_CHILDREN` when the
    /// program's environment sets it above 0 (php-cgi then forks that many workers on
    /// the socket), else 1.
    pub fn connections_per_process(mut self, n: usize) -> SpawnConfig {
        self.per_process = Some(n.max(1));
        self
    }

    /// Variables the program inherits from this process's environment, replacing the
    /// list (names that are unset are skipped). Default: `PATH`, `LANG`, `LC_ALL`,
    /// `TZ` ([`SPAWN_ALLOW_ENV`](defaults::SPAWN_ALLOW_ENV)): the environment starts
    /// empty so that nothing of the parent leaks in by accident.
    pub fn allow_env<I, S>(mut self, names: I) -> SpawnConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.allow_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets one variable for the program (`PHP_FCGI_CHILDREN`, `PHP_FCGI_MAX_REQUESTS`,
    /// `PYTHONPATH`, ...), over an inherited one of the same name. Default: none.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> SpawnConfig {
        let name = name.into();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    /// The program's working directory. Default: this process's.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> SpawnConfig {
        self.current_dir = Some(dir.into());
        self
    }

    /// Waits between restarts of a process that keeps failing: the first restart is at
    /// once, the second after `initial`, each further one twice as long, at most `max`.
    /// A process that ran longer than the crash-loop window, or exited cleanly, starts
    /// the sequence over. Default: 100 ms doubling up to 10 s
    /// ([`SPAWN_RESTART_BACKOFF`](defaults::SPAWN_RESTART_BACKOFF),
    /// [`SPAWN_RESTART_BACKOFF_MAX`](defaults::SPAWN_RESTART_BACKOFF_MAX)).
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> SpawnConfig {
        self.restart.backoff = initial;
        self.restart.max_backoff = max.max(initial);
        self
    }

    /// A crash loop: `failures` failures of one process (an exit with a non-zero
    /// status or by a signal, or a start that fails) within `window` stop its
    /// restarts; it leaves the fleet (with no process left the mount answers 503) and
    /// is tried again after `retry`. The reason is logged at `error`. Default: 5 within
    /// 10 s, retried after 30 s ([`SPAWN_CRASH_LOOP_FAILURES`](defaults::SPAWN_CRASH_LOOP_FAILURES),
    /// [`SPAWN_CRASH_LOOP_WINDOW`](defaults::SPAWN_CRASH_LOOP_WINDOW),
    /// [`SPAWN_CRASH_LOOP_RETRY`](defaults::SPAWN_CRASH_LOOP_RETRY)).
    pub fn crash_loop(mut self, failures: u32, window: Duration, retry: Duration) -> SpawnConfig {
        self.restart.crash_failures = failures.max(1);
        self.restart.crash_window = window;
        self.restart.crash_retry = retry;
        self
    }

    /// At shutdown (the service dropped), each process group gets SIGTERM, and SIGKILL
    /// if it is still there after this. Default: 5 s
    /// ([`SPAWN_GRACE_PERIOD`](defaults::SPAWN_GRACE_PERIOD)).
    pub fn grace_period(mut self, grace: Duration) -> SpawnConfig {
        self.grace = grace;
        self
    }

    /// Bytes of one line of the program's stdout/stderr that are logged (through
    /// `tracing`, target `tower_fastcgi::spawn`, at `warn`); the rest of a longer line
    /// is counted. Default: 4096 ([`SPAWN_LOG_LINE_LIMIT`](defaults::SPAWN_LOG_LINE_LIMIT)).
    pub fn log_line_limit(mut self, bytes: usize) -> SpawnConfig {
        self.line_limit = bytes.max(1);
        self
    }

    /// Checks the configuration and resolves the program: what the supervisor runs.
    pub(crate) fn plan(self) -> Result<Plan, String> {
        if self.procs == 0 {
            return Err("spawn: procs must be at least 1".into());
        }
        let program = resolve_program(&self.program)?;
        let mut env: Vec<(OsString, OsString)> = self
            .allow_env
            .iter()
            .filter(|name| !self.env.iter().any(|(n, _)| n == *name))
            .filter_map(|name| std::env::var_os(name).map(|v| (name.clone(), v)))
            .collect();
        env.extend(self.env);
        let per_process = self.per_process.or_else(|| php_children(&env)).unwrap_or(1);
        if let Some(dir) = &self.current_dir
            && !dir.is_dir()
        {
            return Err(format!(
                "spawn: working directory {} is not a directory",
                dir.display()
            ));
        }
        Ok(Plan {
            program,
            args: self.args,
            env,
            current_dir: self.current_dir,
            procs: self.procs,
            per_process,
            restart: self.restart,
            grace: self.grace,
            line_limit: self.line_limit,
        })
    }
}

impl fmt::Debug for SpawnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values of `env` may be secrets; their names are enough to debug with.
        let names: Vec<&OsStr> = self.env.iter().map(|(n, _)| n.as_os_str()).collect();
        f.debug_struct("SpawnConfig")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("procs", &self.procs)
            .field("connections_per_process", &self.per_process)
            .field("allow_env", &self.allow_env)
            .field("env", &names)
            .field("current_dir", &self.current_dir)
            .finish_non_exhaustive()
    }
}

/// A checked [`SpawnConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Absolute or as given with a `/`; never looked up again at each restart.
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// The whole environment of the program.
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) current_dir: Option<PathBuf>,
    pub(crate) procs: usize,
    pub(crate) per_process: usize,
    pub(crate) restart: RestartConfig,
    pub(crate) grace: Duration,
    pub(crate) line_limit: usize,
}

/// `PHP_FCGI_CHILDREN=k` (k > 0): php-cgi forks k workers that share the socket.
fn php_children(env: &[(OsString, OsString)]) -> Option<usize> {
    let (_, value) = env.iter().rev().find(|(n, _)| n == "PHP_FCGI_CHILDREN")?;
    value
        .to_str()?
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&k| k > 0)
}

/// The program to execute: a path as given, or a bare name found in `PATH`; it must be
/// an executable regular file.
fn resolve_program(program: &Path) -> Result<PathBuf, String> {
    let shown = program.display();
    let bytes = program.as_os_str().as_encoded_bytes();
    let is_bare = !bytes.is_empty() && !bytes.contains(&b'/');
    let path = if is_bare {
        let dirs = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&dirs)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("spawn: program {shown} not found in PATH"))?
    } else {
        program.to_path_buf()
    };
    let meta =
        std::fs::metadata(&path).map_err(|e| format!("spawn: program {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("spawn: program {} is not a file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "spawn: program {} is not executable",
            path.display()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_executable_program_is_refused() {
        let err = SpawnConfig::new("/nonexistent/php-cgi").plan().unwrap_err();
        assert!(err.contains("/nonexistent/php-cgi"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let err = SpawnConfig::new(&file).plan().unwrap_err();
        assert!(err.contains("not executable"), "{err}");
        let err = SpawnConfig::new(dir.path()).plan().unwrap_err();
        assert!(err.contains("not a file"), "{err}");
        let err = SpawnConfig::new("sh").procs(0).plan().unwrap_err();
        assert!(err.contains("procs"), "{err}");
    }

    /// The table on `SpawnConfig` says what `defaults` holds.
    #[test]
    fn the_defaults_table_matches_the_defaults_module() {
        let src = include_str!("config.rs");
        let row = |name: &str| {
            let start = format!("/// | [`{name}`](SpawnConfig::{name}) | ");
            src.lines()
                .find_map(|l| l.strip_prefix(start.as_str()))
                .unwrap_or_else(|| panic!("no table row for {name}"))
                .trim_end_matches(" |")
                .to_owned()
        };
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        let s = |d: Duration| format!("{} s", d.as_secs());
        assert_eq!(row("procs"), defaults::SPAWN_PROCS.to_string());
        let env: Vec<String> = defaults::SPAWN_ALLOW_ENV
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        assert_eq!(
            row("allow_env"),
            format!("{} from the parent", env.join(", "))
        );
        assert_eq!(
            row("restart_backoff"),
            format!(
                "at once, then {}, doubling up to {}",
                ms(defaults::SPAWN_RESTART_BACKOFF),
                s(defaults::SPAWN_RESTART_BACKOFF_MAX)
            )
        );
        assert_eq!(
            row("crash_loop"),
            format!(
                "{} failures within {} stop restarts for {}",
                defaults::SPAWN_CRASH_LOOP_FAILURES,
                s(defaults::SPAWN_CRASH_LOOP_WINDOW),
                s(defaults::SPAWN_CRASH_LOOP_RETRY)
            )
        );
        assert_eq!(
            row("grace_period"),
            format!(
                "{} between SIGTERM and SIGKILL",
                s(defaults::SPAWN_GRACE_PERIOD)
            )
        );
        assert_eq!(
            row("log_line_limit"),
            format!("{} bytes per output line", defaults::SPAWN_LOG_LINE_LIMIT)
        );
    }

    #[test]
    fn a_bare_name_is_found_in_path() {
        let plan = SpawnConfig::new("sh").plan().unwrap();
        assert!(plan.program.is_absolute(), "{:?}", plan.program);
    }

    #[test]
    fn the_cap_follows_php_fcgi_children() {
        assert_eq!(SpawnConfig::new("sh").plan().unwrap().per_process, 1);
        let k = SpawnConfig::new("sh").env("PHP_FCGI_CHILDREN", "3");
        assert_eq!(k.clone().plan().unwrap().per_process, 3);
        assert_eq!(k.connections_per_process(2).plan().unwrap().per_process, 2);
        let zero = SpawnConfig::new("sh").env("PHP_FCGI_CHILDREN", "0");
        assert_eq!(zero.plan().unwrap().per_process, 1);
    }

    #[test]
    fn the_environment_is_the_allow_list_plus_explicit_variables() {
        let plan = SpawnConfig::new("sh")
            .allow_env(["PATH", "TOWER_FASTCGI_SURELY_UNSET"])
            .env("PATH", "/only/this")
            .env("A", "1")
            .plan()
            .unwrap();
        let names: Vec<_> = plan.env.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(names, ["PATH", "A"]);
        assert_eq!(plan.env[0].1, "/only/this");
    }
}

//! php-fpm in the foreground (`-F`) with a configuration of its own: one static pool on
//! the backend's address, no php.ini (`-n`), the workers' stderr in its error log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Addr, Launch, Options};
use crate::support::process;

/// The error log php-fpm writes beside its configuration, where `catch_workers_output`
/// also puts the workers' stderr (so it belongs to the backend's log).
pub(super) fn error_log(dir: &Path) -> PathBuf {
    dir.join("php-fpm.log")
}

/// Writes `php-fpm.conf` into the backend's directory and points the command at it.
pub(super) fn configure(
    launch: &Launch<'_>,
    command: &mut Command,
) -> Result<Vec<(String, String)>, String> {
    let conf = launch.dir.join("php-fpm.conf");
    fs::write(&conf, config(launch.dir, launch.addr, launch.options))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    // -R: allowed to run as root (some CI containers); -p: prefix for relative paths.
    command
        .arg("-n")
        .arg("-F")
        .arg("-R")
        .arg("-p")
        .arg(launch.dir)
        .arg("-y")
        .arg(&conf);
    Ok(Vec::new())
}

/// A php-fpm configuration with one static pool.
fn config(dir: &Path, addr: &Addr, options: &Options) -> String {
    let mut conf = String::new();
    conf.push_str("[global]\n");
    conf.push_str(&format!("pid = {}\n", dir.join("php-fpm.pid").display()));
    conf.push_str(&format!("error_log = {}\n", error_log(dir).display()));
    conf.push_str("log_level = notice\nlog_limit = 65536\nlog_buffering = no\ndaemonize = no\n\n");
    conf.push_str("[tests]\n");
    if process::is_root() {
        // Workers must be told to stay root; php-fpm refuses otherwise (with -R).
        conf.push_str("user = root\ngroup = root\n");
    }
    match addr {
        Addr::Tcp(addr) => conf.push_str(&format!("listen = {addr}\n")),
        Addr::Unix(path) => conf.push_str(&format!(
            "listen = {}\nlisten.mode = 0666\n",
            path.display()
        )),
    }
    conf.push_str("listen.backlog = 511\n");
    conf.push_str("pm = static\n");
    conf.push_str(&format!("pm.max_children = {}\n", options.workers.max(1)));
    conf.push_str(&format!("pm.max_requests = {}\n", options.max_requests));
    conf.push_str("request_terminate_timeout = 120s\n");
    // The workers' own stderr (php://stderr) goes to php-fpm.log, undecorated.
    conf.push_str("catch_workers_output = yes\ndecorate_workers_output = no\n");
    conf.push_str("clear_env = yes\n");
    for (name, value) in &options.fpm_pool {
        conf.push_str(&format!("{name} = {value}\n"));
    }
    for (name, value) in options.php_ini() {
        conf.push_str(&format!("php_admin_value[{name}] = {value}\n"));
    }
    conf
}

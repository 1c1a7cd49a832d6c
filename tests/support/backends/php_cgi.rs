//! `php-cgi -b ADDR`: PHP's own FastCGI server, whose worker count and recycling come from
//! the environment (`PHP_FCGI_CHILDREN`, `PHP_FCGI_MAX_REQUESTS`) and whose settings come
//! from `-d` flags (no php.ini).

use std::ffi::OsString;
use std::process::Command;

use super::{Addr, Launch};

/// Adds the flags and returns the environment php-cgi reads its process model from.
pub(super) fn configure(
    launch: &Launch<'_>,
    command: &mut Command,
) -> Result<Vec<(String, String)>, String> {
    let options = launch.options;
    let mut env = Vec::new();
    if options.workers > 0 {
        env.push(("PHP_FCGI_CHILDREN".into(), options.workers.to_string()));
    }
    env.push((
        "PHP_FCGI_MAX_REQUESTS".into(),
        options.max_requests.to_string(),
    ));
    command.arg("-n");
    for (name, value) in options.php_ini() {
        command.arg("-d").arg(format!("{name}={value}"));
    }
    command.arg("-b").arg(match launch.addr {
        Addr::Tcp(addr) => OsString::from(addr.to_string()),
        Addr::Unix(path) => path.clone().into_os_string(),
    });
    Ok(env)
}

//! Finding the backend programs: which directories are searched (`FCGI_TEST_PATH` replaces
//! them, so a test can simulate a machine without backends), versioned Debian names such
//! as `php-fpm8.2`, and the Python interpreter that has flup.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Directories searched for backend programs after `$PATH` (Debian puts php-fpm and
/// fcgiwrap in /usr/sbin, which is not on every user's PATH).
const EXTRA_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A program that can serve FastCGI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// `php-fpm` (Debian: `/usr/sbin/php-fpm8.2`).
    PhpFpm,
    /// `php-cgi -b` (Debian: `/usr/bin/php-cgi8.2`).
    PhpCgi,
    /// Python's flup `WSGIServer` running `tests/fixtures/wsgi_app.py`.
    Flup,
    /// `fcgiwrap` running the shell scripts of `tests/fixtures/cgi`.
    Fcgiwrap,
}

impl Program {
    /// Short name used in messages: `php-fpm`, `php-cgi`, `flup`, `fcgiwrap`.
    pub fn name(self) -> &'static str {
        match self {
            Program::PhpFpm => "php-fpm",
            Program::PhpCgi => "php-cgi",
            Program::Flup => "flup",
            Program::Fcgiwrap => "fcgiwrap",
        }
    }
}

/// The executable for a program, or why it is missing (cached per process). For flup it
/// is the Python interpreter that can import it.
pub fn locate(program: Program) -> Result<PathBuf, String> {
    static FOUND: OnceLock<Mutex<HashMap<Program, Result<PathBuf, String>>>> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(program)
        .or_insert_with(|| {
            let missing =
                |name: &str| format!("{name} not found in {}", describe_dirs(&search_dirs()));
            match program {
                Program::PhpFpm => find_program("php-fpm").ok_or_else(|| missing("php-fpm")),
                Program::PhpCgi => find_program("php-cgi").ok_or_else(|| missing("php-cgi")),
                Program::Fcgiwrap => find_program("fcgiwrap").ok_or_else(|| missing("fcgiwrap")),
                Program::Flup => flup_location().map(|flup| flup.python),
            }
        })
        .clone()
}

/// Where flup was found.
#[derive(Debug, Clone)]
pub struct FlupLocation {
    pub python: PathBuf,
    /// The directory holding the `flup` package (passed as PYTHONPATH, so that a
    /// `pip install --user` still works with the backend's private HOME).
    pub pythonpath: PathBuf,
}

/// Finds a `python3` that can import flup, asking it where flup lives (cached).
pub fn flup_location() -> Result<FlupLocation, String> {
    static FLUP: OnceLock<Result<FlupLocation, String>> = OnceLock::new();
    FLUP.get_or_init(|| {
        let python = find_program("python3")
            .ok_or_else(|| "flup: python3 not found (searched PATH and /usr/bin)".to_owned())?;
        let probe = "import os, sys, flup.server.fcgi as f\n\
                     print(sys.executable)\n\
                     print(os.path.dirname(os.path.dirname(os.path.abspath(f.__file__))))";
        let out = Command::new(&python)
            .arg("-c")
            .arg(probe)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("flup: cannot run {}: {e}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "flup: the Python module is not installed for {} ({})",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no error output")
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(exe), Some(pythonpath)) = (lines.next(), lines.next()) else {
            return Err(format!("flup: unexpected probe output {text:?}"));
        };
        // pyenv's shims need pyenv's environment; the real interpreter does not.
        let exe = if exe.is_empty() {
            python
        } else {
            PathBuf::from(exe)
        };
        Ok(FlupLocation {
            python: exe,
            pythonpath: PathBuf::from(pythonpath),
        })
    })
    .clone()
}

/// The directories searched for programs: `$FCGI_TEST_PATH` alone if set (tests use it to
/// simulate a machine without backends), else `$PATH` and the usual sbin/bin directories.
fn search_dirs() -> Vec<PathBuf> {
    if let Some(dirs) = env::var_os("FCGI_TEST_PATH") {
        return env::split_paths(&dirs).collect();
    }
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    for extra in EXTRA_DIRS {
        if !dirs.iter().any(|dir| dir == Path::new(extra)) {
            dirs.push(PathBuf::from(extra));
        }
    }
    dirs
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` itself, or else the highest versioned `name<digits.dots>` (Debian installs
/// `php-fpm8.2` and only an alternative named `php-fpm` for some packages).
fn find_program(name: &str) -> Option<PathBuf> {
    for dir in search_dirs() {
        let exact = dir.join(name);
        if is_executable(&exact) {
            return Some(exact);
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut best: Option<(Vec<u32>, PathBuf)> = None;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(version) = file_name.to_str().and_then(|n| n.strip_prefix(name)) else {
                continue;
            };
            let parts: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
            let Some(parts) = parts.filter(|_| !version.is_empty()) else {
                continue;
            };
            let path = entry.path();
            if is_executable(&path) && best.as_ref().is_none_or(|(v, _)| parts > *v) {
                best = Some((parts, path));
            }
        }
        if let Some((_, path)) = best {
            return Some(path);
        }
    }
    None
}

fn describe_dirs(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    if env::var_os("FCGI_TEST_PATH").is_some() {
        format!("FCGI_TEST_PATH={}", names.join(":"))
    } else {
        names.join(":")
    }
}

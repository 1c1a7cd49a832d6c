//! The tokio runtime for the examples: one thread means a current-thread runtime
//! (no cross-thread wake-ups), more a multi-thread runtime with that many workers.

use std::future::Future;
use std::io;
use std::process::ExitCode;

pub fn build(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// The `main` of a command-line example named `name`: arguments that do not parse exit
/// with 2 (usage), a runtime that cannot start with 1, otherwise `run` decides.
pub fn main<A, F>(
    name: &str,
    args: Result<A, String>,
    threads: impl FnOnce(&A) -> usize,
    run: impl FnOnce(A) -> F,
) -> ExitCode
where
    F: Future<Output = ExitCode>,
{
    let args = match args {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{name}: {msg}");
            return ExitCode::from(2);
        }
    };
    match build(threads(&args)) {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

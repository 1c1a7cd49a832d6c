//! The tokio runtime for the examples: one thread means a current-thread runtime
//! (no cross-thread wake-ups), more a multi-thread runtime with that many workers.

use std::io;

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

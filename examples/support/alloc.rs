//! The examples' global allocator: glibc's malloc by default, jemalloc with
//! `--features jemalloc` (include with `#[path = "support/alloc.rs"] mod alloc;`).
//!
//! jemalloc is configured here for a server that should give memory back after a burst:
//! a background thread purges dirty pages (`background_thread:true`), and freed pages
//! are returned after about a second (`dirty_decay_ms`, `muzzy_decay_ms`) instead of
//! jemalloc's default 10 s. `MALLOC_CONF` in the environment still overrides this
//! (jemalloc reads it after the compiled-in string). BENCHMARKS.md has the measured
//! instructions per request and resident memory of both.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options (the symbol it looks up at start-up; the
/// `_rjem_` prefix is tikv-jemalloc-sys's default symbol prefix).
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

//! The log: the runner's and the steps' lines on stderr, at the pipeline's `log_level` (or as
//! `RUST_LOG` says), set once per process.

/// Install the log writer, unless one is installed already.
pub(crate) fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

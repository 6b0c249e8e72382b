//! Logging for `wasmhub serve` and `wasmhub proxy`: plain lines for a terminal, or one JSON object per line for a
//! cluster's log collector (tracing's JSON format, each span's fields flattened into the event).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<wasmhub_config::LogFormat> for LogFormat {
    fn from(format: wasmhub_config::LogFormat) -> LogFormat {
        match format {
            wasmhub_config::LogFormat::Text => LogFormat::Text,
            wasmhub_config::LogFormat::Json => LogFormat::Json,
        }
    }
}

/// Starts logging to stderr at `level`; `RUST_LOG` wins when set, for finer filters.
pub(crate) fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

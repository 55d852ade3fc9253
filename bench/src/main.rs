//! The `hotwire-bench` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use hotwire_bench::cli::Cli;
use hotwire_bench::commands::dispatch;

fn main() {
    // Our own steps at info, the client library's complaints at warn; HOTWIRE_BENCH_LOG
    // (a tracing filter) overrides. Logs go to stderr, results to stdout.
    let filter = EnvFilter::try_from_env("HOTWIRE_BENCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,hotwire_bench=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hotwire-bench: {error}");
            error.exit_code()
        }
    };
    std::process::exit(code);
}

//! The three subcommands: read arguments, run, print, write files, pick the exit code.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::broker_metrics::MetricsEndpoint;
use crate::cli::{Command, CompareArgs, LimitsArgs, RunArgs, WorkloadArgs};
use crate::compare::{compare, render_ratios, CompareOptions, Side};
use crate::error::{BenchError, Result};
use crate::limits::{self, LimitsOptions};
use crate::report::{render_table, write_run_outputs};
use crate::runner::{run, RunOptions};
use crate::spawn::SpawnedBroker;
use crate::workload::Workload;

/// Exit code of a run that finished but had produce or consume errors.
pub const EXIT_RUN_HAD_ERRORS: i32 = 3;

/// Runs a subcommand; returns the process exit code.
pub fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => run_command(&args),
        Command::Compare(args) => compare_command(&args),
        Command::Limits(args) => limits_command(&args),
        Command::OneSided(args) => crate::one_sided::run(&args),
    }
}

fn run_options(args: &WorkloadArgs, bootstrap: String, label: String) -> Result<RunOptions> {
    let workload = Workload::load_effective(&args.workload, &args.overrides())?;
    Ok(RunOptions {
        bootstrap,
        label,
        workload,
        workload_file: args.workload.display().to_string(),
        progress: !args.quiet && std::io::stdout().is_terminal(),
        keep_topics: args.keep_topics,
        limits: None,
        broker_metrics: None,
    })
}

fn run_command(args: &RunArgs) -> Result<i32> {
    // Validate the workload before starting anything.
    let mut options = run_options(&args.workload, String::new(), String::new())?;
    // Kept alive until the run is over.
    let spawned = match (&args.bootstrap, &args.spawn_broker) {
        (None, Some(binary)) => {
            let mut flags = options.workload.broker.args.clone();
            flags.extend(args.broker_args.iter().cloned());
            Some(SpawnedBroker::start(
                binary,
                args.broker_storage.as_deref(),
                &flags,
            )?)
        }
        _ => None,
    };
    let bootstrap = match (&args.bootstrap, &spawned) {
        (Some(bootstrap), _) => bootstrap.clone(),
        (None, Some(broker)) => broker.bootstrap(),
        (None, None) => {
            return Err(BenchError::Usage(
                "give --bootstrap HOST:PORT or --spawn-broker PATH".into(),
            ))
        }
    };
    options.label = args.label.clone().unwrap_or_else(|| bootstrap.clone());
    options.bootstrap = bootstrap;
    let metrics_url = args
        .broker_metrics
        .clone()
        .or_else(|| spawned.as_ref().and_then(SpawnedBroker::metrics_url));
    options.broker_metrics = metrics_url
        .as_deref()
        .map(MetricsEndpoint::parse)
        .transpose()?;
    if let Some(dir) = &args.limits_dir {
        let limits = limits::probe(&quick_limits(dir))?;
        print!("{}", limits::render(&limits));
        options.limits = Some(limits);
    }
    let result = run(&options)?;
    println!();
    print!("{}", render_table(&result));
    let files = write_run_outputs(&args.workload.out, &result)?;
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(if result.errors > 0 {
        EXIT_RUN_HAD_ERRORS
    } else {
        0
    })
}

fn compare_command(args: &CompareArgs) -> Result<i32> {
    let run = run_options(&args.workload, String::new(), String::new())?;
    let options = CompareOptions {
        a: Side {
            label: args.label_a.clone(),
            bootstrap: args.bootstrap_a.clone(),
            acks: args.acks_a,
            client: args.client_a.iter().cloned().collect(),
        },
        b: Side {
            label: args.label_b.clone(),
            bootstrap: args.bootstrap_b.clone(),
            acks: args.acks_b,
            client: args.client_b.iter().cloned().collect(),
        },
        rounds: args.rounds,
        run,
        out: args.workload.out.clone(),
    };
    let limits = match &args.limits_dir {
        Some(dir) => Some(limits::probe(&quick_limits(dir))?),
        None => None,
    };
    let mut result = compare(&options)?;
    result.limits = limits;
    println!();
    if let Some(limits) = &result.limits {
        print!("{}", limits::render(limits));
    }
    print!(
        "{}",
        render_ratios(&result.rows, &args.label_a, &args.label_b, args.rounds)
    );
    for warning in &result.warnings {
        println!("WARNING: {warning}");
    }
    let path = args.workload.out.join("compare.json");
    write_json(&path, &result)?;
    println!("wrote {}", path.display());
    Ok(0)
}

fn limits_command(args: &LimitsArgs) -> Result<i32> {
    let options = LimitsOptions {
        dir: args.dir.clone(),
        fsync_write: args.fsync_write,
        fsync_count: args.fsync_count,
        sequential_bytes: args.sequential_size,
        sequential_chunk: args.sequential_chunk,
        sequential_fsync_every: args.fsync_every,
        tcp_duration: args.tcp_duration,
    };
    let result = limits::probe(&options)?;
    print!("{}", limits::render(&result));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(BenchError::io(format!("creating {}", out.display())))?;
        let path = out.join("limits.json");
        write_json(&path, &result)?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// A shorter probe for `run --limits-dir`, a few seconds in all.
fn quick_limits(dir: &Path) -> LimitsOptions {
    LimitsOptions {
        dir: dir.to_path_buf(),
        fsync_write: 4096,
        fsync_count: 1000,
        sequential_bytes: 128 << 20,
        sequential_chunk: 1 << 20,
        sequential_fsync_every: 8 << 20,
        tcp_duration: Duration::from_secs(1),
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| BenchError::Io {
        context: format!("serialising {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, json + "\n").map_err(BenchError::io(format!("writing {}", path.display())))
}

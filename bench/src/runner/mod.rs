//! One run of a workload against one broker: topics, backlog, consumers, producers, phases,
//! drain, results.

mod driver;
mod results;
mod sampler;
mod workers;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::broker_metrics::{BrokerSample, MetricsEndpoint};
use crate::control::Control;
use crate::error::Result;
use crate::kafka::admin::Admin;
use crate::kafka::config;
use crate::kafka::consumer::{commit_end_offsets, ConsumerShared, ConsumerWorker};
use crate::kafka::prefill::{prefill, PrefillResult};
use crate::kafka::producer::{ProducerWorker, SenderSetup};
use crate::kafka::targets::Targets;
use crate::limits::LimitsResult;
use crate::payload::{fresh_seed, PayloadBuilder, SplitMix64};
use crate::report::{RunResult, TimelinePoint, LATENCY_NOTE_FIXED, LATENCY_NOTE_MAX};
use crate::stats::Metrics;
use crate::units::Rate;
use crate::workload::{phases, PhaseKind, PhaseSpec, Workload};

use driver::{drive, DriveOutcome, PhaseHooks};
use results::{max_throughput_result, phase_results, warnings, CatchUpInfo};
use sampler::Sampler;
use workers::Workers;

/// Client id prefix of the tailing consumers (`-0`, `-1`, ... follow).
pub const TAILING_CLIENT_PREFIX: &str = "hotwire-bench-consumer-";
/// Client id of the catch-up readers.
pub const CATCH_UP_CLIENT: &str = "hotwire-bench-catch-up";

/// What to run, where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub bootstrap: String,
    /// Name for reports (e.g. "hotwire" in a comparison).
    pub label: String,
    /// Validated, with overrides applied.
    pub workload: Workload,
    pub workload_file: String,
    /// Print a progress line every second.
    pub progress: bool,
    /// Leave the run's topics on the broker afterwards.
    pub keep_topics: bool,
    /// A limits probe to store beside the results.
    pub limits: Option<LimitsResult>,
    /// The broker's Prometheus endpoint, scraped at phase boundaries for per-client hot/cold
    /// fetch counts (Hotwire's; other brokers: none).
    pub broker_metrics: Option<MetricsEndpoint>,
}

/// Runs the workload once and returns what it measured.
pub fn run(options: &RunOptions) -> Result<RunResult> {
    let w = &options.workload;
    let admin = Admin::connect_with(&options.bootstrap, &w.client)?;
    let seed = fresh_seed();
    let run_id = format!("{:08x}", seed >> 32);
    let tag = SplitMix64(seed).next_u64();
    let topics: Vec<String> = (0..w.topics.count)
        .map(|i| format!("bench-{}-{run_id}-{i}", w.name))
        .collect();
    tracing::info!(
        "{}: creating {} topic(s) of {} partitions on {}",
        w.name,
        topics.len(),
        w.topics.partitions,
        options.bootstrap
    );
    admin.create_topics(&topics, w.topics.partitions, w.topics.replication_factor)?;
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let outcome = run_on(options, &topics, &run_id, tag, seed);
    if !options.keep_topics {
        if let Err(e) = admin.delete_topics(&topics) {
            tracing::warn!("could not delete the run's topics: {e}");
        }
    }
    let mut result = outcome?;
    result.started_unix_s = started_unix_s;
    Ok(result)
}

/// Writes the backlog, starts the clients, drives the phases, stops everything, and turns
/// what was recorded into the result.
fn run_on(
    options: &RunOptions,
    topics: &[String],
    run_id: &str,
    tag: u64,
    seed: u64,
) -> Result<RunResult> {
    let w = &options.workload;
    let plan = phases(w);
    let metrics = Arc::new(Metrics::new(plan.len()));
    let mut run = RunContext {
        options,
        topics,
        group: format!("{}-{run_id}", w.consumers.group),
        targets: Arc::new(Targets {
            topics: topics.to_vec(),
            partitions: w.topics.partitions,
            partitioning: w.producers.partitioning,
        }),
        control: Arc::new(Control::new(
            plan.iter().map(|p| p.rate).collect(),
            w.producers.count,
        )),
        shared: Arc::new(ConsumerShared::new(Arc::clone(&metrics), tag)),
        metrics,
        plan,
        tag,
        seed,
        prefill: None,
    };
    run.prefill = run.write_backlog()?;

    let mut workers = Workers::default();
    let driven = run.start_and_drive(&mut workers);
    // Whatever happened, stop every thread before returning.
    run.control.stop();
    let broke = driven.as_ref().is_ok_and(|d| d.outcome.broke);
    let mut notes = workers.shutdown(&run.metrics, &run.shared, broke);
    let driven = driven?;

    let metrics = &run.metrics;
    let total = metrics.counters.snapshot();
    let phase_results = phase_results(&run.plan, &driven.outcome, metrics, w, driven.catch_up);
    notes.extend(warnings(
        &total,
        &phase_results,
        w,
        &metrics.counters.errors(),
        driven.outcome.broke,
    ));
    let fixed = run
        .plan
        .iter()
        .filter(|p| p.measured())
        .all(|p| matches!(p.rate, Rate::Fixed(_)));
    let note = if fixed {
        LATENCY_NOTE_FIXED
    } else {
        LATENCY_NOTE_MAX
    };
    Ok(RunResult {
        tool: "hotwire-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_unix_s: 0,
        bootstrap: options.bootstrap.clone(),
        label: options.label.clone(),
        workload_file: options.workload_file.clone(),
        workload: w.clone(),
        coordinated_omission_corrected: fixed,
        latency_note: note.into(),
        topics: topics.to_vec(),
        prefill: run.prefill,
        phases: phase_results,
        max_throughput: max_throughput_result(&driven.outcome, w.records.size.0),
        timeline: driven.timeline,
        errors: total.produce_errors + total.consume_errors,
        warnings: notes,
        limits: options.limits.clone(),
    })
}

/// What one run shares between its steps and threads.
struct RunContext<'a> {
    options: &'a RunOptions,
    topics: &'a [String],
    /// The tailing consumers' group (prefix and run id).
    group: String,
    targets: Arc<Targets>,
    control: Arc<Control>,
    shared: Arc<ConsumerShared>,
    metrics: Arc<Metrics>,
    plan: Vec<PhaseSpec>,
    tag: u64,
    seed: u64,
    prefill: Option<PrefillResult>,
}

/// What driving the phases produced.
struct Driven {
    outcome: DriveOutcome,
    timeline: Vec<TimelinePoint>,
    catch_up: CatchUpInfo,
}

impl RunContext<'_> {
    fn workload(&self) -> &Workload {
        &self.options.workload
    }

    fn bootstrap(&self) -> &str {
        &self.options.bootstrap
    }

    /// A payload stream of its own for each producer (`stream`).
    fn payload(&self, stream: u64) -> PayloadBuilder {
        let records = &self.workload().records;
        PayloadBuilder::new(
            records.size.0 as usize,
            records.randomness,
            self.tag,
            self.seed ^ stream,
        )
    }

    /// Writes the workload's backlog, if it has one.
    fn write_backlog(&self) -> Result<Option<PrefillResult>> {
        let w = self.workload();
        if w.backlog.size.0 == 0 {
            return Ok(None);
        }
        let records = w.backlog.size.0.div_ceil(w.records.size.0.max(1));
        tracing::info!(
            "{}: writing a backlog of {records} records ({})",
            w.name,
            w.backlog.size
        );
        let config = config::prefill_producer(self.bootstrap(), w, "hotwire-bench-prefill");
        let payload = self.payload(u64::MAX);
        prefill(
            &config,
            &self.targets,
            records,
            payload,
            self.options.progress,
        )
        .map(Some)
    }

    /// Starts consumers, then producers, then runs the phases.
    fn start_and_drive(&self, workers: &mut Workers) -> Result<Driven> {
        self.start_tailing_consumers(workers)?;
        self.start_producers(workers)?;
        let mut catch_up = CatchUpInfo::default();
        let mut sampler = Sampler::new(&self.metrics, self.options.progress);
        let max = self.workload().max_throughput.as_ref();
        let outcome = drive(
            &self.plan,
            &self.control,
            &self.metrics,
            &mut sampler,
            max,
            PhaseHooks {
                start_catch_up: &mut |_| self.start_catch_up(workers, &mut catch_up),
                scrape: &mut || self.scrape_broker(),
                finished: &|phase| {
                    phase.kind == PhaseKind::CatchUp
                        && self.shared.caught_up_ns.load(Ordering::Relaxed) != 0
                },
            },
        )?;
        catch_up.caught_up_ns = self.shared.caught_up_ns.load(Ordering::Relaxed);
        Ok(Driven {
            outcome,
            timeline: sampler.into_points(),
            catch_up,
        })
    }

    /// Starts the tailing consumers after the backlog and waits for their assignment.
    fn start_tailing_consumers(&self, workers: &mut Workers) -> Result<()> {
        let w = self.workload();
        if self.prefill.is_some() && w.consumers.count > 0 {
            let client_id = "hotwire-bench-offsets";
            let config = config::tailing_consumer(self.bootstrap(), w, &self.group, client_id);
            commit_end_offsets(&config, &self.targets.all_partitions())?;
        }
        for i in 0..w.consumers.count {
            let client_id = format!("{TAILING_CLIENT_PREFIX}{i}");
            let config = config::tailing_consumer(self.bootstrap(), w, &self.group, &client_id);
            let shared = Arc::clone(&self.shared);
            let consumer = ConsumerWorker::spawn_tailing(i, &config, self.topics, shared)?;
            workers.tailing.push(consumer);
        }
        workers.wait_for_assignment(w.total_partitions())
    }

    /// Starts the producers; they wait for the first phase.
    fn start_producers(&self, workers: &mut Workers) -> Result<()> {
        let w = self.workload();
        for i in 0..w.producers.count {
            let client_id = format!("hotwire-bench-producer-{i}");
            let config = config::producer(self.bootstrap(), w, &client_id);
            let setup = SenderSetup {
                index: i,
                targets: Arc::clone(&self.targets),
                control: Arc::clone(&self.control),
                metrics: Arc::clone(&self.metrics),
                payload: self.payload(u64::from(i)),
            };
            workers
                .producers
                .push(ProducerWorker::spawn(&config, setup)?);
        }
        Ok(())
    }

    /// The broker's per-client fetch reads now, if it was given an endpoint that answers.
    fn scrape_broker(&self) -> Option<BrokerSample> {
        let endpoint = self.options.broker_metrics.as_ref()?;
        endpoint
            .sample()
            .map_err(|e| tracing::warn!("broker metrics: {e}"))
            .ok()
    }

    /// At the start of the catch-up phase: notes how many records exist (what the readers
    /// have to read) and starts the readers; each has caught up once its position in every
    /// partition reaches the partition's end offset as it was when it started.
    fn start_catch_up(&self, workers: &mut Workers, catch_up: &mut CatchUpInfo) -> Result<()> {
        let w = self.workload();
        let backlog = self.prefill.as_ref().map_or(0, |p| p.records);
        catch_up.target_records = backlog + self.metrics.counters.snapshot().acked;
        catch_up.consumers = w.catch_up.as_ref().map_or(0, |c| c.consumers);
        let group = format!("{}-catch-up", self.group);
        let config = config::catch_up_consumer(self.bootstrap(), w, &group, CATCH_UP_CLIENT);
        let nice = w.catch_up.as_ref().map_or(0, |c| c.nice);
        workers.spawn_catch_up(
            catch_up.consumers,
            &config,
            &self.targets,
            &self.shared,
            nice,
        )
    }
}

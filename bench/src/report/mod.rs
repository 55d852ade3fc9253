//! What a run reports: the result structure (written as JSON), the text table, the plots.

mod plot;
mod result;
mod sweep_plot;
mod table;
mod write;

pub use result::{
    BrokerReads, CatchUpResult, ConsumeResult, MaxThroughputResult, PhaseResult, ProduceResult,
    RunResult, StepVerdict, TimelinePoint, LATENCY_NOTE_FIXED, LATENCY_NOTE_MAX,
};
pub use sweep_plot::{Curve, SweepPoint};
pub use table::{render_table, throughput_text};
pub use write::{write_run_outputs, write_sweep_outputs};

//! Parsing, validation, overrides and phase plans of workload files.

use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
name = "t"
[topics]
partitions = 4
[records]
size = "1KiB"
[producers]
count = 2
rate = 1000
[run]
duration = "10s"
"#;

fn parse(text: &str) -> Workload {
    Workload::parse(text).unwrap()
}

fn problems(text: &str) -> Vec<String> {
    validate(&parse(text)).unwrap_err()
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let w = parse(MINIMAL);
    validate(&w).unwrap();
    assert_eq!(w.topics.count, 1);
    assert_eq!(w.topics.replication_factor, 1);
    assert_eq!(w.records.randomness, 1.0);
    assert_eq!(w.producers.acks, Acks::All);
    assert_eq!(w.producers.compression, Compression::None);
    assert_eq!(w.producers.partitioning, Partitioning::RoundRobin);
    assert_eq!(w.producers.batch_size.0, 16 * 1024);
    assert_eq!(w.consumers.count, 0);
    assert_eq!(w.run.warmup.0, Duration::ZERO);
    assert_eq!(w.total_partitions(), 4);
}

#[test]
fn every_shipped_workload_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let w = Workload::load_effective(&path, &Overrides::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                path.file_stem().unwrap().to_str().unwrap(),
                w.name,
                "file name and workload name differ"
            );
            seen.push(w.name);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "batched",
            "batched-16p",
            "catch-up",
            "fragmented",
            "max-throughput",
            "sweep-batched",
            "sweep-fragmented",
            "tailing-e2e"
        ]
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused_with_their_name() {
    let typo = MINIMAL.replace("partitions = 4", "partitons = 4");
    let err = Workload::parse(&typo).unwrap_err();
    assert!(err.contains("partitons"), "{err}");

    let bad_size = MINIMAL.replace("\"1KiB\"", "\"1 furlong\"");
    let err = Workload::parse(&bad_size).unwrap_err();
    assert!(err.contains("unknown size unit"), "{err}");

    let negative = MINIMAL.replace("\"1KiB\"", "-5");
    let err = Workload::parse(&negative).unwrap_err();
    assert!(err.contains("negative"), "{err}");

    let bad_acks = MINIMAL.replace("rate = 1000", "rate = 1000\nacks = \"2\"");
    let err = Workload::parse(&bad_acks).unwrap_err();
    assert!(err.contains("must be \"all\""), "{err}");

    let bad_codec = MINIMAL.replace("rate = 1000", "rate = 1000\ncompression = \"zip\"");
    let err = Workload::parse(&bad_codec).unwrap_err();
    assert!(err.contains("zip"), "{err}");

    let unitless = MINIMAL.replace("\"10s\"", "\"10\"");
    let err = Workload::parse(&unitless).unwrap_err();
    assert!(err.contains("needs a unit"), "{err}");

    let missing = MINIMAL.replace("[run]\nduration = \"10s\"\n", "");
    let err = Workload::parse(&missing).unwrap_err();
    assert!(err.contains("run"), "{err}");
}

#[test]
fn acks_accept_all_minus_one_one_and_zero() {
    for (text, acks) in [
        ("\"all\"", Acks::All),
        ("\"-1\"", Acks::All),
        ("-1", Acks::All),
        ("1", Acks::Leader),
        ("\"0\"", Acks::None),
    ] {
        let w = parse(&MINIMAL.replace("rate = 1000", &format!("rate = 1000\nacks = {text}")));
        assert_eq!(w.producers.acks, acks);
    }
}

#[test]
fn acks_from_the_command_line_read_as_in_files() {
    for (text, acks) in [
        ("all", Acks::All),
        ("ALL", Acks::All),
        ("-1", Acks::All),
        ("1", Acks::Leader),
        ("0", Acks::None),
    ] {
        assert_eq!(text.parse::<Acks>(), Ok(acks));
    }
    assert!("2".parse::<Acks>().unwrap_err().contains("must be"));
}

#[test]
fn validation_lists_every_problem() {
    let text = MINIMAL
        .replace("partitions = 4", "partitions = 0")
        .replace("\"1KiB\"", "8")
        .replace("count = 2", "count = 0")
        .replace("\"10s\"", "\"0\"");
    let found = problems(&text);
    let all = found.join("\n");
    assert_eq!(found.len(), 4, "{all}");
    assert!(all.contains("topics.partitions"), "{all}");
    assert!(all.contains("records.size"), "{all}");
    assert!(all.contains("producers.count"), "{all}");
    assert!(all.contains("run.duration"), "{all}");
}

#[test]
fn shapes_that_contradict_themselves_are_refused() {
    let no_rate = MINIMAL.replace("rate = 1000\n", "");
    assert!(problems(&no_rate)[0].contains("producers.rate is required"));

    let stepped_with_rate = format!("{MINIMAL}\n[max_throughput]\nstart_rate = 100\n");
    assert!(problems(&stepped_with_rate)[0].contains("must not be set"));

    let catch_up_without_backlog = format!("{MINIMAL}\n[catch_up]\nconsumers = 1\n");
    assert!(problems(&catch_up_without_backlog)[0].contains("backlog.size"));

    let catch_up_at_max = format!(
        "{}\n[catch_up]\nconsumers = 1\n[backlog]\nsize = \"1MiB\"\n",
        MINIMAL.replace("rate = 1000", "rate = \"max\"")
    );
    assert!(problems(&catch_up_at_max)[0].contains("fixed producers.rate"));

    let too_nice =
        format!("{MINIMAL}\n[backlog]\nsize = \"1MiB\"\n[catch_up]\nconsumers = 1\nnice = 20\n");
    assert!(problems(&too_nice)
        .iter()
        .any(|p| p.contains("catch_up.nice")));

    let reserved = MINIMAL.replace(
        "rate = 1000",
        "rate = 1000\n[producers.extra]\n\"bootstrap.servers\" = \"x:1\"",
    );
    assert!(problems(&reserved)[0].contains("set by the bench"));

    let weird_name = MINIMAL.replace("name = \"t\"", "name = \"a b\"");
    assert!(problems(&weird_name)[0].contains("name"));
}

#[test]
fn overrides_replace_durations_and_scale_rates_and_backlog() {
    let mut w = parse(&format!(
        "{MINIMAL}\n[backlog]\nsize = \"100KiB\"\n[catch_up]\nconsumers = 1\n"
    ));
    let overrides = Overrides {
        duration: Some(Duration::from_secs(2)),
        warmup: Some(Duration::from_secs(1)),
        scale: Some(0.5),
        max_steps: Some(3),
        catch_up_nice: Some(19),
    };
    overrides.apply(&mut w);
    validate(&w).unwrap();
    assert_eq!(w.catch_up.as_ref().unwrap().nice, 19);
    assert_eq!(w.run.duration.0, Duration::from_secs(2));
    assert_eq!(w.run.warmup.0, Duration::from_secs(1));
    assert_eq!(w.producers.rate, Some(crate::units::Rate::Fixed(500.0)));
    assert_eq!(w.backlog.size.0, 50 * 1024);

    // A tiny scale still leaves one record of backlog.
    Overrides {
        scale: Some(1e-9),
        ..Overrides::default()
    }
    .apply(&mut w);
    assert_eq!(w.backlog.size.0, 1024);

    let mut zero = parse(MINIMAL);
    Overrides {
        scale: Some(0.0),
        ..Overrides::default()
    }
    .apply(&mut zero);
    assert!(validate(&zero).unwrap_err()[0].contains("producers.rate"));
}

#[test]
fn phases_follow_the_shape() {
    let mut w = parse(MINIMAL);
    w.run.warmup = crate::units::Dur(Duration::from_secs(1));
    let names: Vec<_> = phases(&w).into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["warmup", "main"]);

    let catch_up = parse(&format!(
        "{MINIMAL}\n[backlog]\nsize = \"1MiB\"\n[catch_up]\nconsumers = 1\n"
    ));
    let plan = phases(&catch_up);
    assert_eq!(plan.len(), 2);
    assert_eq!(plan[0].kind, PhaseKind::Baseline);
    assert_eq!(plan[1].kind, PhaseKind::CatchUp);
    assert_eq!(plan[1].rate, crate::units::Rate::Fixed(1000.0));

    let stepped = parse(&format!(
        "{}\n[max_throughput]\nstart_rate = 100\nstep_factor = 2\nmax_steps = 3\n",
        MINIMAL.replace("rate = 1000\n", "")
    ));
    validate(&stepped).unwrap();
    let rates: Vec<_> = phases(&stepped).into_iter().map(|p| p.rate).collect();
    use crate::units::Rate::Fixed;
    assert_eq!(rates, [Fixed(100.0), Fixed(200.0), Fixed(400.0)]);
}

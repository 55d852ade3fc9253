//! One broker per storage root: a second `hotwire` on a root in use exits at once, before its
//! recovery can delete the first one's in-flight objects; a crash releases the root.

use crate::common;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BrokerProcess;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

/// A request whose answer needs the internal log to be written and flushed.
fn producer_id(broker: &BrokerProcess) -> i64 {
    let request = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        broker.connect().call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(response.error_code, 0);
    response.producer_id.0
}

#[test]
fn a_second_broker_on_a_root_in_use_exits_and_a_crash_releases_the_root() {
    let mut first = BrokerProcess::start(&[]);
    let before = producer_id(&first);

    let storage = format!("fs://{}", first.storage_path().display());
    let listen = common::free_port().to_string();
    let mut second = Command::new(env!("CARGO_BIN_EXE_hotwire"))
        .args(["--listen", &listen, "--storage", &storage])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second broker kept running on a storage root in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let root = first.storage_path().display().to_string();
    assert!(
        stderr.contains(&format!("another broker holds {root}")),
        "{stderr}"
    );

    // The first never noticed.
    assert!(first.is_running());
    let during = producer_id(&first);
    assert!(during > before);

    // kill -9 releases the lock with the process: a new broker starts on the root at once.
    let restarted = first.kill_and_restart(&[]);
    assert!(producer_id(&restarted) > during);
}

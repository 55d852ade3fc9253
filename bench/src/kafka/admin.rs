//! Connectivity check, topic creation and deletion.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::error::{BenchError, Result};
use crate::kafka::config;

/// How long to wait for the broker to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for created topics to show up with a leader for every partition.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin request timeout.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// An admin client bound to one bootstrap address.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    bootstrap: String,
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    /// Connects and checks that a broker answers Metadata, so a wrong address fails in
    /// seconds with its name in the message instead of librdkafka retrying forever.
    pub fn connect(bootstrap: &str) -> Result<Admin> {
        Self::connect_with(bootstrap, &BTreeMap::new())
    }

    /// [`Admin::connect`] with librdkafka settings for the connection (TLS, SASL).
    pub fn connect_with(bootstrap: &str, client: &BTreeMap<String, String>) -> Result<Admin> {
        let client: AdminClient<DefaultClientContext> = config::admin(bootstrap, client)
            .create()
            .map_err(BenchError::kafka(format!(
            "creating a client for {bootstrap}"
        )))?;
        client
            .inner()
            .fetch_metadata(None, CONNECT_TIMEOUT)
            .map_err(|e| {
                BenchError::Broker(format!(
                    "no Kafka broker answered at {bootstrap} within {}s ({e})",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?;
        // rdkafka's admin calls are futures; a one-thread runtime drives them.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(BenchError::io("starting the admin runtime"))?;
        Ok(Admin {
            client,
            bootstrap: bootstrap.to_string(),
            runtime,
        })
    }

    /// Creates the topics and waits until every partition has a leader.
    pub fn create_topics(&self, names: &[String], partitions: u32, replication: i32) -> Result<()> {
        let partitions = i32::try_from(partitions)
            .map_err(|_| BenchError::Usage(format!("{partitions} partitions is too many")))?;
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self
            .runtime
            .block_on(async {
                tokio::time::timeout(ADMIN_TIMEOUT, self.client.create_topics(&topics, &options))
                    .await
            })
            .map_err(|_| BenchError::Broker("CreateTopics timed out".into()))?
            .map_err(BenchError::kafka(format!(
                "creating topics on {}",
                self.bootstrap
            )))?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(BenchError::Broker(format!("creating topic {name}: {code}")));
            }
        }
        self.wait_for_leaders(names, partitions)
    }

    fn wait_for_leaders(&self, names: &[String], partitions: i32) -> Result<()> {
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        for name in names {
            loop {
                let ready = self
                    .client
                    .inner()
                    .fetch_metadata(Some(name), Duration::from_secs(5))
                    .ok()
                    .and_then(|metadata| {
                        metadata.topics().first().map(|topic| {
                            topic.error().is_none()
                                && topic.partitions().len() == partitions as usize
                                && topic.partitions().iter().all(|p| p.leader() >= 0)
                        })
                    })
                    .unwrap_or(false);
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(BenchError::Broker(format!(
                        "topic {name} did not get a leader for all {partitions} partitions within {}s",
                        TOPIC_READY_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Deletes the topics; failures are returned for the caller to report, not to fail on.
    pub fn delete_topics(&self, names: &[String]) -> Result<()> {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self
            .runtime
            .block_on(async {
                tokio::time::timeout(ADMIN_TIMEOUT, self.client.delete_topics(&refs, &options))
                    .await
            })
            .map_err(|_| BenchError::Broker("DeleteTopics timed out".into()))?
            .map_err(BenchError::kafka("deleting topics"))?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(BenchError::Broker(format!("deleting topic {name}: {code}")));
            }
        }
        Ok(())
    }
}

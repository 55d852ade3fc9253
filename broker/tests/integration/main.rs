//! The broker's integration tests, in one test binary: each module starts real `hotwire`
//! processes (and etcd where it tests a cluster) and talks to them over the Kafka protocol, the
//! one-sided path or their storage. One binary rather than one per file: each would link the
//! whole broker again, which cost the clean CI build over a minute.

mod common;

mod bad_input;
mod cluster_acls;
mod cluster_fencing;
mod cluster_groups;
mod cluster_membership;
mod cluster_topic_changes;
mod cold_reads;
mod crafted_batches;
mod crash_trials;
mod crash_trials_topic_changes;
mod describe_admin;
mod durable_state;
mod exclusive_root;
mod groups;
mod one_sided;
mod one_sided_hostile;
mod one_sided_principals;
mod resource_limits;
mod sasl_reauthentication;
mod storage_faults;
mod versions;

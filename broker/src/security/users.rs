//! `hotwire users`: SCRAM credentials managed from the command line, in a single broker's
//! storage root or in a cluster's etcd. The first user of a SASL-only broker comes from here;
//! a running broker reads credentials at each login, so changes count at the next one.

use std::io::BufRead;
use std::sync::Arc;

use super::credentials::{CredentialError, CredentialStore, EtcdCredentials, StoreCredentials};
use super::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::cluster::etcd::Etcd;
use crate::cluster::model::Keys;
use crate::cluster::ClusterConfig;

/// What `hotwire users` does.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum UsersAction {
    /// Creates or replaces USER's SCRAM credentials; the password is read from
    /// `HOTWIRE_USER_PASSWORD`, else from the first line of standard input (never an argument:
    /// it would show in the process list). SASL/PLAIN logins check the same credentials.
    Set {
        /// The user name.
        user: String,
        /// Mechanisms to store it for (repeatable); default both.
        #[arg(long = "mechanism", value_name = "SCRAM-SHA-256|SCRAM-SHA-512")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Deletes USER's credentials (for the mechanisms given, default both).
    Delete {
        /// The user name.
        user: String,
        /// Mechanisms to delete (repeatable); default both.
        #[arg(long = "mechanism", value_name = "SCRAM-SHA-256|SCRAM-SHA-512")]
        mechanisms: Vec<String>,
    },
    /// Lists users and their mechanisms (never a secret).
    List,
}

/// Why a users command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// Neither or both of `--storage` and `--cluster`, a bad mechanism, iterations or password.
    #[error("{0}")]
    Usage(String),
    /// The store or etcd failed.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The storage URL or cluster URL is unusable.
    #[error("{0}")]
    Open(String),
}

/// Runs `action` on the credentials of the broker whose storage is `storage`, or of the
/// cluster `cluster`; what to print.
pub async fn run(
    storage: Option<&str>,
    cluster: Option<&str>,
    action: &UsersAction,
) -> Result<String, UsersError> {
    let store: Arc<dyn CredentialStore> = match (storage, cluster) {
        (Some(url), None) => {
            let store = dfs_adapter::Store::open(url)
                .await
                .map_err(|e| UsersError::Open(e.to_string()))?;
            Arc::new(StoreCredentials(store))
        }
        (None, Some(url)) => {
            let config =
                ClusterConfig::from_url(url).map_err(|e| UsersError::Open(e.to_string()))?;
            let etcd = Etcd::new(config.endpoints.clone(), config.request_timeout)
                .map_err(|e| UsersError::Open(e.to_string()))?;
            let keys = Keys::new(&config.name);
            Arc::new(EtcdCredentials::new(Arc::new(etcd), keys.prefix()))
        }
        _ => {
            return Err(UsersError::Usage(
                "give exactly one of --storage (a single broker) and --cluster".into(),
            ))
        }
    };
    match action {
        UsersAction::Set {
            user,
            mechanisms,
            iterations,
        } => {
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(iterations) {
                return Err(UsersError::Usage(format!(
                    "iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"
                )));
            }
            let mechanisms = parse_mechanisms(mechanisms)?;
            let password = read_password()?;
            for mechanism in &mechanisms {
                let credential = Credential::new(*mechanism, password.as_bytes(), *iterations);
                store
                    .put(super::credentials::UserCredential {
                        user: user.clone(),
                        credential,
                    })
                    .await?;
            }
            Ok(format!("{user}: {} set\n", names(&mechanisms)))
        }
        UsersAction::Delete { user, mechanisms } => {
            let mut deleted = Vec::new();
            for mechanism in parse_mechanisms(mechanisms)? {
                if store.delete(user, mechanism).await? {
                    deleted.push(mechanism);
                }
            }
            Ok(format!("{user}: {} deleted\n", names(&deleted)))
        }
        UsersAction::List => {
            let mut lines: Vec<String> = store
                .list()
                .await?
                .into_iter()
                .map(|r| {
                    format!(
                        "{} {} iterations={}\n",
                        r.user,
                        r.credential.mechanism.name(),
                        r.credential.iterations
                    )
                })
                .collect();
            lines.sort();
            Ok(lines.concat())
        }
    }
}

fn parse_mechanisms(given: &[String]) -> Result<Vec<Mechanism>, UsersError> {
    if given.is_empty() {
        return Ok(Mechanism::ALL.to_vec());
    }
    given
        .iter()
        .map(|name| {
            Mechanism::from_name(name)
                .ok_or_else(|| UsersError::Usage(format!("unknown mechanism {name:?}")))
        })
        .collect()
}

fn names(mechanisms: &[Mechanism]) -> String {
    if mechanisms.is_empty() {
        return "nothing".into();
    }
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    names.join(", ")
}

fn read_password() -> Result<String, UsersError> {
    let password = match std::env::var("HOTWIRE_USER_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| UsersError::Usage(format!("cannot read the password: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        return Err(UsersError::Usage("empty password".into()));
    }
    Ok(password)
}

//! Who a client is: SASL authentication (PLAIN, SCRAM-SHA-256/512) and where the SCRAM
//! credentials are kept, or the mapped subject of its TLS client certificate; what a principal
//! may do (ACLs, and the ACL APIs). TLS itself is the listener's
//! (`server::tls`).

pub mod acl;
pub mod acl_admin;
pub mod authorize;
pub mod credentials;
pub mod principal_mapping;
pub mod sasl;
pub mod scram;
pub mod user_admin;
pub mod users;

//! `[metrics]`: who may read `/metrics`. The Prometheus text names routes, volumes and the
//! office's backlog, so it is not for anyone who can reach the portal.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::secrets::Secret;

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A bearer token for the scraper (`Authorization: Bearer TOKEN`); an API token of an
    /// admin or supervisor is accepted too.
    pub token: Option<Secret>,
    /// A separate address (e.g. `127.0.0.1:9464`, or an internal network's) where
    /// `/metrics` is served without a token; the public address then answers 404 there.
    pub listen: Option<SocketAddr>,
}

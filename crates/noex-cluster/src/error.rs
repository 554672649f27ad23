//! The errors of the cluster layer.

use noex_proto::NodeIdError;

/// A configuration that cannot start a node. Reported before anything is bound or dialed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The node's own name, host or port does not form a valid node id.
    #[error("invalid node identity: {0}")]
    Identity(NodeIdError),
    /// A seed is not a valid node id.
    #[error("invalid seed: {0}")]
    Seed(NodeIdError),
    /// A duration or limit is out of range.
    #[error("invalid setting '{setting}': {reason}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No cluster secret could be found or created.
    #[error("cannot obtain the cluster cookie: {0}")]
    Cookie(String),
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, String),
    /// The liveness thread or another resource could not be set up.
    #[error("cannot start: {0}")]
    Io(String),
}

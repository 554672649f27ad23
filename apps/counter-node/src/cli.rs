//! The command line: flags, checked by clap before anything starts, and the cluster configuration they make.

use std::path::PathBuf;

use clap::Parser;
use noex_cluster::{ClusterConfig, Cookie, DEFAULT_PORT, NodeId};

/// Printed on stderr when the secret is given on the command line.
pub(crate) const COOKIE_FLAG_WARNING: &str =
    "Warning: --cookie is visible to every user of this machine (ps, /proc); prefer --cookie-file or NOEX_COOKIE";

/// Distributed Counter: a node of a noex cluster of counters, driven from a REPL.
#[derive(Clone, Debug, Parser)]
#[command(name = "counter-node", version, about)]
pub(crate) struct Cli {
    /// This node's name (the node id is <name>@<host>:<port>)
    #[arg(short, long)]
    pub(crate) name: String,

    /// The port to listen on; 0 picks a free one
    #[arg(short, long, default_value_t = DEFAULT_PORT)]
    pub(crate) port: u16,

    /// A node to join, as <name>@<host>:<port> (repeatable)
    #[arg(short, long = "seed", value_name = "NODE", value_parser = seed)]
    pub(crate) seeds: Vec<String>,

    /// The address other nodes reach this one at
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,

    /// The cluster secret; visible to every local user (ps, /proc): prefer --cookie-file or $NOEX_COOKIE
    #[arg(long)]
    pub(crate) cookie: Option<String>,

    /// A file holding the cluster secret, private to its owner (chmod 600) [default: $NOEX_COOKIE, else
    /// ~/.noex.cookie]
    #[arg(long, value_name = "PATH")]
    pub(crate) cookie_file: Option<PathBuf>,

    /// What to log to stderr, as a tracing filter (e.g. "info", "noex_cluster=debug") [default: $RUST_LOG, else
    /// "error"]
    #[arg(long, value_name = "FILTER", value_parser = log_filter)]
    pub(crate) log: Option<String>,
}

impl Cli {
    /// The cluster configuration: cluster timers are left at their defaults, empty seeds are dropped.
    pub(crate) fn cluster_config(&self) -> ClusterConfig {
        let mut config = ClusterConfig::new(&self.name);
        config.host = self.host.clone();
        config.port = self.port;
        config.seeds = self.seeds.iter().filter(|seed| !seed.is_empty()).cloned().collect();
        config.cookie = self.cookie.as_ref().map(|secret| Cookie::new(secret.as_bytes()));
        config.cookie_file = self.cookie_file.clone();
        config
    }

    /// The warning to print before starting, if the flags call for one.
    pub(crate) fn warning(&self) -> Option<&'static str> {
        self.cookie.is_some().then_some(COOKIE_FLAG_WARNING)
    }

    /// The tracing filter: `--log`, else `RUST_LOG`, else errors only (the REPL owns the terminal, and log lines
    /// go to stderr, past the line editor).
    pub(crate) fn log_filter(&self) -> tracing_subscriber::EnvFilter {
        let configured = self.log.clone().or_else(|| std::env::var("RUST_LOG").ok());
        configured
            .and_then(|filter| tracing_subscriber::EnvFilter::try_new(filter).ok())
            .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("error"))
    }
}

/// A seed must be a node id; an empty one is accepted and dropped.
fn seed(value: &str) -> Result<String, String> {
    if !value.is_empty() {
        value.parse::<NodeId>().map_err(|error| error.to_string())?;
    }
    Ok(value.to_owned())
}

fn log_filter(value: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(value).map(|_| value.to_owned()).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("counter-node").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = parse(&["--name", "node1"]).unwrap();
        let config = cli.cluster_config();
        assert_eq!((config.name.as_str(), config.host.as_str(), config.port), ("node1", "127.0.0.1", 4369));
        assert!(config.seeds.is_empty());
        assert!(config.cookie.is_none(), "the cluster falls back to NOEX_COOKIE, then ~/.noex.cookie");
    }

    #[test]
    fn short_and_repeated_flags() {
        let cli = parse(&["-n", "node3", "-p", "4371", "-s", "node1@127.0.0.1:4369", "-s", "", "--seed", "node2@h:1"])
            .unwrap();
        let config = cli.cluster_config();
        assert_eq!(config.port, 4371);
        assert_eq!(config.seeds, ["node1@127.0.0.1:4369", "node2@h:1"], "empty seeds are dropped");
    }

    #[test]
    fn cookie_and_host() {
        let cli = parse(&["-n", "a", "--cookie", "secret", "--host", "10.0.0.1"]).unwrap();
        assert_eq!(cli.warning(), Some(COOKIE_FLAG_WARNING));
        let config = cli.cluster_config();
        assert_eq!(config.cookie, Some(Cookie::new("secret")));
        assert_eq!(config.host, "10.0.0.1");
        let cli = parse(&["-n", "a", "--cookie-file", "/run/secrets/noex"]).unwrap();
        assert_eq!(cli.warning(), None);
        assert_eq!(cli.cluster_config().cookie_file, Some(PathBuf::from("/run/secrets/noex")));
    }

    #[test]
    fn bad_flags_are_refused_by_clap() {
        use clap::error::ErrorKind;
        assert_eq!(parse(&[]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["-n", "a", "-p", "http"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        assert_eq!(parse(&["-n", "a", "-s", "node1"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        assert_eq!(parse(&["-n", "a", "--bogus"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
    }
}

//! Command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A cluster node that runs a supervisor with three workers and prints cluster-wide process statistics.
#[derive(Debug, Parser)]
#[command(name = "observer-node", version, about)]
pub(crate) struct Cli {
    /// Node name (the node id is <name>@<host>:<port>).
    #[arg(short, long)]
    pub(crate) name: String,
    /// Cluster port (0: any free port).
    #[arg(short, long, default_value_t = noex_cluster::DEFAULT_PORT)]
    pub(crate) port: u16,
    /// A node to join, <name>@<host>:<port> (repeatable).
    #[arg(short, long = "seed", value_name = "NODE")]
    pub(crate) seeds: Vec<String>,
    /// How often to print the cluster overview: seconds, or a duration such as 500ms or 1m.
    #[arg(long, default_value = "5", value_parser = parse_interval)]
    pub(crate) interval: Duration,
    /// The host this node is reached at by the others.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// The cluster's shared secret; visible to every local user (ps, /proc): prefer --cookie-file or $NOEX_COOKIE.
    #[arg(long)]
    pub(crate) cookie: Option<String>,
    /// A file holding the cluster's shared secret, private to its owner (chmod 600) (default: $NOEX_COOKIE, else
    /// ~/.noex.cookie).
    #[arg(long, value_name = "PATH")]
    pub(crate) cookie_file: Option<PathBuf>,
    /// Log filter for messages on stderr (tracing's syntax, e.g. `info` or `noex_cluster=debug`).
    #[arg(long, default_value = "warn")]
    pub(crate) log: String,
}

/// Printed on stderr when the secret is given on the command line.
pub(crate) const COOKIE_FLAG_WARNING: &str =
    "Warning: --cookie is visible to every user of this machine (ps, /proc); prefer --cookie-file or NOEX_COOKIE";

impl Cli {
    /// The warning to print before starting, if the flags call for one.
    pub(crate) fn warning(&self) -> Option<&'static str> {
        self.cookie.is_some().then_some(COOKIE_FLAG_WARNING)
    }
}

/// The longest interval accepted: a day (longer ones would overflow the timer, and mean nothing here).
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Bare numbers are seconds; anything else is a duration with units (`humantime`).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = match text.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| "the interval must be positive".to_owned())?,
        Err(_) => humantime::parse_duration(text).map_err(|e| format!("not a duration ({e})"))?,
    };
    if interval.is_zero() {
        return Err("the interval must be positive".into());
    }
    if interval > MAX_INTERVAL {
        return Err("the interval may be at most a day".into());
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_the_seed_defaults() {
        let cli = Cli::try_parse_from(["observer-node", "--name", "nodeA"]).unwrap();
        assert_eq!((cli.name.as_str(), cli.port, cli.interval), ("nodeA", 4369, Duration::from_secs(5)));
        assert!(cli.seeds.is_empty());
        let cli =
            Cli::try_parse_from(["observer-node", "-n", "b", "-p", "4370", "-s", "a@127.0.0.1:4369", "-s", "c@h:1"])
                .unwrap();
        assert_eq!(cli.seeds, ["a@127.0.0.1:4369", "c@h:1"]);
        assert_eq!(cli.warning(), None);
    }

    #[test]
    fn a_cookie_on_the_command_line_is_warned_about_and_a_file_is_not() {
        let cli = Cli::try_parse_from(["observer-node", "-n", "a", "--cookie", "s"]).unwrap();
        assert_eq!(cli.warning(), Some(COOKIE_FLAG_WARNING));
        let cli = Cli::try_parse_from(["observer-node", "-n", "a", "--cookie-file", "/x/y"]).unwrap();
        assert_eq!((cli.warning(), cli.cookie_file), (None, Some(PathBuf::from("/x/y"))));
    }

    #[test]
    fn intervals_take_seconds_or_units_and_refuse_nonsense() {
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("1e20").is_err());
        assert!(parse_interval("NaN").is_err());
        assert!(parse_interval("inf").is_err());
        assert!(parse_interval("400days").is_err());
    }

    #[test]
    fn the_name_is_required() {
        assert!(Cli::try_parse_from(["observer-node"]).is_err());
    }
}

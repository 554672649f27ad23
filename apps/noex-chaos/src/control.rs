//! The control protocol between the orchestrator and its workers: one command per line on a worker's stdin, one
//! report per line on its stdout. Words separated by spaces; figures as `key=value`.

use std::collections::BTreeMap;

/// What the orchestrator asks a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send `casts` awaited casts to the first counter of node `to`.
    Flood {
        /// The receiving node's name.
        to: String,
        /// How many.
        casts: u64,
    },
    /// Stop starting calls and monitors; answer `quiesced` once the calls in flight ended.
    Quiesce,
    /// Answer `peers <n>`: the nodes connected now.
    Peers,
    /// Answer `registry <name>=<pid> ...`: this node's replica of the global registry, sorted.
    Registry,
    /// Answer `sample ...`: process, task and pending counts.
    Sample,
    /// Check that every monitor on a process of a dead incarnation got its `DOWN`; answer `checked missing=<n>`.
    Check,
    /// Leave the cluster gracefully and exit.
    Stop,
}

impl Command {
    /// Parses one line.
    pub fn parse(line: &str) -> Option<Command> {
        let words: Vec<&str> = line.split_whitespace().collect();
        Some(match words.as_slice() {
            ["flood", to, casts] => Command::Flood { to: (*to).to_owned(), casts: casts.parse().ok()? },
            ["quiesce"] => Command::Quiesce,
            ["peers"] => Command::Peers,
            ["registry"] => Command::Registry,
            ["sample"] => Command::Sample,
            ["check"] => Command::Check,
            ["stop"] => Command::Stop,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Flood { to, casts } => write!(f, "flood {to} {casts}"),
            Command::Quiesce => f.write_str("quiesce"),
            Command::Peers => f.write_str("peers"),
            Command::Registry => f.write_str("registry"),
            Command::Sample => f.write_str("sample"),
            Command::Check => f.write_str("check"),
            Command::Stop => f.write_str("stop"),
        }
    }
}

/// What a worker tells the orchestrator: a first word, then `key=value` figures or free text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The node is up, its listener at `listening` (what its proxy forwards to).
    Ready {
        /// The real listening address.
        listening: std::net::SocketAddr,
    },
    /// Figures (`stats`, `sample`, `flooded`, `checked`, `peers`, `quiesced`): cumulative for this incarnation.
    Figures {
        /// The first word.
        kind: String,
        /// The figures.
        figures: BTreeMap<String, u64>,
    },
    /// The node's replica of the global registry: name to pid, as text.
    Registry(BTreeMap<String, String>),
    /// A broken invariant, seen by the worker.
    Violation(String),
}

impl Report {
    /// Figures of kind `kind`.
    pub fn figures<'a>(kind: &str, figures: impl IntoIterator<Item = (&'a str, u64)>) -> Report {
        Report::Figures {
            kind: kind.to_owned(),
            figures: figures.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// Parses one line.
    pub fn parse(line: &str) -> Option<Report> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "ready" => Some(Report::Ready { listening: rest.trim().parse().ok()? }),
            "violation" => Some(Report::Violation(rest.to_owned())),
            "registry" => {
                let pairs = rest.split_whitespace().map(|pair| pair.split_once('=')).collect::<Option<Vec<_>>>()?;
                Some(Report::Registry(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()))
            }
            _ => {
                let figures = rest
                    .split_whitespace()
                    .map(|pair| pair.split_once('=').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
                    .collect::<Option<BTreeMap<_, _>>>()?;
                Some(Report::Figures { kind: kind.to_owned(), figures })
            }
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Ready { listening } => write!(f, "ready {listening}"),
            Report::Violation(text) => write!(f, "violation {}", text.replace('\n', " ")),
            Report::Registry(names) => {
                f.write_str("registry")?;
                names.iter().try_for_each(|(name, pid)| write!(f, " {name}={pid}"))
            }
            Report::Figures { kind, figures } => {
                f.write_str(kind)?;
                figures.iter().try_for_each(|(key, value)| write!(f, " {key}={value}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_reports_survive_a_line() {
        for command in [Command::Flood { to: "n2".into(), casts: 500 }, Command::Quiesce, Command::Stop] {
            assert_eq!(Command::parse(&command.to_string()), Some(command));
        }
        assert_eq!(Command::parse("flood n2"), None);
        let reports = [
            Report::Ready { listening: "127.0.0.1:4000".parse().unwrap() },
            Report::figures("stats", [("calls", 3), ("ok", 2)]),
            Report::Registry([("c:n1:0".to_owned(), "<n1.1.4>".to_owned())].into()),
            Report::Violation("late call: Ok".into()),
        ];
        for report in reports {
            assert_eq!(Report::parse(&report.to_string()), Some(report));
        }
    }
}

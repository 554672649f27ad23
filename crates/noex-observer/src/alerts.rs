//! Queue-size alerts (noex's `AlertManager`): a process whose mailbox grows past what its own history makes
//! usual. For each process, the last samples of its mailbox length are kept; once there are enough of them, a
//! new value above `mean + k·stddev` of those before it triggers an alert, which resolves when the value drops
//! back to the threshold or the process is no longer observed. Processes are told apart by pid, so one manager
//! can watch the processes of every node of a cluster snapshot.
//!
//! ```
//! use noex_observer::{AlertConfig, AlertManager};
//! let mut alerts = AlertManager::new(AlertConfig::default());
//! // each round: let events = alerts.check(&snapshot.servers, std::time::Instant::now());
//! assert_eq!(alerts.active().count(), 0);
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use noex_core::Pid;

use crate::ServerStats;

/// When an alert triggers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertConfig {
    /// `k` of the threshold `mean + k·stddev` (noex: 2).
    pub sensitivity: f64,
    /// Samples a process needs before it can trigger (noex: 30).
    pub min_samples: usize,
    /// The least time between two alerts of one process (noex: 10 s).
    pub cooldown: Duration,
    /// Samples kept per process (noex: 1000).
    pub window: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig { sensitivity: 2.0, min_samples: 30, cooldown: Duration::from_secs(10), window: 1000 }
    }
}

/// An active alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Its number, unique within its manager.
    pub id: u64,
    /// The process.
    pub pid: Pid,
    /// Its local name, if registered.
    pub name: Option<String>,
    /// The mailbox length that triggered it.
    pub value: u64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// When it triggered.
    pub triggered_at: SystemTime,
}

impl Alert {
    /// noex's wording: `Queue size exceeded threshold: 120 > 14.2 (process: worker-1)`.
    pub fn message(&self) -> String {
        let process = self.name.clone().unwrap_or_else(|| self.pid.to_string());
        format!("Queue size exceeded threshold: {} > {:.1} (process: {process})", self.value, self.threshold)
    }
}

/// A change of the active alerts.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertEvent {
    /// An alert triggered.
    Triggered(Alert),
    /// An alert resolved: the value is back under the threshold, or the process is no longer observed.
    Resolved {
        /// The alert.
        id: u64,
        /// Its process.
        pid: Pid,
    },
}

/// Watches mailbox lengths round after round and says when alerts trigger and resolve.
#[derive(Debug)]
pub struct AlertManager {
    config: AlertConfig,
    samples: HashMap<Pid, VecDeque<u64>>,
    active: HashMap<Pid, Alert>,
    last_triggered: HashMap<Pid, Instant>,
    next_id: u64,
}

impl AlertManager {
    /// A manager with `config`.
    pub fn new(config: AlertConfig) -> Self {
        AlertManager {
            config,
            samples: HashMap::new(),
            active: HashMap::new(),
            last_triggered: HashMap::new(),
            next_id: 0,
        }
    }

    /// One round: the servers observed now (of any nodes). A process not among them is taken as gone: its alert
    /// resolves and its history is forgotten, so observe with a query that lists every process to watch.
    pub fn check(&mut self, servers: &[ServerStats], now: Instant) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let seen: std::collections::HashSet<&Pid> = servers.iter().map(|server| &server.pid).collect();
        let gone: Vec<Pid> = self.samples.keys().filter(|pid| !seen.contains(pid)).cloned().collect();
        for pid in gone {
            self.samples.remove(&pid);
            self.last_triggered.remove(&pid);
            if let Some(alert) = self.active.remove(&pid) {
                events.push(AlertEvent::Resolved { id: alert.id, pid });
            }
        }
        for server in servers {
            let value = server.mailbox_len;
            let samples = self.samples.entry(server.pid.clone()).or_default();
            let threshold =
                (samples.len() >= self.config.min_samples.max(2)).then(|| threshold(samples, self.config.sensitivity));
            if samples.len() == self.config.window.max(1) {
                samples.pop_front();
            }
            samples.push_back(value);
            let Some(threshold) = threshold else { continue };
            let over = value as f64 > threshold;
            match self.active.get(&server.pid) {
                Some(alert) if !over => {
                    events.push(AlertEvent::Resolved { id: alert.id, pid: server.pid.clone() });
                    self.active.remove(&server.pid);
                }
                None if over => {
                    let cooling = self
                        .last_triggered
                        .get(&server.pid)
                        .is_some_and(|at| now.duration_since(*at) < self.config.cooldown);
                    if cooling {
                        continue;
                    }
                    self.next_id += 1;
                    let alert = Alert {
                        id: self.next_id,
                        pid: server.pid.clone(),
                        name: server.name.clone(),
                        value,
                        threshold,
                        triggered_at: SystemTime::now(),
                    };
                    self.last_triggered.insert(server.pid.clone(), now);
                    self.active.insert(server.pid.clone(), alert.clone());
                    events.push(AlertEvent::Triggered(alert));
                }
                _ => {}
            }
        }
        events
    }

    /// The active alerts, in no particular order.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }
}

/// `mean + k·stddev` of `samples`, with the sample standard deviation (n - 1), as noex computes it.
fn threshold(samples: &VecDeque<u64>, k: f64) -> f64 {
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&v| v as f64).sum::<f64>() / n;
    let variance = samples.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    mean + k * variance.sqrt()
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;

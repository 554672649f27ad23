//! The alert rules, round by round: threshold, minimum samples, cooldown, resolution, processes that go.

use std::time::{Duration, Instant, SystemTime};

use noex_core::{NodeName, Pid, ProcessStatus};

use super::*;

fn server(node: &str, id: u64, mailbox_len: u64) -> ServerStats {
    ServerStats {
        pid: Pid::new(NodeName::new(node), 1, id),
        name: Some(format!("worker-{id}")),
        status: ProcessStatus::Running,
        mailbox_len,
        messages_processed: 0,
        started_at: SystemTime::now(),
        uptime: Duration::ZERO,
    }
}

/// Feeds `values` of one process, one round each, a second apart from `start`; returns every event.
fn feed(alerts: &mut AlertManager, start: Instant, values: &[u64]) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let now = start + Duration::from_secs(i as u64);
        events.extend(alerts.check(&[server("a@h:1", 7, value)], now));
    }
    events
}

/// 30 samples alternating 10 and 12: mean 11, sample stddev about 1.02, threshold about 13.03 (13 stays under).
fn steady() -> Vec<u64> {
    (0..30).map(|i| if i % 2 == 0 { 10 } else { 12 }).collect()
}

#[test]
fn a_spike_over_mean_plus_k_stddev_triggers_once_and_resolves_when_it_drops() {
    let mut alerts = AlertManager::new(AlertConfig::default());
    let start = Instant::now();
    let mut values = steady();
    values.extend([13, 40, 41, 11]);
    let events = feed(&mut alerts, start, &values);
    let [AlertEvent::Triggered(alert), AlertEvent::Resolved { id, .. }] = &events[..] else {
        panic!("one trigger (at 40, not at 13), then one resolution: {events:?}");
    };
    assert_eq!((alert.value, *id), (40, alert.id));
    // Over the 31 samples before it (the 13 included): mean 11.06, sample stddev 1.06.
    assert!((alert.threshold - 13.19).abs() < 0.01, "{}", alert.threshold);
    assert_eq!(alert.message(), "Queue size exceeded threshold: 40 > 13.2 (process: worker-7)");
    assert_eq!(alerts.active().count(), 0);
}

#[test]
fn nothing_triggers_before_enough_samples() {
    let mut alerts = AlertManager::new(AlertConfig::default());
    let mut values = vec![1; 29];
    values.push(1000);
    assert!(feed(&mut alerts, Instant::now(), &values).is_empty(), "29 samples before the spike are too few");
}

#[test]
fn a_process_alerts_again_only_after_the_cooldown() {
    let config = AlertConfig { cooldown: Duration::from_secs(10), ..AlertConfig::default() };
    let mut alerts = AlertManager::new(config);
    let start = Instant::now();
    let mut values = steady();
    // A spike, back under, and a second spike 2 s after the first: cooling down. Then one 12 s after the first.
    values.extend([50, 11, 50, 11, 11, 11, 11, 11, 11, 11, 11, 11, 60]);
    let triggered: Vec<u64> = feed(&mut alerts, start, &values)
        .into_iter()
        .filter_map(|event| match event {
            AlertEvent::Triggered(alert) => Some(alert.value),
            AlertEvent::Resolved { .. } => None,
        })
        .collect();
    assert_eq!(triggered, [50, 60]);
}

#[test]
fn a_process_no_longer_observed_resolves_its_alert_and_other_nodes_processes_are_apart() {
    let mut alerts = AlertManager::new(AlertConfig::default());
    let start = Instant::now();
    let mut events = Vec::new();
    for (i, value) in steady().into_iter().chain([90]).enumerate() {
        let now = start + Duration::from_secs(i as u64);
        // The same local id on two nodes: two processes, each with its own history.
        events.extend(alerts.check(&[server("a@h:1", 7, value), server("b@h:2", 7, 11)], now));
    }
    assert!(matches!(&events[..], [AlertEvent::Triggered(alert)] if alert.pid.node().as_str() == "a@h:1"));
    let events = alerts.check(&[server("b@h:2", 7, 11)], start + Duration::from_secs(40));
    assert!(matches!(&events[..], [AlertEvent::Resolved { pid, .. }] if pid.node().as_str() == "a@h:1"));
    assert_eq!(alerts.active().count(), 0);
}

//! The global registry at scale: how long a node that joins takes to learn a large table, what the sync costs on
//! the wire, and what a name costs in memory on the node that registered it and on the joiner.

use std::time::{Duration, Instant};

use noex_core::{Pid, StartOptions};
use noex_remote::Node;

use crate::cases::{Echo, resident_bytes};
use crate::remote_cases::config;

/// Names in the table that the joiner must learn (`REGISTRY_SYNC_NAMES` overrides it, to compare with a build
/// that cannot sync that many).
const NAMES: usize = 1_000_000;
/// Processes the names are spread over: the per-process cost (a monitor) is not the per-name cost.
const PROCESSES: usize = 1_000;
/// How long the joiner gets before the case reports a timeout.
const PATIENCE: Duration = Duration::from_secs(60);

/// Node `a` registers `names` names; node `b` starts and joins it. Reports the time from `b`'s start until it
/// resolves every name, the bytes `a` sent `b` meanwhile, and the resident memory each side grew per name (both
/// nodes live in this process: the registrar's growth is measured before the joiner starts).
pub(crate) async fn registry_sync() -> String {
    let names: usize = std::env::var("REGISTRY_SYNC_NAMES").ok().and_then(|n| n.parse().ok()).unwrap_or(NAMES);
    let a = Node::start(config("a", &[])).await.expect("node a");
    let mut pids: Vec<Pid> = Vec::with_capacity(PROCESSES);
    for _ in 0..PROCESSES {
        let echo = a.runtime().start_encodable(Echo(0), StartOptions::default()).await.expect("echo");
        pids.push(echo.pid().clone());
    }
    let name = |i: usize| format!("svc:{i:07}");
    let rss_empty = resident_bytes();
    for i in 0..names {
        a.registry().register(&name(i), &pids[i % PROCESSES]).expect("register");
    }
    let rss_registered = resident_bytes();

    let cpu_before = cpu_time();
    let start = Instant::now();
    let b = Node::start(config("b", &[a.id()])).await.expect("node b");
    let last = name(names - 1);
    let mut synced = None;
    while start.elapsed() < PATIENCE {
        if b.registry().len() == names && b.registry().whereis(&last).is_some() {
            synced = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sync_cpu = cpu_time() - cpu_before;
    let rss_joined = resident_bytes();
    let bytes = a.cluster().connection_stats(b.id()).map_or(0, |stats| stats.bytes_out);
    let learned = b.registry().len();
    for node in [&a, &b] {
        node.shutdown(Duration::from_secs(1)).await;
    }
    let per_name = |bytes: i64| bytes as f64 / names as f64;
    let sync_ms =
        synced.map_or_else(|| format!("timeout({learned}_learned)"), |t| format!("{:.0}", t.as_secs_f64() * 1e3));
    format!(
        "case=registry_sync names={names} processes={PROCESSES} sync_ms={sync_ms} sync_cpu_ms={:.0} bytes={bytes} bytes_per_name={:.1} registrar_rss_per_name={:.0} joiner_rss_per_name={:.0}",
        sync_cpu.as_secs_f64() * 1e3,
        bytes as f64 / names as f64,
        per_name(rss_registered - rss_empty),
        per_name(rss_joined - rss_registered),
    )
}

/// The CPU time this process has used (user and system, all threads), from `/proc/self/stat` (in clock ticks of
/// 10 ms on the machines we run on): with both nodes in one process, what a sync costs whatever else the machine
/// runs, where `sync_ms` includes waiting for a core.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command (which is in parentheses and may contain spaces): utime and stime are the
    // 12th and 13th of them.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

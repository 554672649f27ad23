//! Liveness: heartbeats, failure detection and forgetting departed nodes, on one OS thread per process that
//! every cluster node in the process registers with. A thread of its own, so that processes that hog every
//! application worker cannot starve failure detection; one per process, so that a process with many nodes pays
//! for one thread and one timer, and its nodes' heartbeats go out together (one wake-up of the runtimes that read
//! them, not one per node).
//!
//! The only process-wide state of the crate is this driver: the list of nodes to tick. Nodes stay independent
//! values (each keeps its own settings and peers); the thread starts with the first node and ends when the last
//! one stops or is dropped.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::StartError;
use crate::cluster::Inner;
use crate::event::DownReason;

/// The shortest tick, whatever the heartbeat interval.
const MIN_PERIOD: Duration = Duration::from_millis(5);

/// The longest tick: a tick also judges silence and pushes bytes a busy runtime left unwritten, which must not
/// wait for a long heartbeat interval. A tick that sends nothing still visits every link (about 1 us each: 6% of a
/// core for a 128-node mesh in one process ticking every 250 ms).
const MAX_PERIOD: Duration = Duration::from_secs(1);

/// The process's liveness driver while any node is registered.
static DRIVER: Mutex<Option<Arc<Driver>>> = Mutex::new(None);

struct Driver {
    nodes: Mutex<Vec<Registered>>,
    /// Signalled when a node registers (it may be due sooner than the thread planned to wake).
    changed: Condvar,
}

struct Registered {
    inner: Weak<Inner>,
    period: Duration,
    next: Instant,
}

/// Registers `inner` with the process's liveness thread, starting the thread if there is none. The node is
/// ticked every half heartbeat interval (at most every second) until its `shutdown` token is cancelled or it is
/// dropped.
pub(crate) fn register(inner: &Arc<Inner>) -> Result<(), StartError> {
    let period = (inner.settings.config.heartbeat_interval / 2).clamp(MIN_PERIOD, MAX_PERIOD);
    let node = Registered { inner: Arc::downgrade(inner), period, next: Instant::now() + period };
    let mut driver = lock(&DRIVER);
    if let Some(running) = driver.as_ref() {
        lock(&running.nodes).push(node);
        running.changed.notify_one();
        return Ok(());
    }
    let started = Arc::new(Driver { nodes: Mutex::new(vec![node]), changed: Condvar::new() });
    let thread = started.clone();
    std::thread::Builder::new()
        .name("noex-cluster-liveness".into())
        .spawn(move || run(&thread))
        .map_err(|e| StartError::Io(format!("cannot start the liveness thread: {e}")))?;
    *driver = Some(started);
    Ok(())
}

/// The liveness thread: ticks every node when it is due, sleeps until the next one is, and ends once no node is
/// left (under the driver lock, so a node registering meanwhile starts a new thread rather than join a dying one).
fn run(driver: &Arc<Driver>) {
    loop {
        let due = {
            let mut nodes = lock(&driver.nodes);
            let now = Instant::now();
            let mut due = Vec::new();
            nodes.retain_mut(|node| {
                let Some(inner) = node.inner.upgrade() else { return false };
                if inner.shutdown.is_cancelled() {
                    return false;
                }
                if node.next <= now {
                    // A late tick means this thread did not run (an overloaded machine): the silence it sees is
                    // partly its own doing, since it sends the heartbeats, so it is forgiven that much.
                    let late = now.saturating_duration_since(node.next);
                    // Missed ticks are not made up for: a late tick is followed by a whole period.
                    node.next = now + node.period;
                    due.push((inner, late));
                }
                true
            });
            if due.is_empty() {
                if nodes.is_empty() {
                    drop(nodes);
                    let mut current = lock(&DRIVER);
                    if lock(&driver.nodes).is_empty() {
                        if current.as_ref().is_some_and(|running| Arc::ptr_eq(running, driver)) {
                            *current = None;
                        }
                        return;
                    }
                    continue;
                }
                let next = nodes.iter().map(|node| node.next).min().unwrap_or(now);
                let _unused = driver.changed.wait_timeout(nodes, next.saturating_duration_since(now));
                continue;
            }
            due
        };
        // Outside the driver's lock: a tick may take a node's membership lock, under which nodes register.
        // Every due node's heartbeats first, then the judging: in a process with many nodes, a node's peers are
        // ticked by this same thread, and their heartbeats must be on the wire before their silence is judged.
        let links: Vec<_> = due.iter().map(|(inner, _)| keep_alive(inner)).collect();
        for ((inner, late), links) in due.iter().zip(links) {
            judge(inner, links, *late);
            inner.forget_departed();
        }
    }
}

/// The links of a node, for a tick.
type Links = Vec<(Arc<crate::connection::Connection>, Arc<crate::outbound::Outbound>)>;

/// The first half of a node's tick: a heartbeat on every connection that sent nothing for an interval, bytes left
/// queued pushed out, and credit left over granted. Returns the links, for [`judge`].
fn keep_alive(inner: &Arc<Inner>) -> Links {
    let config = &inner.settings.config;
    let links: Links =
        inner.lock().peers.values().map(|link| (link.connection.clone(), link.outbound.clone())).collect();
    for (connection, outbound) in &links {
        outbound.keep_alive(config.heartbeat_interval);
        // Consumption below a grant step is granted here, so no sender waits on a leftover for long.
        connection.credit.flush();
    }
    links
}

/// The second half: a node-down for connections silent past the failure timeout. Silence is judged by what
/// arrived, not by what our reader got to process: if the peer's bytes are waiting unread, the peer is alive and
/// only our runtime is busy. `late`: how late this tick is, added to the failure timeout.
fn judge(inner: &Arc<Inner>, links: Links, late: Duration) {
    let config = &inner.settings.config;
    let failure_timeout = config.failure_timeout + late;
    for (connection, outbound) in links {
        if connection.silent_for() < failure_timeout {
            continue;
        }
        // Unread bytes mean the peer is alive and our reader is late; but not forever (a reader that is stuck
        // for good must not hide a dead peer). Re-check after the peek: the reader may have just caught up.
        let stuck = connection.silent_for() >= failure_timeout * 3;
        if (stuck || !outbound.has_unread_input()) && connection.silent_for() >= failure_timeout {
            // Report first, then close: the reader, woken by the close, must find the node already down
            // (else it would report `connection_closed`).
            inner.connection_lost(&connection, DownReason::HeartbeatTimeout);
            connection.close.cancel();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

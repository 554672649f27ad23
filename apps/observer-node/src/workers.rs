//! The seed's local processes: a `one_for_one` supervisor of three workers that count the work they get.

use std::time::Duration;

use noex_core::SupervisorSpec;
use noex_core::{ChildSpec, Context, GenServer, Runtime, StartOptions, Strategy, Supervisor, SupervisorRef};
use noex_observer::{LocalObserver, SnapshotQuery};

/// How many work messages each worker gets at start.
pub(crate) const INITIAL_WORK: u64 = 10;

/// A worker: handles `work` casts and reports how many it handled.
pub(crate) struct Worker {
    processed: u64,
}

impl GenServer for Worker {
    type Call = ();
    type Reply = u64;
    type Cast = ();

    async fn handle_call(&mut self, (): (), _: &mut Context<Self>) -> u64 {
        self.processed
    }

    async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) {
        self.processed += 1;
    }
}

/// Starts `supervisor-<node>` with `worker-1`..`worker-3` and gives each its initial work. Returns once the
/// work is handled (or after a second, whichever comes first), so that the first snapshot shows it.
pub(crate) async fn start(runtime: &Runtime, node: &str, observer: &LocalObserver) -> anyhow::Result<SupervisorRef> {
    let spec = (1..=3).fold(SupervisorSpec::new(Strategy::OneForOne), |spec, i| {
        spec.child(ChildSpec::worker(format!("worker-{i}"), || Worker { processed: 0 }).named(format!("worker-{i}")))
    });
    let supervisor = Supervisor::start(runtime, spec, StartOptions::named(format!("supervisor-{node}"))).await?;
    let workers = supervisor.which_children().await?;
    for child in workers {
        let Some(pid) = child.pid else { continue };
        let Some(worker) = runtime.server_ref::<Worker>(&pid) else { continue };
        for _ in 0..INITIAL_WORK {
            worker.cast(());
        }
    }
    let expected = 3 * INITIAL_WORK;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while observer.snapshot(SnapshotQuery::totals()).total_messages < expected && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(supervisor)
}

//! A task that runs something now and then at a fixed interval, stopped by its handle.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::MissedTickBehavior;

/// A running poller. Stops when [`stop`](Self::stop) is called or the handle is dropped.
#[must_use = "polling stops when its handle is dropped"]
#[derive(Debug)]
pub struct Polling {
    task: tokio::task::JoinHandle<()>,
}

impl Polling {
    /// Runs `poll` now and then every `interval` (a slow poll delays the next one rather than bunching them).
    pub(crate) fn every<F, Fut>(interval: Duration, mut poll: F) -> Polling
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let interval = interval.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A panicking handler loses its round, not the poller.
                if std::panic::AssertUnwindSafe(poll()).catch_unwind().await.is_err() {
                    tracing::error!("a polling round panicked; polling goes on");
                }
            }
        });
        Polling { task }
    }

    /// Stops polling; a poll in progress is abandoned.
    pub fn stop(self) {}
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

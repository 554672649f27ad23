//! Load for bad-day tests: threads that keep every core busy for as long as they are held.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Busy-loop threads, one per core by default; they stop when this is dropped.
pub struct BusyCores {
    spinning: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyCores {
    /// `count` threads spinning from now on.
    pub fn start(count: usize) -> BusyCores {
        let spinning = Arc::new(AtomicBool::new(true));
        let threads = (0..count)
            .map(|_| {
                let spinning = spinning.clone();
                std::thread::spawn(move || {
                    while spinning.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        BusyCores { spinning, threads }
    }

    /// One spinning thread per core of this machine.
    pub fn all() -> BusyCores {
        Self::start(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        self.spinning.store(false, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

//! Memory figures: the resident set size from the operating system, and heap bytes in use where the program
//! counts its allocations.

/// A global allocator that counts the bytes in use (the system allocator underneath). A program that wants
/// heap figures in its snapshots installs one and hands it to the observer:
///
/// ```ignore
/// #[global_allocator]
/// static HEAP: noex_observer::CountingAllocator = noex_observer::counting_allocator();
/// // ...
/// let observer = LocalObserver::new(&runtime).with_heap(&HEAP);
/// ```
///
/// It is the [`cap`] crate's counting wrapper (our crates hold no unsafe code), set with no limit.
pub type CountingAllocator = cap::Cap<std::alloc::System>;

/// A [`CountingAllocator`] over the system allocator, without a limit.
pub const fn counting_allocator() -> CountingAllocator {
    cap::Cap::new(std::alloc::System, usize::MAX)
}

/// A node's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Resident set size, where the platform reports it.
    pub rss_bytes: Option<u64>,
    /// Heap bytes in use, where the program installed a [`CountingAllocator`].
    pub heap_bytes: Option<u64>,
}

impl MemoryStats {
    pub(crate) fn now(heap: Option<&'static CountingAllocator>) -> MemoryStats {
        MemoryStats {
            rss_bytes: memory_stats::memory_stats().map(|m| m.physical_mem as u64),
            heap_bytes: heap.map(|h| h.allocated() as u64),
        }
    }

    /// The figure to show for the node: heap in use if counted, else the resident set size.
    pub fn in_use(&self) -> Option<u64> {
        self.heap_bytes.or(self.rss_bytes)
    }
}

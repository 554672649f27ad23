//! The fault schedule: a seeded random generator and the list of faults it draws, fixed before the run starts so
//! that `--seed` replays the same faults at the same times.

use std::time::Duration;

/// A small seeded generator (SplitMix64): the schedule needs reproducibility, not cryptographic quality, and
/// one dependency less.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low { low } else { low + self.next_u64() % (high - low) }
    }

    /// An index below `len` (which must be positive).
    pub fn index(&mut self, len: usize) -> usize {
        self.range(0, len as u64) as usize
    }
}

/// One fault, on nodes named by their index (`0..nodes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the node, then start a new incarnation of it after `down`.
    Kill {
        /// The node.
        node: usize,
        /// How long it stays dead.
        down: Duration,
    },
    /// SIGSTOP the node, SIGCONT it after `length`.
    Pause {
        /// The node.
        node: usize,
        /// How long it stays frozen.
        length: Duration,
    },
    /// Cut every link between `side` and the other nodes (and refuse new ones), or make them silent, for `length`.
    Partition {
        /// One side of the split (the other side is everything else); never empty, never everything.
        side: Vec<usize>,
        /// Whether the links go silent (nothing closed: the nodes find out by missed heartbeats) rather than
        /// being cut (closed at once).
        silent: bool,
        /// How long the split lasts.
        length: Duration,
    },
    /// Forward the link between `a` and `b` at `bytes_per_second` for `length`.
    Slow {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
        /// The link's rate in each direction.
        bytes_per_second: u64,
        /// How long the link stays slow.
        length: Duration,
    },
    /// `from` sends `casts` awaited casts to a counter of `to` as fast as it can.
    Flood {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
        /// How many casts.
        casts: u64,
    },
}

impl Fault {
    /// The fault's kind, as the summary counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } => "partition",
            Fault::Slow { .. } => "slow",
            Fault::Flood { .. } => "flood",
        }
    }

    /// How long the fault keeps its nodes busy (no other kill or pause is scheduled on them meanwhile).
    fn busy(&self) -> Duration {
        match self {
            Fault::Kill { down, .. } => *down + Duration::from_secs(2),
            Fault::Pause { length, .. } | Fault::Partition { length, .. } | Fault::Slow { length, .. } => *length,
            Fault::Flood { .. } => Duration::ZERO,
        }
    }
}

/// A fault and when it starts, from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// When it starts.
    pub at: Duration,
    /// What it is.
    pub fault: Fault,
}

/// What the schedule is drawn for.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// How many nodes; at least 2.
    pub nodes: usize,
    /// Nodes `0..long_lived` are never killed.
    pub long_lived: usize,
    /// How long faults are injected.
    pub duration: Duration,
    /// The mean time between two faults.
    pub interval: Duration,
}

/// Draws the faults of a run: at random intervals around `plan.interval`, each fault ending before
/// `plan.duration`. A kill only hits nodes past `long_lived`; a kill or pause never hits a node still busy with
/// a previous one; partitions do not overlap each other. Same plan, same schedule.
pub fn schedule(plan: &Plan) -> Vec<Planned> {
    let mut rng = Rng::new(plan.seed);
    let mut faults = Vec::new();
    let mut busy_until = vec![Duration::ZERO; plan.nodes];
    let mut partition_until = Duration::ZERO;
    let interval = plan.interval.as_millis().max(1) as u64;
    let mut at = Duration::from_millis(rng.range(interval / 2, interval * 3 / 2) + 1000);
    while at < plan.duration {
        if let Some(fault) = draw(&mut rng, plan, at, &busy_until, partition_until) {
            let end = at + fault.busy();
            if end <= plan.duration {
                match &fault {
                    Fault::Kill { node, .. } | Fault::Pause { node, .. } => busy_until[*node] = end,
                    Fault::Partition { .. } => partition_until = end,
                    _ => {}
                }
                faults.push(Planned { at, fault });
            }
        }
        at += Duration::from_millis(rng.range(interval / 2, interval * 3 / 2));
    }
    faults
}

fn draw(rng: &mut Rng, plan: &Plan, at: Duration, busy_until: &[Duration], partition_until: Duration) -> Option<Fault> {
    let nodes = plan.nodes;
    let free: Vec<usize> = (0..nodes).filter(|&n| busy_until[n] <= at).collect();
    let seconds = |rng: &mut Rng, low: u64, high: u64| Duration::from_millis(rng.range(low * 1000, high * 1000));
    let pair = |rng: &mut Rng| {
        let a = rng.index(nodes);
        let b = (a + 1 + rng.index(nodes - 1)) % nodes;
        (a, b)
    };
    match rng.index(5) {
        0 => {
            let killable: Vec<usize> = free.iter().copied().filter(|&n| n >= plan.long_lived).collect();
            if killable.is_empty() {
                return None;
            }
            Some(Fault::Kill { node: killable[rng.index(killable.len())], down: seconds(rng, 1, 3) })
        }
        1 => {
            if free.is_empty() {
                return None;
            }
            Some(Fault::Pause { node: free[rng.index(free.len())], length: seconds(rng, 1, 5) })
        }
        2 => {
            if partition_until > at {
                return None;
            }
            let size = 1 + rng.index(nodes / 2);
            let mut side: Vec<usize> = Vec::new();
            while side.len() < size {
                let node = rng.index(nodes);
                if !side.contains(&node) {
                    side.push(node);
                }
            }
            side.sort_unstable();
            Some(Fault::Partition { side, silent: rng.index(2) == 0, length: seconds(rng, 2, 6) })
        }
        3 => {
            let (a, b) = pair(rng);
            let bytes_per_second = [2_000, 20_000, 200_000][rng.index(3)];
            Some(Fault::Slow { a, b, bytes_per_second, length: seconds(rng, 2, 6) })
        }
        _ => {
            let (from, to) = pair(rng);
            Some(Fault::Flood { from, to, casts: rng.range(20_000, 100_000) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan { seed, nodes: 5, long_lived: 2, duration: Duration::from_secs(120), interval: Duration::from_secs(3) }
    }

    #[test]
    fn a_seed_replays_its_schedule_and_another_seed_does_not() {
        assert_eq!(schedule(&plan(42)), schedule(&plan(42)));
        assert_ne!(schedule(&plan(42)), schedule(&plan(43)));
    }

    #[test]
    fn the_generator_is_the_reference_splitmix64() {
        // First outputs of SplitMix64 seeded with 0 (the published reference sequence).
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn faults_respect_the_plan() {
        for seed in 0..200 {
            let plan = plan(seed);
            let faults = schedule(&plan);
            assert!(faults.len() >= 10, "seed {seed}: {} faults in 2 minutes", faults.len());
            let mut busy: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); plan.nodes];
            let mut partitions = Vec::new();
            for Planned { at, fault } in &faults {
                let end = *at + fault.busy();
                assert!(end <= plan.duration, "seed {seed}: {fault:?} at {at:?} ends after the run");
                match fault {
                    Fault::Kill { node, .. } => {
                        assert!(*node >= plan.long_lived, "seed {seed}: a long-lived node is killed");
                        busy[*node].push((*at, end));
                    }
                    Fault::Pause { node, .. } => busy[*node].push((*at, end)),
                    Fault::Partition { side, .. } => {
                        assert!(!side.is_empty() && side.len() < plan.nodes, "seed {seed}: {side:?}");
                        partitions.push((*at, end));
                    }
                    Fault::Slow { a, b, .. } | Fault::Flood { from: a, to: b, .. } => assert_ne!(a, b),
                }
            }
            for spans in busy.iter().chain([&partitions]) {
                for pair in spans.windows(2) {
                    assert!(pair[0].1 <= pair[1].0, "seed {seed}: overlapping faults {pair:?}");
                }
            }
        }
    }

    #[test]
    fn every_kind_of_fault_is_drawn() {
        let faults = schedule(&plan(7));
        for kind in ["kill", "pause", "partition", "slow", "flood"] {
            assert!(faults.iter().any(|f| f.fault.kind() == kind), "no {kind} in {faults:?}");
        }
    }
}

//! Seeded workloads for the simulator.

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `true` with probability `permille` / 1000.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.next_u64() % 1000 < permille as u64
    }

    /// Exponentially distributed with the given mean (at least 1).
    pub fn exp(&mut self, mean: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ((-(1.0 - u).ln()) * mean as f64).max(1.0) as u64
    }
}

/// What the simulated tasks do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Mean gap between task arrivals (exponential), ns.
    pub mean_arrival_gap_ns: u64,
    /// Run bursts per task, uniform in this range; the task exits after the last.
    pub bursts: (u32, u32),
    /// Mean run burst (exponential), ns.
    pub mean_service_ns: u64,
    /// After a burst, block (then wake) with this probability in ‰; otherwise yield.
    pub block_permille: u32,
    /// Mean time blocked (exponential), ns.
    pub mean_block_ns: u64,
}

impl Default for Workload {
    /// A mixed, moderately loaded workload: short bursts, mostly blocking (request/response-like).
    fn default() -> Self {
        Workload::MIXED
    }
}

impl Workload {
    /// Short bursts, mostly blocking: request/response-like (about 65% load on 8 CPUs).
    pub const MIXED: Workload = Workload {
        mean_arrival_gap_ns: 70_000,
        bursts: (2, 12),
        mean_service_ns: 50_000,
        block_permille: 800,
        mean_block_ns: 200_000,
    };
    /// Long bursts that yield: batch-like.
    pub const CPU_BOUND: Workload = Workload {
        mean_arrival_gap_ns: 500_000,
        bursts: (2, 6),
        mean_service_ns: 1_000_000,
        block_permille: 100,
        mean_block_ns: 100_000,
    };
    /// Tiny bursts and frequent wake-ups: stresses the agent and the queues.
    pub const WAKEUP_HEAVY: Workload = Workload {
        mean_arrival_gap_ns: 20_000,
        bursts: (10, 40),
        mean_service_ns: 5_000,
        block_permille: 950,
        mean_block_ns: 30_000,
    };

    /// A workload by name: `mixed`, `cpu`, `wakeup`.
    pub fn by_name(name: &str) -> Option<Workload> {
        match name {
            "mixed" => Some(Workload::MIXED),
            "cpu" => Some(Workload::CPU_BOUND),
            "wakeup" => Some(Workload::WAKEUP_HEAVY),
            _ => None,
        }
    }
}

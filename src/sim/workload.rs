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

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean (at least 1).
    pub fn exp(&mut self, mean: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ((-(1.0 - u).ln()) * mean as f64).max(1.0) as u64
    }
}

/// How long each run burst of a task lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Exponential with mean [`Workload::mean_service_ns`].
    Exponential,
    /// Exactly [`Workload::mean_service_ns`].
    Fixed,
    /// A dispersive mix, like the ghOSt paper's RocksDB experiment: a burst is `long_ns` with probability
    /// `long_ppm` / 1,000,000, else `short_ns` (both fixed: requests spin for their service time).
    /// [`Workload::mean_service_ns`] is ignored.
    Bimodal {
        /// The common, short request (ns).
        short_ns: u64,
        /// The rare, long request (ns).
        long_ns: u64,
        /// How often a request is long, per million.
        long_ppm: u32,
    },
}

impl Service {
    /// The mean burst of this distribution under `w`, ns.
    pub fn mean_ns(&self, w: &Workload) -> u64 {
        match *self {
            Service::Exponential | Service::Fixed => w.mean_service_ns,
            Service::Bimodal { short_ns, long_ns, long_ppm } => {
                let p = long_ppm.min(1_000_000) as u128;
                ((long_ns as u128 * p + short_ns as u128 * (1_000_000 - p)) / 1_000_000) as u64
            }
        }
    }

    /// One burst, ns (at least 1).
    pub fn sample(&self, w: &Workload, rng: &mut Rng) -> u64 {
        match *self {
            Service::Exponential => rng.exp(w.mean_service_ns),
            Service::Fixed => w.mean_service_ns.max(1),
            Service::Bimodal { short_ns, long_ns, long_ppm } => {
                if rng.next_u64() % 1_000_000 < long_ppm as u64 {
                    long_ns.max(1)
                } else {
                    short_ns.max(1)
                }
            }
        }
    }
}

/// What the simulated tasks do.
///
/// Arrivals are open-loop: task `i` arrives at a precomputed Poisson time whatever the scheduler does. With
/// [`load_permille`](Workload::load_permille) set, the arrival rate is chosen so that the offered work is that
/// fraction of the enclave's worker CPUs (`mean gap = mean bursts × mean service / (load × workers)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Mean gap between task arrivals (exponential), ns. Ignored when `load_permille` is non-zero.
    pub mean_arrival_gap_ns: u64,
    /// Run bursts per task, uniform in this range; the task exits after the last.
    pub bursts: (u32, u32),
    /// Mean run burst, ns (the distribution is [`service`](Workload::service)).
    pub mean_service_ns: u64,
    /// The distribution of run bursts.
    pub service: Service,
    /// After a burst, block (then wake) with this probability in ‰; otherwise yield.
    pub block_permille: u32,
    /// Mean time blocked (exponential), ns.
    pub mean_block_ns: u64,
    /// Offered load in ‰ of the worker CPUs' capacity (0: use `mean_arrival_gap_ns`; above 1000: overload).
    pub load_permille: u32,
    /// After its last burst a task leaves the enclave (`TASK_DEPARTED`, setsched away) instead of exiting
    /// (`TASK_DEAD`) with this probability in ‰.
    pub depart_permille: u32,
    /// After a burst, the task's CPU affinity changes (`TASK_AFFINITY_CHANGED`) with this probability in ‰: it
    /// is pinned to one worker CPU of the enclave, chosen at random (commits elsewhere fail).
    pub affinity_permille: u32,
}

impl Default for Workload {
    /// A mixed, moderately loaded workload: short bursts, mostly blocking (request/response-like).
    fn default() -> Self {
        Workload::MIXED
    }
}

impl Workload {
    const BASE: Workload = Workload {
        mean_arrival_gap_ns: 70_000,
        bursts: (2, 12),
        mean_service_ns: 50_000,
        service: Service::Exponential,
        block_permille: 800,
        mean_block_ns: 200_000,
        load_permille: 0,
        depart_permille: 0,
        affinity_permille: 0,
    };
    /// Short bursts, mostly blocking: request/response-like (about 65% load on 8 CPUs).
    pub const MIXED: Workload = Workload::BASE;
    /// Long bursts that yield: batch-like.
    pub const CPU_BOUND: Workload = Workload {
        mean_arrival_gap_ns: 500_000,
        bursts: (2, 6),
        mean_service_ns: 1_000_000,
        block_permille: 100,
        mean_block_ns: 100_000,
        ..Workload::BASE
    };
    /// Tiny bursts and frequent wake-ups: stresses the agent and the queues.
    pub const WAKEUP_HEAVY: Workload = Workload {
        mean_arrival_gap_ns: 20_000,
        bursts: (10, 40),
        mean_service_ns: 5_000,
        block_permille: 950,
        mean_block_ns: 30_000,
        ..Workload::BASE
    };
    /// The ghOSt paper's dispersive RocksDB-like mix: one request per task, 99.5 % of 4 µs and 0.5 % of 10 ms
    /// (mean 53.98 µs), open-loop Poisson arrivals at 50 % of the worker CPUs (change
    /// [`load_permille`](Workload::load_permille) to sweep the load).
    pub const DISPERSIVE: Workload = Workload {
        bursts: (1, 1),
        service: Service::Bimodal { short_ns: 4_000, long_ns: 10_000_000, long_ppm: 5_000 },
        block_permille: 0,
        load_permille: 500,
        ..Workload::BASE
    };
    /// Poisson arrivals of one-burst tasks (exponential service, mean 10 µs) at 70 % of the worker CPUs.
    pub const POISSON: Workload =
        Workload { bursts: (1, 1), mean_service_ns: 10_000, block_permille: 0, load_permille: 700, ..Workload::BASE };

    /// A workload by name: `mixed`, `cpu`, `wakeup`, `dispersive`, `poisson`.
    pub fn by_name(name: &str) -> Option<Workload> {
        match name {
            "mixed" => Some(Workload::MIXED),
            "cpu" => Some(Workload::CPU_BOUND),
            "wakeup" => Some(Workload::WAKEUP_HEAVY),
            "dispersive" => Some(Workload::DISPERSIVE),
            "poisson" => Some(Workload::POISSON),
            _ => None,
        }
    }

    /// The names [`by_name`](Workload::by_name) knows.
    pub const NAMES: &'static [&'static str] = &["mixed", "cpu", "wakeup", "dispersive", "poisson"];

    /// CPU time a task asks for on average, ns (mean bursts × mean burst).
    pub fn mean_work_ns(&self) -> u64 {
        let bursts2 = self.bursts.0 as u128 + self.bursts.1.max(self.bursts.0) as u128;
        (bursts2 * self.service.mean_ns(self) as u128 / 2) as u64
    }

    /// The mean gap between arrivals on an enclave of `workers` worker CPUs, ns (at least 1).
    pub fn arrival_gap_ns(&self, workers: u32) -> u64 {
        if self.load_permille == 0 {
            return self.mean_arrival_gap_ns.max(1);
        }
        let cap = self.load_permille as u128 * workers.max(1) as u128;
        ((self.mean_work_ns() as u128 * 1000 / cap) as u64).max(1)
    }

    /// Offered load in ‰ of `workers` CPUs (what the arrivals ask for).
    pub fn offered_permille(&self, workers: u32) -> u64 {
        let gap = self.arrival_gap_ns(workers) as u128;
        (self.mean_work_ns() as u128 * 1000 / (gap * workers.max(1) as u128)) as u64
    }
}

/// One row of a trace ([`Trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRow {
    /// When the task arrives, ns from the start.
    pub arrival_ns: u64,
    /// Its one run burst, ns.
    pub service_ns: u64,
    /// The CPUs it may run on (`None`: any CPU of the enclave).
    pub cpus: Option<std::vec::Vec<u32>>,
}

/// A workload to replay: one task per row, each a single run burst (then it exits).
///
/// CSV, one task per line: `arrival_ns,service_ns[,cpulist]`, e.g. `125000,4000` or `125000,4000,0-3,8`
/// (everything after the second comma is a Linux cpulist, so its own commas need no quoting). Empty lines,
/// lines starting with `#`, and a first line that does not start with a digit (a header) are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The tasks, in file order.
    pub rows: std::vec::Vec<TraceRow>,
}

/// Why a trace could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number (0: the file itself).
    pub line: usize,
    /// What is wrong.
    pub what: std::string::String,
}

impl core::fmt::Display for TraceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.what)
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

impl std::error::Error for TraceError {}

impl Trace {
    /// Parses a CSV trace (see [`Trace`]).
    ///
    /// ```
    /// let t = ghost_shm::sim::Trace::parse_csv("arrival_ns,service_ns,cpus\n0,4000\n1000,9000,0-1,3\n").unwrap();
    /// assert_eq!(t.rows.len(), 2);
    /// assert_eq!(t.rows[1].cpus, Some(vec![0, 1, 3]));
    /// assert!(ghost_shm::sim::Trace::parse_csv("0,x").is_err());
    /// ```
    pub fn parse_csv(text: &str) -> Result<Trace, TraceError> {
        use std::string::ToString;
        let mut rows = std::vec::Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |what: std::string::String| TraceError { line: i + 1, what };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if i == 0 && !line.starts_with(|c: char| c.is_ascii_digit()) {
                continue; // header
            }
            let mut parts = line.splitn(3, ',');
            let num = |name: &str, v: Option<&str>| -> Result<u64, TraceError> {
                let v = v.map(str::trim).ok_or_else(|| err(std::format!("missing {name}")))?;
                v.parse::<u64>().map_err(|_| err(std::format!("{name} {v:?} is not a whole number of ns")))
            };
            let arrival_ns = num("arrival_ns", parts.next())?;
            let service_ns = num("service_ns", parts.next())?;
            if service_ns == 0 {
                return Err(err("service_ns must be at least 1".to_string()));
            }
            let cpus = match parts.next().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(list) => {
                    let set: crate::topology::CpuSet = crate::topology::CpuSet::parse_list(list)
                        .map_err(|e| err(std::format!("cpulist {list:?}: {e}")))?;
                    if set.is_empty() {
                        return Err(err(std::format!("cpulist {list:?} is empty")));
                    }
                    Some(set.iter().map(|c| c as u32).collect())
                }
            };
            rows.push(TraceRow { arrival_ns, service_ns, cpus });
        }
        if rows.is_empty() {
            return Err(TraceError { line: 0, what: "the trace has no task".to_string() });
        }
        Ok(Trace { rows })
    }

    /// Reads and parses a CSV trace file.
    pub fn from_file(path: &std::path::Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TraceError { line: 0, what: std::format!("{}: {e}", path.display()) })?;
        Trace::parse_csv(&text).map_err(|e| TraceError { what: std::format!("{}: {}", path.display(), e.what), ..e })
    }
}

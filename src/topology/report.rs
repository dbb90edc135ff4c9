//! The textual topology summary printed by `examples/topology.rs`.

use core::fmt;

use super::{CpuInfo, CpuSet, Level, Topology};

/// A [`Topology`] summary; see [`report`].
#[derive(Clone, Copy, Debug)]
pub struct Report<'a, S> {
    topo: &'a Topology<S>,
}

/// The topology summary, five lines, each ending in `\n`, every group a canonical cpulist:
///
/// ```text
/// online <cpulist>
/// packages <group> | <group> ...
/// smt <group> | ...
/// l3 <group> | ...
/// nodes <id>:<cpulist> <id>:<cpulist> ...
/// ```
///
/// Groups are the online CPUs of each package, core, and last-level cache (L3 where there is one) ordered by
/// their first CPU; nodes are the known NUMA nodes with online CPUs, by ascending id.
///
/// ```
/// use ghost_shm::topology::{report, CpuInfo, SmtNumbering, Topology, Uniform};
/// let desc = Uniform {
///     packages: 2, nodes_per_package: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 2,
///     numbering: SmtNumbering::Split,
/// };
/// let mut st = [CpuInfo::unknown(0); 8];
/// let online = desc.fill(&mut st).unwrap();
/// let topo = Topology::new(&st[..], online).unwrap();
/// assert_eq!(
///     report(&topo).to_string(),
///     "online 0-7\n\
///      packages 0-1,4-5 | 2-3,6-7\n\
///      smt 0,4 | 1,5 | 2,6 | 3,7\n\
///      l3 0-1,4-5 | 2-3,6-7\n\
///      nodes 0:0-1,4-5 1:2-3,6-7\n"
/// );
/// ```
pub fn report<S: AsRef<[CpuInfo]>>(topo: &Topology<S>) -> Report<'_, S> {
    Report { topo }
}

impl<S: AsRef<[CpuInfo]>> Report<'_, S> {
    fn groups(&self, f: &mut fmt::Formatter<'_>, name: &str, level: Level) -> fmt::Result {
        f.write_str(name)?;
        for (i, g) in self.topo.groups(level).enumerate() {
            write!(f, "{}{g}", if i == 0 { " " } else { " | " })?;
        }
        f.write_str("\n")
    }
}

impl<S: AsRef<[CpuInfo]>> fmt::Display for Report<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.topo;
        writeln!(f, "online {}", t.online())?;
        self.groups(f, "packages", Level::Package)?;
        self.groups(f, "smt", Level::Core)?;
        self.groups(f, "l3", Level::Llc)?;
        f.write_str("nodes")?;
        let mut prev: Option<u32> = None;
        // Ascending node ids without allocating: the smallest id above the previous one, each round.
        while let Some(id) =
            t.online().iter().filter_map(|c| t.node_of(c)).filter(|&n| prev.is_none_or(|p| n > p)).min()
        {
            let mut cpus = CpuSet::new();
            for c in t.online().iter().filter(|&c| t.node_of(c) == Some(id)) {
                cpus.words_mut()[c / 64] |= 1 << (c % 64);
            }
            write!(f, " {id}:{cpus}")?;
            prev = Some(id);
        }
        f.write_str("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn nodes_sorted_by_id_and_unknown_skipped() {
        let mut st = [CpuInfo::unknown(0); 5];
        for (c, r) in st.iter_mut().enumerate() {
            *r = CpuInfo { package: 0, llc: Some(0), llc_level: 2, ..CpuInfo::unknown(c as u32) };
        }
        st[0].node = Some(3);
        st[1].node = Some(1);
        st[2].node = Some(3);
        st[3].node = None;
        st[4].node = Some(1);
        let t = Topology::new(&st[..], "0-4".parse().unwrap()).unwrap();
        assert_eq!(
            report(&t).to_string(),
            "online 0-4\npackages 0-4\nsmt 0 | 1 | 2 | 3 | 4\nl3 0-4\nnodes 1:1,4 3:0,2\n"
        );
        st[0].node = None;
        st[1].node = None;
        st[2].node = None;
        st[4].node = None;
        let t = Topology::new(&st[..], "0-4".parse().unwrap()).unwrap();
        assert!(report(&t).to_string().ends_with("\nnodes\n"));
    }
}

//! [`CpuSet`]: a fixed-capacity CPU bitmap.

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, BitXor, BitXorAssign, RangeInclusive, Sub, SubAssign};

use zerocopy::IntoBytes;

use super::parse::{self, HexMask, ParseError};

/// The default number of 64-bit words in a [`CpuSet`]: 128 words = 8192 CPUs, the common `kernel_max + 1`
/// (`CONFIG_NR_CPUS`) of distribution kernels.
pub const DEFAULT_WORDS: usize = 128;

/// A set of CPU ids `0..64 * WORDS`, stored as a bitmap: bit `i % 64` of word `i / 64` is CPU `i`.
///
/// It never allocates and is `Copy`; the default capacity is 8192 CPUs (1 KiB). In memory (little-endian, as
/// ghOSt requires) it has exactly the layout of the kernel's `cpumask` / glibc's `cpu_set_t`: bit `i % 8` of
/// byte `i / 8` is CPU `i`, which is what `sched_setaffinity(2)`, `sched_getaffinity(2)` and ghOSt's commit
/// ioctl take ([`as_bytes`](Self::as_bytes), [`as_mut_bytes`](Self::as_mut_bytes)).
///
/// `Display` prints the canonical kernel cpulist (`0-3,8,10-11`); [`parse_list`](Self::parse_list) reads the
/// kernel's full cpulist grammar, [`parse_hex_mask`](Self::parse_hex_mask) / [`hex_mask`](Self::hex_mask) the
/// hex-mask format of `cpumap` files.
///
/// In expression position Rust does not apply the default capacity, so use [`CpuSet::new`] (default capacity
/// only), a type annotation, or [`CpuSet::<W>::EMPTY`](Self::EMPTY):
///
/// ```
/// use ghost_shm::topology::CpuSet;
/// let mut a = CpuSet::new();
/// a.insert(3).unwrap();
/// a.insert_range(8..=11).unwrap();
/// let b: CpuSet = "2-4,9".parse().unwrap();
/// assert_eq!((a & b).to_string(), "3,9");
/// assert_eq!((a | b).to_string(), "2-4,8-11");
/// assert_eq!(a.iter().collect::<Vec<_>>(), [3, 8, 9, 10, 11]);
/// assert_eq!(a.count(), 5);
/// assert_eq!(a.hex_mask(16).to_string(), "0f08");
/// assert_eq!(CpuSet::<1>::CAPACITY, 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct CpuSet<const WORDS: usize = DEFAULT_WORDS> {
    words: [u64; WORDS],
}

/// A CPU id at or beyond a [`CpuSet`]'s capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOutOfRange {
    /// The offending CPU id.
    pub cpu: usize,
    /// The set's capacity: valid ids are `0..capacity`.
    pub capacity: usize,
}

impl fmt::Display for CpuOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPU {} is beyond the CPU set's capacity of {}", self.cpu, self.capacity)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CpuOutOfRange {}

impl CpuSet {
    /// An empty set of the default capacity (8192 CPUs). Same as [`CpuSet::EMPTY`]; for other capacities use
    /// [`CpuSet::<W>::empty()`](Self::empty).
    pub const fn new() -> Self {
        Self::EMPTY
    }
}

impl<const WORDS: usize> Default for CpuSet<WORDS> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const WORDS: usize> CpuSet<WORDS> {
    /// How many CPU ids the set can hold: valid ids are `0..CAPACITY`.
    pub const CAPACITY: usize = 64 * WORDS;

    /// The empty set.
    pub const EMPTY: Self = Self { words: [0; WORDS] };

    /// The empty set.
    pub const fn empty() -> Self {
        Self::EMPTY
    }

    /// The set of all `CAPACITY` CPUs.
    pub const fn full() -> Self {
        Self { words: [u64::MAX; WORDS] }
    }

    /// The set with the given bitmap words (bit `i % 64` of word `i / 64` is CPU `i`).
    pub const fn from_words(words: [u64; WORDS]) -> Self {
        Self { words }
    }

    /// The bitmap words (bit `i % 64` of word `i / 64` is CPU `i`).
    pub const fn words(&self) -> &[u64; WORDS] {
        &self.words
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64; WORDS] {
        &mut self.words
    }

    /// The set of the given CPUs; fails on the first CPU id beyond the capacity.
    ///
    /// ```
    /// # use ghost_shm::topology::CpuSet;
    /// let s: CpuSet<1> = CpuSet::from_cpus([5, 1, 2]).unwrap();
    /// assert_eq!(s.to_string(), "1-2,5");
    /// assert!(CpuSet::<1>::from_cpus([64]).is_err());
    /// ```
    pub fn from_cpus<I: IntoIterator<Item = usize>>(cpus: I) -> Result<Self, CpuOutOfRange> {
        let mut s = Self::EMPTY;
        for c in cpus {
            s.insert(c)?;
        }
        Ok(s)
    }

    /// Whether `cpu` is in the set (`false` for ids beyond the capacity).
    #[inline]
    pub const fn contains(&self, cpu: usize) -> bool {
        cpu < Self::CAPACITY && self.words[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Adds `cpu`; returns whether it was newly added, or an error if `cpu` is beyond the capacity.
    #[inline]
    pub fn insert(&mut self, cpu: usize) -> Result<bool, CpuOutOfRange> {
        if cpu >= Self::CAPACITY {
            return Err(CpuOutOfRange { cpu, capacity: Self::CAPACITY });
        }
        let w = &mut self.words[cpu / 64];
        let bit = 1u64 << (cpu % 64);
        let new = *w & bit == 0;
        *w |= bit;
        Ok(new)
    }

    /// Removes `cpu`; returns whether it was in the set (ids beyond the capacity never are).
    #[inline]
    pub fn remove(&mut self, cpu: usize) -> bool {
        if cpu >= Self::CAPACITY {
            return false;
        }
        let w = &mut self.words[cpu / 64];
        let bit = 1u64 << (cpu % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }

    /// Adds every CPU of `range` (inclusive; an empty range such as `5..=4` adds nothing). Fails, adding nothing,
    /// if the range reaches beyond the capacity.
    pub fn insert_range(&mut self, range: RangeInclusive<usize>) -> Result<(), CpuOutOfRange> {
        let (start, end) = (*range.start(), *range.end());
        if start > end {
            return Ok(());
        }
        if end >= Self::CAPACITY {
            return Err(CpuOutOfRange { cpu: end, capacity: Self::CAPACITY });
        }
        self.set_range_unchecked(start, end);
        Ok(())
    }

    /// Sets `start..=end`; the caller guarantees `start <= end < CAPACITY`.
    pub(crate) fn set_range_unchecked(&mut self, start: usize, end: usize) {
        let (fw, lw) = (start / 64, end / 64);
        let first_mask = u64::MAX << (start % 64);
        let last_mask = u64::MAX >> (63 - end % 64);
        if fw == lw {
            self.words[fw] |= first_mask & last_mask;
        } else {
            self.words[fw] |= first_mask;
            for w in &mut self.words[fw + 1..lw] {
                *w = u64::MAX;
            }
            self.words[lw] |= last_mask;
        }
    }

    /// Removes every CPU.
    pub fn clear(&mut self) {
        self.words = [0; WORDS];
    }

    /// The number of CPUs in the set.
    pub const fn count(&self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < WORDS {
            n += self.words[i].count_ones() as usize;
            i += 1;
        }
        n
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        let mut i = 0;
        while i < WORDS {
            if self.words[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The lowest CPU in the set.
    pub const fn first(&self) -> Option<usize> {
        self.next_from(0)
    }

    /// The highest CPU in the set.
    pub const fn last(&self) -> Option<usize> {
        let mut i = WORDS;
        while i > 0 {
            i -= 1;
            let w = self.words[i];
            if w != 0 {
                return Some(i * 64 + 63 - w.leading_zeros() as usize);
            }
        }
        None
    }

    /// The lowest CPU in the set that is greater than `cpu` (the kernel's `cpumask_next`).
    pub const fn next_after(&self, cpu: usize) -> Option<usize> {
        match cpu.checked_add(1) {
            Some(from) => self.next_from(from),
            None => None,
        }
    }

    /// The lowest CPU in the set that is at least `from`.
    pub const fn next_from(&self, from: usize) -> Option<usize> {
        if from >= Self::CAPACITY {
            return None;
        }
        let mut i = from / 64;
        let mut w = self.words[i] & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                return Some(i * 64 + w.trailing_zeros() as usize);
            }
            i += 1;
            if i >= WORDS {
                return None;
            }
            w = self.words[i];
        }
    }

    /// The lowest CPU id at least `from` that is *not* in the set (`CAPACITY` if there is none).
    const fn next_absent_from(&self, from: usize) -> usize {
        if from >= Self::CAPACITY {
            return Self::CAPACITY;
        }
        let mut i = from / 64;
        let mut w = !self.words[i] & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                return i * 64 + w.trailing_zeros() as usize;
            }
            i += 1;
            if i >= WORDS {
                return Self::CAPACITY;
            }
            w = !self.words[i];
        }
    }

    /// The CPUs in either set.
    pub const fn union(&self, other: &Self) -> Self {
        let mut words = self.words;
        let mut i = 0;
        while i < WORDS {
            words[i] |= other.words[i];
            i += 1;
        }
        Self { words }
    }

    /// The CPUs in both sets.
    pub const fn intersection(&self, other: &Self) -> Self {
        let mut words = self.words;
        let mut i = 0;
        while i < WORDS {
            words[i] &= other.words[i];
            i += 1;
        }
        Self { words }
    }

    /// The CPUs in `self` but not in `other`.
    pub const fn difference(&self, other: &Self) -> Self {
        let mut words = self.words;
        let mut i = 0;
        while i < WORDS {
            words[i] &= !other.words[i];
            i += 1;
        }
        Self { words }
    }

    /// The CPUs in exactly one of the sets.
    pub const fn symmetric_difference(&self, other: &Self) -> Self {
        let mut words = self.words;
        let mut i = 0;
        while i < WORDS {
            words[i] ^= other.words[i];
            i += 1;
        }
        Self { words }
    }

    /// The CPUs `0..CAPACITY` not in the set.
    pub const fn complement(&self) -> Self {
        let mut words = self.words;
        let mut i = 0;
        while i < WORDS {
            words[i] = !words[i];
            i += 1;
        }
        Self { words }
    }

    /// Whether every CPU of `self` is in `other`.
    pub const fn is_subset(&self, other: &Self) -> bool {
        let mut i = 0;
        while i < WORDS {
            if self.words[i] & !other.words[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Whether every CPU of `other` is in `self`.
    pub const fn is_superset(&self, other: &Self) -> bool {
        other.is_subset(self)
    }

    /// Whether the sets have no CPU in common.
    pub const fn is_disjoint(&self, other: &Self) -> bool {
        let mut i = 0;
        while i < WORDS {
            if self.words[i] & other.words[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> Iter<'_, WORDS> {
        Iter { set: self, next: 0 }
    }

    /// The maximal runs of consecutive CPUs, ascending, as inclusive `(first, last)` pairs: the ranges of the
    /// canonical cpulist.
    ///
    /// ```
    /// # use ghost_shm::topology::CpuSet;
    /// let s: CpuSet = "0-3,5,7-8".parse().unwrap();
    /// assert_eq!(s.ranges().collect::<Vec<_>>(), [(0, 3), (5, 5), (7, 8)]);
    /// ```
    pub fn ranges(&self) -> Ranges<'_, WORDS> {
        Ranges { set: self, next: 0 }
    }

    /// The set's memory as `cpu_set_t`-style bytes (`8 * WORDS` of them): bit `i % 8` of byte `i / 8` is CPU
    /// `i`. Pass it, with its length, to `sched_setaffinity(2)` or as ghOSt's commit mask; the kernel reads only
    /// the bytes it needs (`cpumask_size()`), so the full length is always accepted.
    pub fn as_bytes(&self) -> &[u8] {
        self.words.as_bytes()
    }

    /// The set's memory as mutable `cpu_set_t`-style bytes, e.g. for `sched_getaffinity(2)` to fill in (its
    /// length must be at least `nr_cpu_ids / 8` and a multiple of 8, which `8 * WORDS` is when the capacity
    /// covers the machine).
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        self.words.as_mut_bytes()
    }

    /// The set from `cpu_set_t`-style bytes (bit `i % 8` of byte `i / 8` is CPU `i`), of any length: missing
    /// bytes are zero; bits set beyond the capacity are an error.
    ///
    /// ```
    /// # use ghost_shm::topology::CpuSet;
    /// let s: CpuSet = CpuSet::from_bytes(&[0b101, 0, 0x80]).unwrap();
    /// assert_eq!(s.to_string(), "0,2,23");
    /// assert_eq!(&s.as_bytes()[..3], &[0b101, 0, 0x80]);
    /// assert!(CpuSet::<1>::from_bytes(&[0; 9]).is_ok());
    /// assert!(CpuSet::<1>::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 2]).is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CpuOutOfRange> {
        let mut s = Self::EMPTY;
        let cap_bytes = 8 * WORDS;
        let (inside, beyond) = bytes.split_at(bytes.len().min(cap_bytes));
        if let Some(i) = beyond.iter().position(|&b| b != 0) {
            let cpu = (cap_bytes + i) * 8 + beyond[i].trailing_zeros() as usize;
            return Err(CpuOutOfRange { cpu, capacity: Self::CAPACITY });
        }
        for (i, &b) in inside.iter().enumerate() {
            s.words[i / 8] |= (b as u64) << (8 * (i % 8));
        }
        Ok(s)
    }

    /// Parses a kernel cpulist (`0-3,8`, `0-1023:2/256`, `all`, `N`; see the [module docs](super#cpulists))
    /// with ids valid up to the capacity. The first `\n` or `\0` ends the input; empty input is the empty set.
    ///
    /// ```
    /// # use ghost_shm::topology::{CpuSet, ParseErrorKind};
    /// let s: CpuSet<16> = CpuSet::parse_list("0-1023:2/256\n").unwrap();
    /// assert_eq!(s.to_string(), "0-1,256-257,512-513,768-769");
    /// let e = CpuSet::<16>::parse_list("0,5-2").unwrap_err();
    /// assert_eq!((e.offset, e.kind), (2, ParseErrorKind::StartAfterEnd { start: 5, end: 2 }));
    /// ```
    pub fn parse_list(input: impl AsRef<[u8]>) -> Result<Self, ParseError> {
        parse::parse_list(input.as_ref(), Self::CAPACITY)
    }

    /// Parses a kernel cpulist where ids `0..nr_ids` are valid (`N` = `nr_ids - 1`, `all` = `0..nr_ids`), as the
    /// kernel does with `nr_cpu_ids`. Ids beyond the capacity are errors whatever `nr_ids` says (and the error
    /// then names the capacity as the number of valid ids).
    ///
    /// ```
    /// # use ghost_shm::topology::{CpuSet, ParseErrorKind};
    /// let s: CpuSet = CpuSet::parse_list_with("0,N", 4).unwrap();
    /// assert_eq!(s.to_string(), "0,3");
    /// let e = CpuSet::<1>::parse_list_with("1 4", 4).unwrap_err();
    /// assert_eq!((e.offset, e.kind), (2, ParseErrorKind::OutOfRange { id: 4, nr_ids: 4 }));
    /// ```
    pub fn parse_list_with(input: impl AsRef<[u8]>, nr_ids: usize) -> Result<Self, ParseError> {
        parse::parse_list(input.as_ref(), nr_ids)
    }

    /// Parses a kernel hex mask (`ff,00000001`: comma-separated chunks of up to 8 hex digits, most significant
    /// first). The first `\n` or `\0` ends the input; empty input is the empty set; set bits beyond the capacity
    /// are an error, zero chunks beyond it are not.
    ///
    /// ```
    /// # use ghost_shm::topology::CpuSet;
    /// let s: CpuSet = CpuSet::parse_hex_mask("00000000,00000003,0000000f\n").unwrap();
    /// assert_eq!(s.to_string(), "0-3,32-33");
    /// ```
    pub fn parse_hex_mask(input: impl AsRef<[u8]>) -> Result<Self, ParseError> {
        parse::parse_hex_mask(input.as_ref())
    }

    /// The set as the kernel prints a mask of `nbits` bits (`%*pb`, e.g. `cpumap` files with `nbits` =
    /// `nr_cpu_ids`): 32-bit chunks, most significant first, joined by commas, every chunk but the first
    /// zero-padded to 8 digits and the first to the digits its bits need. The mask is widened, never truncated,
    /// when the set has CPUs at or beyond `nbits`.
    ///
    /// ```
    /// # use ghost_shm::topology::CpuSet;
    /// let s: CpuSet = "0-1,33".parse().unwrap();
    /// assert_eq!(s.hex_mask(2).to_string(), "2,00000003");
    /// assert_eq!(s.hex_mask(128).to_string(), "00000000,00000000,00000002,00000003");
    /// assert_eq!(CpuSet::parse_hex_mask(s.hex_mask(0).to_string()), Ok(s));
    /// ```
    pub fn hex_mask(&self, nbits: usize) -> HexMask<'_, WORDS> {
        HexMask::new(self, nbits)
    }
}

impl<const WORDS: usize> core::str::FromStr for CpuSet<WORDS> {
    type Err = ParseError;

    /// Same as [`CpuSet::parse_list`].
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse_list(s)
    }
}

impl<const WORDS: usize> fmt::Display for CpuSet<WORDS> {
    /// The canonical cpulist, as the kernel prints it (`%*pbl`): ascending merged ranges `a` or `a-b` joined by
    /// commas; the empty set prints nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (a, b) in self.ranges() {
            if a == b {
                write!(f, "{sep}{a}")?;
            } else {
                write!(f, "{sep}{a}-{b}")?;
            }
            sep = ",";
        }
        Ok(())
    }
}

impl<const WORDS: usize> fmt::Debug for CpuSet<WORDS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

/// Iterator over the CPUs of a [`CpuSet`], ascending.
#[derive(Clone, Debug)]
pub struct Iter<'a, const WORDS: usize> {
    set: &'a CpuSet<WORDS>,
    next: usize,
}

impl<const WORDS: usize> Iterator for Iter<'_, WORDS> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let c = self.set.next_from(self.next)?;
        self.next = c + 1;
        Some(c)
    }
}

impl<'a, const WORDS: usize> IntoIterator for &'a CpuSet<WORDS> {
    type Item = usize;
    type IntoIter = Iter<'a, WORDS>;

    fn into_iter(self) -> Iter<'a, WORDS> {
        self.iter()
    }
}

/// Owning iterator over the CPUs of a [`CpuSet`], ascending.
#[derive(Clone, Debug)]
pub struct IntoIter<const WORDS: usize> {
    set: CpuSet<WORDS>,
    next: usize,
}

impl<const WORDS: usize> Iterator for IntoIter<WORDS> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let c = self.set.next_from(self.next)?;
        self.next = c + 1;
        Some(c)
    }
}

impl<const WORDS: usize> IntoIterator for CpuSet<WORDS> {
    type Item = usize;
    type IntoIter = IntoIter<WORDS>;

    fn into_iter(self) -> IntoIter<WORDS> {
        IntoIter { set: self, next: 0 }
    }
}

/// Iterator over the maximal runs of a [`CpuSet`] as inclusive `(first, last)` pairs; see [`CpuSet::ranges`].
#[derive(Clone, Debug)]
pub struct Ranges<'a, const WORDS: usize> {
    set: &'a CpuSet<WORDS>,
    next: usize,
}

impl<const WORDS: usize> Iterator for Ranges<'_, WORDS> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let a = self.set.next_from(self.next)?;
        let end = self.set.next_absent_from(a);
        self.next = end;
        Some((a, end - 1))
    }
}

macro_rules! set_ops {
    ($($tr:ident $m:ident $atr:ident $am:ident => $f:ident;)*) => {$(
        impl<const WORDS: usize> $tr for CpuSet<WORDS> {
            type Output = Self;
            fn $m(self, rhs: Self) -> Self {
                self.$f(&rhs)
            }
        }
        impl<const WORDS: usize> $tr<&CpuSet<WORDS>> for &CpuSet<WORDS> {
            type Output = CpuSet<WORDS>;
            fn $m(self, rhs: &CpuSet<WORDS>) -> CpuSet<WORDS> {
                self.$f(rhs)
            }
        }
        impl<const WORDS: usize> $atr for CpuSet<WORDS> {
            fn $am(&mut self, rhs: Self) {
                *self = self.$f(&rhs);
            }
        }
        impl<const WORDS: usize> $atr<&CpuSet<WORDS>> for CpuSet<WORDS> {
            fn $am(&mut self, rhs: &CpuSet<WORDS>) {
                *self = self.$f(rhs);
            }
        }
    )*};
}

set_ops! {
    BitOr bitor BitOrAssign bitor_assign => union;
    BitAnd bitand BitAndAssign bitand_assign => intersection;
    Sub sub SubAssign sub_assign => difference;
    BitXor bitxor BitXorAssign bitxor_assign => symmetric_difference;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    type S2 = CpuSet<2>;

    #[test]
    fn insert_remove_contains() {
        let mut s = S2::EMPTY;
        assert!(s.is_empty());
        assert_eq!(s.insert(0), Ok(true));
        assert_eq!(s.insert(0), Ok(false));
        assert_eq!(s.insert(127), Ok(true));
        assert_eq!(s.insert(128), Err(CpuOutOfRange { cpu: 128, capacity: 128 }));
        assert!(s.contains(0) && s.contains(127) && !s.contains(1) && !s.contains(128) && !s.contains(usize::MAX));
        assert_eq!(s.count(), 2);
        assert!(s.remove(0));
        assert!(!s.remove(0));
        assert!(!s.remove(500));
        assert_eq!(s.iter().collect::<Vec<_>>(), [127]);
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn ranges_across_words() {
        let mut s = S2::EMPTY;
        s.insert_range(3..=70).unwrap();
        assert_eq!(s.count(), 68);
        assert_eq!((s.first(), s.last()), (Some(3), Some(70)));
        assert!(!s.contains(2) && s.contains(63) && s.contains(64) && !s.contains(71));
        s.insert_range(64..=127).unwrap();
        assert_eq!(s.to_string(), "3-127");
        assert!(s.insert_range(100..=128).is_err());
        assert_eq!(s.to_string(), "3-127", "failed insert_range changes nothing");
        let (hi, lo) = (9, 1);
        s.insert_range(hi..=lo).unwrap();
        assert_eq!(s.count(), 125);
        let mut t = S2::EMPTY;
        t.insert_range(0..=63).unwrap();
        assert_eq!(t.words(), &[u64::MAX, 0]);
        t.insert_range(5..=5).unwrap();
        assert_eq!(t.ranges().collect::<Vec<_>>(), [(0, 63)]);
        assert_eq!(S2::full().ranges().collect::<Vec<_>>(), [(0, 127)]);
    }

    #[test]
    fn first_next_last() {
        let s = S2::from_cpus([1, 63, 64, 100]).unwrap();
        assert_eq!(s.first(), Some(1));
        assert_eq!(s.next_after(1), Some(63));
        assert_eq!(s.next_after(63), Some(64));
        assert_eq!(s.next_after(64), Some(100));
        assert_eq!(s.next_after(100), None);
        assert_eq!(s.next_after(usize::MAX), None);
        assert_eq!(s.next_from(64), Some(64));
        assert_eq!(s.next_from(200), None);
        assert_eq!(s.last(), Some(100));
        assert_eq!(S2::EMPTY.first(), None);
        assert_eq!(S2::EMPTY.last(), None);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [1, 63, 64, 100]);
        assert_eq!((&s).into_iter().count(), 4);
    }

    #[test]
    fn algebra() {
        let a = S2::from_cpus([1, 2, 3, 70]).unwrap();
        let b = S2::from_cpus([3, 4, 70, 71]).unwrap();
        assert_eq!((a | b).to_string(), "1-4,70-71");
        assert_eq!((a & b).to_string(), "3,70");
        assert_eq!((a - b).to_string(), "1-2");
        assert_eq!((a ^ b).to_string(), "1-2,4,71");
        let (ra, rb) = (&a, &b);
        assert_eq!(ra | rb, a.union(&b));
        assert_eq!(ra - rb, a.difference(&b));
        let mut c = a;
        c &= b;
        c |= S2::from_cpus([0]).unwrap();
        c -= &S2::from_cpus([70]).unwrap();
        c ^= S2::from_cpus([3, 5]).unwrap();
        assert_eq!(c.to_string(), "0,5");
        assert_eq!(a.complement().count(), 124);
        assert!(!a.complement().contains(70) && a.complement().contains(127));
        assert!((a & b).is_subset(&a) && a.is_superset(&(a & b)) && !a.is_subset(&b));
        assert!(a.is_disjoint(&S2::from_cpus([0, 5]).unwrap()) && !a.is_disjoint(&b));
        assert!(S2::EMPTY.is_subset(&S2::EMPTY) && S2::EMPTY.is_disjoint(&S2::full()));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(S2::EMPTY.to_string(), "");
        assert_eq!(S2::from_cpus([0]).unwrap().to_string(), "0");
        assert_eq!(S2::from_cpus([0, 1]).unwrap().to_string(), "0-1");
        assert_eq!(S2::from_cpus([0, 2, 3, 4, 6, 127]).unwrap().to_string(), "0,2-4,6,127");
        assert_eq!(std::format!("{:?}", S2::from_cpus([5, 6]).unwrap()), "CpuSet(5-6)");
    }

    #[test]
    fn byte_layout_is_cpu_set_t() {
        let s = S2::from_cpus([0, 9, 64, 127]).unwrap();
        let b = s.as_bytes();
        assert_eq!(b.len(), 16);
        let mut want = [0u8; 16];
        for c in [0usize, 9, 64, 127] {
            want[c / 8] |= 1 << (c % 8);
        }
        assert_eq!(b, want);
        assert_eq!(S2::from_bytes(b), Ok(s));
        assert_eq!(S2::from_bytes(&b[..2]).unwrap().to_string(), "0,9");
        assert_eq!(S2::from_bytes(&[]), Ok(S2::EMPTY));
        let mut long = [0u8; 20];
        assert_eq!(S2::from_bytes(&long), Ok(S2::EMPTY));
        long[18] = 0b100;
        assert_eq!(S2::from_bytes(&long), Err(CpuOutOfRange { cpu: 146, capacity: 128 }));
        let mut t = S2::EMPTY;
        t.as_mut_bytes()[15] = 0x80;
        t.as_mut_bytes()[1] = 0x01;
        assert_eq!(t.to_string(), "8,127");
    }

    #[test]
    fn default_capacity_and_const() {
        const S: CpuSet<1> = CpuSet::<1>::EMPTY.union(&CpuSet::from_words([0b110]));
        const N: usize = S.count();
        assert_eq!(N, 2);
        assert_eq!(CpuSet::<DEFAULT_WORDS>::CAPACITY, 8192);
        assert_eq!(CpuSet::new(), CpuSet::default());
        assert_eq!(core::mem::size_of::<CpuSet>(), 1024);
    }
}

//! cpulist and hex-mask parsing and formatting (the kernel's `bitmap_parselist`, `bitmap_parse`, `%*pb`).

use core::fmt;

use super::cpuset::CpuSet;

/// Where and why a cpulist or hex mask failed to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the input of the token at fault (the region for [`StartAfterEnd`], the number or
    /// character otherwise).
    ///
    /// [`StartAfterEnd`]: ParseErrorKind::StartAfterEnd
    pub offset: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// Why a cpulist or hex mask failed to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// A range `A-B` with `A > B`.
    StartAfterEnd {
        /// `A`.
        start: u32,
        /// `B`.
        end: u32,
    },
    /// A stride `:U/G` with `G == 0`.
    ZeroGroup,
    /// A stride `:U/G` with `U > G`.
    UsedExceedsGroup {
        /// `U`.
        used: u32,
        /// `G`.
        group: u32,
    },
    /// An id at or beyond the number of valid ids (`nr_ids`: the set's capacity or the `nr_ids` given).
    OutOfRange {
        /// The id.
        id: usize,
        /// The number of valid ids.
        nr_ids: usize,
    },
    /// A number that does not fit in 32 bits.
    Overflow,
    /// A hex-mask chunk of more than 8 digits.
    ChunkTooLong,
    /// A character that the grammar does not allow here.
    UnexpectedChar(u8),
    /// The input ended where the grammar needs more (`0-`, `0-3:1/`, a hex mask ending in `,`).
    UnexpectedEnd,
    /// A stride `:U/G` after a single id: a stride needs a range or `all`.
    StrideWithoutRange,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::StartAfterEnd { start, end } => write!(f, "range start {start} is greater than its end {end}"),
            Self::ZeroGroup => f.write_str("stride group size is 0"),
            Self::UsedExceedsGroup { used, group } => {
                write!(f, "stride uses {used} ids of every group of {group}")
            }
            Self::OutOfRange { id, nr_ids } => write!(f, "id {id} is beyond the {nr_ids} valid ids"),
            Self::Overflow => f.write_str("number does not fit in 32 bits"),
            Self::ChunkTooLong => f.write_str("hex chunk longer than 8 digits"),
            Self::UnexpectedChar(c) if c.is_ascii_graphic() => write!(f, "unexpected character '{}'", c as char),
            Self::UnexpectedChar(c) => write!(f, "unexpected byte 0x{c:02x}"),
            Self::UnexpectedEnd => f.write_str("unexpected end of input"),
            Self::StrideWithoutRange => f.write_str("a stride needs a range or `all`"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.kind)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

/// The input up to its first `\n` or `\0`.
pub(crate) fn until_end(input: &[u8]) -> &[u8] {
    let end = input.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(input.len());
    &input[..end]
}

/// The kernel's region separators: `,` and `isspace()` (`\n` ends the input before we get here).
const fn is_sep(b: u8) -> bool {
    matches!(b, b',' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_region_end(&self) -> bool {
        self.peek().is_none_or(is_sep)
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            Some(c) => ParseError { offset: self.i, kind: ParseErrorKind::UnexpectedChar(c) },
            None => ParseError { offset: self.i, kind: ParseErrorKind::UnexpectedEnd },
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// `bitmap_getnum`: `N` (the last valid id) or a decimal number that fits in 32 bits.
    fn number(&mut self, last: u32) -> Result<u32, ParseError> {
        if self.peek() == Some(b'N') {
            self.i += 1;
            return Ok(last);
        }
        let start = self.i;
        let mut n: u64 = 0;
        let mut overflow = false;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            match n.checked_mul(10).and_then(|n| n.checked_add((c - b'0') as u64)) {
                Some(v) if v <= u32::MAX as u64 => n = v,
                _ => overflow = true,
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(self.unexpected());
        }
        if overflow {
            return Err(ParseError { offset: start, kind: ParseErrorKind::Overflow });
        }
        Ok(n as u32)
    }
}

/// `bitmap_parselist` into a set: `N` is `nr_ids - 1`, and ids `0..min(nr_ids, CAPACITY)` are valid.
pub(crate) fn parse_list<const W: usize>(input: &[u8], nr_ids: usize) -> Result<CpuSet<W>, ParseError> {
    let mut set = CpuSet::<W>::EMPTY;
    let mut cur = Cursor { s: until_end(input), i: 0 };
    // `N` with no valid id reads as 0, which the range check below then rejects.
    let last = u32::try_from(nr_ids.saturating_sub(1)).unwrap_or(u32::MAX);
    let nr_ids = nr_ids.min(CpuSet::<W>::CAPACITY);
    loop {
        while cur.peek().is_some_and(is_sep) {
            cur.i += 1;
        }
        if cur.peek().is_none() {
            return Ok(set);
        }
        let region = cur.i;
        let (start, end, end_at);
        let rest = &cur.s[cur.i..];
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"all") {
            (start, end, end_at) = (0, last, region);
            cur.i += 3;
        } else {
            start = cur.number(last)?;
            if cur.at_region_end() {
                (end, end_at) = (start, region);
            } else if cur.peek() == Some(b'-') {
                cur.i += 1;
                end_at = cur.i;
                end = cur.number(last)?;
            } else if cur.peek() == Some(b':') {
                return Err(ParseError { offset: cur.i, kind: ParseErrorKind::StrideWithoutRange });
            } else {
                return Err(cur.unexpected());
            }
        }
        let (mut used, mut group, mut used_at, mut group_at) = (0, 0, region, region);
        let strided = !cur.at_region_end();
        if strided {
            cur.expect(b':')?;
            used_at = cur.i;
            used = cur.number(last)?;
            cur.expect(b'/')?;
            group_at = cur.i;
            group = cur.number(last)?;
            if !cur.at_region_end() {
                return Err(cur.unexpected());
            }
        }
        // bitmap_check_region, in the kernel's order.
        if start > end {
            return Err(ParseError { offset: region, kind: ParseErrorKind::StartAfterEnd { start, end } });
        }
        if strided && group == 0 {
            return Err(ParseError { offset: group_at, kind: ParseErrorKind::ZeroGroup });
        }
        if strided && used > group {
            return Err(ParseError { offset: used_at, kind: ParseErrorKind::UsedExceedsGroup { used, group } });
        }
        let (start, end) = (start as usize, end as usize);
        if end >= nr_ids {
            return Err(ParseError { offset: end_at, kind: ParseErrorKind::OutOfRange { id: end, nr_ids } });
        }
        // bitmap_set_region: `used` ids of every `group`, from `start` up to `end`.
        if !strided || used == group {
            set.set_range_unchecked(start, end);
        } else if used > 0 {
            let (used, group) = (used as usize, group as usize);
            let mut g = start;
            while g <= end {
                set.set_range_unchecked(g, end.min(g.saturating_add(used - 1)));
                g = match g.checked_add(group) {
                    Some(next) => next,
                    None => break,
                };
            }
        }
    }
}

/// `bitmap_parse`: comma-separated chunks of 1 to 8 hex digits, most significant first.
pub(crate) fn parse_hex_mask<const W: usize>(input: &[u8]) -> Result<CpuSet<W>, ParseError> {
    let s = until_end(input);
    let mut set = CpuSet::<W>::EMPTY;
    if s.is_empty() {
        return Ok(set);
    }
    let nchunks = s.iter().filter(|&&b| b == b',').count() + 1;
    let mut at = 0;
    for (j, chunk) in s.split(|&b| b == b',').enumerate() {
        if chunk.is_empty() {
            let kind = if at == s.len() { ParseErrorKind::UnexpectedEnd } else { ParseErrorKind::UnexpectedChar(b',') };
            return Err(ParseError { offset: at, kind });
        }
        let mut v: u32 = 0;
        for (k, &c) in chunk.iter().enumerate() {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(ParseError { offset: at + k, kind: ParseErrorKind::UnexpectedChar(c) }),
            };
            if k == 8 {
                return Err(ParseError { offset: at, kind: ParseErrorKind::ChunkTooLong });
            }
            v = v << 4 | d as u32;
        }
        if v != 0 {
            let base = (nchunks - 1 - j) * 32;
            let top = base + 31 - v.leading_zeros() as usize;
            if top >= CpuSet::<W>::CAPACITY {
                let nr_ids = CpuSet::<W>::CAPACITY;
                return Err(ParseError { offset: at, kind: ParseErrorKind::OutOfRange { id: top, nr_ids } });
            }
            // `base < CAPACITY` here, and CAPACITY is a multiple of 64, so the chunk lies in one word.
            set.words_mut()[base / 64] |= (v as u64) << (base % 64);
        }
        at += chunk.len() + 1;
    }
    Ok(set)
}

/// A [`CpuSet`] formatted as a kernel hex mask; see [`CpuSet::hex_mask`].
#[derive(Clone, Copy, Debug)]
pub struct HexMask<'a, const WORDS: usize> {
    set: &'a CpuSet<WORDS>,
    bits: usize,
}

impl<'a, const WORDS: usize> HexMask<'a, WORDS> {
    pub(crate) fn new(set: &'a CpuSet<WORDS>, nbits: usize) -> Self {
        let need = set.last().map_or(1, |l| l + 1);
        Self { set, bits: nbits.max(need) }
    }
}

impl<const WORDS: usize> fmt::Display for HexMask<'_, WORDS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let nchunks = self.bits.div_ceil(32);
        let first_digits = (self.bits - 32 * (nchunks - 1)).div_ceil(4);
        // One chunk at a time: a comma (but before the first) and 8 digits (the first chunk: only its own).
        let mut buf = [b','; 9];
        for i in (0..nchunks).rev() {
            let bit = 32 * i;
            let v = if bit < CpuSet::<WORDS>::CAPACITY { (self.set.words()[bit / 64] >> (bit % 64)) as u32 } else { 0 };
            for (k, d) in buf[1..].iter_mut().enumerate() {
                *d = HEX[(v >> (28 - 4 * k) & 0xf) as usize];
            }
            let text = if i == nchunks - 1 { &buf[9 - first_digits..] } else { &buf[..] };
            // Only ASCII was written.
            f.write_str(core::str::from_utf8(text).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ParseErrorKind::*;
    use super::*;
    use std::string::ToString;

    type S16 = CpuSet<16>; // 1024 ids

    fn list(s: &str) -> Result<std::string::String, ParseError> {
        S16::parse_list(s).map(|s| s.to_string())
    }

    fn err(s: &str) -> (usize, ParseErrorKind) {
        let e = S16::parse_list(s).unwrap_err();
        (e.offset, e.kind)
    }

    #[test]
    fn list_grammar() {
        assert_eq!(list("").unwrap(), "");
        assert_eq!(list("\n").unwrap(), "");
        assert_eq!(list("\n\0").unwrap(), "");
        assert_eq!(list(" , ,").unwrap(), "");
        assert_eq!(list("0").unwrap(), "0");
        assert_eq!(list("0-3,8\n").unwrap(), "0-3,8");
        assert_eq!(list("8,0-3\0garbage").unwrap(), "0-3,8");
        assert_eq!(list("1\n2").unwrap(), "1", "the first newline ends the list");
        assert_eq!(list("  3 \t5,,7\r\x0b\x0c9 ").unwrap(), "3,5,7,9");
        assert_eq!(list("3-3").unwrap(), "3");
        assert_eq!(list("5,1-6,2").unwrap(), "1-6");
        assert_eq!(list("007").unwrap(), "7");
        assert_eq!(list("0-1023:2/256").unwrap(), "0-1,256-257,512-513,768-769");
        assert_eq!(list("0-9:1/3").unwrap(), "0,3,6,9");
        assert_eq!(list("0-10:2/3").unwrap(), "0-1,3-4,6-7,9-10");
        assert_eq!(list("2-5:0/2").unwrap(), "");
        assert_eq!(list("2-5:2/2").unwrap(), "2-5");
        assert_eq!(list("all").unwrap(), "0-1023");
        assert_eq!(list("ALL").unwrap(), "0-1023");
        assert_eq!(list("all:1/512").unwrap(), "0,512");
        assert_eq!(list("N").unwrap(), "1023");
        assert_eq!(list("1000-N").unwrap(), "1000-1023");
        assert_eq!(list("0-N:1/N").unwrap(), "0,1023");
        assert_eq!(list("4294967295-0").unwrap_err().kind, StartAfterEnd { start: u32::MAX, end: 0 });
        assert_eq!(CpuSet::<1>::parse_list_with("N", 10).unwrap().to_string(), "9");
        assert_eq!(CpuSet::<1>::parse_list_with("all", 10).unwrap().to_string(), "0-9");
        assert_eq!(CpuSet::<1>::parse_list_with("", 0).unwrap().to_string(), "");
        assert_eq!(CpuSet::<1>::parse_list_with("63", 1000).unwrap().to_string(), "63");
    }

    #[test]
    fn list_errors_say_where_and_why() {
        assert_eq!(err("0,5-2"), (2, StartAfterEnd { start: 5, end: 2 }));
        assert_eq!(err("0-7:1/0"), (6, ZeroGroup));
        assert_eq!(err("0-7:3/2"), (4, UsedExceedsGroup { used: 3, group: 2 }));
        assert_eq!(err("1,1024"), (2, OutOfRange { id: 1024, nr_ids: 1024 }));
        assert_eq!(err("1,0-1024"), (4, OutOfRange { id: 1024, nr_ids: 1024 }));
        assert_eq!(err("4294967296"), (0, Overflow));
        assert_eq!(err("1-99999999999999999999999"), (2, Overflow));
        assert_eq!(err("1x"), (1, UnexpectedChar(b'x')));
        assert_eq!(err("x"), (0, UnexpectedChar(b'x')));
        assert_eq!(err("-1"), (0, UnexpectedChar(b'-')));
        assert_eq!(err("1-"), (2, UnexpectedEnd));
        assert_eq!(err("1--2"), (2, UnexpectedChar(b'-')));
        assert_eq!(err("3:1/2"), (1, StrideWithoutRange));
        assert_eq!(err("0-3:1"), (5, UnexpectedEnd));
        assert_eq!(err("0-3:1/"), (6, UnexpectedEnd));
        assert_eq!(err("0-3;"), (3, UnexpectedChar(b';')));
        assert_eq!(err("0-3:1/2x"), (7, UnexpectedChar(b'x')));
        assert_eq!(err("0-3:1-2"), (5, UnexpectedChar(b'-')));
        assert_eq!(err("allx"), (3, UnexpectedChar(b'x')));
        assert_eq!(err("n"), (0, UnexpectedChar(b'n')));
        assert_eq!(err("N5"), (1, UnexpectedChar(b'5')));
        assert_eq!(err("+1"), (0, UnexpectedChar(b'+')));
        // Kernel check order: A > B before G == 0 before U > G before the range check.
        assert_eq!(err("9-8:1/0"), (0, StartAfterEnd { start: 9, end: 8 }));
        assert_eq!(err("0-5000:3/0"), (9, ZeroGroup));
        assert_eq!(err("0-5000:3/2"), (7, UsedExceedsGroup { used: 3, group: 2 }));
        // `N` is the last of `nr_ids` even when that is beyond the capacity.
        let e = CpuSet::<1>::parse_list_with("0,N", 1000).unwrap_err();
        assert_eq!((e.offset, e.kind), (2, OutOfRange { id: 999, nr_ids: 64 }));
        let e = CpuSet::<1>::parse_list_with("all", 0).unwrap_err();
        assert_eq!(e.kind, OutOfRange { id: 0, nr_ids: 0 });
        let e = CpuSet::<1>::parse_list_with("0-64", 1000).unwrap_err();
        assert_eq!((e.offset, e.kind), (2, OutOfRange { id: 64, nr_ids: 64 }));
        assert_eq!(e.to_string(), "at byte 2: id 64 is beyond the 64 valid ids");
    }

    #[test]
    fn hex_masks() {
        let p = |s: &str| S16::parse_hex_mask(s).map(|s| s.to_string());
        assert_eq!(p("").unwrap(), "");
        assert_eq!(p("0\n").unwrap(), "");
        assert_eq!(p("3\n").unwrap(), "0-1");
        assert_eq!(p("00000000,00000000,ffffffff,00000000\n\0").unwrap(), "32-63");
        assert_eq!(p("1,1").unwrap(), "0,32");
        assert_eq!(p("FfFf").unwrap(), "0-15");
        assert_eq!(p("80000000,00000000").unwrap(), "63");
        // Zero chunks beyond the capacity are fine, set bits are not.
        assert_eq!(CpuSet::<1>::parse_hex_mask("0,00000000,00000001").unwrap().to_string(), "0");
        let e = CpuSet::<1>::parse_hex_mask("1,00000000,00000001").unwrap_err();
        assert_eq!((e.offset, e.kind), (0, OutOfRange { id: 64, nr_ids: 64 }));
        let e = |s: &str| {
            let e = S16::parse_hex_mask(s).unwrap_err();
            (e.offset, e.kind)
        };
        assert_eq!(e("123456789"), (0, ChunkTooLong));
        assert_eq!(e("1,123456789"), (2, ChunkTooLong));
        assert_eq!(e("12g4"), (2, UnexpectedChar(b'g')));
        assert_eq!(e("0x12"), (1, UnexpectedChar(b'x')));
        assert_eq!(e(",1"), (0, UnexpectedChar(b',')));
        assert_eq!(e("1,,1"), (2, UnexpectedChar(b',')));
        assert_eq!(e("1,"), (2, UnexpectedEnd));
        assert_eq!(e(" 1"), (0, UnexpectedChar(b' ')));
    }

    #[test]
    fn hex_format_matches_kernel_widths() {
        let s: CpuSet<4> = "0-1".parse().unwrap();
        assert_eq!(s.hex_mask(2).to_string(), "3");
        assert_eq!(s.hex_mask(20).to_string(), "00003");
        assert_eq!(s.hex_mask(32).to_string(), "00000003");
        assert_eq!(s.hex_mask(33).to_string(), "0,00000003");
        assert_eq!(s.hex_mask(128).to_string(), "00000000,00000000,00000000,00000003");
        assert_eq!(CpuSet::<4>::EMPTY.hex_mask(0).to_string(), "0");
        let t: CpuSet<4> = "4,255".parse().unwrap();
        assert_eq!(
            t.hex_mask(8).to_string(),
            "80000000,00000000,00000000,00000000,00000000,00000000,00000000,00000010"
        );
        assert_eq!(CpuSet::parse_hex_mask(t.hex_mask(8).to_string()), Ok(t));
        // A mask wider than the capacity prints zero chunks, which parse back.
        let wide = CpuSet::<1>::full().hex_mask(100).to_string();
        assert_eq!(wide, "0,00000000,ffffffff,ffffffff");
        assert_eq!(CpuSet::<1>::parse_hex_mask(&wide), Ok(CpuSet::full()));
    }
}

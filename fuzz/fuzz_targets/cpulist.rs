//! cpulist parsing never panics, whatever the bytes and `nr_ids`; every set it returns lies below `nr_ids`
//! and survives format → parse unchanged, and formatting is canonical (a fixed point); any set survives
//! format → parse.
#![no_main]
use arbitrary::Arbitrary;
use ghost_shm::topology::CpuSet;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    nr_ids: u16,
    words: [u64; 4],
    text: &'a [u8],
}

fn roundtrip<const W: usize>(s: &CpuSet<W>) {
    let text = s.to_string();
    let back = CpuSet::<W>::parse_list(&text).expect("a formatted list parses");
    assert_eq!(&back, s, "{text}");
    assert_eq!(back.to_string(), text, "canonical");
}

fuzz_target!(|input: Input<'_>| {
    let nr_ids = input.nr_ids as usize;
    if let Ok(s) = CpuSet::<4>::parse_list(input.text) {
        roundtrip(&s);
    }
    if let Ok(s) = CpuSet::<4>::parse_list_with(input.text, nr_ids) {
        assert!(s.last().is_none_or(|l| l < nr_ids.min(256)));
        roundtrip(&s);
        // Wider capacity, same `nr_ids` (so the same `N`): same set.
        let wide = CpuSet::<128>::parse_list_with(input.text, nr_ids).expect("parses wider too");
        assert_eq!(wide.words()[..4], s.words()[..]);
    }
    if let Ok(s) = CpuSet::<128>::parse_list(input.text) {
        roundtrip(&s);
    }
    roundtrip(&CpuSet::<4>::from_words(input.words));
});

//! Hex-mask parsing never panics; every set it returns, and any set at all, survives
//! hex_mask(nbits) → parse_hex_mask unchanged for any mask width, and the cpu_set_t byte layout round-trips.
#![no_main]
use arbitrary::Arbitrary;
use ghost_shm::topology::CpuSet;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    nbits: u16,
    words: [u64; 4],
    text: &'a [u8],
}

fn roundtrip<const W: usize>(s: &CpuSet<W>, nbits: usize) {
    let text = s.hex_mask(nbits).to_string();
    assert!(text.len() >= nbits.div_ceil(4), "padded to the mask width");
    assert_eq!(&CpuSet::<W>::parse_hex_mask(&text).expect("a formatted mask parses"), s, "{text}");
    assert_eq!(&CpuSet::<W>::from_bytes(s.as_bytes()).expect("own bytes"), s);
    assert_eq!(&CpuSet::<W>::parse_list(s.to_string()).expect("own list"), s);
}

fuzz_target!(|input: Input<'_>| {
    // Up to 8192 + 256 bits: every width a CpuSet<128> fills, and beyond it (leading zero padding). Wider masks
    // only add more leading zeros and made each run format tens of kilobytes.
    let nbits = input.nbits as usize % (8192 + 257);
    if let Ok(s) = CpuSet::<4>::parse_hex_mask(input.text) {
        roundtrip(&s, nbits);
        let wide = CpuSet::<128>::parse_hex_mask(input.text).expect("parses wider too");
        assert_eq!(wide.words()[..4], s.words()[..]);
        assert!(wide.words()[4..].iter().all(|&w| w == 0));
    }
    if let Ok(s) = CpuSet::<128>::parse_hex_mask(input.text) {
        roundtrip(&s, nbits);
    }
    if let Ok(s) = CpuSet::<4>::from_bytes(input.text) {
        assert_eq!(&s.as_bytes()[..input.text.len().min(32)], &input.text[..input.text.len().min(32)]);
    }
    roundtrip(&CpuSet::<4>::from_words(input.words), nbits);
});

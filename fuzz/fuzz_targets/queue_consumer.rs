//! A consumer attached to arbitrary region bytes (a buggy or hostile kernel) never panics, never loops
//! forever, and never writes anything but the ring's `tail`.
#![no_main]
use ghost_shm::abi;
use ghost_shm::queue::Consumer;
use ghost_shm::shm::OwnedRegion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, Vec<u8>)| {
    let (geometry, ops, bytes) = input;
    let len = if geometry & 0x80 != 0 {
        // An arbitrary (mostly wrong) length.
        (geometry as usize & 0x7f) * 64
    } else {
        abi::queue_mapsize(1 << (geometry % 8))
    };
    let r = OwnedRegion::new(len);
    r.fill_from(&bytes);
    let before = r.to_bytes();
    let Ok(mut c) = Consumer::attach(&r) else { return };
    for i in 0..(ops % 32) {
        match i % 4 {
            0 => {
                let _ = c.read();
            }
            1 => {
                if let Ok(Some(m)) = c.read_raw() {
                    let mut buf = [0u8; 64];
                    let _ = m.copy_payload(&mut buf);
                    let _ = m.decode();
                }
            }
            2 => {
                let _ = c.drain(|_| ());
            }
            _ => {
                c.release();
                let _ = c.new_overflows();
                let _ = c.has_pending();
            }
        }
    }
    let mut after = r.to_bytes();
    // Only the tail word (68..72) may differ.
    after[68..72].copy_from_slice(&before[68..72]);
    assert_eq!(after, before);
});

//! Arbitrary bytes → `Message::decode` never panics; where it succeeds, encoding the result reproduces the
//! message's bytes exactly (header and payload, padding included).
#![no_main]
use ghost_shm::abi::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Message::decode(data) {
        let w = d.message.to_wire(d.seqnum);
        let n = w.as_bytes().len();
        assert_eq!(w.as_bytes(), &data[..n]);
        assert_eq!(Message::decode(w.as_bytes()), Ok(d));
    }
});

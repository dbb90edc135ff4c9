//! Encode and decode of every ABI 91 message type (wire bytes ↔ typed `Message`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ghost_shm::abi::{Message, MsgType};
use std::hint::black_box;

fn messages() -> Vec<Message> {
    MsgType::ALL
        .iter()
        .filter_map(|&ty| {
            let len = Message::payload_len(ty)?;
            let payload: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(29).wrapping_add(3)).collect();
            Message::from_payload(ty, &payload).ok()
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let mut enc = c.benchmark_group("abi/encode");
    for m in messages() {
        enc.bench_with_input(BenchmarkId::from_parameter(m.msg_type().c_name()), &m, |b, m| {
            let mut out = [0u8; 64];
            b.iter(|| black_box(m).encode(black_box(7), &mut out))
        });
    }
    enc.finish();
    let mut dec = c.benchmark_group("abi/decode");
    for m in messages() {
        let wire = m.to_wire(7);
        dec.bench_with_input(BenchmarkId::from_parameter(m.msg_type().c_name()), &wire, |b, w| {
            b.iter(|| Message::decode(black_box(w.as_bytes())))
        });
    }
    dec.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_millis(500))
}

criterion_group!(name = benches; config = config(); targets = codec);
criterion_main!(benches);

//! The two-thread queue workloads, shared by `benches/queue.rs` (criterion) and `benches/queue_paired.rs`
//! (interleaved rounds). Each function moves `n` 40-byte messages (ghost-shm: a `MSG_TASK_YIELD`, 40-byte
//! payload, 48 bytes on the wire; peers: a `[u8; 40]`) and returns the elapsed time (one-way time for the
//! ping-pongs).
#![allow(dead_code)]

use ghost_shm::abi::{self, Message, PayloadTaskYield};
use ghost_shm::queue::{Consumer, Producer};
use ghost_shm::shm::{OwnedRegion, SharedMem, SharedMemRead, POLL_BACKOFF};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Capacity of the peers' queues.
pub const PEER_CAP: usize = 1024;
/// 1024 TASK_YIELD messages of 6 slots need 6144 slots: the next power of two.
pub const GHOST_SLOTS: u32 = 8192;

/// The message ghost-shm moves.
pub fn msg(i: u64) -> Message {
    Message::TaskYield(PayloadTaskYield { gtid: i, runtime: i, cpu_seqnum: i, cpu: 1, ..Default::default() })
}

/// The item the peers move.
pub fn item(i: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..8].copy_from_slice(&i.to_le_bytes());
    a
}

/// Runs `producer` on this thread and `consumer` on another; returns the elapsed time. Every consumer below
/// (ghost-shm's and the peers') executes one `spin_loop` hint per poll that found nothing, every producer one
/// per attempt that found the queue full (ghost-shm's producers check `Batch::has_room` rather than
/// attempting a produce, which would count an overflow).
pub fn two_threads(producer: impl FnOnce(), consumer: impl FnOnce() + Send + 'static) -> Duration {
    let t = std::thread::spawn(consumer);
    let start = Instant::now();
    producer();
    t.join().unwrap();
    start.elapsed()
}

/// A fresh queue on the heap: the kernel's producer and the agent's consumer.
pub fn ghost_pair() -> (Producer<Arc<OwnedRegion>>, Consumer<Arc<OwnedRegion>>) {
    ghost_pair_of(GHOST_SLOTS)
}

/// A fresh queue of `slots` slots.
pub fn ghost_pair_of(slots: u32) -> (Producer<Arc<OwnedRegion>>, Consumer<Arc<OwnedRegion>>) {
    ghost_pair_in(Arc::new(OwnedRegion::new(abi::queue_mapsize(slots))), slots)
}

/// A fresh queue of `slots` slots in `mem` (`abi::queue_mapsize(slots)` bytes).
pub fn ghost_pair_in<M: SharedMem + Clone>(mem: M, slots: u32) -> (Producer<M>, Consumer<M>) {
    (Producer::init(mem.clone(), slots).unwrap(), Consumer::attach(mem).unwrap())
}

/// The production backend with its 8-byte word-pair accesses turned off: every data word moves on its own
/// (the `SharedMem` default pair methods), as before word pairs existed. Measures what the pairs buy.
#[derive(Clone)]
pub struct WordAtATime(pub Arc<OwnedRegion>);

// SAFETY: every call is forwarded unchanged to the `OwnedRegion`, which upholds the contract; the pair methods
// are the trait's defaults, built on the forwarded word accesses.
unsafe impl SharedMemRead for WordAtATime {
    fn len(&self) -> usize {
        self.0.len()
    }
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.load_u32_relaxed(off) }
    }
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.load_u64_relaxed(off) }
    }
    unsafe fn read_data(&self, off: usize) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.read_data(off) }
    }
}

// SAFETY: as above.
unsafe impl SharedMem for WordAtATime {
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.load_u32(off, order) }
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.store_u32(off, val, order) }
    }
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        cur: u32,
        new: u32,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u32, u32> {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.compare_exchange_u32(off, cur, new, ok, err) }
    }
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.fetch_add_u32(off, val, order) }
    }
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.load_u64(off, order) }
    }
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.store_u64(off, val, order) }
    }
    unsafe fn write_data(&self, off: usize, val: u32) {
        // SAFETY: same contract, forwarded.
        unsafe { self.0.write_data(off, val) }
    }
}

/// A fresh `GHOST_SLOTS` queue whose backend moves one word per access.
pub fn ghost_pair_word_at_a_time() -> (Producer<WordAtATime>, Consumer<WordAtATime>) {
    ghost_pair_in(WordAtATime(Arc::new(OwnedRegion::new(abi::queue_mapsize(GHOST_SLOTS)))), GHOST_SLOTS)
}

/// ghost-shm, the producer publishing every message on its own (one head store each). `drain`: the consumer,
/// like an agent's loop, handles whatever is pending with `drain_lazy` (one tail store per quarter ring);
/// otherwise it pops one message at a time (a tail store per message, as the peers' pops do).
pub fn ghost_one(n: u64, drain: bool) -> Duration {
    let (p, cons) = ghost_pair();
    ghost_one_in(p, cons, n, drain)
}

/// [`ghost_one`] on a given queue (any backend).
pub fn ghost_one_in<M: SharedMem + Send + 'static>(
    mut p: Producer<M>,
    mut cons: Consumer<M>,
    n: u64,
    drain: bool,
) -> Duration {
    two_threads(
        || {
            for i in 0..n {
                let m = msg(i);
                // Wait for room without producing (a failed produce counts an overflow in the shared header:
                // the kernel drops rather than waits; a benchmark producer must wait).
                let mut b = p.batch_mut();
                while !b.has_room(m.payload_bytes().len()).unwrap() {
                    std::hint::spin_loop();
                }
                b.push(&m, i as u32).unwrap();
            }
        },
        move || {
            let mut got = 0;
            while got < n {
                let k = if drain {
                    cons.drain_lazy(|d| {
                        black_box(d);
                    })
                    .unwrap_or(0) as u64
                } else if let Ok(Some(d)) = cons.pop() {
                    black_box(d);
                    1
                } else {
                    0
                };
                got += k;
                if k == 0 {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// ghost-shm, batches of 16 messages published with one head store; the consumer drains.
pub fn ghost_batch16(n: u64) -> Duration {
    let (p, cons) = ghost_pair();
    ghost_batch16_in(p, cons, n)
}

/// [`ghost_batch16`] on a given queue (any backend).
pub fn ghost_batch16_in<M: SharedMem + Send + 'static>(mut p: Producer<M>, mut cons: Consumer<M>, n: u64) -> Duration {
    two_threads(
        || {
            let mut i = 0;
            while i < n {
                let mut batch = p.batch_mut();
                let end = (i + 16).min(n);
                while i < end {
                    let m = msg(i);
                    if !batch.has_room(m.payload_bytes().len()).unwrap() {
                        break;
                    }
                    batch.push(&m, i as u32).unwrap();
                    i += 1;
                }
                if batch.pending_slots() == 0 {
                    std::hint::spin_loop();
                }
                batch.publish();
            }
        },
        move || {
            let mut got = 0;
            while got < n {
                let k = cons
                    .drain_lazy(|d| {
                        black_box(d);
                    })
                    .unwrap_or(0) as u64;
                got += k;
                if k == 0 {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// `heapless::spsc::Queue`.
pub fn heapless(n: u64) -> Duration {
    let q: &'static mut heapless::spsc::Queue<[u8; 40], PEER_CAP> = Box::leak(Box::new(heapless::spsc::Queue::new()));
    let (mut prod, mut cons) = q.split();
    two_threads(
        move || {
            for i in 0..n {
                let mut it = item(i);
                while let Err(back) = prod.enqueue(it) {
                    it = back;
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut got = 0;
            while got < n {
                if let Some(x) = cons.dequeue() {
                    black_box(x);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// `rtrb::RingBuffer`.
pub fn rtrb(n: u64) -> Duration {
    let (mut prod, mut cons) = rtrb::RingBuffer::<[u8; 40]>::new(PEER_CAP);
    two_threads(
        move || {
            for i in 0..n {
                let it = item(i);
                while prod.push(it).is_err() {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut got = 0;
            while got < n {
                if let Ok(x) = cons.pop() {
                    black_box(x);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// `crossbeam_queue::ArrayQueue`.
pub fn crossbeam_array(n: u64) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<[u8; 40]>::new(PEER_CAP));
    let q2 = q.clone();
    two_threads(
        move || {
            for i in 0..n {
                let mut it = item(i);
                while let Err(back) = q.push(it) {
                    it = back;
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut got = 0;
            while got < n {
                if let Some(x) = q2.pop() {
                    black_box(x);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

#[repr(align(128))]
struct Line(AtomicU64);

/// Two `AtomicU64`s on their own cache lines, bounced between two threads: one-way time. Each side pauses
/// `POLL_BACKOFF` spin hints between polls, as ghost-shm's spinning wait does.
pub fn pingpong_raw(n: u64) -> Duration {
    let ping = Arc::new(Line(AtomicU64::new(0)));
    let pong = Arc::new(Line(AtomicU64::new(0)));
    let (pi, po) = (ping.clone(), pong.clone());
    let t = std::thread::spawn(move || {
        for i in 1..=n {
            while pi.0.load(Ordering::Acquire) != i {
                for _ in 0..POLL_BACKOFF {
                    std::hint::spin_loop();
                }
            }
            po.0.store(i, Ordering::Release);
        }
    });
    let start = Instant::now();
    for i in 1..=n {
        ping.0.store(i, Ordering::Release);
        while pong.0.load(Ordering::Acquire) != i {
            for _ in 0..POLL_BACKOFF {
                std::hint::spin_loop();
            }
        }
    }
    let e = start.elapsed();
    t.join().unwrap();
    e / 2
}

/// Round trips between two threads over two ghost queues of `slots` slots; one-way time. `release_late`: an
/// agent's order of work (read the message, act on it, here: answer, then hand the slots back), which takes the
/// tail store off the critical path (the rings must hold two messages); otherwise `read` + `release` before
/// answering (one message suffices: with 8 slots every 48-byte message lands in slot 0, in `head`'s line). Each side waits with
/// `Consumer::spin_until_pending` (pauses between polls, like the raw ping-pong's).
pub fn pingpong_ghost(n: u64, slots: u32, release_late: bool) -> Duration {
    let (mut p_ab, mut c_ab) = ghost_pair_of(slots);
    let (mut p_ba, mut c_ba) = ghost_pair_of(slots);
    let t = std::thread::spawn(move || {
        for _ in 0..n {
            loop {
                c_ab.spin_until_pending(u32::MAX).unwrap();
                if let Ok(Some(d)) = c_ab.read() {
                    if !release_late {
                        c_ab.release();
                    }
                    p_ba.produce_mut(&d.message, d.seqnum).unwrap();
                    c_ab.release();
                    break;
                }
            }
        }
    });
    let start = Instant::now();
    for i in 0..n {
        p_ab.produce_mut(&msg(i), i as u32).unwrap();
        // The previous answer's slots are handed back once this message is out.
        c_ba.release();
        loop {
            c_ba.spin_until_pending(u32::MAX).unwrap();
            if let Ok(Some(d)) = c_ba.read() {
                if !release_late {
                    c_ba.release();
                }
                black_box(d);
                break;
            }
        }
    }
    let e = start.elapsed();
    t.join().unwrap();
    e / 2
}

/// One direction of [`pingpong_layout_floor`]: the ABI 91 ring layout (head at 64, tail at 68, 8-byte slots
/// from 76) written and read with no validation, no decoding and no overflow accounting: the least any
/// implementation of the wire format does per message.
struct FloorRing<'a> {
    mem: ghost_shm::shm::RawRegion<'a>,
    mask: u32,
    pos: u32,
}

const FLOOR_SLOTS: u32 = 6;

impl FloorRing<'_> {
    /// Byte offset of the slot at free-running position `p`.
    fn slot(&self, p: u32) -> usize {
        abi::QUEUE_SLOTS_OFFSET + 8 * (p & self.mask) as usize
    }

    /// Writes a 48-byte message (a NOP first where it would cross the end of the array), then publishes head.
    fn send(&mut self, words: &[u32; 12]) {
        use ghost_shm::shm::SharedMem;
        let ahead = self.mask + 1 - (self.pos & self.mask);
        // SAFETY: every offset is a 4-aligned slot word inside the region (slot < nelems), or head (64).
        unsafe {
            if ahead < FLOOR_SLOTS {
                let nop = abi::encode_header(abi::MSG_NOP, (ahead * 8) as u16, 0);
                self.mem.write_data(self.slot(self.pos), u32::from_ne_bytes([nop[0], nop[1], nop[2], nop[3]]));
                self.pos = self.pos.wrapping_add(ahead);
            }
            let base = self.slot(self.pos);
            for (i, w) in words.iter().enumerate() {
                self.mem.write_data(base + 4 * i, *w);
            }
            self.pos = self.pos.wrapping_add(FLOOR_SLOTS);
            self.mem.store_u32(64, self.pos, Ordering::Release);
        }
    }

    /// Waits (pausing between polls) for head to move, reads the next message's 12 words (after stepping over
    /// the NOP the writer put where a message would cross the end), and returns them.
    fn recv(&mut self) -> [u32; 12] {
        use ghost_shm::shm::SharedMem;
        // SAFETY: as in `send`.
        unsafe {
            while self.mem.load_u32(64, Ordering::Acquire) == self.pos {
                for _ in 0..POLL_BACKOFF {
                    std::hint::spin_loop();
                }
            }
            // Every message is 6 slots, so the reader knows where the writer put a NOP without reading it.
            let ahead = self.mask + 1 - (self.pos & self.mask);
            if ahead < FLOOR_SLOTS {
                self.pos = self.pos.wrapping_add(ahead);
            }
            let base = self.slot(self.pos);
            let mut out = [0u32; 12];
            for (i, w) in out.iter_mut().enumerate() {
                *w = self.mem.read_data(base + 4 * i);
            }
            self.pos = self.pos.wrapping_add(FLOOR_SLOTS);
            out
        }
    }

    /// Hands everything read back (tail store).
    fn release(&self) {
        use ghost_shm::shm::SharedMem;
        // SAFETY: tail (68) is in bounds and 4-aligned.
        unsafe { self.mem.store_u32(68, self.pos, Ordering::Release) };
    }
}

/// The floor for [`pingpong_ghost`]: the same exchange (48-byte messages through two `GHOST_SLOTS` rings in the
/// ABI layout, answer then release) with [`FloorRing`]'s unchecked code. Its ratio to [`pingpong_raw`] is
/// what the ring layout itself costs: the message lives in other cache lines than `head`, so a hop moves the
/// `head` line and then the message's lines.
pub fn pingpong_layout_floor(n: u64) -> Duration {
    // A scoped thread: both rings borrow the regions, which outlive the scope.
    let (ab, ba) =
        (OwnedRegion::new(abi::queue_mapsize(GHOST_SLOTS)), OwnedRegion::new(abi::queue_mapsize(GHOST_SLOTS)));
    fn ring(r: &OwnedRegion) -> FloorRing<'_> {
        FloorRing { mem: r.raw(), mask: GHOST_SLOTS - 1, pos: 0 }
    }
    let (mut tx_ab, mut rx_ab, mut tx_ba, mut rx_ba) = (ring(&ab), ring(&ab), ring(&ba), ring(&ba));
    let e = std::thread::scope(|scope| {
        scope.spawn(move || {
            for _ in 0..n {
                let m = rx_ab.recv();
                tx_ba.send(&m);
                rx_ab.release();
            }
        });
        let start = Instant::now();
        for i in 0..n {
            let mut m = [0u32; 12];
            m[2] = i as u32;
            tx_ab.send(&m);
            rx_ba.release();
            black_box(rx_ba.recv());
        }
        start.elapsed()
    });
    e / 2
}

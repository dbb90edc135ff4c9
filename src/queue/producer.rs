//! The kernel-side producer: exactly the ghOSt kernel's produce algorithm (§3.3).

use super::{check_geometry, slot_off, Notify, QueueError, HEAD, OVERFLOW, SLOT, TAIL};
use crate::abi::{self, encode_header, Message, MSG_HEADER_LEN, MSG_NOP};
use crate::shm::SharedMem;
use crate::sync::{Lock, LockGuard};
use core::mem::ManuallyDrop;
use core::sync::atomic::Ordering;

/// Ordering of the head publish. `cfg(ghost_shm_weaken)` weakens it to `Relaxed` so that the loom models can
/// show they catch a missing Release (see `tests/loom_queue.rs`); never enable it otherwise.
#[cfg(not(ghost_shm_weaken))]
const HEAD_PUBLISH: Ordering = Ordering::Release;
#[cfg(ghost_shm_weaken)]
const HEAD_PUBLISH: Ordering = Ordering::Relaxed;

/// Why a message was not produced. Every variant except [`TooLong`](ProduceError::TooLong) also increments
/// the ring's `overflow` counter, so the agent learns about the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceError {
    /// No room for the message (the kernel's `EOVERFLOW`): it was dropped and `overflow` incremented.
    Full,
    /// The agent-written `tail` makes `head − tail > nelems`: the ring is corrupt. Nothing was written.
    CorruptTail {
        /// The producer's head.
        head: u32,
        /// The tail read from the ring.
        tail: u32,
    },
    /// Header + payload exceed 65535 bytes (the kernel's `EINVAL`). Not counted as an overflow.
    TooLong(usize),
}

impl core::fmt::Display for ProduceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ProduceError::Full => f.write_str("queue full: message dropped, overflow incremented"),
            ProduceError::CorruptTail { head, tail } => {
                write!(f, "queue tail {tail} corrupt (head {head}): message dropped, overflow incremented")
            }
            ProduceError::TooLong(n) => write!(f, "message of {n} bytes exceeds 65535"),
        }
    }
}

/// Producer state, private to the kernel and protected by the queue lock.
#[derive(Debug)]
struct State {
    /// Our head: the only authoritative copy (the shared one is written, never read).
    head: u32,
    /// The head last published (the most the agent can have seen and released).
    published: u32,
    /// Last validated agent tail; refreshed only when it says the ring is full.
    cached_tail: u32,
    /// Our overflow count (the shared one is written, never read).
    overflow: u32,
}

/// The kernel side of one queue. `Sync`: any number of CPUs may produce into it at once; they serialize on a
/// per-queue spin lock, as the ghOSt kernel does.
///
/// It keeps its own copies of `nelems`, `head` and `overflow` and never trusts the writable mapping for them.
pub struct Producer<M: SharedMem, N: Notify = ()> {
    mem: M,
    nelems: u32,
    mask: u32,
    state: Lock<State>,
    notify: N,
}

impl<M: SharedMem> Producer<M> {
    /// Initialises a queue region of `nelems` slots (a power of two in 1..=65536) like `GHOST_IOC_CREATE_QUEUE`:
    /// header {version 0, start 64, nelems}, head = tail = overflow = 0. `mem.len()` must be
    /// [`abi::queue_mapsize`]`(nelems)`.
    pub fn init(mem: M, nelems: u32) -> Result<Self, QueueError> {
        let mask = check_geometry(nelems, mem.len())?;
        // SAFETY: check_geometry proved mem.len() >= 76 + 8·nelems, so offsets 0..76 are in bounds; all are
        // 4-aligned. Relaxed: the region is handed to the agent afterwards through a channel (mmap, a thread
        // spawn) that synchronizes by itself.
        unsafe {
            mem.store_u32(0, abi::GHOST_QUEUE_VERSION, Ordering::Relaxed);
            mem.store_u32(4, abi::QUEUE_RING_OFFSET as u32, Ordering::Relaxed);
            mem.store_u32(8, nelems, Ordering::Relaxed);
            mem.store_u32(HEAD, 0, Ordering::Relaxed);
            mem.store_u32(TAIL, 0, Ordering::Relaxed);
            mem.store_u32(OVERFLOW, 0, Ordering::Relaxed);
        }
        Ok(Producer {
            mem,
            nelems,
            mask,
            state: Lock::new(State { head: 0, published: 0, cached_tail: 0, overflow: 0 }),
            notify: (),
        })
    }
}

impl<M: SharedMem, N: Notify> Producer<M, N> {
    /// The same producer, calling `notify` after each publish (e.g. to wake the agent).
    pub fn with_notify<N2: Notify>(self, notify: N2) -> Producer<M, N2> {
        Producer { mem: self.mem, nelems: self.nelems, mask: self.mask, state: self.state, notify }
    }

    /// Number of slots.
    pub fn nelems(&self) -> u32 {
        self.nelems
    }

    /// Messages dropped so far (the producer's own count; the ring's `overflow` mirrors it).
    pub fn overflow_count(&self) -> u32 {
        self.state.lock().overflow
    }

    /// The region.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notify
    }

    /// Produces one message with `seqnum` and publishes it (one Release store of head), then notifies.
    pub fn produce(&self, msg: &Message, seqnum: u32) -> Result<(), ProduceError> {
        self.batch().push(msg, seqnum)
    }

    /// Produces a message given as type + payload bytes (e.g. a type this crate does not know).
    pub fn produce_raw(&self, ty: u16, seqnum: u32, payload: &[u8]) -> Result<(), ProduceError> {
        self.batch().push_raw(ty, seqnum, payload)
    }

    /// Starts a batch: messages pushed into it become visible together, with one head publish, when it is
    /// published or dropped. Holds the queue lock until then.
    pub fn batch(&self) -> Batch<'_, M, N> {
        let guard = self.state.lock();
        let start = guard.head;
        Batch { ring: self.ring(), notify: &self.notify, state: StateRef::Locked(ManuallyDrop::new(guard)), start }
    }

    /// Like [`batch`](Producer::batch) for a producer this CPU owns exclusively (`&mut`): no lock at all, the
    /// single-producer fast path.
    pub fn batch_mut(&mut self) -> Batch<'_, M, N> {
        let Producer { mem, nelems, mask, state, notify } = self;
        let state = state.get_mut();
        let start = state.head;
        Batch { ring: Ring { mem, nelems: *nelems, mask: *mask }, notify, state: StateRef::Exclusive(state), start }
    }

    /// [`produce`](Producer::produce) without the lock, for an exclusively owned producer.
    pub fn produce_mut(&mut self, msg: &Message, seqnum: u32) -> Result<(), ProduceError> {
        self.batch_mut().push(msg, seqnum)
    }

    fn ring(&self) -> Ring<'_, M> {
        Ring { mem: &self.mem, nelems: self.nelems, mask: self.mask }
    }
}

/// A message's wire length (header + payload) and the slots it takes, or `TooLong` beyond 65535 bytes.
#[inline]
fn wire_size(payload_len: usize) -> Result<(u16, u32), ProduceError> {
    // Saturating: a slice this long is refused as TooLong, without an overflow check to panic in.
    let len = payload_len.saturating_add(MSG_HEADER_LEN);
    match u16::try_from(len) {
        Ok(l) => Ok((l, len.div_ceil(SLOT) as u32)),
        Err(_) => Err(ProduceError::TooLong(len)),
    }
}

/// The producer's view of the shared ring: its private `nelems`/mask and the memory.
struct Ring<'a, M: SharedMem> {
    mem: &'a M,
    nelems: u32,
    mask: u32,
}

impl<M: SharedMem> Ring<'_, M> {
    /// Free-space split for `head`/`tail`: `(ahead, behind)` slots, as the kernel computes it.
    #[inline]
    fn space(&self, head: u32, tail: u32) -> Option<(u32, u32)> {
        let used = head.wrapping_sub(tail);
        if used > self.nelems {
            return None;
        }
        if used == self.nelems {
            return Some((0, 0));
        }
        let hi = head & self.mask;
        let ti = tail & self.mask;
        // hi, ti < nelems and ti > hi in the second arm: neither subtraction can wrap.
        Some(if ti <= hi { (self.nelems.wrapping_sub(hi), ti) } else { (ti.wrapping_sub(hi), 0) })
    }

    fn count_overflow(&self, s: &mut State) {
        s.overflow = s.overflow.wrapping_add(1);
        // Release pairs with the consumer's Acquire load of overflow: an agent that sees the count also sees
        // every message published before the drop.
        // SAFETY: OVERFLOW (72) is in bounds (check_geometry) and 4-aligned.
        unsafe { self.mem.store_u32(OVERFLOW, s.overflow, Ordering::Release) };
    }

    /// If `need` slots fit, the free slots ahead of head (before the end of the array; fewer than `need` means
    /// a wrap to slot 0); `None` if they do not fit. Counts nothing. The cached tail answers when it can;
    /// otherwise the agent-written tail is read exactly once and validated.
    #[inline]
    fn room_for(&self, s: &mut State, need: u32) -> Result<Option<u32>, ProduceError> {
        // The cached tail was validated when read and only our head moved since, so this cannot fail.
        let (ahead, behind) = self.space(s.head, s.cached_tail).unwrap_or((0, 0));
        if ahead >= need || behind >= need {
            return Ok(Some(ahead));
        }
        // Acquire pairs with the consumer's Release store of tail: its reads of the slots we are about to reuse
        // happen before our writes.
        // SAFETY: TAIL (68) is in bounds (check_geometry) and 4-aligned.
        let tail = unsafe { self.mem.load_u32(TAIL, Ordering::Acquire) };
        // A tail beyond the published head releases messages the agent cannot have seen (e.g. earlier,
        // unpublished messages of this batch): as corrupt as one too far behind.
        match self.space(s.head, tail).filter(|_| s.published.wrapping_sub(tail) <= self.nelems) {
            Some((ahead, behind)) => {
                s.cached_tail = tail;
                Ok((ahead >= need || behind >= need).then_some(ahead))
            }
            None => Err(ProduceError::CorruptTail { head: s.head, tail }),
        }
    }

    /// Writes one message at `s.head` (not yet published). The algorithm of §3.3, steps 1 and 3–6.
    #[inline]
    fn write(&self, s: &mut State, ty: u16, seqnum: u32, payload: &[u8]) -> Result<(), ProduceError> {
        let (len, need) = wire_size(payload.len())?;
        let ahead = match self.room_for(s, need).and_then(|room| room.ok_or(ProduceError::Full)) {
            Ok(ahead) => ahead,
            Err(e) => {
                self.count_overflow(s);
                return Err(e);
            }
        };
        if ahead < need {
            // Wrap: a NOP covers the gap to the end of the array (seqnum left stale, as the kernel does).
            // ahead < need <= 8192, so ahead * 8 fits the u16 length.
            let nop = encode_header(MSG_NOP, (ahead as usize * SLOT) as u16, 0);
            // SAFETY: head & mask < nelems, so the slot is in bounds (check_geometry); slots are 4-aligned.
            unsafe {
                self.mem.write_data(slot_off(s.head & self.mask), u32::from_ne_bytes([nop[0], nop[1], nop[2], nop[3]]))
            };
            s.head = s.head.wrapping_add(ahead);
        }
        let idx = s.head & self.mask;
        // INVARIANT: idx + need <= nelems (either ahead >= need from idx, or idx == 0 and behind >= need).
        let base = slot_off(idx);
        let h = encode_header(ty, len, seqnum);
        // The header's first word sits at 4 mod 8 (slots start at byte 76), so the words after it (seqnum,
        // then the payload) go out as 8-aligned pairs: `carry` is the word waiting for its pair's second half.
        // SAFETY: by the invariant above, base .. base + 8·need is inside the slot array, hence inside the
        // region (check_geometry). base is 4 mod 8, so every `off` below is 8-aligned (pairs) and 4-aligned;
        // the last word written ends at base + 8 + (payload length rounded up to 4) <= base + 8·need.
        unsafe {
            self.mem.write_data(base, u32::from_ne_bytes([h[0], h[1], h[2], h[3]]));
            let mut off = base.wrapping_add(4);
            let mut carry = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
            let mut chunks = payload.chunks_exact(8);
            for c in &mut chunks {
                let a = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                self.mem.write_data_pair(off, [carry, a]);
                carry = u32::from_ne_bytes([c[4], c[5], c[6], c[7]]);
                off = off.wrapping_add(8);
            }
            // 0..=7 bytes left: zero-padded to whole words.
            let r = chunks.remainder();
            let mut w = [0u8; 8];
            w[..r.len()].copy_from_slice(r);
            let (a, b) = (u32::from_ne_bytes([w[0], w[1], w[2], w[3]]), u32::from_ne_bytes([w[4], w[5], w[6], w[7]]));
            if r.is_empty() {
                self.mem.write_data(off, carry);
            } else {
                self.mem.write_data_pair(off, [carry, a]);
                if r.len() > 4 {
                    self.mem.write_data(off.wrapping_add(8), b);
                }
            }
        }
        s.head = s.head.wrapping_add(need);
        Ok(())
    }
}

/// The producer state a batch works on: behind the queue lock, or borrowed exclusively.
enum StateRef<'a> {
    // Dropped exactly once, in `Batch`'s `Drop`, between the head publish and the notification.
    Locked(ManuallyDrop<LockGuard<'a, State>>),
    Exclusive(&'a mut State),
}

impl StateRef<'_> {
    #[inline(always)]
    fn get(&mut self) -> &mut State {
        match self {
            StateRef::Locked(g) => g,
            StateRef::Exclusive(s) => s,
        }
    }
}

/// Messages produced together and published with one Release store of head (see [`Producer::batch`]).
pub struct Batch<'a, M: SharedMem, N: Notify> {
    ring: Ring<'a, M>,
    notify: &'a N,
    state: StateRef<'a>,
    start: u32,
}

impl<M: SharedMem, N: Notify> Batch<'_, M, N> {
    /// Writes `msg` with `seqnum` into the ring (visible when the batch is published). On error nothing of
    /// this message was written and, except for [`ProduceError::TooLong`], `overflow` was incremented.
    #[inline]
    pub fn push(&mut self, msg: &Message, seqnum: u32) -> Result<(), ProduceError> {
        self.ring.write(self.state.get(), msg.msg_type() as u16, seqnum, msg.payload_bytes())
    }

    /// Like [`push`](Batch::push) for a raw type and payload.
    pub fn push_raw(&mut self, ty: u16, seqnum: u32, payload: &[u8]) -> Result<(), ProduceError> {
        self.ring.write(self.state.get(), ty, seqnum, payload)
    }

    /// Whether a message with `payload_len` payload bytes would fit now, without producing anything and without
    /// counting an overflow (re-reads the agent's `tail`, once, only if the cached one says the ring is full).
    /// For producers that may wait for room (simulations, tests, benchmarks); the kernel's produce never waits,
    /// it drops the message and counts the overflow.
    ///
    /// ```
    /// # use ghost_shm::{abi::{self, Message, PayloadCpuTick}, queue::Producer, shm::OwnedRegion};
    /// let mut p = Producer::init(OwnedRegion::new(abi::queue_mapsize(2)), 2).unwrap();
    /// let tick = Message::CpuTick(PayloadCpuTick { cpu: 1, is_agent: 0 });
    /// let mut b = p.batch_mut();
    /// assert_eq!(b.has_room(tick.payload_bytes().len()), Ok(true));
    /// b.push(&tick, 1).unwrap();
    /// assert_eq!(b.has_room(tick.payload_bytes().len()), Ok(false)); // both slots used, nothing released
    /// drop(b);
    /// assert_eq!(p.overflow_count(), 0);
    /// ```
    pub fn has_room(&mut self, payload_len: usize) -> Result<bool, ProduceError> {
        let (_, need) = wire_size(payload_len)?;
        Ok(self.ring.room_for(self.state.get(), need)?.is_some())
    }

    /// Slots written by this batch so far (NOP padding included).
    pub fn pending_slots(&mut self) -> u32 {
        self.state.get().head.wrapping_sub(self.start)
    }

    /// Publishes everything pushed (one Release store of head), releases the lock, then notifies if anything
    /// was pushed. Dropping the batch does the same.
    pub fn publish(self) {}
}

impl<M: SharedMem, N: Notify> Drop for Batch<'_, M, N> {
    #[inline]
    fn drop(&mut self) {
        let head = self.state.get().head;
        let n = head.wrapping_sub(self.start);
        if n != 0 {
            // Release pairs with the consumer's Acquire load of head: every slot written above happens before
            // the consumer's reads of them.
            // SAFETY: HEAD (64) is in bounds (check_geometry) and 4-aligned.
            unsafe { self.ring.mem.store_u32(HEAD, head, HEAD_PUBLISH) };
            self.state.get().published = head;
        }
        if let StateRef::Locked(g) = &mut self.state {
            // SAFETY: the guard is not used after this point and this is the only place it is dropped.
            unsafe { ManuallyDrop::drop(g) };
        }
        if n != 0 {
            // Outside the lock, as the kernel wakes the agent after unlocking the queue.
            self.notify.notify();
        }
    }
}

impl<M: SharedMem, N: Notify> core::fmt::Debug for Producer<M, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer").field("nelems", &self.nelems).finish()
    }
}

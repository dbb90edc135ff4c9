//! The agent-side consumer (§3.4): one per queue, `Send` but neither `Sync` nor `Clone`.

use super::{check_geometry, slot_off, QueueError, HEAD, OVERFLOW, SLOT, TAIL};
use crate::abi::{self, decode_header, DecodeError, Decoded, Message, MSG_HEADER_LEN, MSG_NOP};
use crate::shm::SharedMem;
use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::Ordering;

/// What the consumer found wrong in the ring. Framing errors ([`CorruptHead`](ConsumeError::CorruptHead),
/// [`BadLength`](ConsumeError::BadLength)) leave the read position where it was; an
/// [`Undecodable`](ConsumeError::Undecodable) message is well framed and has been stepped over, so reading
/// can continue after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeError {
    /// `head` moved backwards or more than `nelems` ahead of `tail`.
    CorruptHead {
        /// head read.
        head: u32,
        /// our released tail.
        tail: u32,
    },
    /// A message's `length` is below 8, crosses the end of the array, or exceeds what was published.
    BadLength {
        /// Free-running slot position of the message.
        at: u32,
        /// Its type.
        ty: u16,
        /// Its length.
        length: u16,
    },
    /// A well-framed message that is no ABI 91 message (unknown type, or a length that does not match its type).
    Undecodable {
        /// Its seqnum.
        seqnum: u32,
        /// Why.
        error: DecodeError,
    },
}

impl core::fmt::Display for ConsumeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ConsumeError::CorruptHead { head, tail } => write!(f, "queue head {head} corrupt (tail {tail})"),
            ConsumeError::BadLength { at, ty, length } => {
                write!(f, "message at slot {at} (type {ty}) has invalid length {length}")
            }
            ConsumeError::Undecodable { seqnum, error } => write!(f, "undecodable message (seqnum {seqnum}): {error}"),
        }
    }
}

/// Location and header of a well-framed, non-NOP message.
#[derive(Debug, Clone, Copy)]
struct Frame {
    idx: u32,
    ty: u16,
    length: u16,
    seqnum: u32,
    /// The payload's first word, read together with `seqnum` (zero for a payload shorter than 4 bytes).
    first: u32,
}

/// The agent side of one queue.
///
/// Reading advances a private cursor; [`release`](Consumer::release) hands everything read so far back to the
/// producer with one Release store of `tail`. The other side's `head` is cached and re-read (Acquire) only
/// when the cache says the ring is empty.
pub struct Consumer<M: SharedMem> {
    mem: M,
    nelems: u32,
    mask: u32,
    /// The tail we last stored (the shared one is ours; we never re-read it).
    tail: u32,
    /// Read cursor: tail ≤ read ≤ cached_head (free-running).
    read: u32,
    cached_head: u32,
    seen_overflow: u32,
    /// One consumer per queue: `Send` but not `Sync`.
    _not_sync: PhantomData<Cell<()>>,
}

impl<M: SharedMem> Consumer<M> {
    /// Attaches to a queue region: validates the header against the mapping (version, start, nelems a power
    /// of two in 1..=65536, length = PAGE_ALIGN(76 + 8·nelems)) and `head − tail ≤ nelems`, and resumes at the
    /// ring's current `tail` (so a new agent continues where the previous one stopped).
    pub fn attach(mem: M) -> Result<Self, QueueError> {
        if mem.len() < abi::QUEUE_SLOTS_OFFSET {
            return Err(QueueError::LengthMismatch { expected: abi::PAGE_SIZE, actual: mem.len() });
        }
        // SAFETY: len >= 76 (checked above), so offsets 0..76 are in bounds; all 4-aligned.
        let (version, start, nelems) = unsafe {
            (mem.load_u32(0, Ordering::Relaxed), mem.load_u32(4, Ordering::Relaxed), mem.load_u32(8, Ordering::Relaxed))
        };
        if version != abi::GHOST_QUEUE_VERSION {
            return Err(QueueError::BadVersion(version));
        }
        if start as usize != abi::QUEUE_RING_OFFSET {
            return Err(QueueError::BadStart(start));
        }
        let mask = check_geometry(nelems, mem.len())?;
        // Acquire pairs with the producer's Release store of head (messages published before we attached).
        // SAFETY: HEAD/TAIL/OVERFLOW (64..76) are in bounds (len >= 76) and 4-aligned.
        let (head, tail) = unsafe { (mem.load_u32(HEAD, Ordering::Acquire), mem.load_u32(TAIL, Ordering::Relaxed)) };
        if head.wrapping_sub(tail) > nelems {
            return Err(QueueError::Corrupt { head, tail });
        }
        Ok(Consumer {
            mem,
            nelems,
            mask,
            tail,
            read: tail,
            cached_head: head,
            seen_overflow: 0,
            _not_sync: PhantomData,
        })
    }

    /// Number of slots.
    pub fn nelems(&self) -> u32 {
        self.nelems
    }

    /// The region.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Re-reads head (Acquire) and validates it.
    fn refresh_head(&mut self) -> Result<u32, ConsumeError> {
        // Acquire pairs with the producer's Release store of head: the slots it published are visible.
        // SAFETY: HEAD is in bounds (validated at attach) and 4-aligned.
        let head = unsafe { self.mem.load_u32(HEAD, Ordering::Acquire) };
        let used = head.wrapping_sub(self.tail);
        if used > self.nelems || used < self.read.wrapping_sub(self.tail) {
            return Err(ConsumeError::CorruptHead { head, tail: self.tail });
        }
        self.cached_head = head;
        Ok(head)
    }

    /// Whether a message (or NOP padding) is waiting; refreshes the cached head if needed.
    pub fn has_pending(&mut self) -> Result<bool, ConsumeError> {
        if self.read != self.cached_head {
            return Ok(true);
        }
        Ok(self.refresh_head()? != self.read)
    }

    /// Spins until a message (or padding) is pending, polling up to `max_polls + 1` times with
    /// [`POLL_BACKOFF`](crate::shm::POLL_BACKOFF) spin hints of the backend between polls; `Ok(false)` if
    /// nothing came. For an agent that spins rather than sleeps (the `std` wake-up helpers sleep instead).
    pub fn spin_until_pending(&mut self, max_polls: u32) -> Result<bool, ConsumeError> {
        let mut polls = 0;
        loop {
            if self.has_pending()? {
                return Ok(true);
            }
            if polls == max_polls {
                return Ok(false);
            }
            polls += 1;
            for _ in 0..crate::shm::POLL_BACKOFF {
                self.mem.spin_hint();
            }
        }
    }

    /// The next well-framed non-NOP message at the read cursor (NOPs are stepped over). Does not advance past it.
    fn next_frame(&mut self) -> Result<Option<Frame>, ConsumeError> {
        // Each iteration steps over at least one slot of published NOP padding, so nelems + 1 bounds the loop.
        for _ in 0..=self.nelems {
            if self.read == self.cached_head && self.refresh_head()? == self.read {
                return Ok(None);
            }
            let avail = self.cached_head.wrapping_sub(self.read);
            let idx = self.read & self.mask;
            // SAFETY: idx < nelems, so the slot is in bounds (validated at attach); 4-aligned.
            let w0 = unsafe { self.mem.read_data(slot_off(idx)) }.to_ne_bytes();
            let (ty, length, _) = decode_header([w0[0], w0[1], w0[2], w0[3], 0, 0, 0, 0]);
            // 32-bit arithmetic, so length 65535 rounds up correctly.
            let slots = (length as u32).div_ceil(SLOT as u32);
            if (length as usize) < MSG_HEADER_LEN || idx + slots > self.nelems || slots > avail {
                return Err(ConsumeError::BadLength { at: self.read, ty, length });
            }
            if ty == MSG_NOP {
                self.read = self.read.wrapping_add(slots);
                continue;
            }
            // The producer stored the seqnum and the payload's first word as one 8-aligned pair (slots start at
            // 4 mod 8); loading them the same way lets a load on the producing CPU forward from that store.
            // SAFETY: idx < nelems; slot_off(idx) + 4 is 8-aligned and the pair ends at slot_off(idx) + 12,
            // inside the message (length >= 12) and so inside its checked slots; else one word of the header.
            let [seqnum, first] = unsafe {
                if length as usize >= MSG_HEADER_LEN + 4 {
                    self.mem.read_data_pair(slot_off(idx) + 4)
                } else {
                    [self.mem.read_data(slot_off(idx) + 4), 0]
                }
            };
            return Ok(Some(Frame { idx, ty, length, seqnum, first }));
        }
        Ok(None)
    }

    fn step_over(&mut self, f: &Frame) {
        self.read = self.read.wrapping_add((f.length as u32).div_ceil(SLOT as u32));
    }

    #[inline]
    fn decode_frame(&self, f: &Frame) -> Result<Decoded, ConsumeError> {
        let base = slot_off(f.idx) + MSG_HEADER_LEN;
        // One copy, straight from the ring's words into the payload struct. The payload starts at 4 mod 8
        // (slots start at byte 76): its first word came with the seqnum (next_frame), then come 8-aligned word
        // pairs and a last word, exactly the producer's stores.
        let message = Message::build_checked(f.ty, f.length, |out| {
            let Some((first, rest)) = out.split_first_chunk_mut::<4>() else { return };
            // SAFETY: next_frame checked idx + ceil(length/8) <= nelems, and build_checked only calls us once
            // length == 8 + out.len(), so every word read (base .. base + out.len() rounded up to 4) lies in the
            // message's slots, in bounds (validated at attach); base is 4-aligned and base + 4 is 8-aligned, so
            // every pair offset below is 8-aligned.
            unsafe {
                *first = f.first.to_ne_bytes();
                let mut off = base + 4;
                let mut pairs = rest.chunks_exact_mut(8);
                for dst in &mut pairs {
                    let [a, b] = self.mem.read_data_pair(off);
                    dst[..4].copy_from_slice(&a.to_ne_bytes());
                    dst[4..].copy_from_slice(&b.to_ne_bytes());
                    off += 8;
                }
                let tail = pairs.into_remainder();
                if !tail.is_empty() {
                    let [a, b] =
                        if tail.len() > 4 { self.mem.read_data_pair(off) } else { [self.mem.read_data(off), 0] };
                    let (a, b) = (a.to_ne_bytes(), b.to_ne_bytes());
                    let w = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
                    tail.copy_from_slice(&w[..tail.len()]);
                }
            }
        })
        .map_err(|error| ConsumeError::Undecodable { seqnum: f.seqnum, error })?;
        Ok(Decoded { seqnum: f.seqnum, message })
    }

    /// Reads the next message (skipping NOPs) and advances the read cursor past it. The slots stay owned by the
    /// agent until [`release`](Consumer::release). `Ok(None)`: nothing pending.
    pub fn read(&mut self) -> Result<Option<Decoded>, ConsumeError> {
        let Some(f) = self.next_frame()? else { return Ok(None) };
        self.step_over(&f);
        self.decode_frame(&f).map(Some)
    }

    /// Like [`read`](Consumer::read), but returns a raw view (type, length, seqnum, payload copy on demand),
    /// for types this crate does not decode.
    pub fn read_raw(&mut self) -> Result<Option<RawMessage<'_, M>>, ConsumeError> {
        let Some(f) = self.next_frame()? else { return Ok(None) };
        self.step_over(&f);
        Ok(Some(RawMessage { consumer: self, frame: f }))
    }

    /// Hands every slot read so far back to the producer: one Release store of `tail`.
    pub fn release(&mut self) {
        if self.read != self.tail {
            // Release pairs with the producer's Acquire load of tail: our reads of the slots happen before
            // the producer reuses them.
            // SAFETY: TAIL is in bounds (validated at attach) and 4-aligned.
            unsafe { self.mem.store_u32(TAIL, self.read, Ordering::Release) };
            self.tail = self.read;
        }
    }

    /// [`read`](Consumer::read) then [`release`](Consumer::release).
    pub fn pop(&mut self) -> Result<Option<Decoded>, ConsumeError> {
        let r = self.read();
        self.release();
        r
    }

    /// Reads every pending message into `f`, then releases them all with one store of `tail`. Returns how many
    /// messages were handled. On an error, what was read before it (and an undecodable message itself) is
    /// released, and the error is returned; call again to continue after an `Undecodable`.
    pub fn drain(&mut self, f: impl FnMut(Decoded)) -> Result<usize, ConsumeError> {
        let r = self.read_all(f);
        self.release();
        r
    }

    /// Reads every pending message into `f` without releasing; how many, or the first error.
    fn read_all(&mut self, mut f: impl FnMut(Decoded)) -> Result<usize, ConsumeError> {
        let mut n = 0;
        while let Some(m) = self.read()? {
            f(m);
            n += 1;
        }
        Ok(n)
    }

    /// Like [`drain`](Consumer::drain), but hands the slots back only once a quarter of the ring (or more) is
    /// read and not yet released, rather than at the end of every call.
    ///
    /// An agent that keeps up with its queue drains one or two messages per call; with `drain`, each call
    /// stores `tail`, which shares a cache line with the producer's `head` (ABI layout), so the line travels
    /// to the agent and back for every message. Deferring the store keeps the line with the producer; the
    /// producer still always has at least three quarters of the ring. Call [`release`](Consumer::release)
    /// before blocking for a long time (the `std` wake-up helpers' `wait_for` does).
    pub fn drain_lazy(&mut self, f: impl FnMut(Decoded)) -> Result<usize, ConsumeError> {
        let r = self.read_all(f);
        if r.is_err() || self.read.wrapping_sub(self.tail) >= self.nelems.div_ceil(4) {
            self.release();
        }
        r
    }

    /// The ring's overflow counter (Acquire; pairs with the producer's Release store of it).
    pub fn overflow(&self) -> u32 {
        // SAFETY: OVERFLOW is in bounds (validated at attach) and 4-aligned.
        unsafe { self.mem.load_u32(OVERFLOW, Ordering::Acquire) }
    }

    /// Messages dropped since the last call (all drops since the queue was created, on the first call).
    pub fn new_overflows(&mut self) -> u32 {
        let o = self.overflow();
        let d = o.wrapping_sub(self.seen_overflow);
        self.seen_overflow = o;
        d
    }
}

impl<M: SharedMem> core::fmt::Debug for Consumer<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("nelems", &self.nelems)
            .field("tail", &self.tail)
            .field("read", &self.read)
            .finish()
    }
}

/// A raw view of a message in the ring, valid until the consumer reads again or releases.
pub struct RawMessage<'a, M: SharedMem> {
    consumer: &'a Consumer<M>,
    frame: Frame,
}

impl<M: SharedMem> RawMessage<'_, M> {
    /// The raw type.
    pub fn msg_type(&self) -> u16 {
        self.frame.ty
    }
    /// Header + payload length in bytes.
    pub fn length(&self) -> u16 {
        self.frame.length
    }
    /// The seqnum.
    pub fn seqnum(&self) -> u32 {
        self.frame.seqnum
    }
    /// Copies the payload into `out`; returns the payload length (bytes beyond `out.len()` are not copied).
    pub fn copy_payload(&self, out: &mut [u8]) -> usize {
        let plen = self.frame.length as usize - MSG_HEADER_LEN;
        let n = plen.min(out.len());
        let base = slot_off(self.frame.idx) + MSG_HEADER_LEN;
        for (k, dst) in out[..n].chunks_mut(4).enumerate() {
            // SAFETY: word k covers payload bytes 4k..4k+4 with 4k < n <= plen, so it ends at most at
            // slot_off(idx) + 8 + plen rounded up to 4 <= slot_off(idx) + 8·ceil(length/8), inside the message's
            // slots (checked in next_frame), in bounds and 4-aligned.
            let w = unsafe { self.consumer.mem.read_data(base + 4 * k) }.to_ne_bytes();
            dst.copy_from_slice(&w[..dst.len()]);
        }
        plen
    }
    /// Decodes it as an ABI 91 message.
    pub fn decode(&self) -> Result<Decoded, ConsumeError> {
        self.consumer.decode_frame(&self.frame)
    }
}

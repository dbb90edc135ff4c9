//! Typed messages: one payload struct per `MSG_*` type, encoded into and decoded from the exact wire bytes.
//!
//! Wire format (`struct ghost_msg` in ghOSt's `include/uapi/linux/ghost.h`): an 8-byte header
//! `{type: u16, length: u16, seqnum: u32}` followed by the payload; `length` = 8 + payload size, unrounded.
//! In a ring, messages start on 8-byte slots at byte 76 + 8·i of the mapping, so payloads are only 4-byte
//! aligned: decoding always copies out.
//!
//! Decoding accepts bytes from a buggy or hostile peer: any input yields a [`Message`] or a [`DecodeError`],
//! never a panic.
//!
//! ```
//! use ghost_shm::abi::{Message, PayloadTaskWakeup, MsgType};
//! let m = Message::TaskWakeup(PayloadTaskWakeup { gtid: 42, waker_cpu: 3, ..Default::default() });
//! let wire = m.to_wire(7);
//! assert_eq!(wire.as_bytes().len(), 40);
//! let d = Message::decode(wire.as_bytes()).unwrap();
//! assert_eq!((d.seqnum, d.message), (7, m));
//! assert_eq!(d.message.msg_type(), MsgType::TaskWakeup);
//! ```

use super::*;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a message header (one ring slot).
pub const MSG_HEADER_LEN: usize = 8;
/// The longest ABI 91 message on the wire (`MSG_TASK_NEW`: 8 + 48).
pub const MAX_MSG_LEN: usize = MSG_HEADER_LEN + core::mem::size_of::<PayloadTaskNew>();

/// A payload struct of one message type.
pub trait Payload: FromBytes + IntoBytes + Immutable + KnownLayout + Copy {
    /// Its message type.
    const TYPE: MsgType;
    /// Wraps it into a [`Message`].
    fn into_message(self) -> Message;
}

macro_rules! messages {
    ($( $variant:ident($payload:ident) = $cconst:ident ),* $(,)?) => {
        /// A decoded ghOSt message (every type except `MSG_NOP`, which is ring padding).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Message { $(
            #[doc = concat!("[`MsgType::", stringify!($variant), "`] with its payload.")]
            $variant($payload)
        ),* }

        $(
            impl Payload for $payload {
                const TYPE: MsgType = MsgType::$variant;
                fn into_message(self) -> Message { Message::$variant(self) }
            }
            impl From<$payload> for Message {
                fn from(p: $payload) -> Message { Message::$variant(p) }
            }
        )*

        impl Message {
            /// The message type.
            pub const fn msg_type(&self) -> MsgType {
                match self { $( Message::$variant(_) => MsgType::$variant ),* }
            }

            /// The payload's bytes, exactly as they go on the wire (padding included).
            pub fn payload_bytes(&self) -> &[u8] {
                match self { $( Message::$variant(p) => p.as_bytes() ),* }
            }

            /// Payload size in bytes for a message type; `None` for `MSG_NOP` (variable padding).
            pub const fn payload_len(ty: MsgType) -> Option<usize> {
                match ty {
                    MsgType::Nop => None,
                    $( MsgType::$variant => Some(core::mem::size_of::<$payload>()) ),*
                }
            }

            /// Builds a message of type `ty` whose payload bytes `fill` writes in place (all `payload_len(ty)`
            /// of them; every payload size is a multiple of 4). `None` for `MSG_NOP`. This is the single-copy
            /// path a ring consumer uses.
            #[inline]
            pub fn build(ty: MsgType, fill: impl FnOnce(&mut [u8])) -> Option<Message> {
                match ty {
                    MsgType::Nop => None,
                    $( MsgType::$variant => {
                        let mut p = <$payload as zerocopy::FromZeros>::new_zeroed();
                        fill(p.as_mut_bytes());
                        Some(Message::$variant(p))
                    } )*
                }
            }

            /// The ring consumer's single-copy decode: checks a raw type and length read from a header, then
            /// lets `fill` write the payload bytes in place. One jump on the type, no intermediate buffer.
            #[inline]
            pub fn build_checked(ty: u16, length: u16, fill: impl FnOnce(&mut [u8])) -> Result<Message, DecodeError> {
                match ty {
                    $( $cconst => {
                        let expected = (MSG_HEADER_LEN + core::mem::size_of::<$payload>()) as u16;
                        if length != expected {
                            return Err(DecodeError::LengthMismatch { ty: MsgType::$variant, length, expected });
                        }
                        let mut p = <$payload as zerocopy::FromZeros>::new_zeroed();
                        fill(p.as_mut_bytes());
                        Ok(Message::$variant(p))
                    } )*
                    MSG_NOP => Err(DecodeError::Nop { length }),
                    other => Err(DecodeError::UnknownType(other)),
                }
            }
        }
    };
}

messages! {
    TaskDead(PayloadTaskDead) = MSG_TASK_DEAD,
    TaskBlocked(PayloadTaskBlocked) = MSG_TASK_BLOCKED,
    TaskWakeup(PayloadTaskWakeup) = MSG_TASK_WAKEUP,
    TaskNew(PayloadTaskNew) = MSG_TASK_NEW,
    TaskPreempt(PayloadTaskPreempt) = MSG_TASK_PREEMPT,
    TaskYield(PayloadTaskYield) = MSG_TASK_YIELD,
    TaskDeparted(PayloadTaskDeparted) = MSG_TASK_DEPARTED,
    TaskSwitchto(PayloadTaskSwitchto) = MSG_TASK_SWITCHTO,
    TaskAffinityChanged(PayloadTaskAffinityChanged) = MSG_TASK_AFFINITY_CHANGED,
    TaskOnCpu(PayloadTaskOnCpu) = MSG_TASK_ON_CPU,
    TaskPriorityChanged(PayloadTaskPriorityChanged) = MSG_TASK_PRIORITY_CHANGED,
    TaskLatchFailure(PayloadTaskLatchFailure) = MSG_TASK_LATCH_FAILURE,
    CpuTick(PayloadCpuTick) = MSG_CPU_TICK,
    CpuTimerExpired(PayloadTimer) = MSG_CPU_TIMER_EXPIRED,
    CpuNotIdle(PayloadCpuNotIdle) = MSG_CPU_NOT_IDLE,
    CpuAvailable(PayloadCpuAvailable) = MSG_CPU_AVAILABLE,
    CpuBusy(PayloadCpuBusy) = MSG_CPU_BUSY,
    CpuAgentBlocked(PayloadAgentBlocked) = MSG_CPU_AGENT_BLOCKED,
    CpuAgentWakeup(PayloadAgentWakeup) = MSG_CPU_AGENT_WAKEUP,
}

/// Why bytes are not a valid ABI 91 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 8 bytes: no complete header.
    Truncated {
        /// Bytes available.
        available: usize,
    },
    /// The header's `length` is below 8 or beyond the bytes available.
    BadLength {
        /// The header's length.
        length: u16,
        /// Bytes available.
        available: usize,
    },
    /// The type is no ABI 91 message type.
    UnknownType(u16),
    /// A `MSG_NOP` padding message (not an error for a ring consumer: skip `length` bytes).
    Nop {
        /// Bytes of padding.
        length: u16,
    },
    /// The length does not match the type's payload size.
    LengthMismatch {
        /// Type.
        ty: MsgType,
        /// Length found.
        length: u16,
        /// Length ABI 91 defines for `ty`.
        expected: u16,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            DecodeError::Truncated { available } => {
                write!(f, "message truncated: {available} bytes, a header needs {MSG_HEADER_LEN}")
            }
            DecodeError::BadLength { length, available } => {
                write!(f, "message length {length} invalid ({available} bytes available, minimum {MSG_HEADER_LEN})")
            }
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::Nop { length } => write!(f, "MSG_NOP padding of {length} bytes"),
            DecodeError::LengthMismatch { ty, length, expected } => {
                write!(f, "{} has length {length}, ABI 91 defines {expected}", ty.c_name())
            }
        }
    }
}

/// A decoded message and its header's seqnum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The source's barrier value when the message was produced.
    pub seqnum: u32,
    /// The message.
    pub message: Message,
}

/// A message in wire format, built on the stack.
#[derive(Clone, Copy)]
pub struct WireMessage {
    buf: [u8; MAX_MSG_LEN],
    len: u16,
}

impl WireMessage {
    /// The wire bytes (header + payload).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl core::fmt::Debug for WireMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("WireMessage").field(&self.as_bytes()).finish()
    }
}

/// `out` is too small for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// Bytes needed.
    pub needed: usize,
}

/// Encodes a message header.
pub const fn encode_header(ty: u16, length: u16, seqnum: u32) -> [u8; MSG_HEADER_LEN] {
    let t = ty.to_le_bytes();
    let l = length.to_le_bytes();
    let s = seqnum.to_le_bytes();
    [t[0], t[1], l[0], l[1], s[0], s[1], s[2], s[3]]
}

/// Decodes a message header into `(type, length, seqnum)`.
pub const fn decode_header(h: [u8; MSG_HEADER_LEN]) -> (u16, u16, u32) {
    (u16::from_le_bytes([h[0], h[1]]), u16::from_le_bytes([h[2], h[3]]), u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
}

impl Message {
    /// Bytes on the wire: 8 + payload size (what the kernel writes into `length`).
    pub fn wire_len(&self) -> usize {
        MSG_HEADER_LEN + self.payload_bytes().len()
    }

    /// Ring slots the message occupies: ceil(wire_len / 8).
    pub fn slots(&self) -> u32 {
        self.wire_len().div_ceil(MSG_HEADER_LEN) as u32
    }

    /// Writes header + payload into `out`; returns the bytes written.
    pub fn encode(&self, seqnum: u32, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let n = self.wire_len();
        let Some(dst) = out.get_mut(..n) else {
            return Err(BufferTooSmall { needed: n });
        };
        dst[..MSG_HEADER_LEN].copy_from_slice(&encode_header(self.msg_type() as u16, n as u16, seqnum));
        dst[MSG_HEADER_LEN..].copy_from_slice(self.payload_bytes());
        Ok(n)
    }

    /// The wire bytes, on the stack.
    pub fn to_wire(&self, seqnum: u32) -> WireMessage {
        let mut w = WireMessage { buf: [0; MAX_MSG_LEN], len: 0 };
        // Every ABI 91 message fits MAX_MSG_LEN, so this cannot fail.
        w.len = self.encode(seqnum, &mut w.buf).unwrap_or(0) as u16;
        w
    }

    /// Decodes the message at the start of `bytes` (which may be longer: trailing bytes are ignored).
    pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let Some(h) = bytes.first_chunk::<MSG_HEADER_LEN>() else {
            return Err(DecodeError::Truncated { available: bytes.len() });
        };
        let (ty, length, seqnum) = decode_header(*h);
        if (length as usize) < MSG_HEADER_LEN || length as usize > bytes.len() {
            return Err(DecodeError::BadLength { length, available: bytes.len() });
        }
        let payload = &bytes[MSG_HEADER_LEN..length as usize];
        // build_checked calls the closure only when `length` is the type's, i.e. out.len() == payload.len().
        let message = Message::build_checked(ty, length, |out| out.copy_from_slice(payload))?;
        Ok(Decoded { seqnum, message })
    }

    /// Builds a message of type `ty` from exactly `payload_len(ty)` payload bytes (copied; any alignment).
    pub fn from_payload(ty: MsgType, payload: &[u8]) -> Result<Message, DecodeError> {
        let length = (MSG_HEADER_LEN + payload.len()).min(u16::MAX as usize) as u16;
        if payload.len() > u16::MAX as usize - MSG_HEADER_LEN {
            // Too long for any message; build_checked reports the mismatch (or NOP) without copying.
            return Message::build_checked(ty as u16, length, |_| {});
        }
        Message::build_checked(ty as u16, length, |out| out.copy_from_slice(payload))
    }

    /// The task a task message is about (first 8 payload bytes); `None` for CPU messages.
    pub fn gtid(&self) -> Option<Gtid> {
        if self.msg_type().is_task() {
            let b = self.payload_bytes();
            b.first_chunk::<8>().map(|g| Gtid(i64::from_le_bytes(*g)))
        } else {
            None
        }
    }

    /// The CPU a CPU message is about (first 4 payload bytes); `None` for task messages.
    pub fn cpu(&self) -> Option<i32> {
        if self.msg_type().is_cpu() {
            self.payload_bytes().first_chunk::<4>().map(|c| i32::from_le_bytes(*c))
        } else {
            None
        }
    }
}

// ---- typed payload accessors ----------------------------------------------------------------------------------
//
// The payload structs keep the wire's C types (`i32` CPUs, `u8`/`u16` booleans). These accessors give the
// domain types: a CPU id is a `u32` (`None` for a negative value, which the kernel uses for "no CPU", e.g. a
// wake-up from an interrupt has no waker CPU), a flag is a `bool`, a task is a [`Gtid`].

/// A CPU number as carried by a message: `None` for a negative (absent or bogus) value.
pub const fn cpu_id(raw: i32) -> Option<u32> {
    if raw < 0 {
        None
    } else {
        Some(raw as u32)
    }
}

macro_rules! gtid_accessor {
    ($($payload:ident),* $(,)?) => { $(
        impl $payload {
            /// The task the message is about.
            pub const fn task(&self) -> Gtid {
                Gtid(self.gtid as i64)
            }
        }
    )* };
}

macro_rules! cpu_accessor {
    ($($payload:ident),* $(,)?) => { $(
        impl $payload {
            /// The CPU the message is about (`None` if the kernel wrote a negative value).
            pub const fn cpu_id(&self) -> Option<u32> {
                cpu_id(self.cpu)
            }
        }
    )* };
}

gtid_accessor!(
    PayloadTaskNew,
    PayloadTaskPreempt,
    PayloadTaskYield,
    PayloadTaskBlocked,
    PayloadTaskDead,
    PayloadTaskDeparted,
    PayloadTaskAffinityChanged,
    PayloadTaskPriorityChanged,
    PayloadTaskWakeup,
    PayloadTaskSwitchto,
    PayloadTaskOnCpu,
    PayloadTaskLatchFailure,
);

cpu_accessor!(
    PayloadTaskPreempt,
    PayloadTaskYield,
    PayloadTaskBlocked,
    PayloadTaskDead,
    PayloadTaskDeparted,
    PayloadTaskSwitchto,
    PayloadTaskOnCpu,
    PayloadCpuTick,
    PayloadTimer,
    PayloadCpuNotIdle,
    PayloadCpuAvailable,
    PayloadCpuBusy,
    PayloadAgentBlocked,
    PayloadAgentWakeup,
);

impl PayloadTaskNew {
    /// Whether the task is queued on a run queue (runnable) as it enters ghOSt.
    pub const fn is_runnable(&self) -> bool {
        self.runnable != 0
    }
    /// The parent task.
    pub const fn parent(&self) -> Gtid {
        Gtid(self.parent_gtid as i64)
    }
}

impl PayloadTaskPreempt {
    /// The task was latched (committed) on the CPU but replaced before it ever ran.
    pub const fn was_latched(&self) -> bool {
        self.was_latched != 0
    }
    /// The task was part of a switchto chain.
    pub const fn from_switchto(&self) -> bool {
        self.from_switchto != 0
    }
}

impl PayloadTaskYield {
    /// The task was part of a switchto chain.
    pub const fn from_switchto(&self) -> bool {
        self.from_switchto != 0
    }
}

impl PayloadTaskBlocked {
    /// The task was part of a switchto chain.
    pub const fn from_switchto(&self) -> bool {
        self.from_switchto != 0
    }
}

impl PayloadTaskDeparted {
    /// The task was current on its CPU when it left ghOSt.
    pub const fn was_current(&self) -> bool {
        self.was_current != 0
    }
    /// The task was part of a switchto chain.
    pub const fn from_switchto(&self) -> bool {
        self.from_switchto != 0
    }
}

impl PayloadTaskWakeup {
    /// The wake-up may be deferred.
    pub const fn is_deferrable(&self) -> bool {
        self.deferrable != 0
    }
    /// The CPU the task last ran on (`None`: never ran).
    pub const fn last_ran_cpu_id(&self) -> Option<u32> {
        cpu_id(self.last_ran_cpu)
    }
    /// The CPU it was woken on.
    pub const fn wake_up_cpu_id(&self) -> Option<u32> {
        cpu_id(self.wake_up_cpu)
    }
    /// The waker's CPU (`None`: not woken by a task on a CPU).
    pub const fn waker_cpu_id(&self) -> Option<u32> {
        cpu_id(self.waker_cpu)
    }
}

impl PayloadCpuTick {
    /// The tick hit the agent itself (ABI 90+), not a ghOSt task.
    pub const fn is_agent(&self) -> bool {
        self.is_agent != 0
    }
}

impl PayloadCpuNotIdle {
    /// The task that displaced the idle task.
    pub const fn next(&self) -> Gtid {
        Gtid(self.next_gtid as i64)
    }
}

impl Message {
    /// The CPU a message names, task or CPU message alike: the CPU a task was preempted, blocked, yielded,
    /// departed, died or switched in on, or the CPU of a CPU message. `None` for messages without one
    /// (`TASK_NEW`, `TASK_WAKEUP` — see [`PayloadTaskWakeup::wake_up_cpu_id`] —, affinity, priority, latch
    /// failure) and for a negative value.
    pub fn cpu_id(&self) -> Option<u32> {
        match self {
            Message::TaskPreempt(p) => p.cpu_id(),
            Message::TaskYield(p) => p.cpu_id(),
            Message::TaskBlocked(p) => p.cpu_id(),
            Message::TaskDead(p) => p.cpu_id(),
            Message::TaskDeparted(p) => p.cpu_id(),
            Message::TaskSwitchto(p) => p.cpu_id(),
            Message::TaskOnCpu(p) => p.cpu_id(),
            Message::CpuTick(p) => p.cpu_id(),
            Message::CpuTimerExpired(p) => p.cpu_id(),
            Message::CpuNotIdle(p) => p.cpu_id(),
            Message::CpuAvailable(p) => p.cpu_id(),
            Message::CpuBusy(p) => p.cpu_id(),
            Message::CpuAgentBlocked(p) => p.cpu_id(),
            Message::CpuAgentWakeup(p) => p.cpu_id(),
            Message::TaskNew(_)
            | Message::TaskWakeup(_)
            | Message::TaskAffinityChanged(_)
            | Message::TaskPriorityChanged(_)
            | Message::TaskLatchFailure(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_with_the_kernel_length() {
        for &ty in MsgType::ALL {
            let Some(plen) = Message::payload_len(ty) else {
                assert_eq!(ty, MsgType::Nop);
                continue;
            };
            let payload: std::vec::Vec<u8> = (0..plen as u8).map(|i| i.wrapping_mul(37).wrapping_add(1)).collect();
            let m = Message::from_payload(ty, &payload).unwrap();
            assert_eq!(m.msg_type(), ty);
            assert_eq!(m.payload_bytes(), &payload[..]);
            let w = m.to_wire(0xdead_beef);
            let b = w.as_bytes();
            assert_eq!(b.len(), 8 + plen);
            assert_eq!(u16::from_le_bytes([b[0], b[1]]), ty as u16);
            assert_eq!(u16::from_le_bytes([b[2], b[3]]) as usize, 8 + plen);
            assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), 0xdead_beef);
            let d = Message::decode(b).unwrap();
            assert_eq!(d, Decoded { seqnum: 0xdead_beef, message: m });
        }
    }

    #[test]
    fn wire_lengths_match_the_abi_table() {
        let want = [
            (MsgType::TaskNew, 56),
            (MsgType::TaskPreempt, 48),
            (MsgType::TaskYield, 48),
            (MsgType::TaskBlocked, 40),
            (MsgType::TaskDead, 24),
            (MsgType::TaskDeparted, 32),
            (MsgType::TaskAffinityChanged, 16),
            (MsgType::TaskPriorityChanged, 24),
            (MsgType::TaskWakeup, 40),
            (MsgType::TaskSwitchto, 40),
            (MsgType::TaskOnCpu, 40),
            (MsgType::CpuTick, 16),
            (MsgType::CpuTimerExpired, 32),
            (MsgType::CpuNotIdle, 24),
            (MsgType::CpuAvailable, 12),
            (MsgType::CpuBusy, 12),
            (MsgType::CpuAgentBlocked, 12),
            (MsgType::CpuAgentWakeup, 12),
        ];
        for (ty, len) in want {
            assert_eq!(Message::payload_len(ty).map(|p| p + 8), Some(len), "{ty:?}");
        }
    }

    #[test]
    fn hostile_bytes_get_typed_errors() {
        assert_eq!(Message::decode(&[1, 2, 3]), Err(DecodeError::Truncated { available: 3 }));
        let h = encode_header(67, 7, 0);
        assert_eq!(Message::decode(&h), Err(DecodeError::BadLength { length: 7, available: 8 }));
        let h = encode_header(67, 56, 0);
        assert_eq!(Message::decode(&h), Err(DecodeError::BadLength { length: 56, available: 8 }));
        let h = encode_header(99, 8, 0);
        assert_eq!(Message::decode(&h), Err(DecodeError::UnknownType(99)));
        let h = encode_header(0, 8, 0);
        assert_eq!(Message::decode(&h), Err(DecodeError::Nop { length: 8 }));
        let mut b = [0u8; 64];
        b[..8].copy_from_slice(&encode_header(67, 48, 0));
        assert_eq!(
            Message::decode(&b),
            Err(DecodeError::LengthMismatch { ty: MsgType::TaskNew, length: 48, expected: 56 })
        );
    }

    #[test]
    fn decode_copies_out_of_unaligned_bytes() {
        let m = Message::TaskNew(PayloadTaskNew { gtid: u64::MAX - 5, runtime: 1 << 40, ..Default::default() });
        let mut buf = [0u8; 80];
        // Offset 4: payload u64s only 4-aligned, as in a ring slot.
        let n = m.encode(9, &mut buf[4..]).unwrap();
        let d = Message::decode(&buf[4..4 + n]).unwrap();
        assert_eq!(d.message, m);
        assert_eq!(d.message.gtid(), Some(Gtid((u64::MAX - 5) as i64)));
        assert_eq!(d.message.cpu(), None);
    }

    #[test]
    fn typed_accessors_convert_the_wire_types() {
        assert_eq!(cpu_id(-1), None);
        assert_eq!(cpu_id(7), Some(7));
        let p = PayloadTaskPreempt { gtid: 42, cpu: 3, was_latched: 1, ..Default::default() };
        assert_eq!((p.task(), p.cpu_id(), p.was_latched(), p.from_switchto()), (Gtid(42), Some(3), true, false));
        let n = PayloadTaskNew { gtid: 9, parent_gtid: 8, runnable: 0, ..Default::default() };
        assert_eq!((n.task(), n.parent(), n.is_runnable()), (Gtid(9), Gtid(8), false));
        assert!(PayloadTaskNew { runnable: 1, ..n }.is_runnable());
        let w = PayloadTaskWakeup {
            gtid: 5,
            last_ran_cpu: -1,
            wake_up_cpu: 2,
            waker_cpu: -1,
            deferrable: 1,
            ..Default::default()
        };
        assert_eq!(
            (w.last_ran_cpu_id(), w.wake_up_cpu_id(), w.waker_cpu_id(), w.is_deferrable()),
            (None, Some(2), None, true)
        );
        let t = PayloadCpuTick { cpu: 4, is_agent: 1 };
        assert_eq!((t.cpu_id(), t.is_agent()), (Some(4), true));
        assert_eq!(Message::CpuTick(t).cpu_id(), Some(4));
        assert_eq!(Message::TaskPreempt(p).cpu_id(), Some(3));
        assert_eq!(Message::TaskDead(PayloadTaskDead { gtid: 1, cpu: -5, _pad: 0 }).cpu_id(), None);
        assert_eq!(Message::TaskWakeup(w).cpu_id(), None);
        let d = PayloadTaskDeparted { gtid: 1, cpu: 0, was_current: 1, ..Default::default() };
        assert!(d.was_current() && !d.from_switchto());
        assert_eq!(PayloadCpuNotIdle { cpu: 1, _pad: 0, next_gtid: 77 }.next(), Gtid(77));
    }
}

//! Fuzz inputs used by more than one target (included with `#[path]`; not a target itself).
#![allow(dead_code)]

use arbitrary::Arbitrary;
use ghost_shm::abi::{Message, PayloadCpuAvailable, PayloadCpuTick, PayloadTaskDead, PayloadTaskNew};

/// What the kernel knows about one CPU, as a transaction's validation asks it (`KernelView`).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct CpuIn {
    pub online: bool,
    pub enclave: Option<u8>,
    pub agent: bool,
    pub idle: bool,
    pub ghost_busy: bool,
    pub higher: bool,
    pub agent_barrier: u8,
}

/// What the kernel knows about the target task of a transaction.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct TaskIn {
    pub is_agent: bool,
    pub departed: bool,
    pub dead: bool,
    pub barrier: u8,
    pub runnable: bool,
    pub enclave: u8,
    pub on_cpu: Option<u8>,
    pub forced_off: bool,
}

/// A message of one of four sizes (2, 2, 3 and 7 slots) chosen by `kind`, carrying `seq`.
pub fn message(kind: u8, seq: u32) -> Message {
    match kind % 4 {
        0 => Message::CpuAvailable(PayloadCpuAvailable { cpu: seq as i32 }), // 12 B, 2 slots
        1 => Message::CpuTick(PayloadCpuTick { cpu: seq as i32, is_agent: 1 }), // 16 B, 2 slots
        2 => Message::TaskDead(PayloadTaskDead { gtid: seq as u64, cpu: 1, _pad: 0 }), // 24 B, 3 slots
        _ => Message::TaskNew(PayloadTaskNew { gtid: seq as u64, ..Default::default() }), // 56 B, 7 slots
    }
}

//! Host tests of the C ABI: the same entry points the module calls, with the `ghk_hook_*` functions defined
//! here over a test table, and the crate's agent side reading what they wrote.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use core::cell::Cell;
use ghost_shm::abi::{Decoded, MsgType, TxnOutcome, CPU_DATA_SIZE};
use ghost_shm::queue::Consumer;
use ghost_shm::status::Reader;
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

std::thread_local! {
    static TASK: Cell<Option<GhkTaskInfo>> = const { Cell::new(None) };
    static LATCHED: Cell<Option<(u32, i64)>> = const { Cell::new(None) };
}

#[no_mangle]
extern "C" fn ghk_hook_lookup(_ctx: *mut core::ffi::c_void, _gtid: i64, out: *mut GhkTaskInfo) -> bool {
    match TASK.with(Cell::get) {
        // SAFETY: the caller passes a writable GhkTaskInfo.
        Some(t) => unsafe {
            out.write(t);
            true
        },
        None => false,
    }
}
#[no_mangle]
extern "C" fn ghk_hook_cpu_online(_ctx: *mut core::ffi::c_void, cpu: u32) -> bool {
    cpu < 4
}
#[no_mangle]
extern "C" fn ghk_hook_cpu_enclave(_ctx: *mut core::ffi::c_void, _cpu: u32) -> i64 {
    7
}
#[no_mangle]
extern "C" fn ghk_hook_agent_present(_ctx: *mut core::ffi::c_void, _cpu: u32) -> bool {
    true
}
#[no_mangle]
extern "C" fn ghk_hook_agent_barrier(_ctx: *mut core::ffi::c_void, _cpu: u32) -> u32 {
    0
}
#[no_mangle]
extern "C" fn ghk_hook_now_ns(_ctx: *mut core::ffi::c_void) -> i64 {
    1000
}
#[no_mangle]
extern "C" fn ghk_hook_latch(_ctx: *mut core::ffi::c_void, cpu: u32, gtid: i64, _already: bool) -> u64 {
    LATCHED.with(|l| l.set(Some((cpu, gtid))));
    1
}

/// 8-aligned zeroed memory of `len` bytes.
fn mem(len: usize) -> Vec<u64> {
    vec![0u64; len.div_ceil(8)]
}

fn raw(m: &mut [u64]) -> Region {
    // SAFETY: the vector outlives every handle built in the test and is only accessed through the region.
    unsafe { RawRegion::new(m.as_mut_ptr().cast(), m.len() * 8) }.unwrap()
}

#[test]
fn task_events_reach_the_consumer_with_the_barrier_as_seqnum() {
    let mut qmem = mem(4096);
    let mut swmem = mem(GHK_SW_REGION_BYTES);
    let mut q = Box::new(GhkQueue { opaque: [0; GHK_QUEUE_WORDS] });
    let sw: &'static mut GhkSwRegion = Box::leak(Box::new(GhkSwRegion { opaque: [0; GHK_SW_WORDS] }));
    let mut w = GhkTaskWord { opaque: [0; GHK_WORD_WORDS] };
    // SAFETY: every pointer is to live, writable storage; the regions outlive the handles.
    unsafe {
        assert_eq!(ghk_queue_init(&mut *q, qmem.as_mut_ptr().cast(), 4096, 64), 0);
        assert_eq!(ghk_queue_init(&mut *q, qmem.as_mut_ptr().cast(), 4096, 63), -EINVAL);
        assert_eq!(ghk_queue_init(&mut *q, qmem.as_mut_ptr().cast(), 4096, 64), 0);
        assert_eq!(ghk_sw_init(sw, swmem.as_mut_ptr().cast(), GHK_SW_REGION_BYTES, 0, 0), 0);
        let gtid = (42i64 << 41) | 1;
        assert_eq!(ghk_task_new(sw, &mut w, &*q, gtid, 0, true, true, 5, 0), GhkProduce::Produced as i32);
        assert_eq!(ghk_task_wakeup(&mut w, &*q, 0, 0, 0), GhkProduce::Skipped as i32);
        assert_eq!(ghk_task_switch_out(&mut w, &*q, GhkSwitchOut::Preempt, 10, 1, 0), 0);
        ghk_task_switch_in(&mut w, 100);
        assert_eq!(ghk_task_switch_out(&mut w, &*q, GhkSwitchOut::Blocked, 20, 1, 0), 0);
        assert!(!ghk_task_runnable(&mut w));
        assert_eq!(ghk_task_wakeup(&mut w, &*q, 1, 1, 0), 0);
        assert_eq!(ghk_task_barrier(&mut w), 4);
        assert!(ghk_task_runnable(&mut w));
        let info = ghk_task_sw_info(&mut w);
        assert!(ghk_task_is_stale(&mut w, 3));
        assert!(!ghk_task_is_stale(&mut w, 4));
        // Not CANFREE yet.
        assert_eq!(ghk_sw_free(sw, info.id, info.index), -EINVAL);
        assert_eq!(ghk_task_dead(&mut w, &*q, 1), 0);
        assert_eq!(ghk_sw_free(sw, info.id, info.index), 0);
        assert!(ghk_sw_free(sw, info.id, info.index) < 0);
        assert_eq!(ghk_queue_overflow(&*q), 0);
    }
    let mut c = Consumer::attach(raw(&mut qmem)).unwrap();
    let mut got = Vec::new();
    c.drain(|d: Decoded| got.push((d.message.msg_type(), d.seqnum))).unwrap();
    let want = [
        (MsgType::TaskNew, 1),
        (MsgType::TaskPreempt, 2),
        (MsgType::TaskBlocked, 3),
        (MsgType::TaskWakeup, 4),
        (MsgType::TaskDead, 5),
    ];
    assert_eq!(got, want);
    let r = Reader::attach(raw(&mut swmem)).unwrap();
    assert_eq!(r.capacity(), GHK_SW_CAPACITY);
}

#[test]
fn a_full_queue_counts_overflow_and_no_queue_still_bumps_the_barrier() {
    let mut qmem = mem(4096);
    let mut swmem = mem(GHK_SW_REGION_BYTES);
    let mut q = Box::new(GhkQueue { opaque: [0; GHK_QUEUE_WORDS] });
    let sw: &'static mut GhkSwRegion = Box::leak(Box::new(GhkSwRegion { opaque: [0; GHK_SW_WORDS] }));
    let mut w = GhkTaskWord { opaque: [0; GHK_WORD_WORDS] };
    // SAFETY: as above.
    unsafe {
        assert_eq!(ghk_queue_init(&mut *q, qmem.as_mut_ptr().cast(), 4096, 8), 0);
        assert_eq!(ghk_sw_init(sw, swmem.as_mut_ptr().cast(), GHK_SW_REGION_BYTES, 0, 0), 0);
        assert_eq!(ghk_task_new(sw, &mut w, core::ptr::null(), 1 << 41 | 1, 0, true, false, 0, 0), 2);
        assert_eq!(ghk_task_barrier(&mut w), 1);
        let mut overflow = 0;
        for _ in 0..8 {
            if ghk_task_switch_out(&mut w, &*q, GhkSwitchOut::Yield, 0, 0, 0) == GhkProduce::Overflow as i32 {
                overflow += 1;
            }
        }
        // TASK_YIELD is 8 + 40 bytes = 6 slots of 8 bytes: one fits in 8 slots, seven are dropped.
        assert_eq!(overflow, 7);
        assert_eq!(ghk_queue_overflow(&*q), 7);
    }
}

#[test]
fn commit_validates_the_task_barrier_and_latches_on_success() {
    let ncpus = 2u32;
    let len = ncpus as usize * CPU_DATA_SIZE;
    let mut cmem = mem(len);
    let mut c = Box::new(GhkCpuData { opaque: [0; GHK_CPU_DATA_WORDS] });
    let gtid = (7i64 << 41) | 3;
    TASK.with(|t| {
        t.set(Some(GhkTaskInfo { barrier: 5, runnable: true, on_cpu: -1, enclave: 7, ..Default::default() }))
    });
    // SAFETY: as above.
    unsafe { assert_eq!(ghk_txn_init(&mut *c, cmem.as_mut_ptr().cast(), len, ncpus), 0) };
    let region = CpuData::new(raw(&mut cmem), ncpus).unwrap();
    let commit = |barrier: u32| {
        let mut a = region.agent(1).unwrap();
        let _pending = a.open().unwrap().target(Gtid(gtid)).task_barrier(barrier).commit();
        // SAFETY: `c` was initialised above.
        let r = unsafe { ghk_txn_commit(&*c, 0, 1, core::ptr::null_mut()) };
        (r, a.last_outcome().unwrap().map(|o| o.outcome))
    };
    LATCHED.with(|l| l.set(None));
    assert_eq!(commit(4), (TxnOutcome::TargetStale.raw(), Some(TxnOutcome::TargetStale)));
    assert_eq!(LATCHED.with(Cell::get), None);
    assert_eq!(commit(5), (TxnOutcome::Complete.raw(), Some(TxnOutcome::Complete)));
    assert_eq!(LATCHED.with(Cell::get), Some((1, gtid)));
    // Nothing READY: nothing claimed.
    // SAFETY: as above.
    assert_eq!(unsafe { ghk_txn_commit(&*c, 0, 1, core::ptr::null_mut()) }, GHK_TXN_NOT_CLAIMED);
    // SAFETY: as above.
    assert_eq!(unsafe { ghk_txn_commit(&*c, 0, 9, core::ptr::null_mut()) }, GHK_TXN_BAD_CPU);
    // A group of one, all-or-nothing.
    {
        let mut a = region.agent(1).unwrap();
        let _pending = a.open().unwrap().target(Gtid(gtid)).task_barrier(5).commit();
    }
    let mut members = [0b10u64];
    // SAFETY: as above.
    assert_eq!(unsafe { ghk_txn_group(&*c, 0, members.as_mut_ptr(), 1, core::ptr::null_mut()) }, 1);
}

//! The hostile agent: writes garbage into the ring (tail, head, header, slots), into every transaction field,
//! and into every ioctl argument; unmaps and closes its files midway, re-creates them, and keeps enclave
//! threads running so the module produces all along. Run it and kill it (SIGKILL) while it runs: the module
//! must survive all of it without a kernel warning, and unload afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_shm::abi::{
    self, GhostAgentWakeup, GhostIocAssocQueue, GhostIocCommitTxn, GhostIocConfigQueueWakeup, GhostIocCreateQueue,
    GhostIocSetDefaultQueue, GhostIocSwGetInfo, GhostMsgSrc, GhostSwInfo,
};

use crate::sys::{self, Mapping};

/// xorshift64*: a fixed seed, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A value that is often at an edge.
    fn nasty(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => i32::MAX as u64,
            3 => 0x8000_0000,
            4 => self.below(8),
            5 => 0x7fff_ffff_ffff_ffff,
            _ => self.next(),
        }
    }
    /// A pointer that is null, unmapped, a kernel address, misaligned or valid-but-short.
    fn pointer(&mut self, valid: usize) -> usize {
        match self.below(6) {
            0 => 0,
            1 => 0xffff_ffff_8100_0000,
            2 => 0xdead_b000,
            3 => valid + 1,
            4 => usize::MAX - 7,
            _ => valid,
        }
    }
}

/// Stores `v` at byte `off` of a mapping (volatile: the kernel reads it concurrently).
fn poke(m: &Mapping, off: usize, v: u32) {
    if off + 4 <= m.len {
        // SAFETY: in bounds of our own writable mapping; 4-aligned by every caller.
        unsafe { std::ptr::write_volatile(m.ptr.add(off & !3).cast::<u32>(), v) };
    }
}

pub fn run(seconds: f64) -> Result<(), String> {
    let st = sys::stats().map_err(|e| format!("{}: {e}", sys::STATS))?;
    let cpu_bytes = sys::stat(&st, "cpu_data_bytes").map_err(|e| e.to_string())? as usize;
    let sw_bytes = sys::stat(&st, "sw_region_bytes").map_err(|e| e.to_string())? as usize;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64);

    // Enclave threads that keep the module producing.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = sys::join_enclave();
                while !stop.load(Ordering::Relaxed) {
                    let until = Instant::now() + Duration::from_micros(200 * (i + 1));
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        })
        .collect();

    let mut ctl = sys::open(sys::CTL, libc::O_RDWR).map_err(|e| format!("{}: {e}", sys::CTL))?;
    let cdfd = sys::open(sys::CPU_DATA, libc::O_RDWR).map_err(|e| format!("{}: {e}", sys::CPU_DATA))?;
    let mut cd = Some(
        Mapping::new(cdfd, cpu_bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
            .map_err(|e| format!("mmap cpu_data: {e}"))?,
    );
    let mut queue: Option<(i32, Option<Mapping>)> = None;
    let mut scratch = vec![0u8; 4096];
    // The kernel may write here (e.g. a SW_GET_INFO response): a mutable buffer.
    let valid = scratch.as_mut_ptr() as usize;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut ops = 0u64;
    let mut errors = 0u64;
    while Instant::now() < end {
        ops += 1;
        match rng.below(12) {
            // A queue: created with random (sometimes valid) elems, made default, mapped.
            0 => {
                let elems = if rng.below(2) == 0 { 1 << rng.below(8) } else { rng.nasty() as i32 };
                let mut a = GhostIocCreateQueue { elems, node: rng.below(3) as i32 - 1, ..Default::default() };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                if let Ok(fd) = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_CREATE_QUEUE, &mut a) } {
                    let fd = fd as i32;
                    let mut d = GhostIocSetDefaultQueue { fd };
                    // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                    // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                    let _ = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_SET_DEFAULT_QUEUE, &mut d) };
                    let m =
                        Mapping::new(fd, a.mapsize as usize, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED).ok();
                    if let Some((old, _)) = queue.replace((fd, m)) {
                        if rng.below(2) == 0 {
                            sys::close(old); // the old mapping stays (dropped below or now)
                        }
                    }
                } else {
                    errors += 1;
                }
            }
            // Garbage into the ring: tail (most often), head, overflow, header, slots.
            1 | 2 => {
                if let Some((_, Some(m))) = &queue {
                    let off = match rng.below(6) {
                        0..=2 => 68,
                        3 => 64,
                        4 => 4 * rng.below(4) as usize,
                        _ => 4 * rng.below(m.len as u64 / 4) as usize,
                    };
                    poke(m, off, rng.nasty() as u32);
                }
            }
            // Garbage transactions, then commit / group commit with garbage masks.
            3 | 4 => {
                if let Some(m) = &cd {
                    let cpu = rng.below((cpu_bytes / 4096) as u64 + 1) as usize;
                    for k in 0..16 {
                        if rng.below(3) == 0 {
                            poke(m, cpu * 4096 + 4 * k, rng.nasty() as u32);
                        }
                    }
                    if rng.below(2) == 0 {
                        poke(m, cpu * 4096 + 8, i32::MAX as u32); // state READY
                    }
                }
                let mask = [rng.next(); 16];
                let mut a = GhostIocCommitTxn {
                    mask_ptr: if rng.below(4) == 0 { rng.pointer(valid) as u64 } else { mask.as_ptr() as u64 },
                    mask_len: if rng.below(3) == 0 { rng.nasty() as u32 } else { 128 },
                    flags: if rng.below(5) == 0 { rng.nasty() as i32 } else { 0 },
                };
                let cmd = if rng.below(2) == 0 { abi::GHOST_IOC_COMMIT_TXN } else { abi::GHOST_IOC_SYNC_GROUP_TXN };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl(ctl, cmd, &mut a) };
            }
            // Every ioctl with a garbage argument struct or a garbage pointer.
            5 | 6 => {
                let cmd = sys::ALL_IOCTLS[rng.below(8) as usize];
                let mut junk = [0u64; 8];
                for w in junk.iter_mut() {
                    *w = rng.nasty();
                }
                if rng.below(3) == 0 {
                    junk[1] = valid as u64; // a plausible pointer field (CONFIG_QUEUE_WAKEUP.w)
                    junk[0] = valid as u64; // and mask_ptr
                }
                let arg = if rng.below(4) == 0 { rng.pointer(valid) } else { junk.as_mut_ptr() as usize };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let r = unsafe { sys::ioctl_raw(ctl, cmd, arg) };
                if let Ok(fd) = r {
                    if cmd == abi::GHOST_IOC_CREATE_QUEUE {
                        sys::close(fd as i32);
                    }
                }
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl_raw(ctl, rng.next() as u32, valid) };
                // unknown commands
            }
            // Status words: random frees and lookups.
            7 => {
                let mut f = GhostSwInfo { id: rng.below(2) as u32, index: rng.nasty() as u32 % 5000 };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_SW_FREE, &mut f) };
                let mut g = GhostIocSwGetInfo {
                    request: GhostMsgSrc { r#type: rng.below(3) as u32, arg: rng.nasty(), ..Default::default() },
                    ..Default::default()
                };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_SW_GET_INFO, &mut g) };
            }
            // Unmap / close midway, and re-open.
            8 => match rng.below(4) {
                0 => {
                    if let Some((_, m)) = &mut queue {
                        *m = None; // munmap the ring while the module keeps producing into it
                    }
                }
                1 => {
                    if let Some((fd, _)) = queue.take() {
                        sys::close(fd);
                    }
                }
                2 => cd = None,
                _ => {
                    sys::close(ctl);
                    ctl = sys::open(sys::CTL, libc::O_RDWR).map_err(|e| format!("{}: {e}", sys::CTL))?;
                    if cd.is_none() {
                        cd = Mapping::new(cdfd, cpu_bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED).ok();
                    }
                }
            },
            // Mapping rules: wrong sizes, private, exec, writable status words.
            9 => {
                let swfd = sys::open(sys::SW, if rng.below(2) == 0 { libc::O_RDONLY } else { libc::O_RDWR });
                if let Ok(fd) = swfd {
                    let prot =
                        [libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE, libc::PROT_EXEC][rng.below(3) as usize];
                    let len = [sw_bytes, 4096, sw_bytes * 2][rng.below(3) as usize];
                    let flags = if rng.below(2) == 0 { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
                    if let Ok(m) = Mapping::new(fd, len, prot, flags) {
                        // SAFETY: our mapping; the kernel must refuse write permission.
                        unsafe { libc::mprotect(m.ptr.cast(), m.len, libc::PROT_READ | libc::PROT_WRITE) };
                    }
                    sys::close(fd);
                }
            }
            // Garbage into the tasks file.
            10 => {
                let s = match rng.below(5) {
                    0 => "-1".to_string(),
                    1 => "99999999999999999999".to_string(),
                    2 => "garbage".to_string(),
                    // Its own thread again (already in: success), or an id beyond pid_max. Never another live
                    // process: the enclave would keep it (and its children) after this agent is gone.
                    3 => format!("{}", sys::gettid()),
                    _ => format!("{}", (1u64 << 22) + 1 + rng.below(1 << 30)),
                };
                let _ = std::fs::write(sys::TASKS, s);
            }
            // Associate / wake-up configuration with garbage.
            _ => {
                let qfd = queue.as_ref().map_or(rng.nasty() as i32, |q| q.0);
                let mut a = GhostIocAssocQueue {
                    fd: qfd,
                    src: GhostMsgSrc { r#type: rng.below(3) as u32, arg: rng.nasty(), ..Default::default() },
                    barrier: rng.nasty() as u32,
                    flags: if rng.below(4) == 0 { 1 } else { 0 },
                    ..Default::default()
                };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_ASSOC_QUEUE, &mut a) };
                let w = [GhostAgentWakeup { cpu: rng.below(4) as i32 - 1, prio: rng.below(2) as i32 }; 2];
                let mut c = GhostIocConfigQueueWakeup {
                    qfd,
                    w: if rng.below(3) == 0 { rng.pointer(valid) as u64 } else { w.as_ptr() as u64 },
                    ninfo: rng.below(5) as i32 - 1,
                    flags: 0,
                    ..Default::default()
                };
                // SAFETY: the module only reads or writes the argument struct the number encodes (or fails with EFAULT/EINVAL
                // on garbage); every pointer passed is to a live, writable local or `scratch` buffer of at least that size.
                let _ = unsafe { sys::ioctl(ctl, abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP, &mut c) };
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    println!("HOSTILE done: {ops} operations ({errors} refused queue creations)");
    Ok(())
}

// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ghost_shm_kmod: ghost-shm's kernel side inside a real Linux kernel.
 *
 * A C shim around one Rust object (ffi/kernel, built by ffi/kernel/build-object.sh): the queue producer, the
 * status-word writer and the transaction claim/validate/complete all run the crate's code. This file only
 * owns memory, files, locks and the scheduler tracepoint probes.
 *
 * One enclave (id 1) spans every possible CPU:
 *   /dev/ghost_shm          the enclave's ctl: ghOSt ABI 91 ioctls (CREATE_QUEUE, SET_DEFAULT_QUEUE,
 *                           ASSOC_QUEUE, CONFIG_QUEUE_WAKEUP, SW_GET_INFO, SW_FREE, COMMIT_TXN, SYNC_GROUP_TXN)
 *   /dev/ghost_shm_sw       the status-word region, mmap PROT_READ only (VM_WRITE refused, VM_MAYWRITE cleared)
 *   /dev/ghost_shm_cpu_data the transactions, one 4096-byte page per possible CPU, mmap read/write
 *   /proc/ghost_shm/tasks   write a tid (0 = the writer) to put a thread into the enclave (like ghostfs's tasks)
 *   /proc/ghost_shm/stats   counters: messages produced per queue, overflows, transactions, placements, cost
 *
 * Enclave threads' scheduler events (tracepoints sched_wakeup, sched_wakeup_new, sched_switch,
 * sched_process_exit, sched_process_fork) become TASK_NEW / TASK_WAKEUP / TASK_BLOCKED / TASK_PREEMPT /
 * TASK_YIELD / TASK_DEAD messages, and their status words are kept by the crate.
 *
 * A module cannot add a scheduling class: a committed transaction ("run gtid on CPU c") is validated by the
 * crate exactly as ghOSt validates it, and then enforced as PLACEMENT (the thread's allowed CPUs become {c});
 * this is not ghOSt's dispatch (the thread runs when CFS picks it, on c).
 */
#include <linux/anon_inodes.h>
#include <linux/cpumask.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "ghost_shm_kernel.h"

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ghost-shm kernel side (ghOSt ABI 91 queues, status words, transactions) driven by scheduler tracepoints");

/* ---- ABI 91 uapi (numbers and layouts from ghost.h; sizes asserted below) ---------------------------------- */
struct ghost_sw_info { u32 id; u32 index; };
struct ghost_msg_src { u32 type; u32 pad; u64 arg; };
struct ghost_ioc_sw_get_info { struct ghost_msg_src request; struct ghost_sw_info response; };
struct ghost_ioc_create_queue { s32 elems; s32 node; s32 flags; u32 pad; u64 mapsize; };
struct ghost_ioc_assoc_queue { s32 fd; u32 pad; struct ghost_msg_src src; u32 barrier; s32 flags; };
struct ghost_ioc_set_default_queue { s32 fd; };
struct ghost_agent_wakeup { s32 cpu; s32 prio; };
struct ghost_ioc_config_queue_wakeup { s32 qfd; u32 pad; u64 w; s32 ninfo; s32 flags; };
struct ghost_ioc_commit_txn { u64 mask_ptr; u32 mask_len; s32 flags; };

#define GHOST_IOC_SW_GET_INFO        _IOWR('g', 1, struct ghost_ioc_sw_get_info)
#define GHOST_IOC_SW_FREE            _IOW('g', 2, struct ghost_sw_info)
#define GHOST_IOC_CREATE_QUEUE       _IOWR('g', 3, struct ghost_ioc_create_queue)
#define GHOST_IOC_ASSOC_QUEUE        _IOW('g', 4, struct ghost_ioc_assoc_queue)
#define GHOST_IOC_SET_DEFAULT_QUEUE  _IOW('g', 5, struct ghost_ioc_set_default_queue)
#define GHOST_IOC_CONFIG_QUEUE_WAKEUP _IOW('g', 6, struct ghost_ioc_config_queue_wakeup)
#define GHOST_IOC_COMMIT_TXN         _IOW('g', 8, struct ghost_ioc_commit_txn)
#define GHOST_IOC_SYNC_GROUP_TXN     _IOW('g', 9, struct ghost_ioc_commit_txn)

static_assert(sizeof(struct ghost_ioc_sw_get_info) == 24);
static_assert(sizeof(struct ghost_ioc_create_queue) == 24);
static_assert(sizeof(struct ghost_ioc_assoc_queue) == 32);
static_assert(sizeof(struct ghost_ioc_config_queue_wakeup) == 24);
static_assert(sizeof(struct ghost_ioc_commit_txn) == 16);
static_assert(GHOST_IOC_SW_GET_INFO == 0xC0186701u);
static_assert(GHOST_IOC_SW_FREE == 0x40086702u);
static_assert(GHOST_IOC_CREATE_QUEUE == 0xC0186703u);
static_assert(GHOST_IOC_ASSOC_QUEUE == 0x40206704u);
static_assert(GHOST_IOC_SET_DEFAULT_QUEUE == 0x40046705u);
static_assert(GHOST_IOC_CONFIG_QUEUE_WAKEUP == 0x40186706u);
static_assert(GHOST_IOC_COMMIT_TXN == 0x40106708u);
static_assert(GHOST_IOC_SYNC_GROUP_TXN == 0x40106709u);

#define GHOST_MAX_QUEUE_ELEMS 65536
#define GHOST_SW_TYPE_AGENT 0
#define GHOST_SW_TYPE_TASK 1
#define GHOST_ASSOC_SF_ALREADY 1
#define GHOST_TXN_COMPLETE ((s32)0x80000000)
#define GHOST_TXN_TARGET_STALE ((s32)0x80000003)
#define GHOST_CPU_DATA_SIZE 4096

/* ---- the enclave ------------------------------------------------------------------------------------------- */
#define GHK_ENCLAVE_ID 1
#define GHK_MAX_TASKS 1024
#define GHK_MAX_QUEUES 16
#define GHK_MAX_CPU_WORDS 16 /* 1024 CPUs */
#define GHK_GTID_SEQ_BITS 41  /* ghOSt's gtid: tid << 41 | incarnation (pid_max_max 2^22) */

enum { MSG_NEW, MSG_WAKEUP, MSG_BLOCKED, MSG_PREEMPT, MSG_YIELD, MSG_DEAD, MSG_KINDS };
static const char *const msg_names[MSG_KINDS] = { "task_new", "task_wakeup", "task_blocked", "task_preempt",
						  "task_yield", "task_dead" };

struct ghk_queue {
	GhkQueue q;		/* the crate's producer (first: 8-aligned) */
	void *mem;		/* vmalloc_user, mapsize bytes */
	size_t mapsize;
	u32 nelems;
	int slot;		/* index in enclave.queues */
	u64 produced;		/* messages this queue was asked to take: in the ring or counted as overflow */
	struct ghost_agent_wakeup winfo[2];
	int ninfo;
};

struct ghk_task {
	GhkTaskWord w;		/* the crate's status-word handle (first: 8-aligned) */
	struct task_struct *p;	/* reference held while tracked */
	s64 gtid;
	int queue;		/* associated queue slot, or -1: the default queue */
	bool used;
};

struct ghk_enclave {
	GhkSwRegion sw;		/* the crate's status-word writer */
	GhkCpuData txns;	/* the crate's cpu_data handle */
	raw_spinlock_t lock;	/* protects everything below and serialises every call into the crate that
				 * writes shared memory; taken with interrupts off (probes run in any context) */
	struct ghk_task tasks[GHK_MAX_TASKS];
	int hwm;		/* tasks[0..hwm) may be used */
	int ntasks;
	struct ghk_queue *queues[GHK_MAX_QUEUES];
	int default_q;
	u64 incarnation;
	void *sw_mem;
	void *cpu_mem;
	size_t cpu_size;
	/* counters */
	u64 tasks_added, produced, overflow, no_queue, skipped, msgs[MSG_KINDS];
	u64 produce_ns, produce_calls;
	u64 txn_complete, txn_stale, txn_failed, txn_not_claimed, placements, placement_errors;
	u64 groups_ok, groups_failed;
};

static struct ghk_enclave *enc;
static DEFINE_MUTEX(ctl_mutex);	/* serialises agent attach (first ctl open) */
static int ctl_users;
static DEFINE_PER_CPU(u64, ghk_cpu_seqnum);

/* Called with enc->lock held. */
static struct ghk_task *find_task(const struct task_struct *p)
{
	int i;

	for (i = 0; i < enc->hwm; i++)
		if (enc->tasks[i].used && enc->tasks[i].p == p)
			return &enc->tasks[i];
	return NULL;
}

static struct ghk_task *find_gtid(s64 gtid)
{
	int i;

	for (i = 0; i < enc->hwm; i++)
		if (enc->tasks[i].used && enc->tasks[i].gtid == gtid)
			return &enc->tasks[i];
	return NULL;
}

static const GhkQueue *task_queue(struct ghk_task *t, struct ghk_queue **out)
{
	int slot = t->queue >= 0 ? t->queue : enc->default_q;
	struct ghk_queue *q = slot >= 0 ? enc->queues[slot] : NULL;

	*out = q;
	return q ? &q->q : NULL;
}

/* Accounts one result of the crate's produce path (lock held). */
static void account(int kind, int r, struct ghk_queue *q, u64 t0)
{
	enc->produce_ns += local_clock() - t0;
	enc->produce_calls++;
	switch (r) {
	case GHK_PRODUCE_PRODUCED:
		enc->produced++;
		enc->msgs[kind]++;
		q->produced++;
		break;
	case GHK_PRODUCE_OVERFLOW:
		enc->overflow++;
		q->produced++;
		break;
	case GHK_PRODUCE_NO_QUEUE:
		enc->no_queue++;
		break;
	default:
		enc->skipped++;
		break;
	}
}

/* Tracks @p (reference taken by the caller) and sends TASK_NEW. Lock held. */
static int add_task_locked(struct task_struct *p, s64 parent_gtid, bool runnable, bool on_cpu)
{
	struct ghk_task *t = NULL;
	struct ghk_queue *q;
	const GhkQueue *gq;
	u64 t0;
	int i, r;

	if (find_task(p))
		return -EALREADY;
	/* Checked under the lock: the exit probe takes it after PF_EXITING is set, so a task that passed its
	 * exit probe without being tracked is never added (it would never be untracked). */
	if (p->flags & (PF_EXITING | PF_KTHREAD))
		return -ESRCH;
	for (i = 0; i < GHK_MAX_TASKS; i++) {
		if (!enc->tasks[i].used) {
			t = &enc->tasks[i];
			break;
		}
	}
	if (!t)
		return -ENOSPC;
	enc->incarnation++;
	t->gtid = ((s64)p->pid << GHK_GTID_SEQ_BITS) | (enc->incarnation & ((1ULL << GHK_GTID_SEQ_BITS) - 1));
	t->queue = -1;
	gq = task_queue(t, &q);
	t0 = local_clock();
	r = ghk_task_new(&enc->sw, &t->w, gq, t->gtid, parent_gtid, runnable, on_cpu,
			 p->se.sum_exec_runtime, task_nice(p));
	if (r < 0)
		return r;
	account(MSG_NEW, r, q, t0);
	t->p = p;
	t->used = true;
	enc->ntasks++;
	enc->tasks_added++;
	if (i >= enc->hwm)
		enc->hwm = i + 1;
	return 0;
}

/* ---- tracepoint probes: run with preemption off, often with runqueue locks held and interrupts off ------- */

static void probe_wakeup_common(struct task_struct *p)
{
	struct ghk_task *t;
	struct ghk_queue *q;
	const GhkQueue *gq;
	unsigned long flags;
	u64 t0;
	int r;

	if (!READ_ONCE(enc->ntasks))
		return;
	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_task(p);
	if (t) {
		gq = task_queue(t, &q);
		t0 = local_clock();
		r = ghk_task_wakeup(&t->w, gq, task_cpu(p), task_cpu(p), raw_smp_processor_id());
		account(MSG_WAKEUP, r, q, t0);
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
}

static void probe_wakeup(void *data, struct task_struct *p)
{
	probe_wakeup_common(p);
}

static void probe_wakeup_new(void *data, struct task_struct *p)
{
	probe_wakeup_common(p);
}

static void probe_switch(void *data, bool preempt, struct task_struct *prev, struct task_struct *next,
			 unsigned int prev_state)
{
	struct ghk_task *t;
	struct ghk_queue *q;
	const GhkQueue *gq;
	unsigned long flags;
	int cpu = raw_smp_processor_id();
	u64 seq, t0;
	int r, kind;
	GhkSwitchOut why;

	if (!READ_ONCE(enc->ntasks))
		return;
	seq = this_cpu_inc_return(ghk_cpu_seqnum);
	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_task(prev);
	if (t) {
		if (prev_state != TASK_RUNNING) {
			why = GHK_SWITCH_OUT_BLOCKED;
			kind = MSG_BLOCKED;
		} else if (preempt) {
			why = GHK_SWITCH_OUT_PREEMPT;
			kind = MSG_PREEMPT;
		} else {
			why = GHK_SWITCH_OUT_YIELD;
			kind = MSG_YIELD;
		}
		gq = task_queue(t, &q);
		t0 = local_clock();
		r = ghk_task_switch_out(&t->w, gq, why, prev->se.sum_exec_runtime, cpu, seq);
		account(kind, r, q, t0);
	}
	t = find_task(next);
	if (t)
		ghk_task_switch_in(&t->w, ktime_get_ns());
	raw_spin_unlock_irqrestore(&enc->lock, flags);
}

static void probe_exit(void *data, struct task_struct *p)
{
	struct task_struct *put = NULL;
	struct ghk_task *t;
	struct ghk_queue *q;
	const GhkQueue *gq;
	unsigned long flags;
	u64 t0;
	int r;

	if (!READ_ONCE(enc->ntasks))
		return;
	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_task(p);
	if (t) {
		gq = task_queue(t, &q);
		t0 = local_clock();
		r = ghk_task_dead(&t->w, gq, raw_smp_processor_id());
		account(MSG_DEAD, r, q, t0);
		put = t->p;
		t->used = false;
		t->p = NULL;
		enc->ntasks--;
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (put)
		put_task_struct(put);	/* p is current: never the last reference */
}

static void probe_fork(void *data, struct task_struct *parent, struct task_struct *child)
{
	struct ghk_task *t;
	unsigned long flags;
	bool added = false;

	if (!READ_ONCE(enc->ntasks))
		return;
	get_task_struct(child);
	raw_spin_lock_irqsave(&enc->lock, flags);
	/* Children of enclave threads stay in the enclave (as ghOSt tasks' children stay in ghOSt). */
	t = find_task(parent);
	if (t)
		added = add_task_locked(child, t->gtid, false, false) == 0;
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (!added)
		put_task_struct(child);
}

static struct {
	const char *name;
	void *probe;
	struct tracepoint *tp;
} probes[] = {
	{ "sched_wakeup", probe_wakeup },
	{ "sched_wakeup_new", probe_wakeup_new },
	{ "sched_switch", probe_switch },
	{ "sched_process_exit", probe_exit },
	{ "sched_process_fork", probe_fork },
};

static void find_tp(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(probes); i++)
		if (!strcmp(tp->name, probes[i].name))
			probes[i].tp = tp;
}

/* ---- hooks the crate's transaction code calls (ffi/kernel: extern "C" ghk_hook_*) ----------------------- */

bool ghk_hook_lookup(void *ctx, int64_t gtid, GhkTaskInfo *out)
{
	struct ghk_task *t;
	unsigned long flags;
	bool found = false;

	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_gtid(gtid);
	if (t) {
		memset(out, 0, sizeof(*out));
		out->barrier = ghk_task_barrier(&t->w);
		/* The word's RUNNABLE changes with the barrier, in one critical section (as ghOSt's does). */
		out->runnable = ghk_task_runnable(&t->w);
		/* Placement (unlike dispatch) also applies to a running thread: none is reported on a CPU. */
		out->on_cpu = -1;
		out->enclave = GHK_ENCLAVE_ID;
		found = true;
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	return found;
}

bool ghk_hook_cpu_online(void *ctx, uint32_t cpu)
{
	return cpu < nr_cpu_ids && cpu_online(cpu);
}

int64_t ghk_hook_cpu_enclave(void *ctx, uint32_t cpu)
{
	return ghk_hook_cpu_online(ctx, cpu) ? GHK_ENCLAVE_ID : -1;
}

bool ghk_hook_agent_present(void *ctx, uint32_t cpu)
{
	/* An agent is attached once it set the enclave's default queue. */
	return READ_ONCE(enc->default_q) >= 0;
}

uint32_t ghk_hook_agent_barrier(void *ctx, uint32_t cpu)
{
	return 0;	/* no agent status words in this module: agent barriers stay 0 */
}

int64_t ghk_hook_now_ns(void *ctx)
{
	return ktime_get_ns();
}

/*
 * A sync group's placements wait for the group's verdict: applied together when every member committed, none
 * when the group failed (ghOSt un-latches a failed group's members; here they are simply never placed).
 */
struct ghk_group {
	unsigned int n;
	struct { u32 cpu; s64 gtid; } member[];
};

static void place(uint32_t cpu, int64_t gtid);

/* The success action: placement. Called without locks, from the ioctl (may sleep). */
uint64_t ghk_hook_latch(void *ctx, uint32_t cpu, int64_t gtid, bool already_on_cpu)
{
	struct ghk_group *g = ctx;

	if (g) {
		if (g->n < nr_cpu_ids) {
			g->member[g->n].cpu = cpu;
			g->member[g->n].gtid = gtid;
			g->n++;
		}
	} else {
		place(cpu, gtid);
	}
	return per_cpu(ghk_cpu_seqnum, cpu);
}

static void place(uint32_t cpu, int64_t gtid)
{
	struct task_struct *p = NULL;
	struct ghk_task *t;
	unsigned long flags;
	int err;

	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_gtid(gtid);
	if (t) {
		p = t->p;
		get_task_struct(p);
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (p) {
		err = set_cpus_allowed_ptr(p, cpumask_of(cpu));
		put_task_struct(p);
		raw_spin_lock_irqsave(&enc->lock, flags);
		if (err)
			enc->placement_errors++;
		else
			enc->placements++;
		raw_spin_unlock_irqrestore(&enc->lock, flags);
	}
}

/* ---- mmap: ghOSt's rules ------------------------------------------------------------------------------------ */

static int ghk_mmap_region(struct vm_area_struct *vma, void *mem, size_t size, bool read_only)
{
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;			/* MAP_SHARED only */
	if (vma->vm_flags & VM_EXEC)
		return -EACCES;			/* never executable */
	if (read_only && (vma->vm_flags & VM_WRITE))
		return -EINVAL;			/* status words: read-only for user space */
	if (vma->vm_pgoff != 0 || vma->vm_end - vma->vm_start != size)
		return -EINVAL;			/* the whole region, exactly */
	vma->vm_flags &= ~VM_MAYEXEC;
	if (read_only)
		vma->vm_flags &= ~VM_MAYWRITE;	/* mprotect cannot make it writable */
	vma->vm_flags |= VM_DONTCOPY | VM_DONTEXPAND;	/* not inherited across fork */
	return remap_vmalloc_range(vma, mem, 0);
}

/* ---- queue files --------------------------------------------------------------------------------------------- */

static int queue_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ghk_queue *q = file->private_data;

	return ghk_mmap_region(vma, q->mem, q->mapsize, false);
}

static int queue_release(struct inode *inode, struct file *file)
{
	struct ghk_queue *q = file->private_data;
	unsigned long flags;
	int i;

	raw_spin_lock_irqsave(&enc->lock, flags);
	if (enc->queues[q->slot] == q) {
		enc->queues[q->slot] = NULL;
		if (enc->default_q == q->slot)
			WRITE_ONCE(enc->default_q, -1);	/* weak reference, as in ghOSt */
		for (i = 0; i < enc->hwm; i++)
			if (enc->tasks[i].used && enc->tasks[i].queue == q->slot)
				enc->tasks[i].queue = -1;
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	vfree(q->mem);
	kfree(q);
	return 0;
}

static const struct file_operations queue_fops = {
	.owner = THIS_MODULE,
	.mmap = queue_mmap,
	.release = queue_release,
};

/* The queue behind a user fd (reference in *f), or NULL. */
static struct ghk_queue *queue_of_fd(int fd, struct fd *f)
{
	*f = fdget(fd);
	if (!f->file)
		return NULL;
	if (f->file->f_op != &queue_fops) {
		fdput(*f);
		f->file = NULL;
		return NULL;
	}
	return f->file->private_data;
}

static long ioc_create_queue(void __user *uarg)
{
	struct ghost_ioc_create_queue a;
	struct ghk_queue *q;
	struct file *file;
	unsigned long flags;
	int fd, slot = -1, i, err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.elems < 1 || a.elems > GHOST_MAX_QUEUE_ELEMS || (a.elems & (a.elems - 1)) || a.flags != 0)
		return -EINVAL;
	if (a.node < 0 || a.node >= MAX_NUMNODES || !node_online(a.node))
		return -EINVAL;
	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (!q)
		return -ENOMEM;
	q->nelems = a.elems;
	q->mapsize = PAGE_ALIGN(64 + 12 + 8 * (size_t)a.elems);
	q->mem = vmalloc_user(q->mapsize);
	if (!q->mem) {
		kfree(q);
		return -ENOMEM;
	}
	if (ghk_queue_init(&q->q, q->mem, q->mapsize, q->nelems)) {
		vfree(q->mem);
		kfree(q);
		return -EINVAL;
	}
	raw_spin_lock_irqsave(&enc->lock, flags);
	for (i = 0; i < GHK_MAX_QUEUES; i++) {
		if (!enc->queues[i]) {
			slot = i;
			q->slot = i;
			enc->queues[i] = q;
			break;
		}
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (slot < 0) {
		vfree(q->mem);
		kfree(q);
		return -ENOMEM;
	}
	fd = get_unused_fd_flags(O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		q->slot = slot;
		file = NULL;
		err = fd;
		goto unregister;
	}
	file = anon_inode_getfile("[ghost_queue]", &queue_fops, q, O_RDWR | O_CLOEXEC);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		err = PTR_ERR(file);
		goto unregister;
	}
	a.mapsize = q->mapsize;
	if (copy_to_user(uarg, &a, sizeof(a))) {
		put_unused_fd(fd);
		fput(file);	/* release unregisters and frees */
		return -EFAULT;
	}
	fd_install(fd, file);
	return fd;
unregister:
	raw_spin_lock_irqsave(&enc->lock, flags);
	enc->queues[slot] = NULL;
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	vfree(q->mem);
	kfree(q);
	return err;
}

static long ioc_set_default_queue(void __user *uarg)
{
	struct ghost_ioc_set_default_queue a;
	struct ghk_queue *q;
	unsigned long flags;
	struct fd f;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	q = queue_of_fd(a.fd, &f);
	if (!q)
		return -EBADF;
	raw_spin_lock_irqsave(&enc->lock, flags);
	WRITE_ONCE(enc->default_q, q->slot);
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	fdput(f);
	return 0;
}

static long ioc_assoc_queue(void __user *uarg)
{
	struct ghost_ioc_assoc_queue a;
	struct ghk_task *t;
	struct ghk_queue *q;
	unsigned long flags;
	struct fd f;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags != 0 || a.src.type != GHOST_SW_TYPE_TASK)
		return -EINVAL;
	q = queue_of_fd(a.fd, &f);
	if (!q)
		return -EBADF;
	raw_spin_lock_irqsave(&enc->lock, flags);
	t = find_gtid((s64)a.src.arg);
	if (!t)
		ret = -ENOENT;
	else if (ghk_task_is_stale(&t->w, a.barrier))
		ret = -ESTALE;
	else if (t->queue == q->slot)
		ret = GHOST_ASSOC_SF_ALREADY;
	else {
		t->queue = q->slot;
		ret = 0;	/* TASK_NEW is always sent when a thread enters: never BRAND_NEW */
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	fdput(f);
	return ret;
}

static long ioc_config_queue_wakeup(void __user *uarg)
{
	struct ghost_ioc_config_queue_wakeup a;
	struct ghost_agent_wakeup w[2];
	struct ghk_queue *q;
	unsigned long flags;
	struct fd f;
	int i;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags != 0 || a.ninfo < 0 || a.ninfo > 2)
		return -EINVAL;
	if (a.ninfo && copy_from_user(w, u64_to_user_ptr(a.w), a.ninfo * sizeof(w[0])))
		return -EFAULT;
	for (i = 0; i < a.ninfo; i++)
		if (w[i].prio != 0 || w[i].cpu < 0 || w[i].cpu >= nr_cpu_ids || !cpu_online(w[i].cpu))
			return -EINVAL;
	q = queue_of_fd(a.qfd, &f);
	if (!q)
		return -EBADF;
	/* Recorded only: a scheduler probe cannot wake a thread (runqueue locks are held); agents poll. */
	raw_spin_lock_irqsave(&enc->lock, flags);
	memcpy(q->winfo, w, a.ninfo * sizeof(w[0]));
	q->ninfo = a.ninfo;
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	fdput(f);
	return 0;
}

static long ioc_sw_get_info(void __user *uarg)
{
	struct ghost_ioc_sw_get_info a;
	struct ghk_task *t;
	unsigned long flags;
	GhkSwInfo info;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.request.type == GHOST_SW_TYPE_AGENT)
		return -EINVAL;		/* no agent status words: "no agent yet" */
	if (a.request.type != GHOST_SW_TYPE_TASK)
		return -EINVAL;
	raw_spin_lock_irqsave(&enc->lock, flags);
	t = a.request.arg == 0 ? find_task(current) : find_gtid((s64)a.request.arg);
	if (t)
		info = ghk_task_sw_info(&t->w);
	else
		ret = -ENOENT;
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (ret)
		return ret;
	a.response.id = info.id;
	a.response.index = info.index;
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	return 0;
}

static long ioc_sw_free(void __user *uarg)
{
	struct ghost_sw_info a;
	unsigned long flags;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	raw_spin_lock_irqsave(&enc->lock, flags);
	ret = ghk_sw_free(&enc->sw, a.id, a.index);
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	return ret;
}

static void count_outcome(s32 r)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&enc->lock, flags);
	if (r == GHOST_TXN_COMPLETE)
		enc->txn_complete++;
	else if (r == GHOST_TXN_TARGET_STALE)
		enc->txn_stale++;
	else if (r < 0)
		enc->txn_failed++;
	else
		enc->txn_not_claimed++;
	raw_spin_unlock_irqrestore(&enc->lock, flags);
}

static long ioc_commit(void __user *uarg, bool group)
{
	struct ghost_ioc_commit_txn a;
	u64 mask[GHK_MAX_CPU_WORDS] = { 0 };
	size_t nwords = BITS_TO_LONGS(nr_cpu_ids), len;
	u32 claimer = raw_smp_processor_id();
	unsigned long flags;
	unsigned int cpu;
	long r;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags != 0)
		return -EINVAL;
	len = min_t(size_t, a.mask_len, nwords * sizeof(u64));
	if (copy_from_user(mask, u64_to_user_ptr(a.mask_ptr), len))
		return -EFAULT;
	if (nr_cpu_ids % 64)
		mask[nwords - 1] &= (1ULL << (nr_cpu_ids % 64)) - 1;
	if (group) {
		struct ghk_group *g = kzalloc(struct_size(g, member, nr_cpu_ids), GFP_KERNEL);
		unsigned int i;

		if (!g)
			return -ENOMEM;
		r = ghk_txn_group(&enc->txns, claimer, mask, nwords, g);
		if (r == 1)
			for (i = 0; i < g->n; i++)
				place(g->member[i].cpu, g->member[i].gtid);
		kfree(g);
		raw_spin_lock_irqsave(&enc->lock, flags);
		if (r == 1)
			enc->groups_ok++;
		else
			enc->groups_failed++;
		raw_spin_unlock_irqrestore(&enc->lock, flags);
		return r;
	}
	for_each_set_bit(cpu, (unsigned long *)mask, nr_cpu_ids)
		count_outcome(ghk_txn_commit(&enc->txns, claimer, cpu, NULL));
	return 0;
}

static long ctl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (!(file->f_mode & FMODE_WRITE))
		return -EACCES;
	switch (cmd) {
	case GHOST_IOC_SW_GET_INFO: return ioc_sw_get_info(uarg);
	case GHOST_IOC_SW_FREE: return ioc_sw_free(uarg);
	case GHOST_IOC_CREATE_QUEUE: return ioc_create_queue(uarg);
	case GHOST_IOC_ASSOC_QUEUE: return ioc_assoc_queue(uarg);
	case GHOST_IOC_SET_DEFAULT_QUEUE: return ioc_set_default_queue(uarg);
	case GHOST_IOC_CONFIG_QUEUE_WAKEUP: return ioc_config_queue_wakeup(uarg);
	case GHOST_IOC_COMMIT_TXN: return ioc_commit(uarg, false);
	case GHOST_IOC_SYNC_GROUP_TXN: return ioc_commit(uarg, true);
	default: return -ENOTTY;
	}
}

/*
 * An agent attaches by opening the ctl device. When nobody else has it open, the previous agent is gone (closed,
 * crashed or killed): like ghOSt destroying an enclave after its agent, the transactions are re-initialised so
 * whatever it left in cpu_data (garbage, half-written transactions) cannot wedge the next agent.
 */
static int ctl_open(struct inode *inode, struct file *file)
{
	int first;

	mutex_lock(&ctl_mutex);
	first = ctl_users++ == 0;
	if (first)
		ghk_txn_init(&enc->txns, enc->cpu_mem, enc->cpu_size, nr_cpu_ids);
	mutex_unlock(&ctl_mutex);
	return 0;
}

static int ctl_release(struct inode *inode, struct file *file)
{
	mutex_lock(&ctl_mutex);
	ctl_users--;
	mutex_unlock(&ctl_mutex);
	return 0;
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.open = ctl_open,
	.release = ctl_release,
	.unlocked_ioctl = ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static int sw_mmap(struct file *file, struct vm_area_struct *vma)
{
	return ghk_mmap_region(vma, enc->sw_mem, GHK_SW_REGION_BYTES, true);
}

static const struct file_operations sw_fops = {
	.owner = THIS_MODULE,
	.mmap = sw_mmap,
};

static int cpu_data_mmap(struct file *file, struct vm_area_struct *vma)
{
	return ghk_mmap_region(vma, enc->cpu_mem, enc->cpu_size, false);
}

static const struct file_operations cpu_data_fops = {
	.owner = THIS_MODULE,
	.mmap = cpu_data_mmap,
};

static struct miscdevice ctl_dev = { .minor = MISC_DYNAMIC_MINOR, .name = "ghost_shm", .fops = &ctl_fops,
				     .mode = 0600 };
static struct miscdevice sw_dev = { .minor = MISC_DYNAMIC_MINOR, .name = "ghost_shm_sw", .fops = &sw_fops,
				    .mode = 0444 };
static struct miscdevice cpu_data_dev = { .minor = MISC_DYNAMIC_MINOR, .name = "ghost_shm_cpu_data",
					  .fops = &cpu_data_fops, .mode = 0600 };

/* ---- /proc/ghost_shm ----------------------------------------------------------------------------------------- */

static ssize_t tasks_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	struct task_struct *p;
	unsigned long flags;
	long long tid;
	int err;

	err = kstrtoll_from_user(ubuf, count, 0, &tid);
	if (err)
		return err;
	if (tid < 0 || tid > PID_MAX_LIMIT)
		return -EINVAL;
	if (tid == 0) {
		p = current;
		get_task_struct(p);
	} else {
		rcu_read_lock();
		p = pid_task(find_vpid(tid), PIDTYPE_PID);
		if (p)
			get_task_struct(p);
		rcu_read_unlock();
		if (!p)
			return -ESRCH;
	}
	if (p->tgid != current->tgid && !capable(CAP_SYS_NICE)) {
		put_task_struct(p);
		return -EPERM;
	}
	raw_spin_lock_irqsave(&enc->lock, flags);
	err = add_task_locked(p, 0, READ_ONCE(p->__state) == TASK_RUNNING, p == current);
	raw_spin_unlock_irqrestore(&enc->lock, flags);
	if (err) {
		put_task_struct(p);
		if (err != -EALREADY)	/* already in this enclave: success, as in ghOSt */
			return err;
	}
	return count;
}

static const struct proc_ops tasks_ops = {
	.proc_write = tasks_write,
	.proc_lseek = noop_llseek,
};

static int stats_show(struct seq_file *m, void *v)
{
	u64 qs[GHK_MAX_QUEUES][4];
	u64 c[24];
	unsigned long flags;
	int i, nq = 0;

	raw_spin_lock_irqsave(&enc->lock, flags);
	c[0] = enc->ntasks; c[1] = enc->tasks_added; c[2] = enc->produced; c[3] = enc->overflow;
	c[4] = enc->no_queue; c[5] = enc->skipped; c[6] = enc->produce_ns; c[7] = enc->produce_calls;
	c[8] = enc->txn_complete; c[9] = enc->txn_stale; c[10] = enc->txn_failed; c[11] = enc->txn_not_claimed;
	c[12] = enc->placements; c[13] = enc->placement_errors; c[14] = enc->groups_ok; c[15] = enc->groups_failed;
	c[16] = ghk_sw_available(&enc->sw); c[17] = enc->default_q;
	for (i = 0; i < MSG_KINDS; i++)
		c[18 + i] = enc->msgs[i];
	for (i = 0; i < GHK_MAX_QUEUES; i++) {
		struct ghk_queue *q = enc->queues[i];

		if (!q)
			continue;
		qs[nq][0] = i; qs[nq][1] = q->nelems; qs[nq][2] = q->produced; qs[nq][3] = ghk_queue_overflow(&q->q);
		nq++;
	}
	raw_spin_unlock_irqrestore(&enc->lock, flags);

	seq_printf(m, "enclave %d\ncpus %u\nsw_region_bytes %u\ncpu_data_bytes %zu\n", GHK_ENCLAVE_ID, nr_cpu_ids,
		   GHK_SW_REGION_BYTES, enc->cpu_size);
	seq_printf(m, "tasks %llu\ntasks_added %llu\nproduced %llu\noverflow %llu\nno_queue %llu\nskipped %llu\n",
		   c[0], c[1], c[2], c[3], c[4], c[5]);
	seq_printf(m, "produce_ns %llu\nproduce_calls %llu\n", c[6], c[7]);
	seq_printf(m, "txn_complete %llu\ntxn_stale %llu\ntxn_failed %llu\ntxn_not_claimed %llu\n", c[8], c[9], c[10],
		   c[11]);
	seq_printf(m, "placements %llu\nplacement_errors %llu\ngroups_ok %llu\ngroups_failed %llu\n", c[12], c[13],
		   c[14], c[15]);
	seq_printf(m, "sw_available %llu\ndefault_queue %lld\n", c[16], (s64)c[17]);
	for (i = 0; i < MSG_KINDS; i++)
		seq_printf(m, "msg_%s %llu\n", msg_names[i], c[18 + i]);
	for (i = 0; i < nq; i++)
		seq_printf(m, "queue %llu nelems %llu produced %llu overflow %llu\n", qs[i][0], qs[i][1], qs[i][2],
			   qs[i][3]);
	return 0;
}

static struct proc_dir_entry *proc_dir;

/* ---- init / exit ---------------------------------------------------------------------------------------------- */

static void unregister_probes(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(probes); i++)
		if (probes[i].tp)
			tracepoint_probe_unregister(probes[i].tp, probes[i].probe, NULL);
	tracepoint_synchronize_unregister();
}

static void free_enclave(void)
{
	int i;

	for (i = 0; i < GHK_MAX_TASKS; i++)
		if (enc->tasks[i].used)
			put_task_struct(enc->tasks[i].p);
	vfree(enc->sw_mem);
	vfree(enc->cpu_mem);
	vfree(enc);
	enc = NULL;
}

static int __init ghk_init(void)
{
	int i, err;

	if (nr_cpu_ids > GHK_MAX_CPU_WORDS * 64)
		return -EINVAL;
	enc = vzalloc(sizeof(*enc));
	if (!enc)
		return -ENOMEM;
	raw_spin_lock_init(&enc->lock);
	enc->default_q = -1;
	enc->cpu_size = (size_t)nr_cpu_ids * GHOST_CPU_DATA_SIZE;
	enc->sw_mem = vmalloc_user(GHK_SW_REGION_BYTES);
	enc->cpu_mem = vmalloc_user(enc->cpu_size);
	err = -ENOMEM;
	if (!enc->sw_mem || !enc->cpu_mem)
		goto free;
	err = -EINVAL;
	if (ghk_sw_init(&enc->sw, enc->sw_mem, GHK_SW_REGION_BYTES, 0, 0) ||
	    ghk_txn_init(&enc->txns, enc->cpu_mem, enc->cpu_size, nr_cpu_ids))
		goto free;

	for_each_kernel_tracepoint(find_tp, NULL);
	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		if (!probes[i].tp) {
			pr_err("ghost_shm: tracepoint %s not found\n", probes[i].name);
			for (i = 0; i < ARRAY_SIZE(probes); i++)
				probes[i].tp = NULL;	/* none registered: nothing to unregister */
			err = -ENOENT;
			goto probes;
		}
	}
	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		err = tracepoint_probe_register(probes[i].tp, probes[i].probe, NULL);
		if (err) {
			for (; i < ARRAY_SIZE(probes); i++)
				probes[i].tp = NULL;
			goto probes;
		}
	}
	proc_dir = proc_mkdir("ghost_shm", NULL);
	if (!proc_dir || !proc_create("tasks", 0666, proc_dir, &tasks_ops) ||
	    !proc_create_single("stats", 0444, proc_dir, stats_show)) {
		err = -ENOMEM;
		goto proc;
	}
	err = misc_register(&ctl_dev);
	if (err)
		goto proc;
	err = misc_register(&sw_dev);
	if (err)
		goto ctl;
	err = misc_register(&cpu_data_dev);
	if (err)
		goto sw;
	pr_info("ghost_shm: enclave %d over %u CPUs: /dev/ghost_shm, /dev/ghost_shm_sw (%u words), /dev/ghost_shm_cpu_data\n",
		GHK_ENCLAVE_ID, nr_cpu_ids, GHK_SW_CAPACITY);
	return 0;
sw:
	misc_deregister(&sw_dev);
ctl:
	misc_deregister(&ctl_dev);
proc:
	proc_remove(proc_dir);
probes:
	unregister_probes();
free:
	free_enclave();
	return err;
}

static void __exit ghk_exit(void)
{
	misc_deregister(&cpu_data_dev);
	misc_deregister(&sw_dev);
	misc_deregister(&ctl_dev);
	proc_remove(proc_dir);
	unregister_probes();
	free_enclave();
	pr_info("ghost_shm: unloaded\n");
}

module_init(ghk_init);
module_exit(ghk_exit);

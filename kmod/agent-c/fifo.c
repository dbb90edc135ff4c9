/*
 * ghost-shm-c-fifo: a centralized FIFO agent written in C on ghost-shm's agent C ABI (include/ghost_shm_agent.h,
 * ffi/agent), run in the qemu test next to the Rust agents, on the kernel module.
 *
 *   ghost-shm-c-fifo [--threads N] [--seconds S]
 *
 * The agent reserves the last CPU and pins itself there (gsa_become_agent on the module); its workload threads,
 * spawned after that, inherit that CPU and join the enclave (gsa_add_thread). It keeps a FIFO of runnable tasks
 * and runs the first one on each idle worker CPU (gsa_run: the crate's transaction + GHOST_IOC_COMMIT_TXN); a task
 * keeps its CPU until it blocks, yields, is preempted or exits. The module enforces a commit as placement, so
 * every thread dispatched ends with a worker CPU as its only allowed CPU. Checks, printed as CHECK lines, then
 * RESULT_C_FIFO PASS / FAIL (exit 0 / 1); a bad argument or a failed call: one line on stderr, exit 2.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ghost_shm_agent.h"

#define MAX_TASKS 256
#define MAX_CPUS 64

struct task {
	int used;
	int64_t gtid;
	uint32_t seq, sw_id, sw_index;
	int queued, runnable, cpu; /* cpu: where it runs in the agent's view, -1: not running */
};

static struct task tasks[MAX_TASKS];
static int runq[MAX_TASKS], rq_head, rq_len;
static int current[MAX_CPUS];
static GsaAgent *agent;
static atomic_int stop, finished;

struct seen {
	cpu_set_t affinity;
	unsigned long rounds;
	int joined;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int status)
{
	fprintf(stderr, "ghost-shm-c-fifo: %s: status %d\n", what, status);
	exit(2);
}

static void *worker(void *arg)
{
	struct seen *s = arg;
	s->joined = gsa_add_thread(agent, 0) == GSA_STATUS_OK;
	while (!atomic_load(&stop)) {
		double until = now_s() + 0.0004 + 0.0002 * (double)(s->rounds % 3);
		while (now_s() < until)
			;
		if (s->rounds % 4 == 3)
			sched_yield();
		else
			usleep(300);
		s->rounds++;
	}
	sched_getaffinity(0, sizeof(s->affinity), &s->affinity);
	atomic_fetch_add(&finished, 1);
	return NULL;
}

static struct task *find(int64_t gtid)
{
	for (int i = 0; i < MAX_TASKS; i++)
		if (tasks[i].used && tasks[i].gtid == gtid)
			return &tasks[i];
	return NULL;
}

static void enqueue(struct task *t)
{
	if (t->queued || rq_len == MAX_TASKS)
		return;
	runq[(rq_head + rq_len++) % MAX_TASKS] = (int)(t - tasks);
	t->queued = 1;
}

static void push_front(struct task *t)
{
	if (t->queued || rq_len == MAX_TASKS)
		return;
	rq_head = (rq_head + MAX_TASKS - 1) % MAX_TASKS;
	runq[rq_head] = (int)(t - tasks);
	rq_len++;
	t->queued = 1;
}

static struct task *pop(void)
{
	while (rq_len > 0) {
		struct task *t = &tasks[runq[rq_head]];
		rq_head = (rq_head + 1) % MAX_TASKS;
		rq_len--;
		if (t->used && t->queued) {
			t->queued = 0;
			return t;
		}
	}
	return NULL;
}

static void off_cpu(struct task *t)
{
	if (t->cpu >= 0 && t->cpu < MAX_CPUS && current[t->cpu] == (int)(t - tasks))
		current[t->cpu] = -1;
	t->cpu = -1;
}

static unsigned long messages, seq_violations, unknown, freed, free_errors, live;

static void handle(const GsaMessage *m)
{
	messages++;
	if (m->msg_type == GSA_MSG_TASK_NEW) {
		for (int i = 0; i < MAX_TASKS; i++) {
			if (!tasks[i].used) {
				tasks[i] = (struct task){ 1, m->gtid, m->seqnum, m->sw_id, m->sw_index, 0, m->runnable, -1 };
				live++;
				if (m->runnable)
					enqueue(&tasks[i]);
				return;
			}
		}
		unknown++;
		return;
	}
	struct task *t = find(m->gtid);
	if (!t) {
		unknown++;
		return;
	}
	if (m->seqnum <= t->seq)
		seq_violations++;
	t->seq = m->seqnum;
	switch (m->msg_type) {
	case GSA_MSG_TASK_WAKEUP:
		t->runnable = 1;
		enqueue(t);
		break;
	case GSA_MSG_TASK_BLOCKED:
		t->runnable = 0;
		off_cpu(t);
		break;
	case GSA_MSG_TASK_PREEMPT:
	case GSA_MSG_TASK_YIELD:
		t->runnable = 1;
		off_cpu(t);
		enqueue(t);
		break;
	case GSA_MSG_TASK_DEAD:
	case GSA_MSG_TASK_DEPARTED:
		off_cpu(t);
		if (gsa_free_status_word(agent, t->sw_id, t->sw_index) == GSA_STATUS_OK)
			freed++;
		else
			free_errors++;
		t->used = 0;
		t->queued = 0;
		live--;
		break;
	default:
		break;
	}
}

static int failed;

static void check(const char *name, int ok, const char *detail)
{
	printf("CHECK c_fifo_%s %s %s\n", name, ok ? "PASS" : "FAIL", detail);
	failed += !ok;
}

int main(int argc, char **argv)
{
	long nthreads = 4;
	double seconds = 3;
	for (int i = 1; i < argc; i++) {
		char *end = NULL;
		if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			nthreads = strtol(argv[++i], &end, 10);
			if (*end || nthreads < 1 || nthreads > 64) {
				fprintf(stderr, "ghost-shm-c-fifo: --threads: 1..=64\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = strtod(argv[++i], &end);
			if (*end || !(seconds > 0 && seconds <= 3600)) {
				fprintf(stderr, "ghost-shm-c-fifo: --seconds: a number in (0, 3600]\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: ghost-shm-c-fifo [--threads N] [--seconds S]\n");
			return 2;
		}
	}

	/* The module's CPU count first (a handle without a reserved CPU), then the real one. */
	int st = gsa_open_module(-1, &agent);
	if (st != GSA_STATUS_OK)
		die("gsa_open_module", st);
	uint32_t ncpus = gsa_ncpus(agent);
	gsa_close(agent);
	if (ncpus < 2 || ncpus > MAX_CPUS) {
		fprintf(stderr, "ghost-shm-c-fifo: needs 2..=%d CPUs (one for the agent), the module has %u\n", MAX_CPUS,
			ncpus);
		return 2;
	}
	uint32_t agent_cpu = ncpus - 1;
	if ((st = gsa_open_module((int32_t)agent_cpu, &agent)) != GSA_STATUS_OK)
		die("gsa_open_module", st);
	uint32_t q;
	if ((st = gsa_create_queue(agent, 4096, &q)) != GSA_STATUS_OK)
		die("gsa_create_queue", st);
	if ((st = gsa_set_default_queue(agent, q)) != GSA_STATUS_OK)
		die("gsa_set_default_queue", st);
	if ((st = gsa_become_agent(agent, agent_cpu, (int32_t)q)) != GSA_STATUS_OK)
		die("gsa_become_agent", st);
	if ((st = gsa_advertise(agent)) != GSA_STATUS_OK)
		die("gsa_advertise", st);
	for (int c = 0; c < MAX_CPUS; c++)
		current[c] = -1;

	pthread_t th[64];
	struct seen seen[64];
	memset(seen, 0, sizeof(seen));
	for (long i = 0; i < nthreads; i++) {
		seen[i].rounds = (unsigned long)i;
		if (pthread_create(&th[i], NULL, worker, &seen[i]))
			die("pthread_create", -1);
	}

	unsigned long dispatched = 0, stale = 0, gone = 0, refused = 0, steps = 0, overflows = 0;
	unsigned long by_outcome[8] = { 0 };
	double start = now_s(), deadline = 0;
	int drained = 0;
	for (;;) {
		GsaMessage m;
		int r;
		while ((r = gsa_queue_read(agent, q, &m)) == 1)
			handle(&m);
		if (r < 0)
			die("gsa_queue_read", r);
		overflows += gsa_queue_overflows(agent, q);
		for (uint32_t c = 0; c < ncpus; c++) {
			if (!gsa_is_worker_cpu(agent, c) || current[c] >= 0)
				continue;
			struct task *t = pop();
			if (!t)
				break;
			int32_t outcome = -1;
			if ((st = gsa_run(agent, agent_cpu, c, t->gtid, t->seq, &outcome)) != GSA_STATUS_OK)
				die("gsa_run", st);
			if (outcome == GSA_TXN_OUTCOME_COMPLETE) {
				current[c] = (int)(t - tasks);
				t->cpu = (int)c;
				dispatched++;
			} else if (outcome == GSA_TXN_OUTCOME_TARGET_STALE) {
				stale++; /* a newer message is in flight: drain, then retry with its seqnum */
				push_front(t);
				break;
			} else if (outcome == GSA_TXN_OUTCOME_TARGET_NOT_FOUND) {
				gone++;
			} else {
				refused++; /* e.g. no longer runnable: queued again only if it still is */
				if (outcome >= 0 && outcome < 8)
					by_outcome[outcome]++;
				if (t->runnable)
					enqueue(t);
			}
		}
		steps++;
		if (now_s() - start >= seconds)
			atomic_store(&stop, 1);
		if (atomic_load(&finished) == nthreads) {
			if (live == 0) {
				drained = 1;
				break;
			}
			if (deadline == 0)
				deadline = now_s() + 5;
			else if (now_s() > deadline)
				break;
		}
		usleep(100);
	}
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);

	char d[512];
	snprintf(d, sizeof(d), "%lu consumed, %lu seqnum violations, %lu for unknown tasks, %lu lost to overflow",
		 messages, seq_violations, unknown, overflows);
	check("messages", messages > 0 && seq_violations == 0 && unknown == 0 && overflows == 0, d);
	snprintf(d, sizeof(d),
		 "%lu dispatched (%lu stale retried, %lu gone, %lu refused: %lu on cpu, %lu not runnable, %lu cpu "
		 "unavailable, %lu agent stale, %lu other)",
		 dispatched, stale, gone, refused, by_outcome[GSA_TXN_OUTCOME_TARGET_ON_CPU],
		 by_outcome[GSA_TXN_OUTCOME_TARGET_NOT_RUNNABLE], by_outcome[GSA_TXN_OUTCOME_CPU_UNAVAIL],
		 by_outcome[GSA_TXN_OUTCOME_AGENT_STALE], by_outcome[GSA_TXN_OUTCOME_OTHER]);
	check("dispatched", dispatched >= (unsigned long)nthreads, d);
	long placed = 0, joined = 0;
	for (long i = 0; i < nthreads; i++) {
		joined += seen[i].joined;
		if (CPU_COUNT(&seen[i].affinity) != 1)
			continue;
		for (uint32_t c = 0; c < ncpus; c++)
			if (CPU_ISSET(c, &seen[i].affinity) && gsa_is_worker_cpu(agent, c))
				placed++;
	}
	snprintf(d, sizeof(d), "%ld of %ld threads joined, %ld left placed on one worker CPU (spawned on agent CPU %u)",
		 joined, nthreads, placed, agent_cpu);
	check("placed", joined == nthreads && placed == nthreads, d);
	snprintf(d, sizeof(d), "%lu tasks left, %lu status words freed, %lu free errors", live, freed, free_errors);
	check("tasks_gone", drained && free_errors == 0, d);
	printf("BENCH c_fifo %lu agent steps in %.2f s\n", steps, now_s() - start);
	gsa_close(agent);
	printf("RESULT_C_FIFO %s\n", failed ? "FAIL" : "PASS");
	return failed ? 1 : 0;
}

/*
 * kvmhole probes: per guest (= VMM process, keyed by tgid), count PCI-hole reads
 * served inside KVM, hole accesses that exit to the VMM, userspace exits by
 * reason and the userspace round trip of each exit. Everything is counted in
 * maps that userspace reads once per interval; nothing is copied per event
 * unless EVENTS is defined (the optional ring buffer of userspace exits).
 *
 * Sizes shared with Python come from kvmhole/probes/bpf.py as -D flags, so the
 * two sides cannot disagree: MAX_HOLES (hole ranges per guest), NR_REASONS
 * (KVM_EXIT_* numbers counted one by one), NR_BUCKETS and FIRST_BUCKET_LOG2 (the
 * round-trip histogram: snapshot.ROUNDTRIP_BOUNDS_S).
 *
 * Compile-time switches (set by kvmhole/probes/bpf.py from the probe plan):
 *   EMULATED_PATH  hole reads recognised from guest page walks (emulated/PVM hosts)
 *   VMX_PATH       ... from kvm_exit/kvm_page_fault/kvm_entry (VMX/SVM hosts)
 *   AUTO_TRACK     any process entering KVM_RUN is tracked (no -p given)
 *   EVENTS         stream each userspace exit through a ring buffer
 *
 * Cost control: every program first drops what cannot matter (fetch and write
 * walks, syscalls other than ioctl) and then looks the tgid up in `holes`, the
 * map of tracked guests, before doing anything else.
 */
#include <uapi/linux/ptrace.h>

#define REASON_ERROR NR_REASONS  /* KVM_RUN failed with an errno other than EINTR */
#define KVM_EXIT_INTR 10
#define EINTR 4
#define KVM_RUN_CMD 0xAE80   /* _IO(KVMIO, 0x80) */
#define NR_IOCTL 16          /* x86_64 */
#define PFERR_WRITE 0x2
#define PFERR_FETCH 0x10
#define PTE_PS 0x80
#define PTE_FRAME 0x000ffffffffff000ULL
#define MMIO_UNSATISFIED_READ 0
#define MMIO_READ 1
#define MMIO_WRITE 2

struct guest_holes {
	u32 n;
	u32 pad;
	u64 start[MAX_HOLES];
	u64 end[MAX_HOLES];   /* exclusive */
	char comm[16];        /* the process name, kept even after the process is gone */
};

struct guest_counts {
	u64 kernel_reads;
	u64 read_exits;       /* hole reads answered by the VMM with all-ones */
	u64 write_exits;
	u64 exits[NR_REASONS + 1];
	u64 rt[NR_BUCKETS];
	u64 rt_sum_ns;
	u64 kt[NR_BUCKETS];   /* in-kernel handling of hole reads (VMX_PATH only) */
	u64 kt_sum_ns;
};

struct vcpu_state {
	u32 tgid;
	u32 walking;          /* a data-read page walk is under way, its leaf not seen yet */
	u32 pending;          /* the last hole read: not yet known whether it exits */
	u32 in_run;           /* inside ioctl(KVM_RUN) */
	u64 walk_gva;
	u64 pending_gpa;
	u64 exit_ts;          /* when KVM_RUN last returned to userspace */
	u64 kvm_exit_ts;      /* VMX_PATH: when the guest last exited to KVM */
	u64 addr;             /* EVENTS: address of the last MMIO / port of the last PIO */
	u32 reason;           /* EVENTS: reason of the last userspace exit */
	u32 pad;
};

struct exit_event {
	u32 pid;
	u32 tid;
	u32 reason;
	u32 pad;
	u64 addr;
	u64 latency_ns;
};

BPF_HASH(holes, u32, struct guest_holes, 1024);    /* tracked guests; written by userspace */
BPF_HASH(counts, u32, struct guest_counts, 1024);
BPF_HASH(vcpus, u32, struct vcpu_state, 8192);     /* keyed by thread id */
BPF_ARRAY(default_holes, struct guest_holes, 1);   /* what AUTO_TRACK gives a new guest */
BPF_ARRAY(zero_counts, struct guest_counts, 1);    /* never written: a zeroed initialiser */
#ifdef EVENTS
BPF_RINGBUF_OUTPUT(events, 1024);  /* 4 MiB: ~130k exits of slack for the reader */
BPF_ARRAY(lost, u64, 1);
#endif

static __always_inline int in_hole(struct guest_holes *h, u64 gpa)
{
	for (int i = 0; i < MAX_HOLES; i++) {
		if (i >= h->n)
			break;
		if (gpa >= h->start[i] && gpa < h->end[i])
			return 1;
	}
	return 0;
}

static __always_inline struct guest_counts *counts_of(u32 tgid)
{
	struct guest_counts *c = counts.lookup(&tgid);
	if (c)
		return c;
	int zero = 0;
	struct guest_counts *init = zero_counts.lookup(&zero);
	if (!init)
		return 0;
	counts.insert(&tgid, init);
	return counts.lookup(&tgid);
}

static __always_inline struct vcpu_state *vcpu_of(u32 tid, u32 tgid)
{
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (v)
		return v;
	struct vcpu_state init = {};
	init.tgid = tgid;
	vcpus.insert(&tid, &init);
	return vcpus.lookup(&tid);
}

static __always_inline void observe(u64 *buckets, u64 *sum, u64 ns)
{
	int idx = ns > 1 ? (int)bpf_log2l(ns - 1) - FIRST_BUCKET_LOG2 : 0; /* ceil(log2 ns) */
	/*
	 * Index the array with loop constants only. A clamped variable index is not
	 * enough for Linux 6.1's verifier: clang tests the clamp on one register and
	 * stores through a copy whose bounds the verifier does not link
	 * ("R1 unbounded memory access"), while newer kernels accept it.
	 */
#pragma unroll
	for (int i = 0; i < NR_BUCKETS; i++) {
		if (i >= idx || i == NR_BUCKETS - 1) {   /* idx < 0: bucket 0 */
			__sync_fetch_and_add(&buckets[i], 1);
			break;
		}
	}
	__sync_fetch_and_add(sum, ns);
}

/* The pending hole read did not turn into an exit to userspace: KVM served it. */
static __always_inline void settle_in_kernel(struct vcpu_state *v, u32 tgid)
{
	if (!v->pending)
		return;
	v->pending = 0;
	struct guest_counts *c = counts_of(tgid);
	if (c)
		__sync_fetch_and_add(&c->kernel_reads, 1);
}

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
	if (args->id != NR_IOCTL || args->args[1] != KVM_RUN_CMD)
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!holes.lookup(&tgid)) {
#ifdef AUTO_TRACK
		int zero = 0;
		struct guest_holes *d = default_holes.lookup(&zero);
		if (!d)
			return 0;
		holes.insert(&tgid, d);
		struct guest_holes *h = holes.lookup(&tgid);
		if (!h)
			return 0;
		bpf_get_current_comm(h->comm, sizeof(h->comm));
#else
		return 0;
#endif
	}
	struct vcpu_state *v = vcpu_of(tid, tgid);
	if (!v)
		return 0;
	u64 now = bpf_ktime_get_ns();
	if (v->exit_ts) {
		u64 ns = now - v->exit_ts;
		struct guest_counts *c = counts_of(tgid);
		if (c)
			observe(c->rt, &c->rt_sum_ns, ns);
#ifdef EVENTS
		struct exit_event *e = events.ringbuf_reserve(sizeof(*e));
		if (e) {
			e->pid = tgid;
			e->tid = tid;
			e->reason = v->reason;
			e->pad = 0;
			e->addr = v->addr;
			e->latency_ns = ns;
			events.ringbuf_submit(e, 0);
		} else {
			int zero = 0;
			u64 *n = lost.lookup(&zero);
			if (n)
				__sync_fetch_and_add(n, 1);
		}
#endif
		v->exit_ts = 0;
	}
	v->in_run = 1;
	return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
	if (args->id != NR_IOCTL)
		return 0;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (!v || !v->in_run)
		return 0;
	v->in_run = 0;
	v->exit_ts = bpf_ktime_get_ns();
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_userspace_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!holes.lookup(&tgid))
		return 0;
	u32 reason = args->reason;
	if (args->errno < 0)
		reason = (args->errno == -EINTR && reason == KVM_EXIT_INTR) ? KVM_EXIT_INTR
									     : REASON_ERROR;
	else if (reason >= NR_REASONS)
		reason = REASON_ERROR;
	struct guest_counts *c = counts_of(tgid);
	if (c && reason <= REASON_ERROR)
		__sync_fetch_and_add(&c->exits[reason], 1);
	struct vcpu_state *v = vcpu_of(tid, tgid);
	if (!v)
		return 0;
	v->reason = reason;
#ifdef VMX_PATH
	v->pending = 0;   /* it left KVM before the next guest entry: not served in the kernel */
#else
	settle_in_kernel(v, tgid);  /* this exit is not the pending read's (no kvm_mmio came) */
#endif
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_mmio)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	struct guest_holes *h = holes.lookup(&tgid);
	if (!h)
		return 0;
	u64 gpa = args->gpa;
	u32 type = args->type;
	if (type != MMIO_READ) {
		struct vcpu_state *v = vcpus.lookup(&tid);
		if (v) {
			v->addr = gpa;
			/* the pending hole read is this access: it goes to userspace */
			if (v->pending && (v->pending_gpa >> 12) == (gpa >> 12))
				v->pending = 0;
		}
	}
	if (type == MMIO_UNSATISFIED_READ || !in_hole(h, gpa))
		return 0;
	struct guest_counts *c = counts_of(tgid);
	if (!c)
		return 0;
	if (type == MMIO_WRITE) {
		__sync_fetch_and_add(&c->write_exits, 1);
	} else if (type == MMIO_READ) {
		/* a hole read answered by the VMM: all-ones over the access width */
		u64 mask = args->len >= 8 ? ~0ULL : (1ULL << (args->len * 8)) - 1;
		if ((args->val & mask) == mask)
			__sync_fetch_and_add(&c->read_exits, 1);
	}
	return 0;
}

#ifdef EVENTS
TRACEPOINT_PROBE(kvm, kvm_pio)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (v)
		v->addr = args->port;
	return 0;
}
#endif

#ifdef EMULATED_PATH
TRACEPOINT_PROBE(kvmmmu, kvm_mmu_pagetable_walk)
{
	if (args->pferr & (PFERR_FETCH | PFERR_WRITE))
		return 0;   /* hole reads are data reads; fetches are most walks */
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!holes.lookup(&tgid))
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid);
	if (!v)
		return 0;
	v->walking = 1;
	v->walk_gva = args->addr;
	return 0;
}

TRACEPOINT_PROBE(kvmmmu, kvm_mmu_paging_element)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (!v || !v->walking)
		return 0;
	u32 level = args->level;
	u64 pte = args->pte;
	if (!(level == 1 || (level <= 3 && (pte & PTE_PS))))
		return 0;   /* not the leaf yet */
	v->walking = 0;
	/* 4 KiB, 2 MiB or 1 GiB frame (64-bit and PAE paging) plus the offset in it */
	u64 offset_mask = (1ULL << (12 + 9 * (level - 1))) - 1;
	u64 gpa = (pte & PTE_FRAME & ~offset_mask) | (v->walk_gva & offset_mask);
	u32 tgid = v->tgid;
	/* a new data access has been translated, so the previous one is complete */
	settle_in_kernel(v, tgid);
	struct guest_holes *h = holes.lookup(&tgid);
	if (h && in_hole(h, gpa)) {
		v->pending = 1;
		v->pending_gpa = gpa;
	}
	return 0;
}
#endif

#ifdef VMX_PATH
TRACEPOINT_PROBE(kvm, kvm_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!holes.lookup(&tgid))
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid);
	if (v)
		v->kvm_exit_ts = bpf_ktime_get_ns();
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_page_fault)
{
	if (args->error_code & PFERR_WRITE)
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	struct guest_holes *h = holes.lookup(&tgid);
	if (!h || !in_hole(h, args->fault_address))
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid);
	if (v) {
		v->pending = 1;
		v->pending_gpa = args->fault_address;
	}
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_entry)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (!v || !v->pending)
		return 0;
	struct guest_counts *c = counts_of(v->tgid);
	v->pending = 0;
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->kernel_reads, 1);
	if (v->kvm_exit_ts)
		observe(c->kt, &c->kt_sum_ns, bpf_ktime_get_ns() - v->kvm_exit_ts);
	return 0;
}
#endif

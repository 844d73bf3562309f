/*
 * kvmhole probes: per guest (= VMM process, keyed by tgid), count config-space
 * accesses to absent PCI functions ("hole" accesses) by mechanism -- ECAM (MMIO in
 * the window) and type-1 (port 0xCF8 address, then 0xCFC-0xCFF data) -- served
 * inside KVM or exited to the VMM, userspace exits by reason and the userspace
 * round trip of each exit. Everything is counted in maps that userspace reads
 * once per interval; nothing is copied per event unless EVENTS is defined (the
 * optional ring buffer of userspace exits).
 *
 * Sizes shared with Python come from kvmhole/probes/bpf.py as -D flags, so the
 * two sides cannot disagree: MAX_HOLES (hole ranges per guest), NR_REASONS
 * (KVM_EXIT_* numbers counted one by one), NR_BUCKETS and FIRST_BUCKET_LOG2 (the
 * round-trip histogram: snapshot.ROUNDTRIP_BOUNDS_S), MECH_ECAM, MECH_TYPE1 and
 * NR_MECHANISMS (each mechanism's index in config[]: snapshot.MECHANISMS),
 * PCI_CONFIG_ADDRESS and PCI_CONFIG_DATA (the type-1 ports: guests/src/protocol.h),
 * PCI_IDENTITY_END (where the identity registers end: vmm/pci.py),
 * MAX_FUNCTIONS and MAX_BUS_ENTRIES (the per-function and per-bus maps),
 * MAX_GUESTS and MAX_VCPUS (the per-guest and per-thread maps), FULL_HOLES,
 * FULL_COUNTS, FULL_VCPUS and NR_FULL_MAPS (each map's index in map_full[]),
 * MAX_REFUSED (how many refused guests and threads are remembered).
 *
 * Compile-time switches (set by kvmhole/probes/bpf.py from the probe plan):
 *   EMULATED_PATH  hole reads recognised from guest page walks (emulated/PVM hosts)
 *   VMX_PATH       ... from kvm_exit/kvm_page_fault/kvm_entry (VMX/SVM hosts)
 *   AUTO_TRACK     any process entering KVM_RUN is tracked (no -p given)
 *   EVENTS         stream each userspace exit through a ring buffer
 *
 * Cost control: every program first drops what cannot matter (fetch and write
 * walks, FPU unloads) and then looks the tgid up in `holes`, the map of tracked
 * guests, before doing anything else. Only KVM's own tracepoints are used: a
 * syscall tracepoint would slow every syscall of every process on the host (the
 * kernel takes its slow syscall path for all tasks while one is enabled), so
 * KVM_RUN's entry is kvm_fpu's load, which KVM traces once per KVM_RUN before it
 * enters the guest, and its return is kvm_userspace_exit. An emulated hole read fires
 * the page-walk tracepoints ~44 times (11 walks of 4 events on the PVM host), so
 * those are attached raw, keep their state in the thread's task storage, and
 * drop an instruction fetch's events on one array read (`data_walks`).
 */
#include <uapi/linux/ptrace.h>

#define REASON_ERROR NR_REASONS  /* KVM_RUN failed with an errno other than EINTR */
#define KVM_EXIT_IO 2
#define KVM_EXIT_INTR 10
#define EINTR 4
#define E2BIG 7              /* what inserting a new key into a full hash map returns */
#define KVM_PIO_IN 0
#define CONFIG_ENABLE 0x80000000u /* type-1 address: bit 31 enables the config cycle */
/* what is known of one function (struct function_key) */
#define FN_PRESENT 1
#define FN_ABSENT 2
#define FN_SEEN_ECAM 4       /* an absent-function access by ECAM was counted */
#define FN_SEEN_TYPE1 8
#define PFERR_WRITE 0x2
#define PFERR_FETCH 0x10
#define PTE_PS 0x80
#define PTE_FRAME 0x000ffffffffff000ULL
#define MMIO_UNSATISFIED_READ 0
#define MMIO_READ 1
#define MMIO_WRITE 2

struct guest_holes {
	u32 n;
	u32 exact;            /* 1: the ranges are exactly the absent functions' pages (the
	                         kvmhole registry); 0: learn presence from vendor-ID reads */
	u32 provisional;      /* 1: AUTO_TRACK's defaults, the monitor has not identified
	                         the process yet (it may be a kvmhole VMM whose registry
	                         entry is still unread) */
	u32 pad;
	u64 start[MAX_HOLES];
	u64 end[MAX_HOLES];   /* exclusive */
	u64 ecam_start;       /* the ECAM window: 4 KiB per bus/device/function from here */
	u64 ecam_end;
	char comm[16];        /* the process name, kept even after the process is gone */
};

/* config-space accesses to absent functions by one mechanism */
struct config_counts {
	u64 reads_in_kernel;
	u64 read_exits;       /* reads answered by the VMM */
	u64 writes;
	u64 functions;        /* distinct absent functions accessed */
	u64 exits;            /* userspace exits the reads cost (type-1: address + data) */
};

struct guest_counts {
	struct config_counts config[NR_MECHANISMS];
	u64 exits[NR_REASONS + 1];
	u64 rt[NR_BUCKETS];
	u64 rt_sum_ns;
	u64 kt[NR_BUCKETS];   /* in-kernel handling of hole reads (VMX_PATH only) */
	u64 kt_sum_ns;
};

struct vcpu_state {
	u32 tgid;
	u32 pending;          /* the last hole read: not yet known whether it exits */
	u64 pending_gpa;
	u64 exit_ts;          /* when KVM_RUN last returned to userspace */
	u64 kvm_exit_ts;      /* VMX_PATH: when the guest last exited to KVM */
	u64 addr;             /* EVENTS: address of the last MMIO / port of the last PIO */
	u32 reason;           /* EVENTS: reason of the last userspace exit */
	u32 config_address;   /* the last type-1 address written to PCI_CONFIG_ADDRESS */
	u32 address_exited;   /* ... and its write went to userspace, not yet charged to a read */
	u32 out_pending;      /* a port write was traced; an IO exit now is that write's */
	u32 out_port;
	u32 in_exited;        /* the last IO exit was a port read: its kvm_pio comes on re-entry */
	u32 blind;            /* first seen inside KVM_RUN: the exit before it was missed */
};

struct function_key {
	u32 tgid;
	u32 bdf;              /* bus << 8 | device << 3 | function */
};

struct bus_key {
	u32 tgid;
	u32 bus;
};

struct bus_reads {
	u64 reads[NR_MECHANISMS];  /* absent-function reads on this bus */
};

struct exit_event {
	u32 pid;
	u32 tid;
	u32 reason;
	u32 pad;
	u64 addr;
	u64 latency_ns;
};

BPF_HASH(holes, u32, struct guest_holes, MAX_GUESTS);  /* tracked guests; also userspace's */
BPF_HASH(counts, u32, struct guest_counts, MAX_GUESTS);
BPF_HASH(vcpus, u32, struct vcpu_state, MAX_VCPUS);    /* keyed by thread id */
/*
 * Guests (holes, counts) and threads (vcpus) a full map refused, per map: what
 * is not counted is counted here, never lost silently. `refused` remembers who
 * was refused already, so each is counted once however often it retries.
 */
BPF_ARRAY(map_full, u64, NR_FULL_MAPS);
struct refused_key {
	u32 map;              /* FULL_* */
	u32 id;               /* tgid (holes, counts) or thread id (vcpus) */
};
BPF_TABLE("lru_hash", struct refused_key, u8, refused, MAX_REFUSED);
BPF_ARRAY(default_holes, struct guest_holes, 1);   /* what AUTO_TRACK gives a new guest */
BPF_ARRAY(zero_counts, struct guest_counts, 1);    /* never written: a zeroed initialiser */
BPF_HASH(functions, struct function_key, u32, MAX_FUNCTIONS);  /* FN_* flags */
BPF_HASH(buses, struct bus_key, struct bus_reads, MAX_BUS_ENTRIES);
/*
 * 1 once every probe is attached. bcc attaches them one by one while guests run: a
 * port read completed in a window where kvm_pio was attached and kvm_userspace_exit
 * not yet looked served in the kernel (a monitor attached mid-run counted 321 of a
 * guest's 354 type-1 reads as served there, where no type-1 read ever is). Until
 * then no vCPU state is made, so nothing is classified.
 */
BPF_ARRAY(armed, u32, 1);
#ifdef EMULATED_PATH
/*
 * The page walk under way in a thread, kept with the thread itself (task storage):
 * the paging-element tracepoint fires for every level of every walk, instruction
 * fetches included, and a task's own storage is found without hashing its id.
 */
struct walk {
	u64 gva;
	u32 walking;          /* a tracked guest's data-read walk, its leaf not seen yet */
	u32 pad;
};
BPF_TASK_STORAGE(walks, struct walk);
/*
 * How many threads have such a walk under way. While none has, a paging element
 * (33 of an emulated hole read's 36 belong to instruction fetches) is dropped on
 * one array read, without looking up the thread's storage.
 */
BPF_ARRAY(data_walks, u64, 1);

/* This thread's data-read walk, if it has one under way, is over. */
static __always_inline void end_data_walk(u64 *in_flight)
{
	struct walk *w = walks.task_storage_get(bpf_get_current_task_btf(), 0, 0);
	if (w && w->walking) {
		w->walking = 0;
		__sync_fetch_and_add(in_flight, -1);
	}
}
#endif
#ifdef EVENTS
BPF_RINGBUF_OUTPUT(events, 1024);  /* 4 MiB: ~130k exits of slack for the reader */
BPF_ARRAY(lost, u64, 1);
#endif

static __always_inline void count_refusal(u32 map, u32 id)
{
	struct refused_key key = {.map = map, .id = id};
	u8 yes = 1;
	if (refused.insert(&key, &yes) != 0)
		return;   /* refused before: counted then */
	u64 *n = map_full.lookup(&map);
	if (n)
		__sync_fetch_and_add(n, 1);
}

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
	if (counts.insert(&tgid, init) == -E2BIG)
		count_refusal(FULL_COUNTS, tgid);
	return counts.lookup(&tgid);
}

/*
 * The vCPU thread's state, made on first sight once the probes are armed. Made
 * anywhere but at an exit (seen_exit), it is blind: the vCPU may be re-entering
 * KVM_RUN after an exit the probes missed, so the port read it completes first is
 * of unknown fate and is not counted.
 */
static __always_inline struct vcpu_state *vcpu_of(u32 tid, u32 tgid, int seen_exit)
{
	struct vcpu_state *v = vcpus.lookup(&tid);
	if (v)
		return v;
	int zero = 0;
	u32 *on = armed.lookup(&zero);
	if (!on || !*on)
		return 0;
	struct vcpu_state init = {};
	init.tgid = tgid;
	init.blind = !seen_exit;
	if (vcpus.insert(&tid, &init) == -E2BIG)
		count_refusal(FULL_VCPUS, tid);
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

static __always_inline void count_bus_read(u32 tgid, u32 bus, int mech)
{
	struct bus_key key = {.tgid = tgid, .bus = bus};
	struct bus_reads *b = buses.lookup(&key);
	if (!b) {
		struct bus_reads zero = {};
		buses.insert(&key, &zero);
		b = buses.lookup(&key);
		if (!b)
			return;
	}
	__sync_fetch_and_add(&b->reads[mech], 1);
}

/* One config-space access, as a probe saw it. */
struct access {
	u32 bdf;        /* bus << 8 | device << 3 | function */
	u32 offset;     /* in the function's config space */
	u32 len;
	u8 write;
	u8 exited;      /* it went to the VMM in userspace */
	u8 has_value;   /* a read whose value was traced (not one KVM served from a hole slot) */
	u64 value;
	u64 exits;      /* userspace exits it cost (a type-1 read: its address write's too) */
};

/*
 * An access `a` by mechanism `mech` (a constant at every call, so config[mech] is a
 * constant offset for the verifier). Only accesses to absent functions are counted:
 * a present function's unimplemented registers (its extended config space) also
 * read all-ones, and writes to present functions are ordinary configuration.
 */
static __always_inline void config_access(u32 tgid, struct guest_holes *h, int mech,
					  const struct access *a)
{
	u32 bdf = a->bdf, offset = a->offset, len = a->len;
	int write = a->write, has_value = a->has_value;
	u64 value = a->value;
	struct function_key key = {.tgid = tgid, .bdf = bdf};
	u32 *found = functions.lookup(&key);
	u32 state = found ? *found : 0, before = state;
	u32 known = FN_PRESENT | FN_ABSENT;
	/*
	 * A read of the identity registers decides: vendor ID, or the class an AMD
	 * kernel's northbridge scan reads first. Every present function implements
	 * them, and none reads all-ones there; elsewhere (e.g. extended config)
	 * all-ones says nothing about presence.
	 */
	u64 ones = len >= 8 ? ~0ULL : (1ULL << (len * 8)) - 1;
	int all_ones = has_value && (value & ones) == ones;
	if (!write && has_value && offset < PCI_IDENTITY_END && len >= 2) {
		state = (state & ~known) | (all_ones ? FN_ABSENT : FN_PRESENT);
	} else if (!write && !has_value)   /* served from a hole memslot: absent by design */
		state = (state & ~known) | FN_ABSENT;
	/*
	 * A write to a function not identified yet counts as a hole write: no guest
	 * configures a function before identifying it, and a guest whose registry
	 * entry the monitor has not read yet (a short one) writes only to its holes.
	 * For the same guest, an all-ones read of a function not identified yet is a
	 * hole read while the process is provisional; once the monitor has identified
	 * it (as another VMM), only the identity registers decide.
	 */
	int absent = h->exact ? in_hole(h, h->ecam_start + ((u64)bdf << 12))
		     : write ? !(state & FN_PRESENT)
		     : (state & FN_ABSENT) || (h->provisional && all_ones && !(state & known));
	u32 seen = mech == MECH_ECAM ? FN_SEEN_ECAM : FN_SEEN_TYPE1;
	int first = absent && !(state & seen);
	if (absent)
		state |= seen;
	if (state != before) {
		if (found)
			*found = state;
		else
			functions.update(&key, &state);
	}
	if (!absent)
		return;
	struct guest_counts *c = counts_of(tgid);
	if (!c)
		return;
	struct config_counts *m = &c->config[mech];
	if (first)
		__sync_fetch_and_add(&m->functions, 1);
	if (write) {
		__sync_fetch_and_add(&m->writes, 1);
		return;
	}
	if (a->exited) {
		__sync_fetch_and_add(&m->read_exits, 1);
		__sync_fetch_and_add(&m->exits, a->exits);
	} else {
		__sync_fetch_and_add(&m->reads_in_kernel, 1);
	}
	count_bus_read(tgid, bdf >> 8, mech);
}

/* The calling thread's process and thread ids, and its guest's holes: NULL when the
 * process is no guest the monitor watches (every probe's first question). */
static __always_inline struct guest_holes *watched(u32 *tgid, u32 *tid)
{
	u64 id = bpf_get_current_pid_tgid();
	*tgid = id >> 32;
	*tid = (u32)id;
	return holes.lookup(tgid);
}

static __always_inline int in_ecam(struct guest_holes *h, u64 gpa)
{
	return gpa >= h->ecam_start && gpa < h->ecam_end;
}

static __always_inline u32 ecam_bdf(struct guest_holes *h, u64 gpa)
{
	return ((gpa - h->ecam_start) >> 12) & 0xffff;
}

/* The pending hole read did not turn into an exit to userspace: KVM served it. */
static __always_inline void settle_in_kernel(struct vcpu_state *v, u32 tgid)
{
	if (!v->pending)
		return;
	v->pending = 0;
	struct guest_holes *h = holes.lookup(&tgid);
	if (h && in_ecam(h, v->pending_gpa)) {
		struct access a = {.bdf = ecam_bdf(h, v->pending_gpa),
				   .offset = v->pending_gpa & 0xfff, .len = 4};
		config_access(tgid, h, MECH_ECAM, &a);
	}
}

/*
 * KVM_RUN is entered: KVM loads the guest's FPU state once per KVM_RUN, before the
 * guest runs. (On a host with MPX, KVM_GET_MP_STATE loads it too: a VMM that calls
 * that between two runs ends the round trip there.)
 */
TRACEPOINT_PROBE(kvm, kvm_fpu)
{
	if (!args->load)
		return 0;
	u32 tgid, tid;
	if (!watched(&tgid, &tid)) {
#ifdef AUTO_TRACK
		int zero = 0;
		struct guest_holes *d = default_holes.lookup(&zero);
		if (!d)
			return 0;
		if (holes.insert(&tgid, d) == -E2BIG)
			count_refusal(FULL_HOLES, tgid);
		struct guest_holes *h = holes.lookup(&tgid);
		if (!h)
			return 0;
		bpf_get_current_comm(h->comm, sizeof(h->comm));
#else
		return 0;
#endif
	}
	struct vcpu_state *v = vcpu_of(tid, tgid, 0);
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
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_userspace_exit)
{
	u32 tgid, tid;
	if (!watched(&tgid, &tid))
		return 0;
	u32 reason = args->reason;
	/* an interrupted KVM_RUN is -EINTR whatever (stale) exit reason run->exit_reason holds */
	if (args->errno < 0)
		reason = args->errno == -EINTR ? KVM_EXIT_INTR : REASON_ERROR;
	else if (reason >= NR_REASONS)
		reason = REASON_ERROR;
	struct guest_counts *c = counts_of(tgid);
	if (c && reason <= REASON_ERROR)
		__sync_fetch_and_add(&c->exits[reason], 1);
	struct vcpu_state *v = vcpu_of(tid, tgid, 1);
	if (!v)
		return 0;
	v->reason = reason;
	v->blind = 0;   /* an exit seen: the fate of every later port read is known */
	/*
	 * kvm_pio traces a port write before KVM handles it, a port read that exits
	 * only when KVM_RUN is re-entered and completes it. So an IO exit right after
	 * a traced write is that write's; any other is a read's.
	 */
	if (args->errno >= 0 && args->reason == KVM_EXIT_IO) {
		if (!v->out_pending)
			v->in_exited = 1;
		else if (v->out_port == PCI_CONFIG_ADDRESS)
			v->address_exited = 1;
	}
	v->out_pending = 0;
#ifdef VMX_PATH
	v->pending = 0;   /* it left KVM before the next guest entry: not served in the kernel */
#else
	settle_in_kernel(v, tgid);  /* this exit is not the pending read's (no kvm_mmio came) */
#endif
#ifdef EMULATED_PATH
	int zero = 0;
	u64 *in_flight = data_walks.lookup(&zero);
	if (in_flight && *in_flight)
		end_data_walk(in_flight);   /* a thread may leave KVM for good after a faulting walk */
#endif
	v->exit_ts = bpf_ktime_get_ns();   /* KVM_RUN returns now: the round trip starts */
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_mmio)
{
	u32 tgid, tid;
	struct guest_holes *h = watched(&tgid, &tid);
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
	if (type == MMIO_UNSATISFIED_READ || !in_ecam(h, gpa))
		return 0;
	/* KVM has no device in the ECAM window: a traced read there was the VMM's */
	struct access a = {.bdf = ecam_bdf(h, gpa), .offset = gpa & 0xfff, .len = args->len,
			   .write = type == MMIO_WRITE, .exited = 1, .has_value = 1,
			   .value = args->val, .exits = 1};
	config_access(tgid, h, MECH_ECAM, &a);
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_pio)
{
	u32 tgid, tid;
	struct guest_holes *h = watched(&tgid, &tid);
	if (!h)
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid, 0);
	if (!v)
		return 0;
	u32 port = args->port, in = args->rw == KVM_PIO_IN;
	int exited = 0;
	if (v->blind) {
		v->blind = 0;
		if (in)
			return 0;   /* maybe the completion of an exit before the probes were armed */
	}
	if (in) {
		exited = v->in_exited;
		v->in_exited = 0;
		v->out_pending = 0;
	} else {
		v->out_pending = 1;
		v->out_port = port;
	}
#ifdef EVENTS
	v->addr = port;
#endif
	if (args->count != 1)
		return 0;   /* string I/O: not how config space is reached */
	if (!in && port == PCI_CONFIG_ADDRESS && args->size == 4) {
		v->config_address = args->val;
		v->address_exited = 0;
		return 0;
	}
	u32 address = v->config_address;
	if (port < PCI_CONFIG_DATA || port > PCI_CONFIG_DATA + 3 || !(address & CONFIG_ENABLE))
		return 0;
	/* a type-1 read that went to userspace cost its own exit and its address write's */
	u64 exits = exited ? 1 + v->address_exited : 0;
	v->address_exited = 0;
	struct access a = {.bdf = (address >> 8) & 0xffff,
			   .offset = (address & 0xfc) + (port - PCI_CONFIG_DATA),
			   .len = args->size, .write = !in, .exited = exited, .has_value = in,
			   .value = args->val, .exits = exits};
	config_access(tgid, h, MECH_TYPE1, &a);
	return 0;
}

#ifdef EMULATED_PATH
/*
 * The page-walk tracepoints fire on every emulated memory access, four or five
 * times each, so they are attached raw: the program reads the tracepoint's
 * arguments (their TP_PROTO, the same in 6.1 and 6.18) instead of the kernel first
 * filling a perf record of them (on the PVM host, paired runs of an alias guest:
 * 6.0 µs added per access with perf-record tracepoints, 3.1 µs raw).
 */
RAW_TRACEPOINT_PROBE(kvm_mmu_pagetable_walk)   /* (u64 addr, u32 pferr) */
{
	int zero = 0;
	u64 *in_flight = data_walks.lookup(&zero);
	if (!in_flight)
		return 0;
	u32 pferr = (u32)ctx->args[1];
	if (pferr & (PFERR_FETCH | PFERR_WRITE)) {
		/* hole reads are data reads; fetches are most walks. A walk starting
		 * means this thread's previous one is over, leaf or not (a fault). */
		if (*in_flight)
			end_data_walk(in_flight);
		return 0;
	}
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!holes.lookup(&tgid))
		return 0;
	struct walk *w = walks.task_storage_get(bpf_get_current_task_btf(), 0,
						 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!w)
		return 0;
	if (!w->walking)
		__sync_fetch_and_add(in_flight, 1);
	w->walking = 1;
	w->gva = ctx->args[0];
	return 0;
}

RAW_TRACEPOINT_PROBE(kvm_mmu_paging_element)   /* (u64 pte, int level) */
{
	int zero = 0;
	u64 *in_flight = data_walks.lookup(&zero);
	if (!in_flight || !*in_flight)
		return 0;
	struct walk *w = walks.task_storage_get(bpf_get_current_task_btf(), 0, 0);
	if (!w || !w->walking)
		return 0;
	u32 level = (u32)ctx->args[1];
	u64 pte = ctx->args[0];
	if (!(level == 1 || (level <= 3 && (pte & PTE_PS))))
		return 0;   /* not the leaf yet */
	w->walking = 0;
	__sync_fetch_and_add(in_flight, -1);
	/* 4 KiB, 2 MiB or 1 GiB frame (64-bit and PAE paging) plus the offset in it */
	u64 offset_mask = (1ULL << (12 + 9 * (level - 1))) - 1;
	u64 gpa = (pte & PTE_FRAME & ~offset_mask) | (w->gva & offset_mask);
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	struct vcpu_state *v = vcpu_of((u32)id, tgid, 0);
	if (!v)
		return 0;
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
	u32 tgid, tid;
	if (!watched(&tgid, &tid))
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid, 1);
	if (v)
		v->kvm_exit_ts = bpf_ktime_get_ns();
	return 0;
}

TRACEPOINT_PROBE(kvm, kvm_page_fault)
{
	if (args->error_code & PFERR_WRITE)
		return 0;
	u32 tgid, tid;
	struct guest_holes *h = watched(&tgid, &tid);
	if (!h || !in_hole(h, args->fault_address))
		return 0;
	struct vcpu_state *v = vcpu_of(tid, tgid, 0);
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
	if (!v)
		return 0;
	v->out_pending = 0;   /* the traced port write was served in the kernel */
	if (!v->pending)
		return 0;
	u64 started = v->kvm_exit_ts;
	settle_in_kernel(v, v->tgid);
	struct guest_counts *c = counts_of(v->tgid);
	if (c && started)
		observe(c->kt, &c->kt_sum_ns, bpf_ktime_get_ns() - started);
	return 0;
}
#endif

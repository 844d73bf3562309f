"""cffi (API mode) over <linux/kvm.h>.

Struct layouts and ioctl numbers come from the C compiler reading the
installed uapi header (linux-libc-dev); the cdef below only names what the
binding uses. Anonymous members of struct kvm_run are reached through typedefs
taken with __typeof__, so their offsets are the compiler's, not ours.
"""

from cffi import FFI

ffibuilder = FFI()

_IOCTLS = """
KVM_GET_API_VERSION KVM_CREATE_VM KVM_CHECK_EXTENSION KVM_GET_VCPU_MMAP_SIZE
KVM_GET_SUPPORTED_CPUID KVM_CREATE_VCPU KVM_SET_USER_MEMORY_REGION
KVM_SET_TSS_ADDR KVM_GET_STATS_FD KVM_RUN KVM_GET_REGS KVM_SET_REGS KVM_GET_SREGS
KVM_SET_SREGS KVM_SET_CPUID2 KVM_CREATE_IRQCHIP KVM_CREATE_PIT2 KVM_IRQ_LINE
"""

_CONSTANTS = """
KVM_API_VERSION KVM_MEM_LOG_DIRTY_PAGES KVM_MEM_READONLY
KVM_EXIT_UNKNOWN KVM_EXIT_EXCEPTION KVM_EXIT_IO KVM_EXIT_HYPERCALL KVM_EXIT_DEBUG
KVM_EXIT_HLT KVM_EXIT_MMIO KVM_EXIT_IRQ_WINDOW_OPEN KVM_EXIT_SHUTDOWN
KVM_EXIT_FAIL_ENTRY KVM_EXIT_INTR KVM_EXIT_SET_TPR KVM_EXIT_TPR_ACCESS
KVM_EXIT_NMI KVM_EXIT_INTERNAL_ERROR KVM_EXIT_OSI KVM_EXIT_PAPR_HCALL
KVM_EXIT_WATCHDOG KVM_EXIT_EPR KVM_EXIT_SYSTEM_EVENT KVM_EXIT_IOAPIC_EOI
KVM_EXIT_HYPERV KVM_EXIT_X86_RDMSR KVM_EXIT_X86_WRMSR KVM_EXIT_DIRTY_RING_FULL
KVM_EXIT_AP_RESET_HOLD KVM_EXIT_X86_BUS_LOCK KVM_EXIT_XEN KVM_EXIT_RISCV_SBI
KVM_EXIT_NOTIFY
KVM_EXIT_IO_OUT
KVM_INTERNAL_ERROR_EMULATION KVM_INTERNAL_ERROR_SIMUL_EX
KVM_INTERNAL_ERROR_DELIVERY_EV KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON
KVM_CAP_NR_MEMSLOTS KVM_CAP_READONLY_MEM KVM_CAP_TSC_DEADLINE_TIMER KVM_PIT_SPEAKER_DUMMY
"""

_LIBC_CONSTANTS = """
PROT_NONE PROT_READ PROT_WRITE MAP_SHARED MAP_PRIVATE MAP_ANONYMOUS MAP_FIXED
MAP_NORESERVE MFD_CLOEXEC
"""

ffibuilder.cdef(
    "typedef unsigned char __u8; typedef unsigned short __u16;"
    " typedef unsigned int __u32; typedef unsigned long long __u64;"
    " typedef signed short __s16; typedef signed int __s32;\n"
    + "".join(f"#define {name} ...\n" for name in (_IOCTLS + _CONSTANTS + _LIBC_CONSTANTS).split())
    + """
struct kvm_userspace_memory_region {
    __u32 slot; __u32 flags; __u64 guest_phys_addr; __u64 memory_size;
    __u64 userspace_addr;
};
struct kvm_regs {
    __u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    __u64 r8, r9, r10, r11, r12, r13, r14, r15;
    __u64 rip, rflags;
};
struct kvm_segment {
    __u64 base; __u32 limit; __u16 selector; __u8 type; __u8 present, dpl, db,
    s, l, g, avl; __u8 unusable; ...;
};
struct kvm_dtable { __u64 base; __u16 limit; ...; };
struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss; struct kvm_segment tr, ldt;
    struct kvm_dtable gdt, idt; __u64 cr0, cr2, cr3, cr4, cr8; __u64 efer;
    __u64 apic_base; ...;
};
struct kvm_cpuid_entry2 {
    __u32 function; __u32 index; __u32 flags; __u32 eax; __u32 ebx; __u32 ecx;
    __u32 edx; ...;
};
struct kvm_cpuid2 { __u32 nent; struct kvm_cpuid_entry2 entries[]; ...; };
struct kvm_stats_header {
    __u32 flags; __u32 name_size; __u32 num_desc; __u32 id_offset;
    __u32 desc_offset; __u32 data_offset;
};
struct kvm_stats_desc {
    __u32 flags; __s16 exponent; __u16 size; __u32 offset; __u32 bucket_size;
    char name[];
};
struct kvm_pit_config { __u32 flags; ...; };
struct kvm_irq_level { __u32 irq; __u32 level; ...; };
struct kvm_run { __u32 exit_reason; ...; };
typedef struct { __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write; } kh_exit_mmio;
typedef struct { __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset; }
    kh_exit_io;
typedef struct { __u64 hardware_entry_failure_reason; __u32 cpu; } kh_exit_fail_entry;
typedef struct { __u32 suberror; __u32 ndata; __u64 data[16]; } kh_exit_internal;
typedef struct { __u64 hardware_exit_reason; } kh_exit_hw;

kh_exit_mmio *kh_run_mmio(struct kvm_run *run);
kh_exit_io *kh_run_io(struct kvm_run *run);
kh_exit_fail_entry *kh_run_fail_entry(struct kvm_run *run);
kh_exit_internal *kh_run_internal(struct kvm_run *run);
kh_exit_hw *kh_run_hw(struct kvm_run *run);

int kh_ioctl(int fd, unsigned long request, void *arg);
int kh_ioctl_val(int fd, unsigned long request, unsigned long arg);

void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int memfd_create(const char *name, unsigned int flags);
"""
)

ffibuilder.set_source(
    "kvmhole.kvm._kvm_cffi",
    r"""
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

typedef __typeof__(((struct kvm_run *)0)->mmio) kh_exit_mmio;
typedef __typeof__(((struct kvm_run *)0)->io) kh_exit_io;
typedef __typeof__(((struct kvm_run *)0)->fail_entry) kh_exit_fail_entry;
typedef __typeof__(((struct kvm_run *)0)->internal) kh_exit_internal;
typedef __typeof__(((struct kvm_run *)0)->hw) kh_exit_hw;

static kh_exit_mmio *kh_run_mmio(struct kvm_run *run) { return &run->mmio; }
static kh_exit_io *kh_run_io(struct kvm_run *run) { return &run->io; }
static kh_exit_fail_entry *kh_run_fail_entry(struct kvm_run *run) { return &run->fail_entry; }
static kh_exit_internal *kh_run_internal(struct kvm_run *run) { return &run->internal; }
static kh_exit_hw *kh_run_hw(struct kvm_run *run) { return &run->hw; }

/* ioctl is variadic; fixed-signature wrappers keep cffi's calls exact. */
static int kh_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static int kh_ioctl_val(int fd, unsigned long request, unsigned long arg)
{ return ioctl(fd, request, arg); }
""",
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

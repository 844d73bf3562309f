"""A minimal C run loop (cffi, API mode) that serves hole reads without Python.

It exists to measure what Python costs on the userspace exit path: the same
work the Python run loop (run_loop.py) does for a hole read (all-ones into
kvm_run), done in C.
Every other exit returns to the Python loop, so behaviour is unchanged.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
struct kvm_run;
struct kh_fastpath_counts { uint64_t hole_reads; uint8_t *pages_read; };
int kh_fastpath_run(int vcpu_fd, struct kvm_run *run, uint64_t ecam_base, uint64_t ecam_size,
                    const uint64_t *present, size_t n_present,
                    struct kh_fastpath_counts *counts);
""")
ffibuilder.set_source(
    "kvmhole.vmm._fastpath",
    r"""
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* pages_read: one bit per 4 KiB page of the window, set when a hole read touched it */
struct kh_fastpath_counts { uint64_t hole_reads; uint8_t *pages_read; };

static int is_present(uint64_t page, const uint64_t *present, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (present[i] == page)
            return 1;
    return 0;
}

/* Run until an exit that is not a hole read; 0 with kvm_run describing it, or -errno. */
static int kh_fastpath_run(int vcpu_fd, struct kvm_run *run, uint64_t ecam_base,
                           uint64_t ecam_size, const uint64_t *present, size_t n_present,
                           struct kh_fastpath_counts *counts)
{
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0)
            return -errno;
        if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.is_write)
            return 0;
        uint64_t addr = run->mmio.phys_addr;
        if (addr < ecam_base || addr - ecam_base >= ecam_size ||
            is_present(addr & ~0xfffull, present, n_present))
            return 0;
        memset(run->mmio.data, 0xff, run->mmio.len);
        uint64_t page = (addr - ecam_base) >> 12;
        counts->pages_read[page >> 3] |= 1u << (page & 7);
        counts->hole_reads++;
    }
}
""",
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

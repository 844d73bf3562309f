/*
 * hole-rw: the checks of the KVM_MEM_PCI_HOLE selftest (memory_slot_pci_hole.c),
 * made stronger: reads of every width anywhere in a hole page return all-ones,
 * writes reach the VMM (which checks address, length and data against the
 * log kept here) and are discarded, RAM outside the hole is untouched, and a
 * present function still answers with its real config space.
 */
#include "guest.h"

static const uint64_t read_offsets[] = { 0, 5000, 4088, 8184 };

static void expect_all_ones(volatile struct kh_result *r, uint64_t addr)
{
	int ok = read8(addr) == 0xff && read16(addr) == 0xffff &&
		 read32(addr) == 0xffffffffu && read64(addr) == ~0ull;

	if (ok)
		r->hole_reads += 4;
	else
		fail(r, addr, read64(addr));
}

static void logged_write(volatile struct kh_result *r, uint64_t addr, uint64_t len,
			 uint64_t value)
{
	volatile struct kh_write *w = &r->writes[r->writes_logged++];

	w->addr = addr;
	w->len = len;
	w->value = value;
	switch (len) {
	case 1: write8(addr, value); break;
	case 2: write16(addr, value); break;
	case 4: write32(addr, value); break;
	default: write64(addr, value); break;
	}
	r->hole_writes++;
}

int guest_main(const volatile struct kh_params *p, volatile struct kh_result *r)
{
	uint64_t hole = p->hole_addr;
	uint64_t sentinel = KH_SCRATCH_ADDR;
	unsigned int i;

	for (i = 0; i < sizeof(read_offsets) / sizeof(read_offsets[0]); i++)
		expect_all_ones(r, hole + read_offsets[i]);
	expect_all_ones(r, p->hole_last + 4088);

	write64(sentinel, 0x5a5aa5a55a5aa5a5ull);
	logged_write(r, hole + 1024, 8, 0xdeafbeefull);       /* the selftest's writes */
	logged_write(r, hole + 8000, 8, 0x0123456789abcdefull);
	logged_write(r, hole + 1, 1, 0x5a);
	logged_write(r, hole + 2050, 2, 0xbeef);
	logged_write(r, hole + 12, 4, 0xcafef00d);

	/* writes are discarded: the hole still reads all-ones */
	expect_all_ones(r, hole + 1024);
	expect_all_ones(r, hole + 8000);
	if (read64(sentinel) != 0x5a5aa5a55a5aa5a5ull)
		fail(r, sentinel, read64(sentinel));

	if (read32(p->device_addr) == p->device_id)
		r->present_reads++;
	else
		fail(r, p->device_addr, read32(p->device_addr));

	return r->failures ? KH_STATUS_FAILED : KH_STATUS_OK;
}

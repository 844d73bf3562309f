/*
 * ecam-scan: probe PCIe config space the way a Linux PCI scan does, reading
 * the vendor/device dword (offset 0) of every bus/device/function in order.
 * An absent function reads all-ones. The scan goes on until it has made
 * `pages` all-ones reads; present functions met on the way are read too
 * (so the default 8192 with a host bridge at 00:00.0 is 8193 accesses, the
 * count the 2020 patch measured in a q35 boot). With `passes` > 1 the same pages are scanned again: on
 * VMX/SVM hosts a mapped hole page faults into KVM on its first read only.
 * Then, with `type1_pages`, the same scan by type-1 port I/O (as stock Linux
 * reads config space below offset 256): address to 0xCF8, data from 0xCFC,
 * over the functions the ECAM window has. Port I/O always exits to the VMM.
 */
#include "guest.h"

int guest_main(const volatile struct kh_params *p, volatile struct kh_result *r)
{
	uint64_t base = p->scan_base, want = p->pages, limit = p->scan_limit;
	uint64_t holes = 0, present = 0, passes = p->passes;

	for (uint64_t pass = 0; pass < passes; pass++) {
		uint64_t found = 0;
		for (uint64_t page = 0; found < want && page < limit; page++) {
			if (read32(base + (page << 12)) == 0xffffffffu)
				found++;
			else
				present++;
		}
		holes += found;
	}
	r->hole_reads = holes;
	r->present_reads = present;

	uint64_t type1_holes = 0, type1_present = 0, functions = p->ecam_size >> 12;
	for (uint64_t fn = 0; type1_holes < p->type1_pages && fn < functions && fn <= 0xffff; fn++) {
		outl(KH_PCI_CONFIG_ADDRESS, 0x80000000u | (uint32_t)(fn << 8));
		if (inl(KH_PCI_CONFIG_DATA) == 0xffffffffu)
			type1_holes++;
		else
			type1_present++;
	}
	r->type1_hole_reads = type1_holes;
	r->type1_present_reads = type1_present;
	if (holes != want * passes || type1_holes != p->type1_pages)
		return KH_STATUS_FAILED;
	return KH_STATUS_OK;
}

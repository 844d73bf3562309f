/*
 * mixed: a steady, endless workload for live monitoring. Each batch makes
 * `pages` hole reads, one MMIO read of a present function (a device exit to the
 * VMM), one progress report over port I/O, then asks the VMM to pause.
 */
#include "guest.h"

int guest_main(const volatile struct kh_params *p, volatile struct kh_result *r)
{
	uint64_t page = 0;

	for (;;) {
		for (uint64_t i = 0; i < p->pages; i++) {
			if (read32(p->scan_base + (page << 12)) == 0xffffffffu)
				r->hole_reads++;
			else
				r->present_reads++;
			page = page + 1 < p->scan_limit ? page + 1 : 0;
		}
		read32(p->device_addr);
		r->device_reads++;
		r->batches++;
		r->port_writes += 2;
		outl(KH_PORT_PROGRESS, r->batches);
		outl(KH_PORT_SLEEP, p->pause_us);
	}
	return KH_STATUS_OK;
}

/*
 * kvmhole guest <-> VMM protocol. The one definition for both sides: guests
 * include it, and kvmhole/guests/protocol.py hands its #defines and structs to
 * cffi, so the VMM reads the same layout. Keep it to plain #defines of integers
 * and structs of uint64_t (what cffi's cdef parser accepts).
 *
 * Memory map of a kvmhole guest (guest-physical, identity-mapped with 2 MiB
 * pages by the VMM, which also enters long mode before the first instruction):
 */
#ifndef KVMHOLE_PROTOCOL_H
#define KVMHOLE_PROTOCOL_H

#define KH_GDT_ADDR 0x500
#define KH_PARAMS_ADDR 0x1000     /* struct kh_params, written by the VMM */
#define KH_RESULT_ADDR 0x2000     /* struct kh_result, written by the guest */
#define KH_LOAD_ADDR 0x10000      /* where the guest image is loaded and entered */
#define KH_STACK_TOP 0x80000
#define KH_PAGE_TABLES_ADDR 0x100000
#define KH_SCRATCH_ADDR 0x400000  /* RAM from here on is free for the guest to use */

/* Port I/O, always 32-bit "out" from the guest. */
#define KH_PORT_DONE 0x5f0        /* the guest has finished; value: KH_STATUS_* */
#define KH_PORT_PROGRESS 0x5f4    /* the result block is up to date (live counts) */
#define KH_PORT_SLEEP 0x5f8       /* pacing: the VMM sleeps `value` microseconds */

/*
 * PCI type-1 configuration: a 32-bit write of the function's address (bit 31
 * enable, bus 23:16, device 15:11, function 10:8, register 7:2) to
 * KH_PCI_CONFIG_ADDRESS, then a read or write of KH_PCI_CONFIG_DATA + 0..3.
 * The VMM answers them like q35; the BPF probes decode them (passed as -D).
 */
#define KH_PCI_CONFIG_ADDRESS 0xcf8
#define KH_PCI_CONFIG_DATA 0xcfc

#define KH_STATUS_OK 0
#define KH_STATUS_FAILED 1

#ifndef __ASSEMBLER__
#include <stdint.h>

struct kh_params {
	uint64_t ecam_base;      /* the ECAM window (PCIe config space) */
	uint64_t ecam_size;
	uint64_t scan_base;      /* ecam-scan reads function pages from here */
	uint64_t scan_limit;     /* ... and never more pages than this */
	uint64_t pages;          /* ecam-scan: all-ones reads to make; mixed: per batch */
	uint64_t pause_us;       /* mixed: pause between batches */
	uint64_t hole_addr;      /* hole-rw: two consecutive hole pages start here */
	uint64_t hole_last;      /* hole-rw: the last hole page of the window */
	uint64_t device_addr;    /* config page of a present function */
	uint64_t device_id;      /* its vendor/device dword (offset 0) */
	uint64_t passes;         /* ecam-scan: scans of the same pages (re-reads after the first) */
	uint64_t type1_pages;    /* ecam-scan: then this many absent-function reads by type-1 */
};

struct kh_write {
	uint64_t addr;
	uint64_t len;
	uint64_t value;
};

struct kh_result {
	uint64_t hole_reads;     /* reads that returned all-ones */
	uint64_t present_reads;  /* reads that returned a present function's data */
	uint64_t hole_writes;
	uint64_t device_reads;   /* mixed: MMIO reads of a present function */
	uint64_t port_writes;    /* mixed: port I/O writes */
	uint64_t batches;        /* mixed: completed batches */
	uint64_t failures;       /* checks that did not hold */
	uint64_t type1_hole_reads;    /* ecam-scan: type-1 reads that returned all-ones */
	uint64_t type1_present_reads;
	uint64_t first_failure_addr;
	uint64_t first_failure_value;
	uint64_t writes_logged;
	struct kh_write writes[16];
};
#endif
#endif

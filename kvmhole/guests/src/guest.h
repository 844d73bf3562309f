/* What every kvmhole guest has: typed MMIO accessors, port output, and its entry point. */
#ifndef KVMHOLE_GUEST_H
#define KVMHOLE_GUEST_H
#include "protocol.h"

/* Each guest defines this; its return value is sent to KH_PORT_DONE. */
int guest_main(const volatile struct kh_params *params, volatile struct kh_result *result);

static inline void outl(uint16_t port, uint32_t value)
{
	__asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t value;
	__asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
	return value;
}

/* volatile accesses of an exact width: each is one guest load or store */
static inline uint8_t read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t read64(uint64_t a) { return *(volatile uint64_t *)a; }
static inline void write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void write64(uint64_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

static inline void fail(volatile struct kh_result *r, uint64_t addr, uint64_t value)
{
	if (r->failures++ == 0) {
		r->first_failure_addr = addr;
		r->first_failure_value = value;
	}
}
#endif

/*
 * triple-fault: executes an undefined instruction. The VMM gives guests no IDT,
 * so the #UD escalates to a triple fault and KVM reports a shutdown: this guest
 * exists to show how kvmhole reports a crashed guest.
 */
#include "guest.h"

int guest_main(const volatile struct kh_params *p, volatile struct kh_result *r)
{
	(void)p;
	(void)r;
	__asm__ volatile("ud2");
	return KH_STATUS_OK;
}

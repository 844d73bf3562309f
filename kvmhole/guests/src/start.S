/* Entry of every kvmhole guest. The VMM has already put the vCPU in 64-bit
 * long mode with paging on, so all that is left is a stack and a call. */
#include "protocol.h"

	.section .text.start, "ax"
	.code64
	.global _start
_start:
	mov $KH_STACK_TOP, %rsp
	mov $KH_PARAMS_ADDR, %rdi
	mov $KH_RESULT_ADDR, %rsi
	call guest_main
	mov $KH_PORT_DONE, %dx
	out %eax, %dx
1:	hlt
	jmp 1b

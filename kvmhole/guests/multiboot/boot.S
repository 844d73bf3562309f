/*
 * Multiboot (v1) entry for a raw binary: the a.out kludge (flags bit 16) tells
 * the loader where to put the image, since a flat file has no ELF headers.
 * QEMU's -kernel loads it at 1 MiB and jumps to _start in 32-bit protected mode,
 * paging off, with the multiboot info pointer in %ebx.
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010000

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header     /* header_addr */
	.long _load_start   /* load_addr */
	.long _load_end     /* load_end_addr */
	.long _bss_end      /* bss_end_addr */
	.long _start        /* entry_addr */

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	push %ebx           /* struct multiboot_info * */
	call kmain
1:	hlt
	jmp 1b

	.bss
	.align 16
	.space 16384
stack_top:

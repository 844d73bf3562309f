/*
 * A multiboot ECAM scanner for QEMU q35: like kvmhole's ecam-scan guest, read the
 * vendor/device dword of every bus/device/function page of the ECAM window at
 * 0xB0000000 until `pages=N` (from the command line, -append) reads returned
 * all-ones, then print its own counts on debugcon (port 0xe9) as the tests'
 * ground truth and leave through isa-debug-exit (port 0xf4).
 *
 * Before the scan it reads the present host bridge at offset 0x100 once (below).
 * A "scan-start" line is printed right before the loop so a host reading
 * debugcon can time the scan alone, without QEMU's and SeaBIOS' boot. With
 * `ram=1` the same loop reads `pages` RAM pages instead: the baseline that
 * cancels the loop's own (emulated) cost out of a per-access figure.
 */
#include <stdint.h>

#define ECAM_BASE 0xB0000000u
#define ECAM_PAGES (256u * 256u)     /* 256 MiB: 256 buses x 32 devices x 8 functions */
#define RAM_BASE 0x01000000u         /* 16 MiB: above the image, inside QEMU's -m 64 */
#define RAM_PAGES 8192u              /* 32 MiB */
#define DEBUGCON 0xe9
#define DEBUG_EXIT 0xf4
#define MB_INFO_CMDLINE (1u << 2)

struct multiboot_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

static inline void outb(uint16_t port, uint8_t value)
{
	__asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static void print(const char *s)
{
	while (*s)
		outb(DEBUGCON, (uint8_t)*s++);
}

static void print_u32(uint32_t v)
{
	char buf[11];
	int i = sizeof(buf) - 1;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	print(&buf[i]);
}

/* The value of "NAME=" (key = "NAME=") in the command line, or `fallback`. */
static uint32_t cmdline_arg(const struct multiboot_info *mbi, const char *name,
			    uint32_t fallback)
{
	if (!(mbi->flags & MB_INFO_CMDLINE))
		return fallback;
	for (const char *s = (const char *)mbi->cmdline; *s; s++) {
		const char *key = name;
		const char *p = s;
		while (*key && *p == *key)
			p++, key++;
		if (*key)
			continue;
		uint32_t n = 0;
		while (*p >= '0' && *p <= '9')
			n = n * 10 + (uint32_t)(*p++ - '0');
		return n;
	}
	return fallback;
}

void kmain(const struct multiboot_info *mbi)
{
	uint32_t want = cmdline_arg(mbi, "pages=", 8192), holes = 0, present = 0;
	int ram = cmdline_arg(mbi, "ram=", 0) != 0;
	uint32_t base = ram ? RAM_BASE : ECAM_BASE, limit = ram ? RAM_PAGES : ECAM_PAGES;
	/* what `pages=` counts: all-ones reads of the hole, or every read of RAM */
	uint32_t *done = ram ? &present : &holes;

	/*
	 * The host bridge's extended config space (offset 0x100), as Linux reads it
	 * through ECAM: all-ones on q35, which has no extended capabilities there,
	 * yet not a hole read, since the function is present.
	 */
	if (!ram)
		(void)*(volatile uint32_t *)(ECAM_BASE + 0x100);
	print("kvmhole-multiboot: scan-start\n");
	for (uint32_t page = 0; *done < want && page < limit; page++) {
		volatile uint32_t *id = (volatile uint32_t *)(base + (page << 12));
		if (*id == 0xffffffffu)
			holes++;
		else
			present++;
	}
	print("kvmhole-multiboot: hole_reads=");
	print_u32(holes);
	print(" present_reads=");
	print_u32(present);
	print("\n");
	outb(DEBUG_EXIT, *done == want ? 0 : 1);  /* QEMU exits with (value << 1) | 1 */
}

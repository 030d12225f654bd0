/*
 * kernel-repro guest helper: make a repeat restored from a case snapshot its own sample. The agent
 * runs it right after the restore (kr_checkpoint in agent.sh) with the go line's values:
 *   reseed <seed: 64 hex digits> <wall clock: epoch seconds> <jitter: microseconds>
 * 1. sets the wall clock (clock_settime CLOCK_REALTIME): the restored guest would else resume with
 *    the snapshot's time;
 * 2. credits the 256-bit seed to the kernel's input pool (RNDADDENTROPY) and forces the CRNG to
 *    reseed from it at once (RNDRESEEDCRNG, Linux 4.17+): from here on get_random_bytes() and what
 *    draws on it differ from the snapshot's, instead of whenever the CRNG's next scheduled reseed
 *    comes;
 * 3. waits the jitter (nanosleep), so that the probes start at a seeded offset.
 * Prints one line: "clock=<r> addentropy=<r> reseed=<r>" with r = ok or an errno name; exit 0 only
 * when all worked. One process, no libc (x86-64 system calls): a restored guest runs under TCG with
 * an empty translation cache, where the dynamic loader alone costs tens of milliseconds.
 */
#include <linux/random.h>
#include <linux/time.h>

#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_ioctl 16
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_clock_settime 227
#define O_RDWR 02

static long sys3(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static unsigned long len(const char *s) {
	unsigned long n = 0;
	while (s[n]) n++;
	return n;
}

static void put(const char *s) { sys3(SYS_write, 1, (long)s, (long)len(s)); }

static const char *result(long r) {
	switch (-r) {
	case 0: return "ok";
	case 1: return "EPERM";
	case 2: return "ENOENT";
	case 22: return "EINVAL";
	case 25: return "ENOTTY";
	case 61: return "ENODATA";
	default: return "error";
	}
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static long number(const char *s, int *ok) {
	long v = 0;
	*ok = *s != 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9') { *ok = 0; return 0; }
		v = v * 10 + (*s - '0');
	}
	return v;
}

static struct {
	int entropy_count;
	int buf_size;
	unsigned char buf[32];
} e;

__attribute__((used)) static void cmain(long *sp) {
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	int ok1 = 0, ok2 = 0, bad = argc != 4;
	long epoch = 0, jitter = 0;
	if (!bad) {
		epoch = number(argv[2], &ok1);
		jitter = number(argv[3], &ok2);
		bad = !ok1 || !ok2 || len(argv[1]) != 64;
	}
	for (int i = 0; !bad && i < 32; i++) {
		int hi = hexval(argv[1][2 * i]), lo = hexval(argv[1][2 * i + 1]);
		if (hi < 0 || lo < 0) bad = 1;
		e.buf[i] = (unsigned char)(hi << 4 | lo);
	}
	if (bad) {
		put("clock=EINVAL addentropy=EINVAL reseed=EINVAL\n");
		sys3(SYS_exit, 2, 0, 0);
	}
	struct timespec now = { epoch, 0 };
	long clock = sys3(SYS_clock_settime, CLOCK_REALTIME, (long)&now, 0);
	e.entropy_count = 256;
	e.buf_size = 32;
	long add = -2, re = -2;
	long fd = sys3(SYS_open, (long)"/dev/urandom", O_RDWR, 0);
	if (fd >= 0) {
		add = sys3(SYS_ioctl, fd, RNDADDENTROPY, (long)&e);
		re = sys3(SYS_ioctl, fd, RNDRESEEDCRNG, 0);
		sys3(SYS_close, fd, 0, 0);
	}
	if (jitter > 0) {
		struct timespec d = { jitter / 1000000, (jitter % 1000000) * 1000 };
		sys3(SYS_nanosleep, (long)&d, 0, 0);
	}
	put("clock=");
	put(result(clock));
	put(" addentropy=");
	put(result(add));
	put(" reseed=");
	put(result(re));
	put("\n");
	sys3(SYS_exit, clock == 0 && add == 0 && re == 0 ? 0 : 1, 0, 0);
}

/* the process entry: the stack holds argc, then argv */
__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall cmain\n\thlt\n");

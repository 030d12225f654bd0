/*
 * kernel-repro guest helper: make a repeat restored from a case snapshot its own sample.
 *   reseed <seed: 64 hex digits> <wall clock: epoch seconds> <jitter: microseconds>
 *   reseed --fifo IN OUT     the same values as one line read from the FIFO IN, the answer written to
 *                            the FIFO OUT: started by the agent at its checkpoint, before the snapshot,
 *                            so that a restored guest hands it the go without starting a process
 * 1. sets the wall clock (clock_settime CLOCK_REALTIME): the restored guest would else resume with
 *    the snapshot's time;
 * 2. credits the 256-bit seed to the kernel's input pool (RNDADDENTROPY) and forces the CRNG to
 *    reseed from it at once (RNDRESEEDCRNG, Linux 4.17+): from here on get_random_bytes() and what
 *    draws on it differ from the snapshot's, instead of whenever the CRNG's next scheduled reseed
 *    comes;
 * 3. waits the jitter (nanosleep), so that the probes start at a seeded offset.
 * Answers one line: "clock=<r> addentropy=<r> reseed=<r>" with r = ok or an errno name; exit 0 only
 * when all worked. No libc (x86-64 system calls): a restored guest runs under TCG with an empty
 * translation cache, where the dynamic loader alone costs tens of milliseconds.
 */
#include <linux/random.h>
#include <linux/time.h>

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_ioctl 16
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_clock_settime 227
#define O_RDONLY 00
#define O_WRONLY 01
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

static long out_fd = 1;
static void put(const char *s) { sys3(SYS_write, out_fd, (long)s, (long)len(s)); }

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

/* split a line into at most 3 words (in place) */
static int words(char *line, char **w) {
	int n = 0;
	for (char *p = line; *p && n < 3;) {
		while (*p == ' ' || *p == '\n') *p++ = 0;
		if (!*p) break;
		w[n++] = p;
		while (*p && *p != ' ' && *p != '\n') p++;
		if (*p) *p++ = 0;
	}
	return n;
}

static char line[256];

__attribute__((used)) static void cmain(long *sp) {
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char *w[3] = { 0, 0, 0 };
	int n = 0;
	if (argc == 4 && argv[1][0] == '-' && argv[1][1] == '-') {
		/* --fifo IN OUT: wait for the go's values */
		long in = sys3(SYS_open, (long)argv[2], O_RDONLY, 0);
		long got = 0, r;
		while (in >= 0 && got < (long)sizeof line - 1 && (r = sys3(SYS_read, in, (long)(line + got), (long)sizeof line - 1 - got)) > 0) {
			got += r;
			if (line[got - 1] == '\n') break;
		}
		if (in >= 0) sys3(SYS_close, in, 0, 0);
		line[got] = 0;
		n = words(line, w);
		out_fd = sys3(SYS_open, (long)argv[3], O_WRONLY, 0);
		if (out_fd < 0) sys3(SYS_exit, 3, 0, 0);
	} else if (argc == 4) {
		n = 3;
		w[0] = argv[1], w[1] = argv[2], w[2] = argv[3];
	}
	int ok1 = 0, ok2 = 0, bad = n != 3;
	long epoch = 0, jitter = 0;
	if (!bad) {
		epoch = number(w[1], &ok1);
		jitter = number(w[2], &ok2);
		bad = !ok1 || !ok2 || len(w[0]) != 64;
	}
	for (int i = 0; !bad && i < 32; i++) {
		int hi = hexval(w[0][2 * i]), lo = hexval(w[0][2 * i + 1]);
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

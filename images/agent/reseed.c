/*
 * kernel-repro guest helper: make a restored guest's randomness its own. Called by the agent after a
 * case snapshot is restored (kr_checkpoint in agent.sh) with a 256-bit seed from the harness, as
 * 64 hex digits. It credits the seed to the input pool (RNDADDENTROPY, 256 bits), then forces the
 * kernel's CRNG to reseed from that pool at once (RNDRESEEDCRNG, Linux 4.17+): from here on,
 * get_random_bytes() and everything keyed by it differ from the snapshot's. Without the reseed
 * the CRNG would only pick the new input up at its next scheduled reseed (up to a minute later).
 * Prints one line: "addentropy=ok|<errno name> reseed=ok|<errno name>"; exit 0 only when both worked.
 * Built by the harness with the host's gcc against the libc already in the guest image.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static const char *errname(int e) {
	switch (e) {
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENODATA: return "ENODATA";
	case ENOENT: return "ENOENT";
	default: return "error";
	}
}

int main(int argc, char **argv) {
	struct {
		int entropy_count;
		int buf_size;
		unsigned char buf[32];
	} e;
	const char *hex = argc > 1 ? argv[1] : "";
	if (strlen(hex) != 64) {
		fprintf(stdout, "addentropy=EINVAL reseed=EINVAL\n");
		return 2;
	}
	for (int i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stdout, "addentropy=EINVAL reseed=EINVAL\n");
			return 2;
		}
		e.buf[i] = (unsigned char)(hi << 4 | lo);
	}
	e.entropy_count = 256;
	e.buf_size = 32;
	int fd = open("/dev/urandom", O_RDWR);
	if (fd < 0) {
		fprintf(stdout, "addentropy=%s reseed=%s\n", errname(errno), errname(errno));
		return 1;
	}
	const char *add = "ok", *re = "ok";
	if (ioctl(fd, RNDADDENTROPY, &e) < 0) {
		add = errname(errno);
		/* without the credit, at least mix the seed in */
		if (write(fd, e.buf, sizeof e.buf) < 0) add = "EIO";
	}
	if (ioctl(fd, RNDRESEEDCRNG) < 0) re = errname(errno);
	close(fd);
	fprintf(stdout, "addentropy=%s reseed=%s\n", add, re);
	return strcmp(add, "ok") == 0 && strcmp(re, "ok") == 0 ? 0 : 1;
}

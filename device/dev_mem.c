/*
 * Memory at rest (issue 8; docs/BENCHMARKS.md, "Footprint"): what
 * np-deviced does so that, idle, it keeps few pages resident.
 *
 * dev_mem_init(), first thing in dev_setup(): OpenSSL is initialised
 * without its error strings (the hash table of some 3,000 strings, and
 * the pages of libcrypto and libssl that fill it).  TLS errors are
 * logged at debug level only; they then read "error:0A000086::..."
 * with the numeric code, which `openssl errstr 0A000086` spells out.
 *
 * dev_mem_idle(), whenever the daemon may have become idle (the control
 * plane came up; the last session ended): once it has stayed idle for
 * DEV_TRIM_MS (control plane up, no session), dev_mem_trim() runs:
 *  - the memory malloc holds free goes back to the kernel (malloc_trim);
 *  - the pages of the program's and its libraries' read-only file
 *    mappings (code, constants, symbol and relocation tables) leave our
 *    page tables (MADV_DONTNEED).  Start-up (the dynamic linker's
 *    relocations, OpenSSL's provider set-up, the configuration) and a
 *    session (TLS handshake, rendezvous, sshd) touch far more of
 *    libcrypto and libc than an idle daemon does; the kernel's fault-
 *    around maps 64 KiB around every page touched besides.  The pages
 *    stay in the page cache (sshd maps the same libcrypto and libc):
 *    what is used again is mapped again by a minor fault, from memory.
 *    Only mappings none of whose pages was ever written are dropped
 *    (smaps "Anonymous: 0": no relocated RELRO page, no debugger
 *    breakpoint or uprobe in them), and no locked one.  Nothing is
 *    dropped that the kernel could not drop itself under memory
 *    pressure; it changes what RSS counts, not what the device holds in
 *    its page cache (docs/BENCHMARKS.md says which is which).
 */
#include <sys/mman.h>

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "cpc.h"
#include "dev.h"
#include "err.h"
#include "ev.h"
#include "log.h"

#define DEV_TRIM_MS 2000
#define TRIM_MAPS_MAX 256	/* mappings looked at (np-deviced has ~50) */

int
dev_mem_init(void)
{
	uint64_t opts = OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
	    OPENSSL_INIT_NO_LOAD_SSL_STRINGS;

	return OPENSSL_init_ssl(opts, NULL) == 1 ? NP_OK : NP_ERR_TLS;
}

/* Resident KiB (/proc/self/statm), or -1. */
static long
rss_kib(void)
{
	unsigned long size, res;
	FILE *f;
	int n;

	if ((f = fopen("/proc/self/statm", "re")) == NULL) {
		return -1;
	}
	n = fscanf(f, "%lu %lu", &size, &res);
	fclose(f);
	return n == 2 ? (long)(res * ((unsigned long)sysconf(_SC_PAGESIZE) /
	    1024)) : -1;
}

struct trim_map {
	uintptr_t lo, hi;
	int ok;			/* a candidate so far */
};

/* The ranges of /proc/self/smaps that may be dropped, into v[0..*n). */
static int
trim_maps(struct trim_map *v, size_t max, size_t *n)
{
	char line[640], perms[8], path[512];
	uintptr_t lo, hi;
	struct trim_map *m = NULL;
	unsigned long kib;
	FILE *f;

	*n = 0;
	if ((f = fopen("/proc/self/smaps", "re")) == NULL) {
		return NP_ERR_SYSTEM;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strchr(line, '\n') == NULL && !feof(f)) {
			/* Longer than any attribute line: a long path. */
			int ch;

			while ((ch = getc(f)) != EOF && ch != '\n') {
			}
		}
		path[0] = '\0';
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s "
		    "%511[^\n]", &lo, &hi, perms, path) >= 3) {
			if (m != NULL && m->ok) {
				(*n)++;
			}
			m = NULL;
			if (*n == max) {
				break;
			}
			m = &v[*n];
			m->lo = lo;
			m->hi = hi;
			/* Private, not writable, a file's. */
			m->ok = strlen(perms) == 4 && perms[1] != 'w' &&
			    perms[3] == 'p' && path[0] == '/' && hi > lo;
			continue;
		}
		if (m == NULL || !m->ok) {
			continue;
		}
		if (sscanf(line, "Anonymous: %lu", &kib) == 1 ||
		    sscanf(line, "Locked: %lu", &kib) == 1 ||
		    sscanf(line, "Swap: %lu", &kib) == 1) {
			if (kib != 0) {
				m->ok = 0; /* written, or locked: keep */
			}
		}
	}
	if (m != NULL && m->ok && *n < max) {
		(*n)++;
	}
	fclose(f);
	return NP_OK;
}

void
dev_mem_trim(void)
{
	struct trim_map v[TRIM_MAPS_MAX];
	int debug = np_log_get_level() >= NP_LOG_DEBUG;
	long before = debug ? rss_kib() : -1;
	size_t n, i, dropped = 0;

	if (trim_maps(v, TRIM_MAPS_MAX, &n) == NP_OK) {
		for (i = 0; i < n; i++) {
			if (madvise((void *)v[i].lo, v[i].hi - v[i].lo,
			    MADV_DONTNEED) == 0) {
				dropped++;
			}
		}
	}
	(void)malloc_trim(0); /* last: stdio's buffer is free by now */
	if (debug) { /* rss_kib() maps some of libc again */
		np_debug("idle: heap trimmed, %zu read-only file mappings "
		    "dropped from the page tables: RSS %ld -> %ld KiB",
		    dropped, before, rss_kib());
	}
}

static void
trim_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct dev *d = arg;

	d->trim_timer = 0;
	if (d->stopping || d->nsessions != 0 || d->cpc == NULL ||
	    !np_cpc_is_up(d->cpc)) {
		return; /* not idle: the next dev_mem_idle() tries again */
	}
	dev_mem_trim();
}

void
dev_mem_idle(struct dev *d)
{
	if (d->stopping || d->ev == NULL) {
		return;
	}
	/* Idle for DEV_TRIM_MS from now: a timer still pending restarts. */
	np_ev_timer_del(d->ev, d->trim_timer);
	d->trim_timer = np_ev_timer_add(d->ev, DEV_TRIM_MS, trim_cb, d);
}

/*
 * libFuzzer target: the client's rendezvous cache file
 * (np_srcache_parse).  A file it takes names each configured
 * rendezvous once, with round trips in range; formatted again and
 * parsed again, it gives the same ranking.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "srpick.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000000LL

static char *names[] = { "@sr_eu", "@sr_us", "@sr_ap" };
static const struct np_strlist ids = { names, 3 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_srpick p, q;
	struct np_buf *b;
	size_t i;
	int r;

	r = np_srcache_parse(data, size, &ids, NOW, 300, &p);
	if (r != NP_OK) {
		if (r != NP_ERR_INVALID && r != NP_ERR_STALE) {
			abort();
		}
		return 0;
	}
	if (p.n != ids.n) {
		abort();
	}
	for (i = 0; i < p.n; i++) {
		if (p.e[i].rtt_ms < -1 || p.e[i].rtt_ms > NP_SRPICK_RTT_MAX ||
		    p.e[i].dev_ms < -1 || p.e[i].dev_ms > NP_SRPICK_RTT_MAX ||
		    p.e[i].order >= ids.n ||
		    strcmp(p.e[i].id, names[p.e[i].order]) != 0) {
			abort();
		}
	}
	if ((b = np_buf_new(NP_SRCACHE_MAX)) == NULL) {
		return 0;
	}
	if (np_srcache_format(&p, b) != NP_OK ||
	    np_srcache_parse(np_buf_ptr(b), np_buf_len(b), &ids, NOW, 300,
	    &q) != NP_OK || q.n != p.n || q.when_ms != p.when_ms) {
		abort();
	}
	for (i = 0; i < p.n; i++) {
		if (strcmp(p.e[i].id, q.e[i].id) != 0 ||
		    p.e[i].rtt_ms != q.e[i].rtt_ms ||
		    p.e[i].dev_ms != q.e[i].dev_ms) {
			abort();
		}
	}
	np_buf_free(b);
	return 0;
}

/*
 * Several rendezvous, the nearest chosen (docs/PROTOCOL.md, "Probes";
 * docs/CLI.md, Rendezvous): a probe ticket from each (srd.probe ->
 * srd.probeinfo), one probe round trip to each data port, a ranking,
 * and the cache file that keeps the ranking for RendezvousCache
 * seconds.  With one Rendezvous nothing here runs.
 */
#ifndef NP_PROXY_SRPICK_H
#define NP_PROXY_SRPICK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"
#include "ident.h"
#include "diag.h"
#include "key.h"
#include "session.h"

#define NP_SRPICK_MAX NP_CONF_MULTI_MAX
#define NP_SRPICK_RTT_MAX 600000 /* ms: more is nonsense (cache, device) */
#define NP_SRCACHE_MAX 4096	 /* bytes of a cache file */
#define NP_SRCACHE_SKEW_MS 60000 /* a cache time this far ahead is bad */

struct np_srpick_ent {
	char id[NP_IDENT_MAX + 1];
	long rtt_ms;	/* our probe round trip; -1: no answer */
	long dev_ms;	/* the device's, -1: not reported */
	size_t order;	/* its place on the Rendezvous line */
	char why[160];	/* why no answer (not cached) */
};

struct np_srpick {
	struct np_srpick_ent e[NP_SRPICK_MAX]; /* ranked: best first */
	size_t n;
	int64_t when_ms; /* wall clock of the measurement */
};

/*
 * Pure: rank p->e, best first: the answered ones by rtt_ms plus dev_ms
 * (where the device reported one), ties and the unanswered ones in
 * their Rendezvous-line order.
 */
void np_srpick_rank(struct np_srpick *p);
/* Pure: the cache file's text ("np-rendezvous-cache 1 WHEN_MS", then
 * "@id RTT|- DEVICE_RTT|-" a line, in rank order). */
int np_srcache_format(const struct np_srpick *p, struct np_buf *out);
/*
 * Pure: parse a cache file's text for the configured ids.  NP_OK only
 * when it is well formed, names each of ids exactly once and nothing
 * else, and was measured at most max_age_s before now_ms (and not more
 * than NP_SRCACHE_SKEW_MS after); NP_ERR_STALE when only the age is
 * wrong; NP_ERR_INVALID otherwise.  out keeps the file's order.
 */
int np_srcache_parse(const uint8_t *p, size_t len,
    const struct np_strlist *ids, int64_t now_ms, long max_age_s,
    struct np_srpick *out);
/* The cache file's path for the device identity ident ("@name"):
 * "rendezvous-NAME.cache" in KnownHosts' directory. */
int np_srcache_path(const struct np_config *cfg, const char *ident,
    char *out, size_t outlen);
/* Read and parse path (a regular file of ours, not writable by others);
 * any failure means "no cache" (the code says which). */
int np_srcache_load(const char *path, const struct np_strlist *ids,
    int64_t now_ms, long max_age_s, struct np_srpick *out);
/* Write it atomically (0600 temp file, rename). */
int np_srcache_save(const char *path, const struct np_srpick *p);

/* The device's part of a measurement (np_srpick_measure). */
struct np_srpick_dev {
	const struct np_target *t;
	const uint8_t *pk;	/* its key, looked up */
	uint64_t wait_ms;	/* for its np.pong */
	struct np_pong pong;	/* its answer, when r is NP_OK */
	int r;			/* np_diag_ping_probe's; NP_ERR_AGAIN: no
				   ticket came, not asked */
	char why[512];
};

/*
 * Measure the rendezvous ids->v[i] whose keys are pks[i] (known[i]
 * set): srd.probe to each at once over x (monitoring), their
 * srd.probeinfo within RendezvousTimeout; then, with dev, an np.ping to
 * the device carrying the tickets (its "rtt" answer within
 * dev->wait_ms); then one probe each of our own.  Fills and ranks *out
 * (when_ms now; dev_ms where the device reported).  NP_OK even when
 * some did not answer; NP_ERR_CLOSED when the control plane dropped.
 */
int np_srpick_measure(struct np_sctx *x, const struct np_strlist *ids,
    const uint8_t (*pks)[NP_PK_LEN], const int *known,
    struct np_srpick_dev *dev, struct np_srpick *out);
/* "@a 12 ms, @b 80 ms, @c no answer" into buf. */
void np_srpick_summary(const struct np_srpick *p, char *buf, size_t len);
/* Move the entry for id to the end (it did not answer a session). */
void np_srpick_demote(struct np_srpick *p, const char *id);

#endif

/*
 * libFuzzer target: np-deviced's answer to an np.ping body
 * (dev_body_pong) and its probe list (dev_ping_probes).  The input is
 * the body (JSON), or no body at all when it is not JSON; the np.pong
 * must name a device this daemon serves, or none; the probe targets are
 * at most DEV_PROBE_MAX, each a valid identity once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dev.h"
#include "err.h"
#include "frame.h"
#include "ident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONF                                                               \
	"IdentityFile /k\nServer a:1\nServerFingerprint SHA256:"           \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\n"                    \
	"DeviceName default web\n"                                         \
	"Allow @alice users=alice\n"

/* Parsed once, read-only afterwards; reachable until exit. */
static struct dev_conf *conf;

static const struct dev_conf *
fuzz_conf(void)
{
	char err[256];

	if (conf != NULL) {
		return conf;
	}
	if ((conf = calloc(1, sizeof(*conf))) == NULL ||
	    dev_conf_init(conf) != NP_OK ||
	    dev_conf_parse(conf, CONF, strlen(CONF), "fuzz", err,
	    sizeof(err)) != NP_OK) {
		abort();
	}
	return conf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct dev_conf *c = fuzz_conf();
	struct json_object *ping = NULL, *pong = NULL, *v;
	struct dev_probe_tgt t[DEV_PROBE_MAX];
	const char *dev;
	size_t n = 0, i, j;

	if (np_json_parse(data, size, &ping) != NP_OK) {
		ping = NULL;
	}
	if (dev_body_pong(c, ping, &pong) == NP_OK) {
		if (!json_object_object_get_ex(pong, "device", &v) ||
		    (dev = json_object_get_string(v)) == NULL ||
		    (dev[0] != '\0' && !dev_conf_serves(c, dev))) {
			abort();
		}
	} else if (pong != NULL) {
		abort();
	}
	json_object_put(pong);
	if (dev_ping_probes(c, ping, t, &n) == NP_OK) {
		for (i = 0; i < n; i++) {
			if (n > DEV_PROBE_MAX || !np_ident_valid(t[i].sr) ||
			    t[i].port == 0 ||
			    strlen(t[i].ticket) != NP_SR_TICKET_B64_LEN) {
				abort();
			}
			for (j = 0; j < i; j++) {
				if (strcmp(t[i].sr, t[j].sr) == 0) {
					abort();
				}
			}
		}
	} else if (n != 0) {
		abort();
	}
	json_object_put(ping);
	return 0;
}

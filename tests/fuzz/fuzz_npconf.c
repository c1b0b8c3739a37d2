/*
 * libFuzzer target: the np client's config file (np_config_parse: the
 * keyword table of proxy/config.c, ServerFingerprint's form and the
 * DeviceAlias lines), then host names resolved through the aliases it
 * defined.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "ident.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_config cfg;
	struct np_target t;
	char err[512], why[256], name[NP_ALIAS_MAX + 16];
	size_t i;

	/* The defaults are paths under $HOME. */
	if (getenv("HOME") == NULL) {
		setenv("HOME", "/home/fuzz", 0);
	}
	if (np_config_defaults(&cfg) != NP_OK) {
		return 0;
	}
	err[0] = '\0';
	if (np_config_parse(&cfg, (const char *)data, size, "fuzz", err,
	    sizeof(err)) != NP_OK) {
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
			abort(); /* a failure always says why */
		}
		np_config_free(&cfg);
		return 0;
	}
	if (cfg.server_fingerprint != NULL &&
	    !np_config_fp_valid(cfg.server_fingerprint)) {
		abort();
	}
	for (i = 0; i < cfg.naliases; i++) {
		const struct np_alias *a = &cfg.aliases[i];

		if (!np_alias_name_valid(a->name) || !np_ident_valid(a->ident) ||
		    !np_devname_valid(a->device)) {
			abort();
		}
		/* Every alias resolves to what its line says. */
		snprintf(name, sizeof(name), "%s.noports", a->name);
		if (np_target_resolve(name, cfg.aliases, cfg.naliases, &t, why,
		    sizeof(why)) != NP_OK || strcmp(t.ident, a->ident) != 0 ||
		    strcmp(t.device, a->device) != 0) {
			abort();
		}
	}
	np_config_free(&cfg);
	return 0;
}

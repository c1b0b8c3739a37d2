/*
 * np rotate: a new identity key, announced to the server with a rotation
 * signed by both the old and the new key; only when the server accepted
 * it does the new key replace the old one in the key file.
 *
 * The new key is written to KEYFILE.new before the request, so that a
 * crash or a lost answer never loses the key the server may now expect.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cpc.h"
#include "err.h"
#include "key.h"
#include "pin.h"

#define ROTATE_USAGE "np rotate"

/* Both signatures over the rotation message. */
static int
rotate_sign(const struct np_key *old, const struct np_key *new,
    uint8_t sig[NP_SIG_LEN], uint8_t nsig[NP_SIG_LEN])
{
	struct np_buf *m;
	int r;

	if ((m = np_buf_new(1024)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_rot_message(np_key_name(old), np_key_pk(old),
	    np_key_pk(new), m)) == NP_OK &&
	    (r = np_key_sign(old, np_buf_ptr(m), np_buf_len(m), sig)) ==
	    NP_OK) {
		r = np_key_sign(new, np_buf_ptr(m), np_buf_len(m), nsig);
	}
	np_buf_free(m);
	return r;
}

static int
rotate_request(struct np_cli *cli, struct np_key *old, struct np_key *new,
    const char *tmp)
{
	uint8_t sig[NP_SIG_LEN], nsig[NP_SIG_LEN];
	struct np_cpc *c = NULL;
	int r;

	if ((r = rotate_sign(old, new, sig, nsig)) != NP_OK) {
		cli_err("cannot sign the rotation: %s", np_strerror(r));
		return r;
	}
	if ((r = cli_connect(cli, old, NULL, NULL, NULL, NULL, &c)) != NP_OK) {
		return r;
	}
	r = np_cpc_rotate_sync(c, np_key_pk(new), sig, nsig,
	    cli_timeout_ms(cli));
	if (r == NP_ERR_TIMEOUT || r == NP_ERR_CLOSED) {
		cli_req_err(c, r, "rotate");
		cli_err("the server may have accepted the new key: it is "
		    "kept in %s", tmp);
	} else if (r != NP_OK) {
		cli_req_err(c, r, "rotation refused");
	} else {
		cli_step(cli, "rotation accepted");
	}
	np_cpc_stop(c);
	np_cpc_free(c);
	return r;
}

int
cmd_rotate(struct np_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char tmp[PATH_MAX];
	const char *path = cli->cfg.identity_file;
	struct np_key *old = NULL, *new = NULL;
	int ch, r, saved = 0, rc = NP_EXIT_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: %s\n", ROTATE_USAGE);
			return NP_EXIT_OK;
		}
		return cli_usage(ROTATE_USAGE);
	}
	if (optind != argc) {
		return cli_usage(ROTATE_USAGE);
	}
	if (cli_load_key(cli, &old) != NP_OK) {
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		cli_err("%s: path too long", path);
		goto out;
	}
	if ((r = np_key_generate(np_key_name(old), &new)) != NP_OK ||
	    (r = np_key_save(new, tmp, 1)) != NP_OK) {
		cli_err("%s: cannot write the new key: %s", tmp,
		    np_strerror(r));
		goto out;
	}
	saved = 1;
	if ((r = rotate_request(cli, old, new, tmp)) != NP_OK) {
		if (r == NP_ERR_TIMEOUT || r == NP_ERR_CLOSED) {
			saved = 0; /* keep it: the server may have it */
		}
		goto out;
	}
	if (rename(tmp, path) == -1) {
		cli_err("rotation done but cannot replace %s: %s; the new "
		    "key is in %s", path, strerror(errno), tmp);
		saved = 0;
		goto out;
	}
	saved = 0;
	np_key_free(old); /* nothing of the old key stays around */
	old = NULL;
	if (cli_print_key(np_key_name(new), np_key_pk(new), 0) != NP_OK) {
		cli_err("cannot write to stdout");
		goto out;
	}
	rc = NP_EXIT_OK;
 out:
	if (saved) {
		unlink(tmp);
	}
	np_key_free(old);
	np_key_free(new);
	return rc;
}

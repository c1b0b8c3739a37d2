/*
 * np send @name [--type TYPE] [--ttl SECONDS] TEXT: an end-to-end box
 * {"text": TEXT} to @name, whose key is looked up and pin-checked first.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "box.h"
#include "buf.h"
#include "cli.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "key.h"

#define SEND_USAGE "np send @name [--type TYPE] [--ttl SECONDS] TEXT"
#define SEND_DEFAULT_TTL 86400
#define SEND_TEXT_MAX (32 * 1024)

struct send_args {
	char to[NP_IDENT_MAX + 1];
	const char *type;
	long ttl;
	const char *text;
};

static int
send_opts(int argc, char **argv, struct send_args *a)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	a->type = "note";
	a->ttl = SEND_DEFAULT_TTL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			a->type = optarg;
			break;
		case 'T':
			if (cli_parse_long(optarg, 1, NP_BOX_MAX_TTL,
			    &a->ttl) != 0) {
				cli_err("bad --ttl '%.32s' (1..%d seconds)",
				    optarg, NP_BOX_MAX_TTL);
				return NP_EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: %s\n", SEND_USAGE);
			return -1;
		default:
			return cli_usage(SEND_USAGE);
		}
	}
	if (optind + 2 != argc) {
		return cli_usage(SEND_USAGE);
	}
	if (cli_ident_arg(argv[optind], a->to) != NP_OK) {
		return NP_EXIT_USAGE;
	}
	if (!np_box_type_valid(a->type)) {
		cli_err("bad --type '%.40s' (a-z, 0-9, '_', '.', '-', at most "
		    "%d characters)", a->type, NP_BOX_TYPE_MAX);
		return NP_EXIT_USAGE;
	}
	a->text = argv[optind + 1];
	if (strlen(a->text) > SEND_TEXT_MAX) {
		cli_err("TEXT is too long (at most %d bytes)", SEND_TEXT_MAX);
		return NP_EXIT_USAGE;
	}
	return 0;
}

/* Seal {"text": text} for the looked-up key into box. */
static int
send_seal(const struct np_key *k, const struct send_args *a,
    const uint8_t pk[NP_PK_LEN], struct np_buf *box, char mid[NP_MID_LEN + 1])
{
	struct json_object *body, *s;
	int r;

	if ((body = json_object_new_object()) == NULL ||
	    (s = json_object_new_string(a->text)) == NULL) {
		json_object_put(body);
		return NP_ERR_ALLOC;
	}
	json_object_object_add(body, "text", s);
	r = np_box_seal(k, pk, a->to, a->type, NULL, body, (uint32_t)a->ttl,
	    np_now_real_ms(), NULL, box, mid);
	json_object_put(body);
	return r;
}

static int
send_one(struct np_cli *cli, struct np_cpc *c, const struct np_key *k,
    const struct send_args *a)
{
	char mid[NP_MID_LEN + 1];
	uint8_t pinned[NP_PK_LEN];
	struct np_cpc_lookup_res res;
	enum cli_pin_result pr = CLI_PIN_MATCH;
	struct np_buf *box = NULL;
	int r;

	r = cli_lookup_pinned(cli, c, a->to, &res, &pr, pinned);
	if (r == NP_ERR_KEY_CHANGED) {
		cli_err("the key of %s changed without a rotation signed by "
		    "the pinned key: not sending (if this is expected, run "
		    "'np pin --forget %s')", a->to, a->to);
		return r;
	}
	if (r != NP_OK) {
		return r;
	}
	if ((box = np_buf_new(NP_BOX_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = send_seal(k, a, res.pk, box, mid)) != NP_OK) {
		cli_err("cannot seal the message: %s", np_strerror(r));
		goto out;
	}
	if ((r = np_cpc_send_sync(c, a->to, mid, a->ttl, np_buf_ptr(box),
	    np_buf_len(box), cli_timeout_ms(cli))) != NP_OK) {
		cli_req_err(c, r, "send");
		goto out;
	}
	cli_step(cli, "sent %s", mid);
	printf("%s\n", mid);
	if (fflush(stdout) != 0) {
		r = NP_ERR_SYSTEM;
	}
 out:
	np_buf_free(box);
	return r;
}

int
cmd_send(struct np_cli *cli, int argc, char **argv)
{
	struct send_args a;
	struct np_key *k = NULL;
	struct np_cpc *c = NULL;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = send_opts(argc, argv, &a)) != 0) {
		return rc < 0 ? NP_EXIT_OK : rc;
	}
	rc = NP_EXIT_FAIL;
	if (cli_load_key(cli, &k) != NP_OK ||
	    cli_connect(cli, k, NULL, NULL, NULL, NULL, &c) != NP_OK) {
		goto out;
	}
	if (send_one(cli, c, k, &a) == NP_OK) {
		rc = NP_EXIT_OK;
	}
 out:
	if (c != NULL) {
		np_cpc_stop(c);
	}
	np_cpc_free(c);
	np_key_free(k);
	return rc;
}

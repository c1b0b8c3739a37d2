/*
 * np recv [--count N] [--timeout SECONDS]: monitor the mailbox; print
 * "@from TYPE TEXT" for each box that opens, then ack it.
 *
 * Pushed boxes are queued by the push callback and handled one at a time
 * from the main loop (each needs a lookup of its sender).  The replay
 * cache is persisted (~/.config/noports/seen) before a line is printed,
 * so no message id is ever shown twice, even across runs; the ack goes
 * out only after the line is flushed.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "box.h"
#include "cli.h"
#include "config.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "log.h"

#define RECV_USAGE "np recv [--count N] [--timeout SECONDS]"
#define RECV_QUEUE_MAX 256
#define RECV_FLUSH_MS 2000

struct recv_item {
	struct recv_item *next;
	int64_t seq;
	char from[NP_IDENT_MAX + 1];
	char mid[NP_MID_LEN + 1];
	size_t len;
	uint8_t box[];
};

struct recv_state {
	struct np_cli *cli;
	struct np_cpc *c;
	struct np_key *key;
	struct np_replay *rc;
	struct recv_item *head;
	struct recv_item **tail;
	size_t queued;
	long count;
	long timeout;
	long shown;
};

static int
recv_opts(int argc, char **argv, long *count, long *timeout)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*count = 1;
	*timeout = 10;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (cli_parse_long(optarg, 1, INT_MAX, count) != 0) {
				cli_err("bad --count '%.32s'", optarg);
				return NP_EXIT_USAGE;
			}
			break;
		case 't':
			if (cli_parse_long(optarg, 0, 86400 * 365,
			    timeout) != 0) {
				cli_err("bad --timeout '%.32s' (seconds, 0: "
				    "none)", optarg);
				return NP_EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: %s\n", RECV_USAGE);
			return -1;
		default:
			return cli_usage(RECV_USAGE);
		}
	}
	if (optind != argc) {
		return cli_usage(RECV_USAGE);
	}
	return 0;
}

/* Push callback: queue a copy (boxes beyond the queue come again on the
 * next connection, as they are not acked). */
static void
recv_push(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct recv_state *st = arg;
	struct recv_item *it;

	if (st->queued >= RECV_QUEUE_MAX || strlen(m->from) > NP_IDENT_MAX ||
	    strlen(m->mid) > NP_MID_LEN) {
		return;
	}
	if ((it = calloc(1, sizeof(*it) + m->box_len)) == NULL) {
		return;
	}
	it->seq = m->seq;
	snprintf(it->from, sizeof(it->from), "%s", m->from);
	snprintf(it->mid, sizeof(it->mid), "%s", m->mid);
	it->len = m->box_len;
	memcpy(it->box, m->box, m->box_len);
	*st->tail = it;
	st->tail = &it->next;
	st->queued++;
}

static struct recv_item *
recv_pop(struct recv_state *st)
{
	struct recv_item *it = st->head;

	if (it != NULL) {
		st->head = it->next;
		if (st->head == NULL) {
			st->tail = &st->head;
		}
		st->queued--;
	}
	return it;
}

static void
recv_drop_queue(struct recv_state *st)
{
	struct recv_item *it;

	while ((it = recv_pop(st)) != NULL) {
		free(it);
	}
}

/* Print "@from TYPE TEXT" (control characters replaced), flushed. */
static int
recv_print(const struct np_box_msg *m)
{
	struct json_object *t;
	const char *text = "";
	char *stype, *stext;
	int r = NP_ERR_ALLOC;

	if (m->body != NULL && json_object_object_get_ex(m->body, "text", &t) &&
	    json_object_is_type(t, json_type_string)) {
		text = json_object_get_string(t);
	}
	stype = cli_sanitize(m->type);
	stext = cli_sanitize(text);
	if (stype != NULL && stext != NULL) {
		printf("%s %s %s\n", m->from, stype, stext);
		r = fflush(stdout) == 0 && !ferror(stdout) ? NP_OK :
		    NP_ERR_SYSTEM;
	}
	free(stype);
	free(stext);
	return r;
}

/*
 * Open one queued box.  NP_OK: printed; NP_ERR_INVALID etc.: dropped (to
 * be acked); NP_ERR_CLOSED / NP_ERR_SYSTEM: stop without acking.
 */
static int
recv_open(struct recv_state *st, const struct recv_item *it)
{
	uint8_t pinned[NP_PK_LEN];
	struct np_cpc_lookup_res res;
	enum cli_pin_result pr = CLI_PIN_MATCH;
	struct np_box_msg *m = NULL;
	int r;

	r = cli_lookup_pinned(st->cli, st->c, it->from, &res, &pr, pinned);
	if (r == NP_ERR_CLOSED || r == NP_ERR_TIMEOUT) {
		return NP_ERR_CLOSED;
	}
	if (r != NP_OK) {
		cli_err("dropped message %s from %s: sender key: %s", it->mid,
		    it->from, np_strerror(r));
		return r;
	}
	r = np_box_open(st->key, res.pk, it->from, it->mid, it->box, it->len,
	    np_now_real_ms(), st->rc, &m);
	if (r != NP_OK) {
		cli_err("dropped message %s from %s: %s", it->mid, it->from,
		    np_strerror(r));
		return r;
	}
	if ((r = recv_print(m)) != NP_OK) {
		cli_err("cannot write to stdout");
		r = NP_ERR_SYSTEM;
	}
	np_box_msg_free(m);
	return r;
}

/* Handle one queued box; NP_OK to go on. */
static int
recv_handle(struct recv_state *st, struct recv_item *it)
{
	int r = recv_open(st, it);

	if (r == NP_ERR_CLOSED || r == NP_ERR_SYSTEM) {
		return r;
	}
	if (r == NP_OK) {
		st->shown++;
		cli_step(st->cli, "shown %s", it->mid);
	}
	if (np_cpc_ack(st->c, it->seq) != NP_OK) {
		return NP_ERR_CLOSED;
	}
	return NP_OK;
}

static int
recv_deadline_left(uint64_t deadline)
{
	uint64_t now = np_now_mono_ms();

	if (deadline == 0) {
		return 1000;
	}
	if (now >= deadline) {
		return 0;
	}
	return deadline - now > 1000 ? 1000 : (int)(deadline - now);
}

static int
recv_loop(struct recv_state *st)
{
	uint64_t deadline = 0;
	struct recv_item *it;
	int r, left;

	if (st->timeout > 0) {
		deadline = np_now_mono_ms() + (uint64_t)st->timeout * 1000;
	}
	while (st->shown < st->count) {
		if ((it = recv_pop(st)) != NULL) {
			r = recv_handle(st, it);
			free(it);
			if (r != NP_OK) {
				return r;
			}
			continue;
		}
		if (!np_cpc_is_up(st->c)) {
			cli_req_err(st->c, np_cpc_last_error(st->c) != NP_OK ?
			    np_cpc_last_error(st->c) : NP_ERR_CLOSED,
			    "connection lost");
			return NP_ERR_CLOSED;
		}
		if ((left = recv_deadline_left(deadline)) == 0) {
			cli_err("timed out");
			return NP_ERR_TIMEOUT;
		}
		if ((r = np_ev_run_once(st->cli->ev, left)) != NP_OK) {
			cli_err("event loop: %s", np_strerror(r));
			return r;
		}
	}
	return NP_OK;
}

static int
recv_setup(struct recv_state *st)
{
	char seen[PATH_MAX];
	int r;

	if ((r = np_config_path("seen", seen, sizeof(seen))) != NP_OK) {
		cli_err("cannot place the replay cache (HOME is not set)");
		return r;
	}
	if ((st->rc = np_replay_new(NP_REPLAY_DEFAULT)) == NULL) {
		cli_err("out of memory");
		return NP_ERR_ALLOC;
	}
	if ((r = np_mkdir_parent(seen)) != NP_OK ||
	    (r = np_replay_persist(st->rc, seen)) != NP_OK) {
		cli_err("%s: cannot use the replay cache: %s", seen,
		    np_strerror(r));
		return r;
	}
	if ((r = cli_load_key(st->cli, &st->key)) != NP_OK ||
	    (r = cli_connect(st->cli, st->key, NULL, NULL, NULL, NULL,
	    &st->c)) != NP_OK) {
		return r;
	}
	np_cpc_set_msg_cb(st->c, recv_push, st);
	if ((r = np_cpc_monitor_sync(st->c, cli_timeout_ms(st->cli))) !=
	    NP_OK) {
		cli_req_err(st->c, r, "monitor");
		return r;
	}
	cli_step(st->cli, "monitoring");
	return NP_OK;
}

int
cmd_recv(struct np_cli *cli, int argc, char **argv)
{
	struct recv_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.cli = cli;
	st.tail = &st.head;
	if ((rc = recv_opts(argc, argv, &st.count, &st.timeout)) != 0) {
		return rc < 0 ? NP_EXIT_OK : rc;
	}
	rc = NP_EXIT_FAIL;
	if (recv_setup(&st) != NP_OK) {
		goto out;
	}
	if (recv_loop(&st) == NP_OK) {
		rc = NP_EXIT_OK;
	}
	/* A ping answered means the server has read our acks. */
	if (np_cpc_is_up(st.c)) {
		(void)np_cpc_ping_sync(st.c, RECV_FLUSH_MS, NULL);
	}
 out:
	if (st.c != NULL) {
		np_cpc_stop(st.c);
	}
	np_cpc_free(st.c);
	recv_drop_queue(&st);
	np_replay_free(st.rc);
	np_key_free(st.key);
	return rc;
}

/*
 * Diagnostics shared by np ping and np doctor (docs/CLI.md): one np.ping
 * to a device, and a try of the relay: a session granted by the
 * rendezvous, its client endpoint connected and the token accepted.
 * Nothing here prints; each gives one line for the user in why.
 */
#ifndef NP_PROXY_DIAG_H
#define NP_PROXY_DIAG_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "ident.h"
#include "key.h"
#include "session.h"

#define NP_PONG_STR_MAX 64   /* characters kept of one pong string */
#define NP_PONG_LIST_MAX 64  /* entries kept of one pong list */
#define NP_DIAG_LIST_LEN 1024
#define NP_PONG_RTT_MAX 16   /* "rtt" members taken from a pong */
#define NP_PONG_RTT_MS_MAX 600000

/* What an np.pong said, sanitised for the terminal. */
struct np_pong {
	char version[NP_PONG_STR_MAX + 1];  /* "?" when absent */
	char devices[NP_DIAG_LIST_LEN];	    /* "a,b"; "-" when none */
	char features[NP_DIAG_LIST_LEN];
	int has_device;	  /* the asked device is among "devices" */
	uint64_t rtt_ms;  /* np.ping sent to np.pong opened */
	/* "rtt": the device's probe round trips to rendezvous, when the
	 * ping carried probes (at most NP_PONG_RTT_MAX, 0..600000 ms
	 * each; members of another form are left out) */
	size_t nrtt;
	char rtt_sr[NP_PONG_RTT_MAX][NP_IDENT_MAX + 1];
	long rtt_dev_ms[NP_PONG_RTT_MAX];
};

/*
 * Send np.ping for t->device to t->ident (its key pk) over x, which must
 * be monitoring (np_sctx_lookup), and wait until x->deadline for the
 * answer to it.  NP_OK fills *out; otherwise why gets one line for the
 * user (no "np:" and no host name in front; NP_ERR_TIMEOUT: "no answer
 * from @ident within N s", the caller says what to look at).
 */
int np_diag_ping(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct np_pong *out, char *why,
    size_t whylen);
/* The same with "probe" (the array probe, not taken; NULL: none) in the
 * ping: a device that measures reports "rtt" (docs/PROTOCOL.md,
 * "Probes"). */
int np_diag_ping_probe(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct json_object *probe,
    struct np_pong *out, char *why, size_t whylen);
/*
 * The same in two halves, for a caller with something to do meanwhile:
 * start sends the np.ping (queued on x's connection: run the loop once
 * to write it), finish waits until x->deadline for its np.pong.  clear
 * gives up a started one; finish and a failed start clear it.
 */
struct np_diag_pinging {
	char nonce[NP_MID_LEN + 1];
	struct json_object *body; /* the pong's, own reference */
	struct np_cpc_waiter w;
	uint32_t rid;
	uint64_t t0;
};
int np_diag_ping_start(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct json_object *probe,
    struct np_diag_pinging *pg, char *why, size_t whylen);
int np_diag_ping_finish(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct np_diag_pinging *pg,
    struct np_pong *out, char *why, size_t whylen);
void np_diag_ping_clear(struct np_sctx *x, struct np_diag_pinging *pg);
/* Pure: the "rtt" member of a pong body into out (nrtt, rtt_*). */
void np_pong_rtt(struct json_object *body, struct np_pong *out);

/* How far a try of the relay got. */
struct np_relay_try {
	int granted;		/* the rendezvous granted a session */
	char endpoint[300];	/* its client endpoint, "HOST:PORT" */
	uint64_t grant_ms;	/* srd.open sent to srd.session opened */
	uint64_t rtt_ms;	/* TCP connect + token line + NPSR1 OK */
};

/*
 * Ask rendezvous sr (key sr_pk) for a session over x (monitoring), as a
 * real set-up does (np_session_srd_open, until x->deadline), then
 * connect to its client endpoint with the client token and read
 * np-srd's answer (np_sr_connect), and close.  No device joins: the
 * session expires at np-srd, unused.  NP_OK or the error, with one line
 * in why about the step that failed (out->granted tells which).
 * np_session_srd_open prints its own error line on stderr too.
 */
int np_diag_relay(struct np_sctx *x, const struct np_target *t,
    const char *sr, const uint8_t sr_pk[NP_PK_LEN], struct np_relay_try *out,
    char *why, size_t whylen);

#endif

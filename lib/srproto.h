/*
 * The socket rendezvous protocol (see docs/PROTOCOL.md, "Rendezvous").
 *
 * Control plane: a client sends the rendezvous identity a box of type
 * "srd.open"; np-srd answers with "srd.session" (endpoints and tokens)
 * or "srd.error" (a reason).
 *
 * Data plane: each side connects to its endpoint and first sends one
 * line, at most NP_SRLINE_MAX bytes:
 *     "NPSR1 " SESSION " " SIDE " " TOKEN "\n"
 * SESSION is 32 lowercase hex digits, SIDE is "c" (client) or "d"
 * (device), TOKEN is the side's 32-byte secret in base64url without
 * padding (43 characters).  np-srd answers "NPSR1 OK\n" once the token
 * is accepted, or "NPSR1 ERR <reason>\n" and closes.  Everything after
 * the line, both ways, is the peer's bytes.
 */
#ifndef NP_SRPROTO_H
#define NP_SRPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"

#define NP_SR_TOKEN_LEN 32
#define NP_SR_SID_LEN 32 /* hex chars */
#define NP_SRLINE_MAX 128
#define NP_SR_OK_LINE "NPSR1 OK\n"

enum np_sr_side {
	NP_SR_CLIENT = 0,
	NP_SR_DEVICE = 1,
};

struct np_sr_endpoint {
	char host[256];
	uint16_t port;
	uint8_t token[NP_SR_TOKEN_LEN]; /* secret: wipe after use */
};

/* The body of an "srd.session" box. */
struct np_sr_session {
	char sid[NP_SR_SID_LEN + 1];
	int64_t deadline_ms; /* wall clock: both sides must connect by then */
	struct np_sr_endpoint side[2];
};

/* Append the token line for (sid, side, token) to out. */
int np_srline_format(const char *sid, enum np_sr_side side,
    const uint8_t token[NP_SR_TOKEN_LEN], struct np_buf *out);
/*
 * Parse one token line.  p[0..len) must be exactly the line including its
 * "\n".  Pure; NP_ERR_INVALID on anything else.
 */
int np_srline_parse(const uint8_t *p, size_t len, char sid[NP_SR_SID_LEN + 1],
    enum np_sr_side *side, uint8_t token[NP_SR_TOKEN_LEN]);
/*
 * Length of the first line in p[0..len) including "\n": NP_ERR_AGAIN when
 * no "\n" yet and len < NP_SRLINE_MAX, NP_ERR_TOO_BIG when none within
 * NP_SRLINE_MAX bytes.  Returns the length (> 0) otherwise.
 */
int np_srline_len(const uint8_t *p, size_t len);

/*
 * srd.session body <-> struct (strict: unknown members refused).  The
 * object from np_sr_session_to_json() holds the tokens: call
 * np_json_wipe_on_free() on it once (not twice) before sealing it.
 */
int np_sr_session_to_json(const struct np_sr_session *s,
    struct json_object **out);
int np_sr_session_from_json(struct json_object *body,
    struct np_sr_session *s);

/*
 * Connect to an endpoint (blocking, with a deadline), send the token line
 * followed by nothing, and read the answer line.  On NP_OK *fd is a
 * connected, non-blocking, close-on-exec socket ready to relay.
 * NP_ERR_AUTH when np-srd refused the token (reason copied into why).
 */
int np_sr_connect(const struct np_sr_endpoint *ep, const char *sid,
    enum np_sr_side side, int timeout_ms, int *fd, char *why, size_t whylen);

/*
 * Probes (docs/PROTOCOL.md, "Rendezvous", "Probes"): the cheap round
 * trip a client with several rendezvous measures to pick one.  np-srd
 * issues a probe ticket over the control plane (srd.probe ->
 * srd.probeinfo) to an identity its Allow line names; the ticket is a
 * bearer proof, good until its expiry, that np-srd made it:
 *     ticket = expiry_ms (u64 big-endian) || nonce (8 random bytes) ||
 *              HMAC-SHA-256(key, "noports-probe-v1\0" || expiry || nonce)
 * with a key np-srd draws at start and never shows.  On its data port:
 *     "NPSR1 PROBE " base64url(ticket, no padding: 64 chars) "\n"
 * answered "NPSR1 PONG\n" (or "NPSR1 ERR <reason>\n") and closed.
 */
#define NP_SR_TICKET_LEN 48
#define NP_SR_TICKET_B64_LEN 64
#define NP_SR_PROBE_KEY_LEN 32
#define NP_SR_PROBE_TTL_MS 60000 /* a ticket's life */
#define NP_SR_PONG_LINE "NPSR1 PONG\n"

/* A fresh ticket valid until expiry_ms (wall clock) under key. */
void np_sr_ticket_make(const uint8_t key[NP_SR_PROBE_KEY_LEN],
    int64_t expiry_ms, uint8_t ticket[NP_SR_TICKET_LEN]);
/* NP_OK when key made the ticket and now_ms is not past its expiry
 * (nor the expiry more than a ticket's life ahead); NP_ERR_AUTH. */
int np_sr_ticket_check(const uint8_t key[NP_SR_PROBE_KEY_LEN],
    const uint8_t ticket[NP_SR_TICKET_LEN], int64_t now_ms);
/* base64url without padding, NP_SR_TICKET_B64_LEN chars + NUL. */
void np_sr_ticket_encode(const uint8_t ticket[NP_SR_TICKET_LEN],
    char out[NP_SR_TICKET_B64_LEN + 1]);
int np_sr_ticket_decode(const char *s, size_t len,
    uint8_t ticket[NP_SR_TICKET_LEN]);
/* 1 when p[0..len) begins as a probe line ("NPSR1 PROBE "). */
int np_srprobe_is(const uint8_t *p, size_t len);
/* Pure: exactly one probe line, "\n" included, into its ticket. */
int np_srprobe_parse(const uint8_t *p, size_t len,
    uint8_t ticket[NP_SR_TICKET_LEN]);
/* One of several probes made at once (np_sr_probe_many). */
#define NP_SR_PROBES_MAX 16
struct np_sr_probe_job {
	const char *host;	/* in: address or name (looked up first) */
	uint16_t port;
	const char *ticket_b64;
	int r;			/* out: NP_OK, or why it failed */
	uint64_t ms;		/* out: connect start to PONG */
	char why[128];		/* out: the failure, printable */
};
/*
 * Probe j[0..n) (n <= NP_SR_PROBES_MAX) at once: each connects to the
 * first address of its host, sends the probe line with its ticket (b64
 * form), waits for "NPSR1 PONG\n" and closes; j->ms is the time from the
 * connect's start to the PONG.  All of them together get timeout_ms, so
 * n probes take about as long as the slowest.  Each j->r: NP_OK,
 * NP_ERR_AUTH (np-srd refused: its reason in why), NP_ERR_TIMEOUT,
 * NP_ERR_UNREACHABLE, NP_ERR_CLOSED, NP_ERR_PROTO.  NP_ERR_INVALID for
 * bad arguments, else NP_OK.
 */
int np_sr_probe_many(struct np_sr_probe_job *j, size_t n, int timeout_ms);

#endif

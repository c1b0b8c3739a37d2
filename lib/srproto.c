/*
 * The socket rendezvous protocol: token lines, the srd.session body and
 * the client side of the data-plane handshake (see srproto.h and
 * docs/PROTOCOL.md, "Rendezvous").
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "ev.h"
#include "srproto.h"

#define SR_MAGIC "NPSR1 "
#define SR_MAGIC_LEN (sizeof(SR_MAGIC) - 1)
#define SR_TOKEN_B64_LEN 43
/* "NPSR1 " sid " " side " " token "\n" */
#define SR_LINE_LEN (SR_MAGIC_LEN + NP_SR_SID_LEN + 1 + 1 + 1 + \
    SR_TOKEN_B64_LEN + 1)
#define SR_ERR_PREFIX "NPSR1 ERR "
#define SR_HOST_MAX 255
#define SR_DEADLINE_MAX ((int64_t)1 << 53)

static int
sid_valid(const char *s, size_t len)
{
	size_t i;

	if (len != NP_SR_SID_LEN) {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

static int
side_char(enum np_sr_side side, char *c)
{
	if (side == NP_SR_CLIENT) {
		*c = 'c';
	} else if (side == NP_SR_DEVICE) {
		*c = 'd';
	} else {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Exactly 43 base64url characters (no padding) that decode to 32 bytes.
 * The alphabet is checked here first: libsodium 1.0.18's decoder takes
 * every byte >= 0x80 for the last letter of the alphabet ('_' or '/').
 */
static int
token_decode(const char *s, size_t len, uint8_t token[NP_SR_TOKEN_LEN])
{
	uint8_t tmp[NP_SR_TOKEN_LEN + 8];
	size_t n = 0, i;
	const char *end = NULL;
	int r = NP_ERR_INVALID;

	if (len != SR_TOKEN_B64_LEN) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < len; i++) {
		if (!b64url_char(s[i])) {
			return NP_ERR_INVALID;
		}
	}
	if (sodium_base642bin(tmp, sizeof(tmp), s, len, NULL, &n, &end,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + len || n != NP_SR_TOKEN_LEN) {
		goto out;
	}
	memcpy(token, tmp, NP_SR_TOKEN_LEN);
	r = NP_OK;
 out:
	sodium_memzero(tmp, sizeof(tmp));
	return r;
}

static void
token_encode(const uint8_t token[NP_SR_TOKEN_LEN],
    char out[SR_TOKEN_B64_LEN + 1])
{
	sodium_bin2base64(out, SR_TOKEN_B64_LEN + 1, token, NP_SR_TOKEN_LEN,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
np_srline_format(const char *sid, enum np_sr_side side,
    const uint8_t token[NP_SR_TOKEN_LEN], struct np_buf *out)
{
	char b64[SR_TOKEN_B64_LEN + 1];
	char c;
	int r;

	if (sid == NULL || token == NULL || out == NULL ||
	    !sid_valid(sid, strnlen(sid, NP_SR_SID_LEN + 1))) {
		return NP_ERR_INVALID;
	}
	if ((r = side_char(side, &c)) != NP_OK) {
		return r;
	}
	token_encode(token, b64);
	r = np_buf_putf(out, SR_MAGIC "%s %c %s\n", sid, c, b64);
	sodium_memzero(b64, sizeof(b64));
	return r;
}

int
np_srline_parse(const uint8_t *p, size_t len, char sid[NP_SR_SID_LEN + 1],
    enum np_sr_side *side, uint8_t token[NP_SR_TOKEN_LEN])
{
	const char *s = (const char *)p;
	size_t off = 0;
	uint8_t tok[NP_SR_TOKEN_LEN];
	int r = NP_ERR_INVALID;

	if (p == NULL || len != SR_LINE_LEN) {
		return NP_ERR_INVALID;
	}
	if (memcmp(s, SR_MAGIC, SR_MAGIC_LEN) != 0) {
		return NP_ERR_INVALID;
	}
	off = SR_MAGIC_LEN;
	if (!sid_valid(s + off, NP_SR_SID_LEN)) {
		return NP_ERR_INVALID;
	}
	off += NP_SR_SID_LEN;
	if (s[off] != ' ' || (s[off + 1] != 'c' && s[off + 1] != 'd') ||
	    s[off + 2] != ' ' || s[len - 1] != '\n') {
		return NP_ERR_INVALID;
	}
	if ((r = token_decode(s + off + 3, SR_TOKEN_B64_LEN, tok)) != NP_OK) {
		goto out;
	}
	memcpy(sid, s + SR_MAGIC_LEN, NP_SR_SID_LEN);
	sid[NP_SR_SID_LEN] = '\0';
	*side = s[off + 1] == 'c' ? NP_SR_CLIENT : NP_SR_DEVICE;
	memcpy(token, tok, NP_SR_TOKEN_LEN);
	r = NP_OK;
 out:
	sodium_memzero(tok, sizeof(tok));
	return r;
}

int
np_srline_len(const uint8_t *p, size_t len)
{
	size_t i, lim = len < NP_SRLINE_MAX ? len : NP_SRLINE_MAX;

	for (i = 0; i < lim; i++) {
		if (p[i] == '\n') {
			return (int)(i + 1);
		}
	}
	return len >= NP_SRLINE_MAX ? NP_ERR_TOO_BIG : NP_ERR_AGAIN;
}

/* --- srd.session body --- */

static int
host_valid(const char *h, size_t len)
{
	size_t i;

	if (len < 1 || len > SR_HOST_MAX) {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (h[i] <= 0x20 || h[i] >= 0x7f) {
			return 0;
		}
	}
	return 1;
}

static int
endpoint_to_json(const struct np_sr_endpoint *ep, struct json_object **out)
{
	struct json_object *o = NULL, *v;
	char b64[SR_TOKEN_B64_LEN + 1];
	int r = NP_ERR_ALLOC;

	if (!host_valid(ep->host, strnlen(ep->host, sizeof(ep->host))) ||
	    ep->port == 0) {
		return NP_ERR_INVALID;
	}
	token_encode(ep->token, b64);
	if ((o = json_object_new_object()) == NULL) {
		goto out;
	}
	if ((v = json_object_new_string(ep->host)) == NULL ||
	    json_object_object_add(o, "host", v) != 0) {
		json_object_put(v);
		goto out;
	}
	if ((v = json_object_new_int(ep->port)) == NULL ||
	    json_object_object_add(o, "port", v) != 0) {
		json_object_put(v);
		goto out;
	}
	if ((v = json_object_new_string(b64)) == NULL ||
	    json_object_object_add(o, "token", v) != 0) {
		json_object_put(v);
		goto out;
	}
	*out = o;
	o = NULL;
	r = NP_OK;
 out:
	sodium_memzero(b64, sizeof(b64));
	json_object_put(o);
	return r;
}

int
np_sr_session_to_json(const struct np_sr_session *s,
    struct json_object **out)
{
	struct json_object *o = NULL, *v = NULL;
	static const char *names[2] = { "client", "device" };
	int i, r;

	if (s == NULL || out == NULL ||
	    !sid_valid(s->sid, strnlen(s->sid, sizeof(s->sid))) ||
	    s->deadline_ms < 0 || s->deadline_ms > SR_DEADLINE_MAX) {
		return NP_ERR_INVALID;
	}
	r = NP_ERR_ALLOC;
	if ((o = json_object_new_object()) == NULL) {
		goto out;
	}
	if ((v = json_object_new_string(s->sid)) == NULL ||
	    json_object_object_add(o, "sid", v) != 0) {
		json_object_put(v);
		goto out;
	}
	if ((v = json_object_new_int64(s->deadline_ms)) == NULL ||
	    json_object_object_add(o, "deadline", v) != 0) {
		json_object_put(v);
		goto out;
	}
	for (i = 0; i < 2; i++) {
		v = NULL;
		if ((r = endpoint_to_json(&s->side[i], &v)) != NP_OK) {
			goto out;
		}
		if (json_object_object_add(o, names[i], v) != 0) {
			json_object_put(v);
			r = NP_ERR_ALLOC;
			goto out;
		}
	}
	/* Not np_json_wipe_on_free(o) here: a second call on the same
	 * strings wipes them at once (json-c runs the old delete hook), and
	 * callers that seal the body call it themselves. */
	*out = o;
	o = NULL;
	r = NP_OK;
 out:
	json_object_put(o);
	return r;
}

/* The object has exactly n members, all named in names[0..n). */
static int
members_exact(struct json_object *o, const char *const *names, size_t n)
{
	size_t i;

	if (!json_object_is_type(o, json_type_object) ||
	    (size_t)json_object_object_length(o) != n) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!json_object_object_get_ex(o, names[i], NULL)) {
			return 0;
		}
	}
	return 1;
}

static int
get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
    int64_t *v)
{
	struct json_object *m;

	if (!json_object_object_get_ex(o, key, &m) ||
	    !json_object_is_type(m, json_type_int)) {
		return NP_ERR_INVALID;
	}
	errno = 0;
	*v = json_object_get_int64(m);
	if (errno != 0 || *v < min || *v > max) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
get_str(struct json_object *o, const char *key, const char **s, size_t *len)
{
	struct json_object *m;

	if (!json_object_object_get_ex(o, key, &m) ||
	    !json_object_is_type(m, json_type_string)) {
		return NP_ERR_INVALID;
	}
	*s = json_object_get_string(m);
	*len = (size_t)json_object_get_string_len(m);
	/* no NUL inside */
	if (*s == NULL || strlen(*s) != *len) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
endpoint_from_json(struct json_object *o, struct np_sr_endpoint *ep)
{
	static const char *const names[] = { "host", "port", "token" };
	const char *s;
	size_t len;
	int64_t port;
	int r;

	if (!members_exact(o, names, 3)) {
		return NP_ERR_INVALID;
	}
	if ((r = get_str(o, "host", &s, &len)) != NP_OK) {
		return r;
	}
	if (!host_valid(s, len)) {
		return NP_ERR_INVALID;
	}
	memcpy(ep->host, s, len);
	ep->host[len] = '\0';
	if ((r = get_int(o, "port", 1, 65535, &port)) != NP_OK) {
		return r;
	}
	ep->port = (uint16_t)port;
	if ((r = get_str(o, "token", &s, &len)) != NP_OK) {
		return r;
	}
	return token_decode(s, len, ep->token);
}

int
np_sr_session_from_json(struct json_object *body, struct np_sr_session *s)
{
	static const char *const names[] = { "sid", "deadline", "client",
		"device" };
	struct np_sr_session tmp;
	struct json_object *m;
	const char *str;
	size_t len;
	int r;

	if (body == NULL || s == NULL) {
		return NP_ERR_INVALID;
	}
	memset(&tmp, 0, sizeof(tmp));
	r = NP_ERR_INVALID;
	if (!members_exact(body, names, 4)) {
		goto out;
	}
	if ((r = get_str(body, "sid", &str, &len)) != NP_OK) {
		goto out;
	}
	if (!sid_valid(str, len)) {
		r = NP_ERR_INVALID;
		goto out;
	}
	memcpy(tmp.sid, str, len);
	tmp.sid[len] = '\0';
	if ((r = get_int(body, "deadline", 0, SR_DEADLINE_MAX,
	    &tmp.deadline_ms)) != NP_OK) {
		goto out;
	}
	json_object_object_get_ex(body, "client", &m);
	if ((r = endpoint_from_json(m, &tmp.side[NP_SR_CLIENT])) != NP_OK) {
		goto out;
	}
	json_object_object_get_ex(body, "device", &m);
	if ((r = endpoint_from_json(m, &tmp.side[NP_SR_DEVICE])) != NP_OK) {
		goto out;
	}
	*s = tmp;
	r = NP_OK;
 out:
	sodium_memzero(&tmp, sizeof(tmp));
	return r;
}

/* --- np_sr_connect --- */

static int
remaining_ms(uint64_t deadline)
{
	uint64_t now = np_now_mono_ms();

	if (now >= deadline) {
		return 0;
	}
	return deadline - now > 0x7fffffff ? 0x7fffffff :
	    (int)(deadline - now);
}

/* Wait for ev on fd until deadline.  NP_OK, NP_ERR_TIMEOUT, SYSTEM. */
static int
wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd pfd;
	int n, ms;

	for (;;) {
		if ((ms = remaining_ms(deadline)) == 0) {
			return NP_ERR_TIMEOUT;
		}
		pfd.fd = fd;
		pfd.events = ev;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n > 0) {
			return NP_OK;
		}
		if (n < 0 && errno != EINTR) {
			return NP_ERR_SYSTEM;
		}
	}
}

static void
set_why(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0) {
		snprintf(why, whylen, "%s", msg);
	}
}

static void
set_why_errno(char *why, size_t whylen, const char *what, int e)
{
	if (why != NULL && whylen > 0) {
		snprintf(why, whylen, "%s: %s", what, strerror(e));
	}
}

/* One non-blocking connect to ai within the deadline. */
static int
connect_one(const struct addrinfo *ai, uint64_t deadline, int *fdp,
    int *err)
{
	int fd, one = 1, soerr = 0, r;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		*err = errno;
		return NP_ERR_SYSTEM;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			*err = errno;
			close(fd);
			return NP_ERR_UNREACHABLE;
		}
		if ((r = wait_fd(fd, POLLOUT, deadline)) != NP_OK) {
			*err = r == NP_ERR_TIMEOUT ? ETIMEDOUT : errno;
			close(fd);
			return r;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
		    soerr != 0) {
			*err = soerr != 0 ? soerr : errno;
			close(fd);
			return NP_ERR_UNREACHABLE;
		}
	}
	*fdp = fd;
	return NP_OK;
}

static int
sr_dial(const struct np_sr_endpoint *ep, uint64_t deadline, int *fdp,
    char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int r = NP_ERR_UNREACHABLE, gai, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned)ep->port);
	if ((gai = getaddrinfo(ep->host, port, &hints, &res)) != 0) {
		if (why != NULL && whylen > 0) {
			snprintf(why, whylen, "%s: %s", ep->host,
			    gai_strerror(gai));
		}
		return NP_ERR_UNREACHABLE;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		r = connect_one(ai, deadline, fdp, &err);
		if (r == NP_OK || r == NP_ERR_TIMEOUT) {
			break;
		}
	}
	freeaddrinfo(res);
	if (r == NP_ERR_TIMEOUT) {
		set_why(why, whylen, "connect timed out");
	} else if (r != NP_OK) {
		set_why_errno(why, whylen, "connect", err);
	}
	return r;
}

static int
send_all(int fd, const uint8_t *p, size_t len, uint64_t deadline)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(fd, POLLOUT, deadline)) != NP_OK) {
				return r;
			}
			continue;
		}
		return NP_ERR_CLOSED;
	}
	return NP_OK;
}

/*
 * Read the answer line into line (at most NP_SRLINE_MAX bytes, "\n"
 * included) without consuming a byte after it: peek, then take only up
 * to the "\n".
 */
static int
read_answer(int fd, uint64_t deadline, char *line, size_t *lenp)
{
	size_t have = 0, i, take;
	ssize_t n;
	int r;

	while (have < NP_SRLINE_MAX) {
		n = recv(fd, line + have, NP_SRLINE_MAX - have, MSG_PEEK);
		if (n == 0) {
			return NP_ERR_CLOSED;
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				return NP_ERR_CLOSED;
			}
			if ((r = wait_fd(fd, POLLIN, deadline)) != NP_OK) {
				return r;
			}
			continue;
		}
		take = (size_t)n;
		for (i = 0; i < (size_t)n; i++) {
			if (line[have + i] == '\n') {
				take = i + 1;
				break;
			}
		}
		n = recv(fd, line + have, take, 0);
		if (n != (ssize_t)take) {
			return NP_ERR_CLOSED;
		}
		have += take;
		if (line[have - 1] == '\n') {
			*lenp = have;
			return NP_OK;
		}
	}
	return NP_ERR_PROTO;
}

/* "NPSR1 OK\n", or "NPSR1 ERR reason\n" (reason made printable). */
static int
check_answer(const char *line, size_t len, char *why, size_t whylen)
{
	size_t i, plen = sizeof(SR_ERR_PREFIX) - 1, o = 0;

	if (len == sizeof(NP_SR_OK_LINE) - 1 &&
	    memcmp(line, NP_SR_OK_LINE, len) == 0) {
		return NP_OK;
	}
	if (len < plen + 1 || memcmp(line, SR_ERR_PREFIX, plen) != 0) {
		set_why(why, whylen, "bad answer from rendezvous");
		return NP_ERR_PROTO;
	}
	if (why == NULL || whylen == 0) {
		return NP_ERR_AUTH;
	}
	for (i = plen; i < len - 1 && o + 1 < whylen; i++) {
		why[o++] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
	}
	why[o] = '\0';
	if (o == 0) {
		set_why(why, whylen, "refused");
	}
	return NP_ERR_AUTH;
}

int
np_sr_connect(const struct np_sr_endpoint *ep, const char *sid,
    enum np_sr_side side, int timeout_ms, int *fdp, char *why, size_t whylen)
{
	struct np_buf *line = NULL;
	char ans[NP_SRLINE_MAX];
	size_t alen = 0;
	uint64_t deadline;
	int fd = -1, r;

	set_why(why, whylen, "");
	if (ep == NULL || sid == NULL || fdp == NULL || timeout_ms <= 0) {
		return NP_ERR_INVALID;
	}
	deadline = np_now_mono_ms() + (uint64_t)timeout_ms;
	if ((line = np_buf_new_secure(NP_SRLINE_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_srline_format(sid, side, ep->token, line)) != NP_OK) {
		set_why(why, whylen, "bad session id or side");
		goto out;
	}
	if ((r = sr_dial(ep, deadline, &fd, why, whylen)) != NP_OK) {
		goto out;
	}
	r = send_all(fd, np_buf_ptr(line), np_buf_len(line), deadline);
	if (r == NP_OK) {
		r = read_answer(fd, deadline, ans, &alen);
	}
	if (r == NP_ERR_TIMEOUT) {
		set_why(why, whylen, "no answer from rendezvous in time");
	} else if (r == NP_ERR_CLOSED) {
		set_why(why, whylen, "rendezvous closed the connection");
	} else if (r == NP_ERR_PROTO) {
		set_why(why, whylen, "answer line too long");
	} else if (r == NP_OK) {
		r = check_answer(ans, alen, why, whylen);
	}
	if (r != NP_OK) {
		goto out;
	}
	*fdp = fd;
	fd = -1;
 out:
	if (fd >= 0) {
		close(fd);
	}
	np_buf_free(line);
	return r;
}

/* --- probes --- */

#define SR_PROBE_MAGIC "NPSR1 PROBE "
#define SR_PROBE_MAGIC_LEN (sizeof(SR_PROBE_MAGIC) - 1)
#define SR_PROBE_DOMAIN "noports-probe-v1"
#define SR_PROBE_MAC_OFF 16

static void
ticket_mac(const uint8_t key[NP_SR_PROBE_KEY_LEN], const uint8_t *head,
    uint8_t mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, NP_SR_PROBE_KEY_LEN);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)SR_PROBE_DOMAIN,
	    sizeof(SR_PROBE_DOMAIN)); /* with its NUL */
	crypto_auth_hmacsha256_update(&st, head, SR_PROBE_MAC_OFF);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

void
np_sr_ticket_make(const uint8_t key[NP_SR_PROBE_KEY_LEN], int64_t expiry_ms,
    uint8_t ticket[NP_SR_TICKET_LEN])
{
	uint64_t e = expiry_ms < 0 ? 0 : (uint64_t)expiry_ms;
	int i;

	for (i = 0; i < 8; i++) {
		ticket[i] = (uint8_t)(e >> (56 - 8 * i));
	}
	randombytes_buf(ticket + 8, 8);
	ticket_mac(key, ticket, ticket + SR_PROBE_MAC_OFF);
}

int
np_sr_ticket_check(const uint8_t key[NP_SR_PROBE_KEY_LEN],
    const uint8_t ticket[NP_SR_TICKET_LEN], int64_t now_ms)
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	uint64_t e = 0;
	int i, ok;

	ticket_mac(key, ticket, mac);
	ok = sodium_memcmp(mac, ticket + SR_PROBE_MAC_OFF, sizeof(mac)) == 0;
	sodium_memzero(mac, sizeof(mac));
	for (i = 0; i < 8; i++) {
		e = e << 8 | ticket[i];
	}
	if (!ok || now_ms < 0 || e < (uint64_t)now_ms ||
	    e - (uint64_t)now_ms > NP_SR_PROBE_TTL_MS) {
		return NP_ERR_AUTH;
	}
	return NP_OK;
}

void
np_sr_ticket_encode(const uint8_t ticket[NP_SR_TICKET_LEN],
    char out[NP_SR_TICKET_B64_LEN + 1])
{
	sodium_bin2base64(out, NP_SR_TICKET_B64_LEN + 1, ticket,
	    NP_SR_TICKET_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
np_sr_ticket_decode(const char *s, size_t len,
    uint8_t ticket[NP_SR_TICKET_LEN])
{
	size_t n = 0, i;
	const char *end = NULL;

	if (s == NULL || len != NP_SR_TICKET_B64_LEN) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < len; i++) {
		if (!b64url_char(s[i])) {
			return NP_ERR_INVALID;
		}
	}
	if (sodium_base642bin(ticket, NP_SR_TICKET_LEN, s, len, NULL, &n,
	    &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + len || n != NP_SR_TICKET_LEN) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
np_srprobe_is(const uint8_t *p, size_t len)
{
	return p != NULL && len >= SR_PROBE_MAGIC_LEN &&
	    memcmp(p, SR_PROBE_MAGIC, SR_PROBE_MAGIC_LEN) == 0;
}

int
np_srprobe_parse(const uint8_t *p, size_t len,
    uint8_t ticket[NP_SR_TICKET_LEN])
{
	if (!np_srprobe_is(p, len) ||
	    len != SR_PROBE_MAGIC_LEN + NP_SR_TICKET_B64_LEN + 1 ||
	    p[len - 1] != '\n') {
		return NP_ERR_INVALID;
	}
	return np_sr_ticket_decode((const char *)p + SR_PROBE_MAGIC_LEN,
	    NP_SR_TICKET_B64_LEN, ticket);
}

/* --- several probes at once --- */

struct many_st {
	int fd;
	size_t len, sent, got;
	char line[SR_PROBE_MAGIC_LEN + NP_SR_TICKET_B64_LEN + 2];
	char ans[NP_SRLINE_MAX];
	uint64_t t0;
};

/* Resolve and start a non-blocking connect; NP_OK with st->fd. */
static int
many_start(struct np_sr_probe_job *j, struct many_st *st)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int n, one = 1, gai;

	st->fd = -1;
	if (j->host == NULL || j->ticket_b64 == NULL || j->port == 0 ||
	    strlen(j->ticket_b64) != NP_SR_TICKET_B64_LEN) {
		set_why(j->why, sizeof(j->why), "bad probe");
		return NP_ERR_INVALID;
	}
	n = snprintf(st->line, sizeof(st->line), SR_PROBE_MAGIC "%s\n",
	    j->ticket_b64);
	if (n < 0 || (size_t)n >= sizeof(st->line)) {
		return NP_ERR_INVALID;
	}
	st->len = (size_t)n;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned)j->port);
	st->t0 = np_now_mono_ms();
	if ((gai = getaddrinfo(j->host, port, &hints, &res)) != 0) {
		snprintf(j->why, sizeof(j->why), "%.64s: %s", j->host,
		    gai_strerror(gai));
		return NP_ERR_UNREACHABLE;
	}
	st->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, res->ai_protocol);
	if (st->fd < 0 || (connect(st->fd, res->ai_addr, res->ai_addrlen) !=
	    0 && errno != EINPROGRESS)) {
		set_why_errno(j->why, sizeof(j->why), "connect", errno);
		freeaddrinfo(res);
		if (st->fd >= 0) {
			close(st->fd);
			st->fd = -1;
		}
		return NP_ERR_UNREACHABLE;
	}
	freeaddrinfo(res);
	(void)setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return NP_ERR_AGAIN; /* under way */
}

/* The socket is ready: send, or read the answer.  NP_ERR_AGAIN: more. */
static int
many_step(struct np_sr_probe_job *j, struct many_st *st)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	ssize_t n;
	size_t alen;

	if (st->sent < st->len) {
		if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) !=
		    0 || soerr != 0) {
			set_why_errno(j->why, sizeof(j->why), "connect",
			    soerr != 0 ? soerr : errno);
			return NP_ERR_UNREACHABLE;
		}
		n = send(st->fd, st->line + st->sent, st->len - st->sent,
		    MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			return NP_ERR_AGAIN;
		}
		if (n <= 0) {
			set_why(j->why, sizeof(j->why),
			    "rendezvous closed the connection");
			return NP_ERR_CLOSED;
		}
		st->sent += (size_t)n;
		return NP_ERR_AGAIN;
	}
	n = recv(st->fd, st->ans + st->got, sizeof(st->ans) - st->got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return NP_ERR_AGAIN;
	}
	if (n <= 0) {
		set_why(j->why, sizeof(j->why),
		    "rendezvous closed the connection");
		return NP_ERR_CLOSED;
	}
	st->got += (size_t)n;
	if (memchr(st->ans, '\n', st->got) == NULL) {
		if (st->got == sizeof(st->ans)) {
			set_why(j->why, sizeof(j->why), "answer line too long");
			return NP_ERR_PROTO;
		}
		return NP_ERR_AGAIN;
	}
	alen = (size_t)((char *)memchr(st->ans, '\n', st->got) - st->ans) +
	    1;
	if (alen == sizeof(NP_SR_PONG_LINE) - 1 &&
	    memcmp(st->ans, NP_SR_PONG_LINE, alen) == 0) {
		j->ms = np_now_mono_ms() - st->t0;
		return NP_OK;
	}
	if (check_answer(st->ans, alen, j->why, sizeof(j->why)) ==
	    NP_ERR_AUTH) {
		return NP_ERR_AUTH;
	}
	set_why(j->why, sizeof(j->why), "bad answer from rendezvous");
	return NP_ERR_PROTO;
}

int
np_sr_probe_many(struct np_sr_probe_job *j, size_t n, int timeout_ms)
{
	struct many_st st[NP_SR_PROBES_MAX];
	struct pollfd pfd[NP_SR_PROBES_MAX];
	size_t i, k, left = 0;
	uint64_t deadline;
	int ms, r;

	if (j == NULL || n > NP_SR_PROBES_MAX || timeout_ms <= 0) {
		return NP_ERR_INVALID;
	}
	memset(st, 0, sizeof(st));
	deadline = np_now_mono_ms() + (uint64_t)timeout_ms;
	for (i = 0; i < n; i++) {
		j[i].why[0] = '\0';
		j[i].ms = 0;
		j[i].r = many_start(&j[i], &st[i]);
		left += j[i].r == NP_ERR_AGAIN;
	}
	while (left > 0 && (ms = remaining_ms(deadline)) > 0) {
		for (i = k = 0; i < n; i++) {
			if (j[i].r != NP_ERR_AGAIN) {
				continue;
			}
			pfd[k].fd = st[i].fd;
			pfd[k].events = st[i].sent < st[i].len ? POLLOUT :
			    POLLIN;
			pfd[k].revents = 0;
			k++;
		}
		if ((r = poll(pfd, k, ms)) < 0 && errno != EINTR) {
			break;
		}
		for (i = k = 0; i < n; i++) {
			if (j[i].r != NP_ERR_AGAIN) {
				continue;
			}
			if (pfd[k++].revents != 0 &&
			    (j[i].r = many_step(&j[i], &st[i])) !=
			    NP_ERR_AGAIN) {
				left--;
			}
		}
	}
	for (i = 0; i < n; i++) {
		if (j[i].r == NP_ERR_AGAIN) {
			j[i].r = NP_ERR_TIMEOUT;
			set_why(j[i].why, sizeof(j[i].why),
			    "no answer from rendezvous in time");
		}
		if (st[i].fd >= 0) {
			close(st[i].fd);
		}
		sodium_memzero(st[i].line, sizeof(st[i].line));
	}
	return NP_OK;
}

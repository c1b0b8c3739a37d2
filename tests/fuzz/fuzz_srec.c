/*
 * libFuzzer target: relay stream records (lib/srec.c), the opener side.
 * The first byte picks the cipher (bit 0: 0 AES-256-GCM, 1
 * ChaCha20-Poly1305) and the mode (bit 1):
 *
 *   stream     the rest is a record stream under a fixed key (KEY below;
 *              the seeds in corpus/srec were sealed with it), opened
 *              record by record with np_srec_header + np_srec_open until
 *              one fails or the input ends;
 *   roundtrip  the rest describes a stream: a 3-byte tamper position, a
 *              bit number, then records of (u16 length, fill byte); the
 *              harness seals them (and the final record unless bit 3 of
 *              the first byte says not to), flips that bit when bit 2 says
 *              so, and opens the result.
 *
 * Checked on every record that opens: its plaintext is at most
 * NP_SREC_MAX, its final flag is the header's, nothing opens after the
 * final record, and a sealer with the same key and counter makes exactly
 * the input's bytes from that plaintext (so a wrong tag never opens: the
 * fuzzer would have to forge it).  A record that does not open is
 * NP_ERR_CRYPTO with its plaintext wiped.  In roundtrip mode an
 * untouched stream opens whole, to the bytes sealed; a flipped bit stops
 * the opener at exactly the record that holds it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "srec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define F_CHACHA 0x01
#define F_ROUNDTRIP 0x02
#define F_TAMPER 0x04
#define F_NOFINAL 0x08

#define RT_RECORDS 16		   /* roundtrip: records at most */
#define RT_PLAIN (4 * NP_SREC_MAX) /* roundtrip: plaintext bytes */
#define RT_STREAM (RT_PLAIN + (RT_RECORDS + 1) * NP_SREC_OVERHEAD)

/* key[i] = 0xa0 + i: fixed and not secret; corpus/srec is sealed with it. */
static uint8_t key[NP_SREC_KEY_LEN];

/* Static: one input at a time, and too big for the stack. */
static uint8_t rec[NP_SREC_MAX + NP_SREC_OVERHEAD];
static uint8_t resealed[NP_SREC_MAX + NP_SREC_OVERHEAD];
static uint8_t stream[RT_STREAM];
static uint8_t sealed_plain[RT_PLAIN];
static uint8_t opened_plain[RT_PLAIN];

struct opened {
	size_t nrec;   /* records opened */
	size_t nplain; /* their plaintext bytes */
	int final;     /* the final record was one of them */
};

static void
new_pair(int cipher, struct np_srec **opener, struct np_srec **sealer)
{
	size_t i;

	for (i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)(0xa0 + i);
	}
	if (np_srec_new(cipher, key, 0, opener) != NP_OK ||
	    np_srec_new(cipher, key, 1, sealer) != NP_OK ||
	    np_srec_sealing(*opener) || !np_srec_sealing(*sealer)) {
		abort();
	}
}

/*
 * One record at in (n bytes there at most) through the opener o; the
 * sealer s is o's twin.  0: opened, plaintext in rec + NP_SREC_HDR, its
 * length in *len; -1: the stream ends here.
 */
static int
open_one(struct np_srec *o, struct np_srec *s, const uint8_t *in, size_t n,
	 int after_final, size_t *len)
{
	size_t l, i;
	int final, f = -1, r;

	if (n < NP_SREC_HDR) {
		return -1;
	}
	if ((r = np_srec_header(in, &l, &final)) != NP_OK) {
		if (r != NP_ERR_PROTO) {
			abort();
		}
		return -1;
	}
	if (l > NP_SREC_MAX || (final && l != 0)) {
		abort();
	}
	if (n - NP_SREC_HDR < l + NP_SREC_TAG) {
		return -1; /* truncated */
	}
	memcpy(rec, in, l + NP_SREC_OVERHEAD);
	/* A length that is not the header's: refused, state unchanged. */
	r = np_srec_open(o, rec, l + NP_SREC_OVERHEAD + 1, &f);
	if (r != (after_final ? NP_ERR_PROTO : NP_ERR_INVALID) || f != 0) {
		abort();
	}
	r = np_srec_open(o, rec, l + NP_SREC_OVERHEAD, &f);
	if (after_final) {
		if (r != NP_ERR_PROTO || f != 0) {
			abort(); /* nothing opens after the final record */
		}
		return -1;
	}
	if (r != NP_OK) {
		if (r != NP_ERR_CRYPTO || f != 0) {
			abort();
		}
		for (i = 0; i < l; i++) {
			if (rec[NP_SREC_HDR + i] != 0) {
				abort(); /* unauthenticated bytes left */
			}
		}
		return -1;
	}
	if (f != final || np_srec_done(o) != final) {
		abort();
	}
	/* What opened is what a sealer makes of its plaintext, byte for
	 * byte: header, ciphertext and tag. */
	memcpy(resealed + NP_SREC_HDR, rec + NP_SREC_HDR, l);
	if (np_srec_seal(s, resealed, l, final) != NP_OK ||
	    memcmp(resealed, in, l + NP_SREC_OVERHEAD) != 0) {
		abort();
	}
	*len = l;
	return 0;
}

/* Opens in[0..n) as a stream; plain (room for max bytes) or NULL. */
static void
open_stream(int cipher, const uint8_t *in, size_t n, uint8_t *plain, size_t max,
	    struct opened *out)
{
	struct np_srec *o = NULL, *s = NULL;
	size_t off = 0, l = 0;

	memset(out, 0, sizeof(*out));
	new_pair(cipher, &o, &s);
	while (open_one(o, s, in + off, n - off, out->final, &l) == 0) {
		if (plain != NULL) {
			if (l > max - out->nplain) {
				abort();
			}
			memcpy(plain + out->nplain, rec + NP_SREC_HDR, l);
		}
		out->nplain += l;
		out->nrec++;
		out->final = np_srec_done(o);
		off += l + NP_SREC_OVERHEAD;
	}
	if (np_srec_done(o) != out->final) {
		abort();
	}
	np_srec_free(o);
	np_srec_free(s);
}

/* Seals the records p describes into stream; returns its length. */
static size_t
seal_stream(int cipher, int flags, const uint8_t *p, size_t n, size_t *starts,
	    size_t *nrec, size_t *nplain)
{
	struct np_srec *o = NULL, *s = NULL;
	size_t i, l, off = 0;
	int f = 0;

	new_pair(cipher, &o, &s);
	*nrec = *nplain = 0;
	for (i = 0; n - i >= 3 && *nrec < RT_RECORDS; i += 3) {
		l = ((size_t)p[i] << 8 | p[i + 1]) % (NP_SREC_MAX + 2);
		if (l > NP_SREC_MAX) {
			/* Too big: refused before a byte is written. */
			if (np_srec_seal(s, stream + off, l, 0) !=
			    NP_ERR_INVALID) {
				abort();
			}
			continue;
		}
		if (l > RT_PLAIN - *nplain) {
			l = RT_PLAIN - *nplain;
		}
		memset(stream + off + NP_SREC_HDR, p[i + 2], l);
		memset(sealed_plain + *nplain, p[i + 2], l);
		if (np_srec_seal(s, stream + off, l, 0) != NP_OK) {
			abort();
		}
		starts[(*nrec)++] = off;
		off += l + NP_SREC_OVERHEAD;
		*nplain += l;
	}
	/* A final record must be empty. */
	if (np_srec_seal(s, rec, 1, 1) != NP_ERR_INVALID) {
		abort();
	}
	if (!(flags & F_NOFINAL)) {
		if (np_srec_seal(s, stream + off, 0, 1) != NP_OK ||
		    !np_srec_done(s) ||
		    np_srec_seal(s, rec, 0, 0) != NP_ERR_INVALID ||
		    np_srec_seal(s, rec, 0, 1) != NP_ERR_INVALID) {
			abort();
		}
		starts[(*nrec)++] = off;
		off += NP_SREC_OVERHEAD;
	}
	/* An opener cannot seal, a sealer cannot open. */
	if (np_srec_seal(o, rec, 0, 0) != NP_ERR_INVALID ||
	    np_srec_open(s, stream, NP_SREC_OVERHEAD, &f) != NP_ERR_INVALID) {
		abort();
	}
	np_srec_free(o);
	np_srec_free(s);
	return off;
}

static void
roundtrip(int cipher, int flags, const uint8_t *p, size_t n)
{
	size_t starts[RT_RECORDS + 1], nrec, nplain, len, pos, j, k = 0;
	size_t before = 0;
	struct opened out;

	if (n < 4) {
		return;
	}
	len = seal_stream(cipher, flags, p + 4, n - 4, starts, &nrec, &nplain);
	if ((flags & F_TAMPER) && len > 0) {
		pos = ((size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2]) % len;
		stream[pos] ^= (uint8_t)(1u << (p[3] & 7));
		while (k + 1 < nrec && starts[k + 1] <= pos) {
			k++;
		}
		open_stream(cipher, stream, len, opened_plain,
			    sizeof(opened_plain), &out);
		/* Every record before the flipped bit, none from it on. */
		for (j = 0; j < k; j++) {
			before += starts[j + 1] - starts[j] - NP_SREC_OVERHEAD;
		}
		if (out.nrec != k || out.final || out.nplain != before ||
		    memcmp(opened_plain, sealed_plain, before) != 0) {
			abort();
		}
		return;
	}
	open_stream(cipher, stream, len, opened_plain, sizeof(opened_plain),
		    &out);
	if (out.nrec != nrec || out.final != !(flags & F_NOFINAL) ||
	    out.nplain != nplain ||
	    memcmp(opened_plain, sealed_plain, nplain) != 0) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct opened out;
	int cipher;

	if (size < 1) {
		return 0;
	}
	cipher =
	    (data[0] & F_CHACHA) ? NP_SREC_CHACHA20POLY1305 : NP_SREC_AES256GCM;
	if (data[0] & F_ROUNDTRIP) {
		roundtrip(cipher, data[0], data + 1, size - 1);
	} else {
		open_stream(cipher, data + 1, size - 1, NULL, 0, &out);
	}
	return 0;
}

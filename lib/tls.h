/*
 * TLS over OpenSSL for the control plane: TLS 1.3 only, non-blocking,
 * self-signed server certificates pinned by SHA-256 fingerprint (the
 * client checks the fingerprint itself; no CA), and a channel binding
 * exported with SSL_export_keying_material so a signature made over it
 * is bound to this one connection.
 */
#ifndef NP_TLS_H
#define NP_TLS_H

#include <stddef.h>
#include <stdint.h>

#define NP_TLS_CB_LEN 32
#define NP_TLS_CB_LABEL "EXPORTER-noports-channel-binding"

struct np_tls_ctx;
struct np_tls;

int np_tls_server_ctx(const char *certfile, const char *keyfile,
    struct np_tls_ctx **out);
int np_tls_client_ctx(struct np_tls_ctx **out);
void np_tls_ctx_free(struct np_tls_ctx *c);

/* Wrap a connected non-blocking socket.  The fd stays the caller's. */
int np_tls_new(struct np_tls_ctx *c, int fd, int is_server,
    struct np_tls **out);
void np_tls_free(struct np_tls *t);

/* NP_OK when done, NP_ERR_AGAIN (see np_tls_want), or an error. */
int np_tls_handshake(struct np_tls *t);
/* *n bytes moved; NP_ERR_AGAIN, NP_ERR_CLOSED (clean EOF), NP_ERR_TLS. */
int np_tls_read(struct np_tls *t, void *p, size_t len, size_t *n);
int np_tls_write(struct np_tls *t, const void *p, size_t len, size_t *n);
/* NP_EV_READ and/or NP_EV_WRITE: what the last AGAIN waits for. */
uint32_t np_tls_want(const struct np_tls *t);
/* Bytes already decrypted and buffered inside OpenSSL. */
size_t np_tls_pending(const struct np_tls *t);
/* 1 once the peer's first handshake message has been read, else 0. */
int np_tls_started(const struct np_tls *t);
void np_tls_shutdown(struct np_tls *t); /* best effort close_notify */

/* "SHA256:..." of the peer certificate (DER). */
int np_tls_peer_fingerprint(struct np_tls *t, char *out, size_t outlen);
/* Constant-time compare against a pinned fingerprint; NP_ERR_FINGERPRINT. */
int np_tls_check_fingerprint(struct np_tls *t, const char *pinned);
int np_tls_channel_binding(struct np_tls *t, uint8_t out[NP_TLS_CB_LEN]);

/* Create a self-signed Ed25519 certificate and key (key file 0600). */
int np_tls_make_selfsigned(const char *certfile, const char *keyfile,
    const char *cn);
int np_tls_cert_fingerprint(const char *certfile, char *out, size_t outlen);

#endif

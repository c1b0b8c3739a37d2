/*
 * systemd readiness (sd_notify(3)'s protocol, without libsystemd): one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET ("@..." is in
 * the abstract namespace).  Without $NOTIFY_SOCKET it does nothing, so
 * daemons call it unconditionally (Type=notify units, docs/PACKAGING.md).
 */
#ifndef NP_NOTIFY_H
#define NP_NOTIFY_H

/* Send state ("READY=1", "STOPPING=1", ...).  NP_OK also when there is no
 * socket to tell; NP_ERR_SYSTEM when the send failed. */
int np_notify(const char *state);

#endif

/* The bridge's link to `vstpipe serve`: one server per loaded bundle, started on first use.
 *
 * The server runs as a child process whose stdin and stdout are one end of a UNIX socket pair,
 * or is reached on the UNIX socket named by VSTPIPE_OFX_SOCKET (a server shared by a render
 * farm node). Every request has a deadline: a server that does not answer in time is killed,
 * one that dies or breaks the framing is reaped, and either way the request fails with one
 * line saying what happened; the next request starts a fresh server. Requests from several
 * host threads are serialised. */
#ifndef VSTPIPE_LINK_H
#define VSTPIPE_LINK_H

#include <stddef.h>
#include <sys/types.h>

#include "json.h"

typedef struct Link Link;

typedef struct Reply {
    JsonDoc header;       /* the reply's JSON object */
    unsigned char *payload; /* malloc'd, or NULL */
    size_t bytes;
} Reply;

/* server_argv: the command that starts `vstpipe serve` (NULL-terminated); extra_env: "NAME=value"
 * settings (NULL-terminated, or NULL) the server gets where the host's environment lacks NAME.
 * Both are copied. */
Link *link_new(const char *const *server_argv, const char *const *extra_env);
void link_free(Link *link);   /* stops the server it started */

void link_lock(Link *link);
void link_unlock(Link *link);

/* Which server the link talks to: bumped at each start, so an instance knows to create itself
 * again after a restart. 0 while none has started. Call with the lock held. */
unsigned link_generation(const Link *link);

/* Whether a server is connected now (a request would not have to start one). */
int link_up(const Link *link);

/* One request and its reply, with the lock held: 0 when the server answered (the reply may
 * still say ok: false: see reply_error), -1 when the link failed (err says how; the server is
 * gone and the next request restarts it). The payload is sent from `parts`, `nparts` pieces
 * of `sizes[i]` bytes, so frames need not be joined first. Starts the server when none runs. */
int link_request(Link *link, const char *header, const void *const *parts,
                 const size_t *sizes, size_t nparts, double timeout, Reply *reply,
                 char *err, size_t errlen);

/* As link_request, but a reply payload of exactly `into_size` bytes is received straight into
 * `into` (reply->payload stays NULL, reply->bytes says how many arrived); a payload of another
 * size is returned as usual. */
int link_request_into(Link *link, const char *header, const void *const *parts,
                      const size_t *sizes, size_t nparts, double timeout, void *into,
                      size_t into_size, Reply *reply, char *err, size_t errlen);
void reply_free(Reply *reply);

/* The reply's error line when it says ok: false, else NULL. */
const char *reply_error(const Reply *reply);

/* Seconds from the environment variable `name`, or `fallback` when unset or not positive. */
double link_seconds(const char *name, double fallback);

#endif

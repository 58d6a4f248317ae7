/* The bridge's link to `vstpipe serve`: see link.h. */
#define _GNU_SOURCE
#include "link.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROTOCOL 1
#define MAX_HEADER (1u << 20)
#define MAX_PAYLOAD (1ull << 31)
#define START_SECONDS 60.0

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

struct Link {
    pthread_mutex_t lock;
    char **argv;
    char **extra_env;    /* NAME=value the server gets unless the host's environment has NAME */
    int fd;              /* -1: no server */
    pid_t pid;           /* the child we started; 0 when on a shared socket or none */
    unsigned generation;
    char *buf;           /* bytes received and not yet taken */
    size_t have, cap;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double link_seconds(const char *name, double fallback) {
    const char *text = getenv(name);
    if (!text || !*text) return fallback;
    char *end;
    double value = strtod(text, &end);
    return (*end == '\0' && value > 0) ? value : fallback;
}

static char **copy_strings(const char *const *items) {
    size_t n = 0;
    while (items && items[n]) n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (!copy) return NULL;
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(items[i]);
        if (!copy[i]) {
            while (i) free(copy[--i]);
            free(copy);
            return NULL;
        }
    }
    return copy;
}

static void free_strings(char **items) {
    for (size_t i = 0; items && items[i]; i++) free(items[i]);
    free(items);
}

Link *link_new(const char *const *server_argv, const char *const *extra_env) {
    Link *link = calloc(1, sizeof *link);
    if (!link) return NULL;
    link->fd = -1;
    pthread_mutex_init(&link->lock, NULL);
    link->argv = copy_strings(server_argv);
    link->extra_env = copy_strings(extra_env);
    if (!link->argv || !link->argv[0] || !link->extra_env) {
        link_free(link);
        return NULL;
    }
    return link;
}

int link_up(const Link *link) { return link->fd >= 0; }

void link_lock(Link *link) { pthread_mutex_lock(&link->lock); }
void link_unlock(Link *link) { pthread_mutex_unlock(&link->lock); }
unsigned link_generation(const Link *link) { return link->generation; }

/* How the child ended, in words, after it was reaped; waits at most `grace` seconds for it
 * and kills it past that. */
static void reap(Link *link, double grace, char *out, size_t outlen) {
    if (out && outlen) out[0] = '\0';
    if (link->pid <= 0) return;
    pid_t pid = link->pid;
    link->pid = 0;
    int status = 0;
    double until = now() + grace;
    pid_t got;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now() < until) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        got = waitpid(pid, &status, 0);
        if (out && outlen) snprintf(out, outlen, "was stopped");
        return;
    }
    if (got < 0 || !out || !outlen) return; /* reaped by the host's own SIGCHLD handler */
    if (WIFEXITED(status)) snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
}

/* Drop the server: close the connection, and reap the child, killing it when it has not
 * ended within `grace` seconds (0 for one that stopped answering; a moment for one whose
 * connection ended, so that how it ended can be told). */
static void drop(Link *link, double grace, char *how, size_t howlen) {
    if (link->fd >= 0) close(link->fd);
    link->fd = -1;
    link->have = 0;
    reap(link, grace, how, howlen);
}

void link_free(Link *link) {
    if (!link) return;
    if (link->fd >= 0) close(link->fd); /* the server sees the end of its input and quits */
    link->fd = -1;
    reap(link, 5.0, NULL, 0);
    free_strings(link->argv);
    free_strings(link->extra_env);
    free(link->buf);
    pthread_mutex_destroy(&link->lock);
    free(link);
}

/* No SIGPIPE from writing to a server that went away (the error is handled instead), and
 * buffers large enough that a frame crosses in a few system calls. */
static void tune_socket(int fd) {
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

/* The child's environment: the host's, without the variables by which a host's embedded Python
 * would take over the server's interpreter, plus the bundle's settings the host's lacks. */
static char **child_environment(char *const *extra) {
    static const char *drop_vars[] = {"PYTHONHOME=", "PYTHONPATH=", "PYTHONSTARTUP=",
                                      "PYTHONEXECUTABLE=", "PYTHONNOUSERSITE=", NULL};
    size_t n = 0, more = 0;
    while (environ[n]) n++;
    while (extra[more]) more++;
    char **env = calloc(n + more + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = 1;
        for (size_t j = 0; drop_vars[j]; j++)
            if (!strncmp(environ[i], drop_vars[j], strlen(drop_vars[j]))) keep = 0;
        if (keep) env[k++] = environ[i];
    }
    for (size_t j = 0; j < more; j++) {
        const char *eq = strchr(extra[j], '=');
        if (!eq) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - extra[j]), extra[j]);
        if (!getenv(name)) env[k++] = extra[j];
    }
    return env;
}

static int spawn_server(Link *link, char *err, size_t errlen) {
    int pair[2];
    int type = SOCK_STREAM;
#ifdef SOCK_CLOEXEC
    type |= SOCK_CLOEXEC;
#endif
    if (socketpair(AF_UNIX, type, 0, pair)) {
        snprintf(err, errlen, "cannot make a socket pair for vstpipe serve (%s)", strerror(errno));
        return -1;
    }
    tune_socket(pair[1]);  /* the server's end: its replies cross in a few calls too */
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pair[1], 0);
    posix_spawn_file_actions_adddup2(&actions, pair[1], 1);
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT};
    for (size_t i = 0; i < sizeof reset / sizeof *reset; i++) sigaddset(&defaults, reset[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char **env = child_environment(link->extra_env);
    pid_t pid = 0;
    int rc = env ? posix_spawnp(&pid, link->argv[0], &actions, &attr, link->argv, env) : ENOMEM;
    free(env);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pair[1]);
    if (rc) {
        close(pair[0]);
        snprintf(err, errlen, "cannot start vstpipe serve as '%s' (%s); set VSTPIPE_OFX_SERVER "
                 "or rebuild the bundle with `vstpipe ofx bundle`", link->argv[0], strerror(rc));
        return -1;
    }
    link->fd = pair[0];
    link->pid = pid;
    tune_socket(link->fd);
    return 0;
}

static int connect_server(Link *link, const char *path, char *err, size_t errlen) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(err, errlen, "VSTPIPE_OFX_SOCKET '%s' is longer than a socket path may be (%zu "
                 "bytes)", path, sizeof addr.sun_path - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr)) {
        snprintf(err, errlen, "cannot connect to vstpipe serve at VSTPIPE_OFX_SOCKET '%s' (%s); "
                 "start it with `vstpipe serve --socket %s`", path, strerror(errno), path);
        if (fd >= 0) close(fd);
        return -1;
    }
    link->fd = fd;
    link->pid = 0;
    tune_socket(fd);
    return 0;
}

/* -- framing -------------------------------------------------------------------------------- */

typedef enum { IO_OK, IO_TIMEOUT, IO_CLOSED, IO_ERROR } IoStatus;

static IoStatus wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now();
        if (left <= 0) return IO_TIMEOUT;
        struct pollfd p = {fd, events, 0};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        int rc = poll(&p, 1, ms);
        if (rc > 0) return IO_OK;
        if (rc < 0 && errno != EINTR) return IO_ERROR;
    }
}

static IoStatus send_all(int fd, const void *data, size_t size, double deadline) {
    const char *p = data;
    while (size) {
        IoStatus st = wait_fd(fd, POLLOUT, deadline);
        if (st != IO_OK) return st;
        ssize_t n = send(fd, p, size > (1u << 22) ? (1u << 22) : size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return (errno == EPIPE || errno == ECONNRESET) ? IO_CLOSED : IO_ERROR;
        }
        p += n;
        size -= (size_t)n;
    }
    return IO_OK;
}

static IoStatus fill(Link *link, size_t want, double deadline) {
    if (link->cap < want) {
        size_t cap = link->cap ? link->cap : 65536;
        while (cap < want) cap *= 2;
        char *grown = realloc(link->buf, cap);
        if (!grown) return IO_ERROR;
        link->buf = grown;
        link->cap = cap;
    }
    while (link->have < want) {
        IoStatus st = wait_fd(link->fd, POLLIN, deadline);
        if (st != IO_OK) return st;
        ssize_t n = recv(link->fd, link->buf + link->have, link->cap - link->have, 0);
        if (n == 0) return IO_CLOSED;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
        }
        link->have += (size_t)n;
    }
    return IO_OK;
}

static void take(Link *link, size_t n) {
    memmove(link->buf, link->buf + n, link->have - n);
    link->have -= n;
}

/* The op of a request header, for messages. */
static void op_of(const char *header, char *out, size_t outlen) {
    const char *p = strstr(header, "\"op\"");
    snprintf(out, outlen, "request");
    if (!p || !(p = strchr(p + 4, '"'))) return;
    const char *q = strchr(p + 1, '"');
    if (q && (size_t)(q - p - 1) < outlen) snprintf(out, outlen, "%.*s", (int)(q - p - 1), p + 1);
}

static int fail_io(Link *link, IoStatus st, const char *header, double timeout, char *err,
                   size_t errlen) {
    char op[32], how[128];
    op_of(header, op, sizeof op);
    int shared = link->pid == 0;
    drop(link, st == IO_TIMEOUT ? 0.0 : 2.0, how, sizeof how);
    if (st == IO_TIMEOUT)
        snprintf(err, errlen, "vstpipe serve did not answer '%s' within %g s (%s)%s; it starts "
                 "again on the next request", op, timeout,
                 strcmp(op, "hello") ? "VSTPIPE_OFX_TIMEOUT" : "VSTPIPE_OFX_START_TIMEOUT",
                 shared ? "" : " and was stopped");
    else if (shared)
        snprintf(err, errlen, "the vstpipe serve at VSTPIPE_OFX_SOCKET closed the connection "
                 "during '%s'; reconnecting on the next request", op);
    else
        snprintf(err, errlen, "vstpipe serve %s during '%s'; it starts again on the next request "
                 "(its messages are on the host's standard error)", *how ? how : "went away", op);
    return -1;
}

static int exchange(Link *link, const char *header, const void *const *parts,
                    const size_t *sizes, size_t nparts, double timeout, void *into,
                    size_t into_size, Reply *reply, char *err, size_t errlen) {
    memset(reply, 0, sizeof *reply);
    double deadline = now() + timeout;
    size_t total = 0;
    for (size_t i = 0; i < nparts; i++) total += sizes[i];
    /* the header with its payload size, then the payload, as the protocol frames them */
    size_t hlen = strlen(header);
    char *line = malloc(hlen + 40);
    if (!line) { snprintf(err, errlen, "out of memory"); return -1; }
    if (total && hlen && header[hlen - 1] == '}')
        snprintf(line, hlen + 40, "%.*s%s\"bytes\":%zu}\n", (int)(hlen - 1), header,
                 hlen > 2 ? "," : "", total);
    else
        snprintf(line, hlen + 40, "%s\n", header);
    IoStatus st = send_all(link->fd, line, strlen(line), deadline);
    free(line);
    for (size_t i = 0; st == IO_OK && i < nparts; i++)
        st = send_all(link->fd, parts[i], sizes[i], deadline);
    if (st != IO_OK) return fail_io(link, st, header, timeout, err, errlen);
    /* the reply's header line */
    size_t scanned = 0;
    char *nl = NULL;
    for (;;) {
        nl = link->have > scanned ? memchr(link->buf + scanned, '\n', link->have - scanned) : NULL;
        if (nl) break;
        scanned = link->have;
        if (link->have >= MAX_HEADER) {
            drop(link, 0.0, NULL, 0);
            snprintf(err, errlen, "vstpipe serve sent a reply header over %u bytes; restarting it",
                     MAX_HEADER);
            return -1;
        }
        st = fill(link, link->have + 1, deadline);
        if (st != IO_OK) return fail_io(link, st, header, timeout, err, errlen);
    }
    size_t line_len = (size_t)(nl - link->buf);
    char parse_err[128];
    if (json_parse(link->buf, line_len, &reply->header, parse_err, sizeof parse_err) ||
        reply->header.root->kind != JSON_OBJECT) {
        if (reply->header.root) json_free(&reply->header);
        drop(link, 0.0, NULL, 0);
        snprintf(err, errlen, "vstpipe serve sent a reply that is not a JSON object (%s); "
                 "restarting it", parse_err);
        return -1;
    }
    take(link, line_len + 1);
    double bytes = json_num(json_get(reply->header.root, "bytes"), 0);
    if (bytes < 0 || bytes > (double)MAX_PAYLOAD || bytes != (double)(size_t)bytes) {
        reply_free(reply);
        drop(link, 0.0, NULL, 0);
        snprintf(err, errlen, "vstpipe serve sent a reply with a bad 'bytes'; restarting it");
        return -1;
    }
    if (bytes > 0 && into && (size_t)bytes == into_size) {
        size_t have = link->have < into_size ? link->have : into_size;
        memcpy(into, link->buf, have);
        take(link, have);
        for (size_t got = have; got < into_size;) {  /* the rest straight into place */
            st = wait_fd(link->fd, POLLIN, deadline);
            ssize_t n = st != IO_OK ? -1 : recv(link->fd, (char *)into + got, into_size - got, 0);
            if (n == 0) st = IO_CLOSED;
            if (n < 0 && st == IO_OK && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0 && st == IO_OK) st = errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
            if (n <= 0) {
                reply_free(reply);
                return fail_io(link, st, header, timeout, err, errlen);
            }
            got += (size_t)n;
        }
        reply->bytes = into_size;
    } else if (bytes > 0) {
        st = fill(link, (size_t)bytes, deadline);
        if (st != IO_OK) {
            reply_free(reply);
            return fail_io(link, st, header, timeout, err, errlen);
        }
        reply->payload = malloc((size_t)bytes);
        if (!reply->payload) {
            reply_free(reply);
            drop(link, 0.0, NULL, 0);
            snprintf(err, errlen, "out of memory for a %.0f-byte reply", bytes);
            return -1;
        }
        memcpy(reply->payload, link->buf, (size_t)bytes);
        reply->bytes = (size_t)bytes;
        take(link, (size_t)bytes);
    }
    return 0;
}

static int start(Link *link, char *err, size_t errlen) {
    const char *path = getenv("VSTPIPE_OFX_SOCKET");
    int rc = (path && *path) ? connect_server(link, path, err, errlen)
                             : spawn_server(link, err, errlen);
    if (rc) return -1;
    Reply hello;
    double timeout = link_seconds("VSTPIPE_OFX_START_TIMEOUT", START_SECONDS);
    if (exchange(link, "{\"op\":\"hello\"}", NULL, NULL, 0, timeout, NULL, 0, &hello, err,
                 errlen)) {
        char inner[400];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, errlen, "starting the server: %s", inner);
        return -1;
    }
    double protocol = json_num(json_get(hello.header.root, "protocol"), -1);
    reply_free(&hello);
    if (protocol != PROTOCOL) {
        drop(link, 0.0, NULL, 0);
        snprintf(err, errlen, "vstpipe serve speaks protocol %g, this bundle %d; rebuild the "
                 "bundle with `vstpipe ofx bundle` from the vstpipe it runs", protocol, PROTOCOL);
        return -1;
    }
    link->generation++;
    return 0;
}

int link_request_into(Link *link, const char *header, const void *const *parts,
                      const size_t *sizes, size_t nparts, double timeout, void *into,
                      size_t into_size, Reply *reply, char *err, size_t errlen) {
    memset(reply, 0, sizeof *reply);
    if (link->fd < 0 && start(link, err, errlen)) return -1;
    return exchange(link, header, parts, sizes, nparts, timeout, into, into_size, reply, err,
                    errlen);
}

int link_request(Link *link, const char *header, const void *const *parts,
                 const size_t *sizes, size_t nparts, double timeout, Reply *reply,
                 char *err, size_t errlen) {
    return link_request_into(link, header, parts, sizes, nparts, timeout, NULL, 0, reply, err,
                             errlen);
}

void reply_free(Reply *reply) {
    if (reply->header.arena) json_free(&reply->header);
    free(reply->payload);
    reply->payload = NULL;
    reply->bytes = 0;
}

const char *reply_error(const Reply *reply) {
    const JsonValue *root = reply->header.root;
    if (json_bool(json_get(root, "ok"), 0)) return NULL;
    return json_str(json_get(root, "error"), "vstpipe serve failed without saying why");
}

/*
 * podvnet-cni: the executable a container runtime runs once per CNI operation. Node.js takes ~70 ms
 * to start, so this program does no CNI work itself: it hands the CNI_* environment and stdin to the
 * PodVNet node agent over a unix socket and prints the agent's answer, exiting with the agent's code.
 *
 * Wire format (agent side: node-plugin/agent/cni-socket.ts):
 *   request:  "PODVNET-CNI/1\n" { "KEY=VALUE" NUL }* NUL  <stdin bytes>  then shutdown(SHUT_WR)
 *   response: "<exit code>\n" <stdout bytes> until EOF
 *
 * VERSION is answered here, without the agent: runtimes (libcni) call it to validate a configuration,
 * with nothing but {"cniVersion": ...} on stdin, possibly before the agent is up. The list of versions
 * is generated from types.ts at build time (gen-versions.sh), so it cannot drift from the agent's.
 *
 * Socket path: the "agentSocket" string field of the configuration, else $PODVNET_AGENT_SOCKET, else
 * /run/podvnet/agent.sock. When the agent cannot be reached or hangs up early, this prints a spec-shaped
 * error with code 11 ("try again later") so the runtime retries.
 *
 * Except for DEL: a runtime whose DEL fails keeps the pod sandbox (and its netns and name) until the
 * agent is back, so a DEL the agent cannot take is queued on disk instead and answered with success. The
 * request, in the wire format above, is written atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory) into the queue directory: the "delQueueDir" field of the configuration,
 * else $PODVNET_DEL_QUEUE_DIR, else /var/lib/podvnet/del-queue. The agent applies queued DELs when it
 * starts, before it serves any ADD, and whenever files appear (node-plugin/agent/del-queue.ts). DEL is
 * idempotent, so one that the agent got but did not answer may safely be applied again from the queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "versions.h"

#define DEFAULT_SOCKET "/run/podvnet/agent.sock"
#define DEFAULT_DEL_QUEUE "/var/lib/podvnet/del-queue"
#define MAX_STDIN (4 * 1024 * 1024)
#define REPLY_TIMEOUT_SECONDS 300

extern char **environ;

static char *read_all(int fd, size_t *len, size_t limit) {
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= limit) break;
      cap *= 2;
      char *grown = realloc(buf, cap + 1);
      if (!grown) { free(buf); return NULL; }
      buf = grown;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      free(buf);
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Finds a top-level-looking "key": "value" pair and copies value (no escapes) into out. */
static int json_string_field(const char *json, const char *key, char *out, size_t outlen) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *p = strstr(json, pattern);
  if (!p) return 0;
  p += strlen(pattern);
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p++ != ':') return 0;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p++ != '"') return 0;
  size_t i = 0;
  while (*p && *p != '"') {
    if (*p == '\\' || i + 1 >= outlen) return 0;
    out[i++] = *p++;
  }
  if (*p != '"') return 0;
  out[i] = '\0';
  return i > 0;
}

static void json_escape(const char *s, char *out, size_t outlen) {
  size_t o = 0;
  for (; *s && o + 7 < outlen; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c < 0x20) o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o] = '\0';
}

static int try_again_later(const char *version, const char *what, const char *path, int err) {
  char msg[1024], escaped[2048], ver[32];
  snprintf(msg, sizeof msg, "PodVNet node agent %s at %s (%s); it may be starting or restarting, try again later",
           what, path, err ? strerror(err) : "no reply");
  json_escape(msg, escaped, sizeof escaped);
  json_escape(version, ver, sizeof ver);
  printf("{\"cniVersion\":\"%s\",\"code\":11,\"msg\":\"%s\"}\n", ver, escaped);
  fflush(stdout);
  return 1;
}

/* mkdir -p, 0700: the queue holds requests for the agent alone. */
static int make_dirs(const char *dir) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  if (mkdir(p, 0700) < 0 && errno != EEXIST) return -1;
  return 0;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

/*
 * Writes the request durably into the queue directory: "<seconds>.<nanoseconds>-<pid>-<container>.del",
 * so names sort by time. Only a complete, fsynced file is ever renamed into place; the ".tmp-" file a
 * crash may leave is garbage the agent removes. Returns 0 and the file's path, or -1 with errno set.
 */
static int queue_request(const char *dir, const char *req, size_t n, char *where, size_t wlen) {
  if (dir[0] != '/') { errno = EINVAL; return -1; } /* relative to what? the runtime's cwd is no place */
  if (make_dirs(dir) < 0) return -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char cid[65];
  const char *c = getenv("CNI_CONTAINERID");
  size_t i = 0;
  for (; c && *c && i + 1 < sizeof cid; c++) {
    char ch = *c;
    cid[i++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') ? ch : '_';
  }
  cid[i] = '\0';
  char name[128], tmp[PATH_MAX];
  snprintf(name, sizeof name, "%lld.%09ld-%d-%s.del", (long long)ts.tv_sec, (long)ts.tv_nsec, (int)getpid(), cid);
  if (snprintf(where, wlen, "%s/%s", dir, name) >= (int)wlen ||
      snprintf(tmp, sizeof tmp, "%s/.tmp-%s", dir, name) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (write_all(fd, req, n) < 0 || fsync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    errno = e;
    return -1;
  }
  if (close(fd) < 0 || rename(tmp, where) < 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  return fsync_dir(dir);
}

struct call {
  const char *command;
  const char *version;
  const char *socket;
  const char *queue_dir;
  const char *req;
  size_t req_len;
};

/*
 * The agent could not take the request (not listening, or gone before answering). A DEL is queued and
 * succeeds (printing nothing, as DEL does); anything else, or a DEL that could not be queued, is code 11.
 */
static int agent_unreachable(const struct call *c, const char *what, int err) {
  if (c->command && strcmp(c->command, "DEL") == 0) {
    char where[PATH_MAX];
    if (queue_request(c->queue_dir, c->req, c->req_len, where, sizeof where) == 0) {
      fprintf(stderr, "podvnet-cni: node agent %s at %s (%s); DEL queued in %s for the agent to apply when it is back\n",
              what, c->socket, err ? strerror(err) : "no reply", where);
      return 0;
    }
    char why[PATH_MAX + 300];
    snprintf(why, sizeof why, "%s (%s), and queueing the DEL in %s failed: %s", what, err ? strerror(err) : "no reply", c->queue_dir, strerror(errno));
    return try_again_later(c->version, why, c->socket, 0);
  }
  return try_again_later(c->version, what, c->socket, err);
}

int main(void) {
  /* An agent that dies mid-request must produce "try again later", not a silent death by SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  size_t in_len = 0;
  char *in = read_all(STDIN_FILENO, &in_len, MAX_STDIN);
  if (!in) { in = strdup(""); in_len = 0; }

  char version[32] = LATEST_VERSION;
  char cfg_version[32];
  if (json_string_field(in, "cniVersion", cfg_version, sizeof cfg_version)) memcpy(version, cfg_version, sizeof version);

  const char *command = getenv("CNI_COMMAND");
  if (command && strcmp(command, "VERSION") == 0) {
    char quoted[40];
    snprintf(quoted, sizeof quoted, "\"%s\"", version);
    const char *answer = strstr(SUPPORTED_VERSIONS_JSON, quoted) ? version : LATEST_VERSION;
    printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", answer, SUPPORTED_VERSIONS_JSON);
    return 0;
  }

  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *env_path = getenv("PODVNET_AGENT_SOCKET");
  if (!json_string_field(in, "agentSocket", path, sizeof path)) {
    snprintf(path, sizeof path, "%s", env_path && *env_path ? env_path : DEFAULT_SOCKET);
  }

  char queue_dir[PATH_MAX];
  const char *env_queue = getenv("PODVNET_DEL_QUEUE_DIR");
  if (!json_string_field(in, "delQueueDir", queue_dir, sizeof queue_dir)) {
    snprintf(queue_dir, sizeof queue_dir, "%s", env_queue && *env_queue ? env_queue : DEFAULT_DEL_QUEUE);
  }

  /* Build the whole request in one buffer: a single write keeps the per-call cost down, and a DEL the
   * agent cannot take is queued in exactly this form. */
  size_t cap = in_len + 4096, n = 0;
  for (char **e = environ; *e; e++) if (strncmp(*e, "CNI_", 4) == 0) cap += strlen(*e) + 1;
  char *req = malloc(cap);
  if (!req) return try_again_later(version, "request failed", path, ENOMEM);
  static const char magic[] = "PODVNET-CNI/1\n";
  memcpy(req, magic, sizeof magic - 1);
  n = sizeof magic - 1;
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    size_t l = strlen(*e) + 1;
    memcpy(req + n, *e, l);
    n += l;
  }
  req[n++] = '\0';
  memcpy(req + n, in, in_len);
  n += in_len;
  struct call call = {.command = command, .version = version, .socket = path, .queue_dir = queue_dir, .req = req, .req_len = n};

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return try_again_later(version, "socket failed", path, errno);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return agent_unreachable(&call, "unreachable", errno);
  struct timeval tv = {.tv_sec = REPLY_TIMEOUT_SECONDS, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  if (write_all(fd, req, n) < 0) return agent_unreachable(&call, "hung up", errno);
  shutdown(fd, SHUT_WR);

  size_t out_len = 0;
  char *out = read_all(fd, &out_len, 64 * 1024 * 1024);
  if (!out) return agent_unreachable(&call, "did not answer", errno);
  char *nl = memchr(out, '\n', out_len);
  if (!nl || nl == out) return agent_unreachable(&call, "hung up before answering", 0);
  *nl = '\0';
  char *end = NULL;
  long code = strtol(out, &end, 10);
  if (*end != '\0' || code < 0 || code > 255) return try_again_later(version, "answered garbage", path, 0);
  size_t body = out_len - (size_t)(nl + 1 - out);
  if (write_all(STDOUT_FILENO, nl + 1, body) < 0) return 1;
  return (int)code;
}

/*
 * podvnet-netlink: runs the datapath's `ip -batch` lines over rtnetlink, without starting a process.
 *
 * Why: starting `ip` costs ~1.5-3 ms per batch on a small node, more than the kernel work of a pod ADD
 * (~1 ms). The agent starts this helper once and sends it the very lines it would give `ip -batch -`;
 * the helper answers with the exit code and the stderr text that iproute2 6.1 prints for them, so every
 * caller (which matches ip's messages) keeps working unchanged.
 *
 * Only a subset of ip's syntax is understood: the lines the datapath generates on the per-pod paths.
 * All lines of a request are parsed first; if any is outside the subset, nothing runs and the answer is
 * "unsupported" (the agent then runs `ip` itself). Behaviour emulated for the subset:
 *   - a failing line prints its message(s) then `Command failed -:N`; the batch stops there, or goes on
 *     with -force; exit code 1;
 *   - a device that a name lookup cannot find: `Cannot find device "X"` (a failing line);
 *   - `master X` / `netns PATH` that cannot be resolved: ip's invarg message, and ip exits (code 255);
 *   - a kernel error: `Error: <extended ack message>.` if the kernel gave one, else
 *     `RTNETLINK answers: <strerror>`; a `neigh` line whose request fails ends ip (exit 2, no
 *     `Command failed`), as ipneigh.c does.
 *
 * Wire format (stdin requests, stdout responses), each frame a 4-byte little-endian length then text:
 *   request:  "<id> <force 0|1> <netns path or ->\n<ip -batch input>"
 *             "<id> nft <netns path or ->\n<chain>\n<veth> <A.B.C.D>\n..."   appends anti-spoofing
 *             rules to ip raw/<chain> in one nf_tables transaction (see "nf_tables" below)
 *   response: "<id> done <exit code>\n<stderr>"      the lines ran (or failed as ip would)
 *             "<id> unsupported 0\n<reason>"         nothing ran
 *             "<id> error 0\n<reason>"               the helper could not run the request at all
 * Requests run concurrently, one thread each: a `link del` waits for an RCU grace period in the kernel
 * (tens of ms) and must not hold up other pods. A thread enters the request's network namespace with
 * setns (which is per thread), opens its netlink socket there, and exits when the request is done, so no
 * thread ever serves a request from the wrong namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <endian.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_physdev.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

/* Bounds: a coalesced ADD batch of 250 pods is ~1250 lines and ~250 KB; well inside these. */
#define MAX_FRAME (8u << 20)
#define MAX_STDERR (1u << 20)
/* ip's batch mode splits a line into at most 100 words (the last slot is the NULL terminator). */
#define MAX_WORDS 100
#define MAX_THREADS 64
/* the kernel's limit for an interface alias (linux/if.h IFALIASZ, not in the libc headers) */
#define ALIAS_MAX 256
#define THREAD_STACK (256u << 10)
#define NL_BUF 16384
#define RECV_BUF 32768

/* ---------- text ---------- */

/* A growing text (a response's stderr), capped: past MAX_STDERR the rest is dropped and noted. */
struct text {
  char *buf;
  size_t len, cap;
  bool truncated;
};

static void text_put(struct text *t, const char *s, size_t n) {
  static const char note[] = "[podvnet-netlink: stderr truncated]\n";
  if (t->truncated) return;
  if (t->len + n > MAX_STDERR) { t->truncated = true; s = note; n = sizeof note - 1; }
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n + 1) cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) { t->truncated = true; return; }
    t->buf = b;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void text_printf(struct text *t, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  text_put(t, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---------- parsing the batch lines ---------- */

enum kind { LINK_ADD_VETH, LINK_SET, LINK_DEL_DEV, LINK_DEL_GROUP, ROUTE, NEIGH, ADDR_ADD };

/* One parsed line. Strings point into the request's own (mutable) copy of the text. */
struct cmd {
  int lineno;
  enum kind kind;
  const char *dev;     /* the device the line is about (link name, route/neigh/addr dev) */
  /* link add / link set */
  int updown;          /* +1 up, -1 down, 0 untouched */
  bool has_mtu;
  uint32_t mtu;
  bool has_mac;
  uint8_t mac[6];
  const char *master;
  const char *peer;    /* veth peer name */
  bool peer_has_mtu;
  uint32_t peer_mtu;
  bool peer_has_mac;
  uint8_t peer_mac[6];
  const char *peer_netns;
  const char *alias;
  const char *new_name;  /* link set: rename */
  bool has_group;
  uint32_t group;
  bool slave;          /* `type bridge_slave` given */
  int hairpin;         /* -1 unset, else 0/1 */
  int port_state;      /* -1 unset, else 0..4 */
  /* route / neigh / addr */
  uint16_t msg_type;
  uint16_t msg_flags;
  bool has_dst;
  struct in_addr dst;
  int dst_len;
  bool has_gw;
  struct in_addr gw;
  bool has_metric;
  uint32_t metric;
  bool onlink;
  bool has_lladdr;
  uint8_t lladdr[6];
};

/* ip's batch tokenizer: words split on space/tab/CR/LF; a word starting with ' or " runs to the next
 * same quote (no escapes), and the character after the closing quote starts the next word. */
static int split_words(char *line, char **words, const char **why) {
  static const char ws[] = " \t\r\n";
  int n = 0;
  char *p = line;
  while (*p) {
    p += strspn(p, ws);
    if (!*p) break;
    if (n >= MAX_WORDS - 1) { *why = "too many words"; return -1; }
    if (*p == '\'' || *p == '"') {
      char q = *p++;
      words[n++] = p;
      p = strchr(p, q);
      if (!p) { *why = "unterminated quote"; return -1; }
    } else {
      words[n++] = p;
      p += strcspn(p, ws);
      if (!*p) break;
    }
    *p++ = '\0';
  }
  return n;
}

/* A device name we can resolve exactly as ip does: 1-15 characters, no '/', ':' or whitespace, and not
 * "if<number>" (ip would take that as an interface index when no such name exists). */
static bool good_ifname(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= IFNAMSIZ) return false;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '\'' || c == '"') return false;
  }
  if (strncmp(s, "if", 2) == 0 && s[2] && strspn(s + 2, "0123456789") == strlen(s + 2)) return false;
  return true;
}

/* ip's iplink_parse takes a bare word as the device unless it abbreviates one of its keywords: accept a
 * bare name only if it is not a prefix of any of them (ip's `matches`). */
static bool abbreviates_link_keyword(const char *s) {
  static const char *const kw[] = {
    "name", "up", "down", "broadcast", "brd", "address", "txqueuelen", "qlen", "txqlen", "mtu", "xdp",
    "xdpgeneric", "xdpdrv", "xdpoffload", "netns", "multicast", "allmulticast", "promisc", "trailers",
    "arp", "carrier", "vf", "master", "vrf", "nomaster", "dynamic", "type", "alias", "group", "mode",
    "state", "numtxqueues", "numrxqueues", "addrgenmode", "link-netns", "link-netnsid", "protodown",
    "protodown_reason", "gso_max_size", "gso_max_segs", "gso_ipv4_max_size", "gro_max_size",
    "gro_ipv4_max_size", "parentdev", "dev", "link", "index", "help", "altname", "nohw", "novlan",
    "tso_max_size", "tso_max_segs",
  };
  size_t n = strlen(s);
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (strncmp(kw[i], s, n) == 0) return true;
  return false;
}

/* Plain decimal, no sign, no leading zeros beyond "0", at most `max`. */
static bool parse_u32(const char *s, uint32_t max, uint32_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 10 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v * 10 + (uint64_t)(s[i] - '0');
  if (v > max) return false;
  *out = (uint32_t)v;
  return true;
}

/* Exactly xx:xx:xx:xx:xx:xx (hex). */
static bool parse_mac(const char *s, uint8_t mac[6]) {
  if (strlen(s) != 17) return false;
  for (int i = 0; i < 6; i++) {
    const char *h = s + 3 * i;
    if (i < 5 && h[2] != ':') return false;
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      char c = h[j];
      unsigned d;
      if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
      else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
      else return false;
      v = v * 16 + d;
    }
    mac[i] = (uint8_t)v;
  }
  return true;
}

/* Dotted quad of four decimal numbers only (what ip's own parser and inet_pton agree on). */
static bool parse_ipv4(const char *s, struct in_addr *a) {
  if (strlen(s) > 15 || strspn(s, "0123456789.") != strlen(s)) return false;
  return inet_pton(AF_INET, s, a) == 1;
}

/* "A.B.C.D" (length 32) or "A.B.C.D/L". */
static bool parse_prefix(const char *s, struct in_addr *a, int *len, int min_len) {
  char ip[16];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if (n >= sizeof ip) return false;
  memcpy(ip, s, n);
  ip[n] = '\0';
  if (!parse_ipv4(ip, a)) return false;
  uint32_t l = 32;
  if (slash && !parse_u32(slash + 1, 32, &l)) return false;
  if ((int)l < min_len) return false;
  *len = (int)l;
  return true;
}

#define NEED(cond, reason) do { if (!(cond)) { *why = (reason); return false; } } while (0)

/* link add NAME [mtu N] [address MAC] [master BR] [up] type veth peer name P [mtu N] [address MAC] [netns PATH] */
static bool parse_link_add(char **w, int n, struct cmd *c, const char **why) {
  c->kind = LINK_ADD_VETH;
  int i = 0;
  for (; i < n; i++) {
    const char *k = w[i];
    if (!strcmp(k, "type")) break;
    if (!strcmp(k, "up")) { c->updown = 1; continue; }
    NEED(i + 1 < n, "keyword without value");
    const char *v = w[++i];
    if (!strcmp(k, "dev")) { NEED(!c->dev && good_ifname(v), "bad device name"); c->dev = v; }
    else if (!strcmp(k, "mtu")) { NEED(!c->has_mtu && parse_u32(v, INT32_MAX, &c->mtu), "bad mtu"); c->has_mtu = true; }
    else if (!strcmp(k, "address")) { NEED(!c->has_mac && parse_mac(v, c->mac), "bad address"); c->has_mac = true; }
    else if (!strcmp(k, "master")) { NEED(!c->master && good_ifname(v), "bad master"); c->master = v; }
    else {
      /* a bare word is the name */
      i--;
      NEED(!c->dev && good_ifname(k) && !abbreviates_link_keyword(k), "unsupported link add word");
      c->dev = k;
    }
  }
  NEED(c->dev, "link add without a name");
  NEED(i + 4 < n && !strcmp(w[i + 1], "veth") && !strcmp(w[i + 2], "peer") && !strcmp(w[i + 3], "name"),
       "only `type veth peer name P` is supported");
  NEED(good_ifname(w[i + 4]), "bad peer name");
  c->peer = w[i + 4];
  for (i += 5; i < n; i++) {
    const char *k = w[i];
    NEED(i + 1 < n, "keyword without value");
    const char *v = w[++i];
    if (!strcmp(k, "mtu")) { NEED(!c->peer_has_mtu && parse_u32(v, INT32_MAX, &c->peer_mtu), "bad peer mtu"); c->peer_has_mtu = true; }
    else if (!strcmp(k, "address")) { NEED(!c->peer_has_mac && parse_mac(v, c->peer_mac), "bad peer address"); c->peer_has_mac = true; }
    /* a netns without '/' would be a name under /run/netns or a pid: left to ip */
    else if (!strcmp(k, "netns")) { NEED(!c->peer_netns && strchr(v, '/') && strlen(v) < PATH_MAX, "peer netns must be a path"); c->peer_netns = v; }
    else NEED(false, "unsupported veth peer option");
  }
  return true;
}

/* link set dev X [up|down] [alias A] [name N] [group G] [type bridge_slave (hairpin on|off | state 0..4)...] */
static bool parse_link_set(char **w, int n, struct cmd *c, const char **why) {
  c->kind = LINK_SET;
  NEED(n >= 2 && !strcmp(w[0], "dev") && good_ifname(w[1]), "only `link set dev NAME` is supported");
  c->dev = w[1];
  int i = 2;
  for (; i < n; i++) {
    const char *k = w[i];
    if (!strcmp(k, "type")) break;
    if (!strcmp(k, "up") || !strcmp(k, "down")) { NEED(!c->updown, "duplicate up/down"); c->updown = k[0] == 'u' ? 1 : -1; continue; }
    NEED(i + 1 < n, "keyword without value");
    const char *v = w[++i];
    if (!strcmp(k, "alias")) { NEED(!c->alias && strlen(v) < ALIAS_MAX, "bad alias"); c->alias = v; }
    else if (!strcmp(k, "name")) { NEED(!c->new_name && good_ifname(v), "bad name"); c->new_name = v; }
    else if (!strcmp(k, "group")) { NEED(!c->has_group && parse_u32(v, INT32_MAX, &c->group), "bad group"); c->has_group = true; }
    else NEED(false, "unsupported link set option");
  }
  if (i < n) {
    NEED(i + 1 < n && !strcmp(w[i + 1], "bridge_slave"), "only `type bridge_slave` is supported");
    c->slave = true;
    for (i += 2; i < n; i++) {
      const char *k = w[i];
      NEED(i + 1 < n, "keyword without value");
      const char *v = w[++i];
      uint32_t s;
      if (!strcmp(k, "hairpin")) { NEED(c->hairpin < 0 && (!strcmp(v, "on") || !strcmp(v, "off")), "bad hairpin"); c->hairpin = v[1] == 'n'; }
      else if (!strcmp(k, "state")) { NEED(c->port_state < 0 && parse_u32(v, 4, &s), "bad port state"); c->port_state = (int)s; }
      else NEED(false, "unsupported bridge_slave option");
    }
    NEED(c->hairpin >= 0 || c->port_state >= 0, "empty bridge_slave options");
  }
  NEED(c->updown || c->alias || c->new_name || c->has_group || c->slave, "link set without a change");
  return true;
}

/* add / replace / del(ete) as ip's route and neigh send them: the message type and its create flags. */
static bool parse_verb(const char *verb, uint16_t new_type, uint16_t del_type, struct cmd *c) {
  if (!strcmp(verb, "add")) { c->msg_type = new_type; c->msg_flags = NLM_F_CREATE | NLM_F_EXCL; return true; }
  if (!strcmp(verb, "replace")) { c->msg_type = new_type; c->msg_flags = NLM_F_CREATE | NLM_F_REPLACE; return true; }
  if (!strcmp(verb, "del") || !strcmp(verb, "delete")) { c->msg_type = del_type; c->msg_flags = 0; return true; }
  return false;
}

/* route add|replace|del (A.B.C.D[/L] | default) [via GW] dev X [metric M] [onlink] */
static bool parse_route(const char *verb, char **w, int n, struct cmd *c, const char **why) {
  c->kind = ROUTE;
  NEED(parse_verb(verb, RTM_NEWROUTE, RTM_DELROUTE, c), "unsupported route verb");
  bool dst_seen = false;
  for (int i = 0; i < n; i++) {
    const char *k = w[i];
    if (!strcmp(k, "onlink")) { c->onlink = true; continue; }
    if (!strcmp(k, "dev") || !strcmp(k, "via") || !strcmp(k, "metric")) {
      NEED(i + 1 < n, "keyword without value");
      const char *v = w[++i];
      if (k[0] == 'd') { NEED(!c->dev && good_ifname(v), "bad device name"); c->dev = v; }
      else if (k[0] == 'v') { NEED(!c->has_gw && parse_ipv4(v, &c->gw), "bad gateway"); c->has_gw = true; }
      else { NEED(!c->has_metric && parse_u32(v, UINT32_MAX, &c->metric), "bad metric"); c->has_metric = true; }
      continue;
    }
    NEED(!dst_seen, "unsupported route word");
    dst_seen = true;
    if (!strcmp(k, "default")) continue;
    NEED(parse_prefix(k, &c->dst, &c->dst_len, 1), "bad route destination");
    c->has_dst = true;
  }
  NEED(dst_seen && c->dev, "route needs a destination and a device");
  return true;
}

/* neigh add|replace|del A.B.C.D [lladdr MAC] dev X [nud permanent] */
static bool parse_neigh(const char *verb, char **w, int n, struct cmd *c, const char **why) {
  c->kind = NEIGH;
  NEED(parse_verb(verb, RTM_NEWNEIGH, RTM_DELNEIGH, c), "unsupported neigh verb");
  for (int i = 0; i < n; i++) {
    const char *k = w[i];
    if (!strcmp(k, "dev") || !strcmp(k, "lladdr") || !strcmp(k, "nud")) {
      NEED(i + 1 < n, "keyword without value");
      const char *v = w[++i];
      if (k[0] == 'd') { NEED(!c->dev && good_ifname(v), "bad device name"); c->dev = v; }
      else if (k[0] == 'l') { NEED(!c->has_lladdr && c->msg_type == RTM_NEWNEIGH && parse_mac(v, c->lladdr), "bad lladdr"); c->has_lladdr = true; }
      else NEED(!strcmp(v, "permanent"), "only nud permanent is supported");
      continue;
    }
    NEED(!c->has_dst && parse_ipv4(k, &c->dst), "unsupported neigh word");
    c->has_dst = true;
  }
  NEED(c->has_dst && c->dev, "neigh needs a destination and a device");
  return true;
}

/* addr add A.B.C.D[/L] dev X */
static bool parse_addr_add(char **w, int n, struct cmd *c, const char **why) {
  c->kind = ADDR_ADD;
  for (int i = 0; i < n; i++) {
    const char *k = w[i];
    if (!strcmp(k, "dev")) { NEED(i + 1 < n && !c->dev && good_ifname(w[i + 1]), "bad device name"); c->dev = w[++i]; continue; }
    NEED(!c->has_dst && parse_prefix(k, &c->dst, &c->dst_len, 1), "unsupported addr word");
    c->has_dst = true;
  }
  NEED(c->has_dst && c->dev, "addr add needs an address and a device");
  return true;
}

static bool parse_line(char **w, int n, struct cmd *c, const char **why) {
  c->hairpin = -1;
  c->port_state = -1;
  NEED(n >= 2, "too short");
  const char *obj = w[0], *verb = w[1];
  if (!strcmp(obj, "link")) {
    if (!strcmp(verb, "add")) return parse_link_add(w + 2, n - 2, c, why);
    if (!strcmp(verb, "set")) return parse_link_set(w + 2, n - 2, c, why);
    if (!strcmp(verb, "del") || !strcmp(verb, "delete")) {
      NEED(n == 4, "unsupported link del");
      if (!strcmp(w[2], "dev")) { NEED(good_ifname(w[3]), "bad device name"); c->kind = LINK_DEL_DEV; c->dev = w[3]; return true; }
      NEED(!strcmp(w[2], "group") && parse_u32(w[3], INT32_MAX, &c->group), "unsupported link del");
      c->kind = LINK_DEL_GROUP;
      return true;
    }
  } else if (!strcmp(obj, "route")) {
    return parse_route(verb, w + 2, n - 2, c, why);
  } else if (!strcmp(obj, "neigh")) {
    return parse_neigh(verb, w + 2, n - 2, c, why);
  } else if (!strcmp(obj, "addr") && !strcmp(verb, "add")) {
    return parse_addr_add(w + 2, n - 2, c, why);
  }
  NEED(false, "unsupported command");
}

/* ---------- netlink ---------- */

/* One request message under construction, aligned for struct nlmsghdr. */
struct nlmsg {
  union {
    struct nlmsghdr h;
    char raw[NL_BUF];
  } u;
  bool overflow;
};

static void *nl_put(struct nlmsg *m, size_t len) {
  size_t at = NLMSG_ALIGN(m->u.h.nlmsg_len);
  if (m->overflow || at + NLMSG_ALIGN(len) > sizeof m->u.raw) { m->overflow = true; return NULL; }
  void *p = m->u.raw + at;
  memset(p, 0, NLMSG_ALIGN(len));
  m->u.h.nlmsg_len = (uint32_t)(at + len);
  return p;
}

static struct rtattr *nl_attr(struct nlmsg *m, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = nl_put(m, RTA_LENGTH(len));
  if (!a) return NULL;
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  return a;
}

static void nl_u32(struct nlmsg *m, unsigned short type, uint32_t v) { nl_attr(m, type, &v, sizeof v); }
static void nl_u8(struct nlmsg *m, unsigned short type, uint8_t v) { nl_attr(m, type, &v, sizeof v); }

static struct rtattr *nest_begin(struct nlmsg *m, unsigned short type) { return nl_attr(m, type, NULL, 0); }

static void nest_end(struct nlmsg *m, struct rtattr *nest) {
  if (!nest || m->overflow) return;
  nest->rta_len = (unsigned short)(m->u.raw + m->u.h.nlmsg_len - (char *)nest);
}

static void nl_begin(struct nlmsg *m, uint16_t type, uint16_t flags, size_t header) {
  memset(&m->u.h, 0, sizeof m->u.h);
  m->overflow = false;
  m->u.h.nlmsg_len = NLMSG_LENGTH(0);
  m->u.h.nlmsg_type = type;
  m->u.h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
  nl_put(m, header);
}

static void *nl_header(struct nlmsg *m) { return NLMSG_DATA(&m->u.h); }

/* The state of one request's run inside its namespace. */
struct run {
  int nl;               /* NETLINK_ROUTE socket, opened after setns */
  uint32_t seq;
  struct text *err;
  int exit_code;        /* set when a line ends the process as ip would */
  char *rbuf;           /* RECV_BUF bytes */
};

static void print_errno(struct text *t, const char *prefix, int e) {
  char b[256];
  text_printf(t, "%s%s\n", prefix, strerror_r(e, b, sizeof b));
}

/* The extended-ack message of an error, if the kernel attached one. */
static void ack_message(const struct nlmsghdr *h, char *msg, size_t cap) {
  msg[0] = '\0';
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  const struct nlmsgerr *e = NLMSG_DATA(h);
  size_t off = NLMSG_HDRLEN + sizeof *e;
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < NLMSG_HDRLEN) return;
    off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
  }
  off = NLMSG_ALIGN(off);
  if (off > h->nlmsg_len) return;
  const char *p = (const char *)h + off;
  size_t left = h->nlmsg_len - off;
  while (left >= sizeof(struct nlattr)) {
    const struct nlattr *a = (const struct nlattr *)p;
    if (a->nla_len < sizeof *a || a->nla_len > left) return;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      size_t n = a->nla_len - sizeof *a;
      const char *s = (const char *)a + sizeof *a;
      size_t sl = strnlen(s, n);
      if (sl >= cap) sl = cap - 1;
      memcpy(msg, s, sl);
      msg[sl] = '\0';
      return;
    }
    size_t step = NLA_ALIGN(a->nla_len);
    if (step >= left) return;
    p += step;
    left -= step;
  }
}

/* Sends one request and waits for its ack. 0 on success; on failure prints what ip prints and returns -1. */
static int talk(struct run *r, struct nlmsg *m) {
  if (m->overflow) { text_printf(r->err, "podvnet-netlink: request too large\n"); return -1; }
  m->u.h.nlmsg_seq = ++r->seq;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  for (;;) {
    ssize_t s = sendto(r->nl, m->u.raw, m->u.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    if (s >= 0) break;
    if (errno == EINTR) continue;
    print_errno(r->err, "Cannot talk to rtnetlink: ", errno);
    return -1;
  }
  for (;;) {
    ssize_t got = recv(r->nl, r->rbuf, RECV_BUF, MSG_TRUNC);
    if (got < 0) {
      if (errno == EINTR) continue;
      print_errno(r->err, "netlink receive error ", errno);
      return -1;
    }
    if ((size_t)got > RECV_BUF) { text_printf(r->err, "podvnet-netlink: netlink reply truncated\n"); return -1; }
    size_t len = (size_t)got;
    for (struct nlmsghdr *h = (struct nlmsghdr *)r->rbuf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != m->u.h.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue; /* not our ack */
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) { text_printf(r->err, "ERROR truncated\n"); return -1; }
      const struct nlmsgerr *e = NLMSG_DATA(h);
      if (e->error == 0) return 0;
      char msg[512];
      ack_message(h, msg, sizeof msg);
      if (msg[0]) {
        size_t n = strlen(msg);
        text_printf(r->err, "Error: %s%s\n", msg, msg[n - 1] == '.' ? "" : ".");
      } else {
        print_errno(r->err, "RTNETLINK answers: ", -e->error);
      }
      return -1;
    }
  }
}

/* ip's name lookup (if_nametoindex): an ioctl on a socket of the current namespace; 0 if absent. */
static unsigned lookup(struct run *r, const char *name) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  size_t n = strlen(name);
  if (n >= sizeof ifr.ifr_name) return 0;
  memcpy(ifr.ifr_name, name, n);
  if (ioctl(r->nl, SIOCGIFINDEX, &ifr) < 0) return 0;
  return ifr.ifr_ifindex > 0 ? (unsigned)ifr.ifr_ifindex : 0;
}

enum outcome { LINE_OK, LINE_FAILED, LINE_EXIT };

static enum outcome no_device(struct run *r, const char *name) {
  text_printf(r->err, "Cannot find device \"%s\"\n", name);
  return LINE_FAILED;
}

/* ip's invarg(): message, then the whole process exits with status 255. (ip's messages for `master`
 * and `netns` end in a newline of their own, hence the blank line after them.) */
static enum outcome invalid_argument(struct run *r, const char *arg, const char *msg) {
  text_printf(r->err, "Error: argument \"%s\" is wrong: %s\n", arg, msg);
  r->exit_code = 255;
  return LINE_EXIT;
}

static void link_header(struct nlmsg *m, int index, int updown) {
  struct ifinfomsg *ifi = nl_header(m);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  if (updown) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = updown > 0 ? IFF_UP : 0;
  }
}

static enum outcome run_link_add(struct run *r, const struct cmd *c, struct nlmsg *m) {
  /* ip resolves `master` while parsing, before it opens the peer's netns */
  unsigned master = 0;
  if (c->master && !(master = lookup(r, c->master))) return invalid_argument(r, c->master, "Device does not exist\n");
  int nsfd = -1;
  if (c->peer_netns && (nsfd = open(c->peer_netns, O_RDONLY | O_CLOEXEC)) < 0)
    return invalid_argument(r, c->peer_netns, "Invalid \"netns\" value\n");
  nl_begin(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
  link_header(m, 0, c->updown);
  nl_attr(m, IFLA_IFNAME, c->dev, strlen(c->dev) + 1);
  if (c->has_mtu) nl_u32(m, IFLA_MTU, c->mtu);
  if (c->has_mac) nl_attr(m, IFLA_ADDRESS, c->mac, 6);
  if (master) nl_u32(m, IFLA_MASTER, master);
  struct rtattr *info = nest_begin(m, IFLA_LINKINFO);
  nl_attr(m, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = nest_begin(m, IFLA_INFO_DATA);
  struct rtattr *peer = nest_begin(m, VETH_INFO_PEER);
  struct ifinfomsg *pifi = nl_put(m, sizeof(struct ifinfomsg));
  if (pifi) pifi->ifi_family = AF_UNSPEC;
  nl_attr(m, IFLA_IFNAME, c->peer, strlen(c->peer) + 1);
  if (c->peer_has_mtu) nl_u32(m, IFLA_MTU, c->peer_mtu);
  if (c->peer_has_mac) nl_attr(m, IFLA_ADDRESS, c->peer_mac, 6);
  if (nsfd >= 0) nl_u32(m, IFLA_NET_NS_FD, (uint32_t)nsfd);
  nest_end(m, peer);
  nest_end(m, data);
  nest_end(m, info);
  int rc = talk(r, m);
  if (nsfd >= 0) close(nsfd);
  return rc ? LINE_FAILED : LINE_OK;
}

static enum outcome run_link_set(struct run *r, const struct cmd *c, struct nlmsg *m) {
  unsigned index = lookup(r, c->dev);
  if (!index) return no_device(r, c->dev);
  nl_begin(m, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
  link_header(m, (int)index, c->updown);
  if (c->new_name) nl_attr(m, IFLA_IFNAME, c->new_name, strlen(c->new_name) + 1);
  if (c->alias) nl_attr(m, IFLA_IFALIAS, c->alias, strlen(c->alias));
  if (c->has_group) nl_u32(m, IFLA_GROUP, c->group);
  if (c->slave) {
    struct rtattr *info = nest_begin(m, IFLA_LINKINFO);
    nl_attr(m, IFLA_INFO_SLAVE_KIND, "bridge", 6);
    struct rtattr *data = nest_begin(m, IFLA_INFO_SLAVE_DATA);
    if (c->hairpin >= 0) nl_u8(m, IFLA_BRPORT_MODE, (uint8_t)c->hairpin);
    if (c->port_state >= 0) nl_u8(m, IFLA_BRPORT_STATE, (uint8_t)c->port_state);
    nest_end(m, data);
    nest_end(m, info);
  }
  return talk(r, m) ? LINE_FAILED : LINE_OK;
}

static enum outcome run_link_del(struct run *r, const struct cmd *c, struct nlmsg *m) {
  unsigned index = 0;
  if (c->kind == LINK_DEL_DEV && !(index = lookup(r, c->dev))) return no_device(r, c->dev);
  nl_begin(m, RTM_DELLINK, 0, sizeof(struct ifinfomsg));
  link_header(m, (int)index, 0);
  if (c->kind == LINK_DEL_GROUP) nl_u32(m, IFLA_GROUP, c->group);
  return talk(r, m) ? LINE_FAILED : LINE_OK;
}

static enum outcome run_route(struct run *r, const struct cmd *c, struct nlmsg *m) {
  unsigned index = lookup(r, c->dev);
  if (!index) return no_device(r, c->dev);
  nl_begin(m, c->msg_type, c->msg_flags, sizeof(struct rtmsg));
  struct rtmsg *rt = nl_header(m);
  bool del = c->msg_type == RTM_DELROUTE;
  rt->rtm_family = AF_INET;
  rt->rtm_dst_len = (unsigned char)(c->has_dst ? c->dst_len : 0);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = del ? RTPROT_UNSPEC : RTPROT_BOOT;
  rt->rtm_type = del ? RTN_UNSPEC : RTN_UNICAST;
  /* ip's default scope: nowhere for a delete, link for a route without gateway, else universe */
  rt->rtm_scope = del ? RT_SCOPE_NOWHERE : c->has_gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  if (c->onlink) rt->rtm_flags |= RTNH_F_ONLINK;
  if (c->has_dst) nl_attr(m, RTA_DST, &c->dst, 4);
  if (c->has_gw) nl_attr(m, RTA_GATEWAY, &c->gw, 4);
  nl_u32(m, RTA_OIF, index);
  if (c->has_metric) nl_u32(m, RTA_PRIORITY, c->metric);
  return talk(r, m) ? LINE_FAILED : LINE_OK;
}

static enum outcome run_neigh(struct run *r, const struct cmd *c, struct nlmsg *m) {
  unsigned index = lookup(r, c->dev);
  if (!index) return no_device(r, c->dev);
  nl_begin(m, c->msg_type, c->msg_flags, sizeof(struct ndmsg));
  struct ndmsg *nd = nl_header(m);
  nd->ndm_family = AF_INET;
  nd->ndm_ifindex = (int)index;
  nd->ndm_state = NUD_PERMANENT;
  nl_attr(m, NDA_DST, &c->dst, 4);
  if (c->has_lladdr) nl_attr(m, NDA_LLADDR, c->lladdr, 6);
  if (talk(r, m) == 0) return LINE_OK;
  /* ip's neigh ends the whole process when the kernel refuses, without `Command failed` */
  r->exit_code = 2;
  return LINE_EXIT;
}

static enum outcome run_addr_add(struct run *r, const struct cmd *c, struct nlmsg *m) {
  unsigned index = lookup(r, c->dev);
  if (!index) return no_device(r, c->dev);
  nl_begin(m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
  struct ifaddrmsg *ifa = nl_header(m);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char)c->dst_len;
  ifa->ifa_index = index;
  /* ip gives 127/8 host scope, everything else universe */
  ifa->ifa_scope = ((const uint8_t *)&c->dst)[0] == 127 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
  nl_attr(m, IFA_LOCAL, &c->dst, 4);
  nl_attr(m, IFA_ADDRESS, &c->dst, 4);
  return talk(r, m) ? LINE_FAILED : LINE_OK;
}

static enum outcome run_cmd(struct run *r, const struct cmd *c, struct nlmsg *m) {
  switch (c->kind) {
    case LINK_ADD_VETH: return run_link_add(r, c, m);
    case LINK_SET: return run_link_set(r, c, m);
    case LINK_DEL_DEV:
    case LINK_DEL_GROUP: return run_link_del(r, c, m);
    case ROUTE: return run_route(r, c, m);
    case NEIGH: return run_neigh(r, c, m);
    case ADDR_ADD: return run_addr_add(r, c, m);
  }
  return LINE_FAILED;
}

/* ---------- nf_tables: appending the pods' anti-spoofing rules ---------- */

/*
 * Why: the last process an ADD started was `iptables-nft-restore --noflush` for one rule
 *   -A <chain> -m physdev --physdev-in <veth> ! -s <ip>/32 -j DROP   (table raw, family ip)
 * (~1.5 ms from a shell, most of it exec and dynamic linking). The helper appends such rules itself, in
 * one nf_tables transaction, encoded exactly as iptables-nft 1.8.9 encodes that rule text, so that
 * iptables-nft lists, checks (-C) and deletes (-D) them as its own. The encoding, read from the NEWRULE
 * message iptables-nft-restore sends (and `nft --debug=netlink`), is, in this order:
 *   payload  load 4 bytes at network header + 12 (the source address) into register 1
 *   cmp      register 1 != <ip>                          (a /32 needs no bitwise mask)
 *   match    xt "physdev" revision 0, struct xt_physdev_info { physindev = veth, in_mask = 0xff over
 *            the name and its NUL, bitmask = XT_PHYSDEV_OP_IN }, padded to XT_ALIGN
 *   counter  bytes 0, packets 0
 *   immediate verdict DROP into the verdict register
 * plus the rule's compat attribute (protocol 0, flags 0) and no user data. Only names ip accepts as a
 * veth and without iptables' '+' wildcard are taken, so the mask is always the plain one.
 *
 * Request body: the chain name on the first line, then one "<veth> <A.B.C.D>" line per rule.
 * Response: "done 0" when the transaction committed; "done 2" when the kernel answered ENOENT (the
 * table, the chain or the physdev match is missing: the caller falls back to iptables-nft-restore);
 * "done 1" for any other refusal, with the kernel's message or errno text; "unsupported" (nothing sent)
 * for a body outside what is described here.
 */
#define NFT_MAX_RULES 256
/* a rule message is ~372 bytes with a 28-character chain name; this leaves room to spare */
#define NFT_RULE_BYTES 512
/* iptables' limit for a chain name (XT_EXTENSION_MAXNAMELEN includes the NUL) */
#define NFT_CHAIN_MAX (XT_EXTENSION_MAXNAMELEN - 1)

struct nft_rule_spec {
  const char *veth;
  struct in_addr src;
};

/* A whole batch of netlink messages under construction: bounded, and an overflow is remembered. */
struct nlbatch {
  char *buf;
  size_t len, cap;
  bool overflow;
  struct nlmsghdr *msg;  /* the message being built */
};

static void *nb_put(struct nlbatch *b, size_t len) {
  size_t at = NLMSG_ALIGN(b->len);
  if (b->overflow || at + NLA_ALIGN(len) > b->cap) { b->overflow = true; return NULL; }
  void *p = b->buf + at;
  /* the tail stays aligned, as libmnl keeps it: a nest's length then covers its last attribute's padding */
  memset(b->buf + b->len, 0, at + NLA_ALIGN(len) - b->len);
  b->len = at + NLA_ALIGN(len);
  if (b->msg) b->msg->nlmsg_len = (uint32_t)(b->buf + b->len - (char *)b->msg);
  return p;
}

static struct nlattr *nb_attr(struct nlbatch *b, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = nb_put(b, NLA_HDRLEN + len);
  if (!a) return NULL;
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len) memcpy((char *)a + NLA_HDRLEN, data, len);
  return a;
}

static void nb_be32(struct nlbatch *b, uint16_t type, uint32_t v) { v = htonl(v); nb_attr(b, type, &v, sizeof v); }
static void nb_be64(struct nlbatch *b, uint16_t type, uint64_t v) { v = htobe64(v); nb_attr(b, type, &v, sizeof v); }
static void nb_str(struct nlbatch *b, uint16_t type, const char *s) { nb_attr(b, type, s, strlen(s) + 1); }

/* iptables-nft marks its nested attributes NLA_F_NESTED; the kernel accepts either, we send the same. */
static struct nlattr *nb_nest(struct nlbatch *b, uint16_t type) { return nb_attr(b, (uint16_t)(type | NLA_F_NESTED), NULL, 0); }

static void nb_nest_end(struct nlbatch *b, struct nlattr *nest) {
  if (!nest || b->overflow) return;
  nest->nla_len = (uint16_t)(b->buf + b->len - (char *)nest);
}

/* Starts a message with its nfgenmsg header; every later put extends it. */
static void nb_msg(struct nlbatch *b, uint16_t type, uint16_t flags, uint32_t seq, uint8_t family, uint16_t res_id) {
  b->msg = NULL;
  struct nlmsghdr *h = nb_put(b, NLMSG_HDRLEN);
  if (!h) return;
  h->nlmsg_type = type;
  h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
  h->nlmsg_seq = seq;
  b->msg = h;
  struct nfgenmsg *g = nb_put(b, sizeof *g);
  if (!g) return;
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
}

/* One expression: a list element holding its name and its data. */
static struct nlattr *nb_expr(struct nlbatch *b, const char *name, struct nlattr **data) {
  struct nlattr *elem = nb_nest(b, NFTA_LIST_ELEM);
  nb_str(b, NFTA_EXPR_NAME, name);
  *data = nb_nest(b, NFTA_EXPR_DATA);
  return elem;
}

static void nb_expr_end(struct nlbatch *b, struct nlattr *elem, struct nlattr *data) {
  nb_nest_end(b, data);
  nb_nest_end(b, elem);
}

/* The NEWRULE message for one rule, expressions in iptables-nft's order (see the comment above). */
static void nft_rule_msg(struct nlbatch *b, uint32_t seq, bool ack, const char *chain, const struct nft_rule_spec *r) {
  nb_msg(b, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
         (uint16_t)(NLM_F_CREATE | NLM_F_APPEND | (ack ? NLM_F_ACK : 0)), seq, NFPROTO_IPV4, 0);
  nb_str(b, NFTA_RULE_TABLE, "raw");
  nb_str(b, NFTA_RULE_CHAIN, chain);
  struct nlattr *exprs = nb_nest(b, NFTA_RULE_EXPRESSIONS), *data, *e, *nest;

  e = nb_expr(b, "payload", &data);
  nb_be32(b, NFTA_PAYLOAD_DREG, NFT_REG_1);
  nb_be32(b, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
  nb_be32(b, NFTA_PAYLOAD_OFFSET, 12); /* struct iphdr's saddr */
  nb_be32(b, NFTA_PAYLOAD_LEN, 4);
  nb_expr_end(b, e, data);

  e = nb_expr(b, "cmp", &data);
  nb_be32(b, NFTA_CMP_SREG, NFT_REG_1);
  nb_be32(b, NFTA_CMP_OP, NFT_CMP_NEQ);
  nest = nb_nest(b, NFTA_CMP_DATA);
  nb_attr(b, NFTA_DATA_VALUE, &r->src, 4);
  nb_nest_end(b, nest);
  nb_expr_end(b, e, data);

  /* the match's blob is the struct padded to XT_ALIGN, as x_tables sizes it */
  unsigned char info[XT_ALIGN(sizeof(struct xt_physdev_info))];
  memset(info, 0, sizeof info);
  struct xt_physdev_info *pi = (struct xt_physdev_info *)info;
  size_t vl = strlen(r->veth);
  memcpy(pi->physindev, r->veth, vl);
  memset(pi->in_mask, 0xff, vl + 1);
  pi->bitmask = XT_PHYSDEV_OP_IN;
  e = nb_expr(b, "match", &data);
  nb_str(b, NFTA_MATCH_NAME, "physdev");
  nb_be32(b, NFTA_MATCH_REV, 0);
  nb_attr(b, NFTA_MATCH_INFO, info, sizeof info);
  nb_expr_end(b, e, data);

  e = nb_expr(b, "counter", &data);
  nb_be64(b, NFTA_COUNTER_BYTES, 0);
  nb_be64(b, NFTA_COUNTER_PACKETS, 0);
  nb_expr_end(b, e, data);

  e = nb_expr(b, "immediate", &data);
  nb_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
  nest = nb_nest(b, NFTA_IMMEDIATE_DATA);
  struct nlattr *verdict = nb_nest(b, NFTA_DATA_VERDICT);
  nb_be32(b, NFTA_VERDICT_CODE, NF_DROP);
  nb_nest_end(b, verdict);
  nb_nest_end(b, nest);
  nb_expr_end(b, e, data);
  nb_nest_end(b, exprs);

  nest = nb_nest(b, NFTA_RULE_COMPAT);
  nb_be32(b, NFTA_RULE_COMPAT_PROTO, 0);
  nb_be32(b, NFTA_RULE_COMPAT_FLAGS, 0);
  nb_nest_end(b, nest);
}

/* A chain name iptables accepts and the line format can carry: 1..28 printable characters, no space. */
static bool good_chain(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NFT_CHAIN_MAX) return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) return false;
  return true;
}

/* The body (see above) into a chain name and rules; -1 with *why if it is outside the format. */
static long parse_nft_body(char *text, const char **chain, struct nft_rule_spec *rules, const char **why) {
  char *save = NULL;
  char *line = strtok_r(text, "\n", &save);
  if (!line || !good_chain(line)) { *why = "first line: a chain name of 1-28 printable characters"; return -1; }
  *chain = line;
  long n = 0;
  while ((line = strtok_r(NULL, "\n", &save))) {
    char *sp = strchr(line, ' ');
    if (!sp) { *why = "rule line: <veth> <A.B.C.D>"; return -1; }
    *sp = '\0';
    const char *veth = line, *ip = sp + 1;
    /* iptables reads a trailing '+' as a wildcard (another mask): not this encoding */
    if (!good_ifname(veth) || veth[strlen(veth) - 1] == '+') { *why = "bad veth name"; return -1; }
    if (n >= NFT_MAX_RULES) { *why = "too many rules"; return -1; }
    if (!parse_ipv4(ip, &rules[n].src)) { *why = "bad IPv4 address"; return -1; }
    rules[n++].veth = veth;
  }
  if (n == 0) { *why = "no rules"; return -1; }
  return n;
}

/*
 * Sends the transaction and reads its outcome. Only the last rule asks for an ack: the kernel reports
 * every failing message whether asked or not, and delivers its reports in message order after any
 * error of the batch as a whole (a failed commit is reported against the BATCH_BEGIN message), so the
 * first error or the last rule's ack decides. Returns the response code (0, 1 or 2) with text in *err.
 */
static int nft_transact(int fd, const struct nlbatch *b, uint32_t first_seq, uint32_t last_seq, struct text *err, char *rbuf) {
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  for (;;) {
    ssize_t s = sendto(fd, b->buf, b->len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    if (s >= 0) break;
    if (errno == EINTR) continue;
    print_errno(err, "podvnet-netlink: cannot send to nf_tables: ", errno);
    return 1;
  }
  for (;;) {
    ssize_t got = recv(fd, rbuf, RECV_BUF, MSG_TRUNC);
    if (got < 0) {
      if (errno == EINTR) continue;
      print_errno(err, "podvnet-netlink: nf_tables receive error: ", errno);
      return 1;
    }
    if ((size_t)got > RECV_BUF) { text_printf(err, "podvnet-netlink: nf_tables reply truncated\n"); return 1; }
    size_t len = (size_t)got;
    for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first_seq || h->nlmsg_seq > last_seq) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) { text_printf(err, "podvnet-netlink: nf_tables error truncated\n"); return 1; }
      const struct nlmsgerr *e = NLMSG_DATA(h);
      if (e->error == 0) {
        if (h->nlmsg_seq == last_seq) return 0;
        continue;
      }
      char msg[512];
      ack_message(h, msg, sizeof msg);
      char b2[256];
      text_printf(err, "nf_tables answers: %s%s%s\n", strerror_r(-e->error, b2, sizeof b2), msg[0] ? ": " : "", msg);
      return -e->error == ENOENT ? 2 : 1;
    }
  }
}

/*
 * Runs one nft-append request inside the namespace the thread has entered. Returns the response code
 * (text in *err), or -1 with *unsupported saying why when the body is outside the format (nothing sent).
 */
static int nft_append(char *text, struct text *err, const char **unsupported) {
  const char *chain = NULL;
  struct nft_rule_spec *rules = calloc(NFT_MAX_RULES, sizeof *rules);
  if (!rules) { text_printf(err, "podvnet-netlink: out of memory\n"); return 1; }
  long n = parse_nft_body(text, &chain, rules, unsupported);
  if (n < 0) { free(rules); return -1; }
  struct nlbatch b = { .cap = (size_t)(n + 2) * NFT_RULE_BYTES };
  b.buf = malloc(b.cap);
  char *rbuf = malloc(RECV_BUF);
  int code = 1;
  int fd = -1;
  if (!b.buf || !rbuf) { text_printf(err, "podvnet-netlink: out of memory\n"); goto out; }
  /* seq numbers only need to tell this socket's messages apart: the socket is this request's own */
  uint32_t seq = 1;
  nb_msg(&b, NFNL_MSG_BATCH_BEGIN, 0, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  for (long i = 0; i < n; i++) nft_rule_msg(&b, seq + 1 + (uint32_t)i, i == n - 1, chain, &rules[i]);
  nb_msg(&b, NFNL_MSG_BATCH_END, 0, seq + 1 + (uint32_t)n, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  if (b.overflow) { text_printf(err, "podvnet-netlink: nf_tables batch too large\n"); goto out; }
  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  int one = 1;
  if (fd < 0) { print_errno(err, "podvnet-netlink: cannot open an nf_tables socket: ", errno); goto out; }
  /* the whole batch is one datagram: the default send buffer (wmem_default) may be smaller than 256
   * rules; the kernel caps the request at wmem_max, and a batch still too large fails with EMSGSIZE */
  int sndbuf = (int)b.len;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0) {
    print_errno(err, "podvnet-netlink: netlink socket options: ", errno);
    goto out;
  }
  code = nft_transact(fd, &b, seq, seq + (uint32_t)n, err, rbuf);
out:
  if (fd >= 0) close(fd);
  free(b.buf);
  free(rbuf);
  free(rules);
  return code;
}

/* ---------- requests ---------- */

struct request {
  uint64_t id;
  bool force;
  bool nft;     /* an nft-append request: the text is a chain and rules, not ip lines */
  char *netns;  /* "-" = the helper's own namespace */
  char *text;   /* the batch, NUL-terminated, mutable */
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t thread_slots;

static bool write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Writes one whole response frame; if the agent is gone (stdout closed) there is nothing left to do. */
static void respond(uint64_t id, const char *kind, int code, const char *body, size_t body_len) {
  char head[96];
  int hn = snprintf(head, sizeof head, "%" PRIu64 " %s %d\n", id, kind, code);
  if (hn < 0 || (size_t)hn >= sizeof head) abort();
  uint32_t total = (uint32_t)((size_t)hn + body_len);
  unsigned char len[4] = { (unsigned char)total, (unsigned char)(total >> 8), (unsigned char)(total >> 16), (unsigned char)(total >> 24) };
  if (pthread_mutex_lock(&out_lock) != 0) abort();
  bool ok = write_all(1, (const char *)len, 4) && write_all(1, head, (size_t)hn) && write_all(1, body, body_len);
  pthread_mutex_unlock(&out_lock);
  if (!ok) _exit(0);
}

static void respond_text(uint64_t id, const char *kind, int code, const char *s) { respond(id, kind, code, s, strlen(s)); }

/* Parses every line first; returns the number of commands, or -1 (with *why, *bad_line) if any is unsupported. */
static long parse_batch(char *text, struct cmd **out, const char **why, int *bad_line) {
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  struct cmd *cmds = calloc(lines, sizeof *cmds);
  if (!cmds) { *why = "out of memory"; *bad_line = 0; return -1; }
  long n = 0;
  int lineno = 0;
  char *p = text;
  while (*p) {
    char *nl = strchr(p, '\n');
    char *next = nl ? nl + 1 : p + strlen(p);
    if (nl) *nl = '\0';
    lineno++;
    *bad_line = lineno;
    /* ip cuts a line at '#' and joins one ending in '\': not worth emulating, ip runs those */
    if (strchr(p, '#') || (strlen(p) && p[strlen(p) - 1] == '\\')) { *why = "comment or continuation"; free(cmds); return -1; }
    char *words[MAX_WORDS];
    int wn = split_words(p, words, why);
    if (wn < 0) { free(cmds); return -1; }
    if (wn > 0) {
      cmds[n].lineno = lineno;
      if (!parse_line(words, wn, &cmds[n], why)) { free(cmds); return -1; }
      n++;
    }
    p = next;
  }
  *out = cmds;
  return n;
}

static void *serve(void *arg) {
  struct request *rq = arg;
  struct cmd *cmds = NULL;
  const char *why = "";
  int bad_line = 0;
  /* an nft-append body is parsed after entering the namespace, where nft_append runs it */
  long n = rq->nft ? 0 : parse_batch(rq->text, &cmds, &why, &bad_line);
  if (n < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "line %d: %s", bad_line, why);
    respond_text(rq->id, "unsupported", 0, msg);
    goto done;
  }

  struct text err = {0};
  int code = 0;
  if (strcmp(rq->netns, "-") != 0) {
    /* what `nsenter --net=PATH` says when it cannot enter, so callers see the same failure */
    int fd = open(rq->netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      char b[256];
      text_printf(&err, "nsenter: cannot open %s: %s\n", rq->netns, strerror_r(errno, b, sizeof b));
      code = 1;
    } else {
      if (setns(fd, CLONE_NEWNET) < 0) {
        print_errno(&err, "nsenter: reassociate to namespace 'ns/net' failed: ", errno);
        code = 1;
      }
      close(fd);
    }
  }
  if (rq->nft) {
    if (code == 0) code = nft_append(rq->text, &err, &why);
    if (code < 0) respond_text(rq->id, "unsupported", 0, why);
    else respond(rq->id, "done", code, err.buf ? err.buf : "", err.len);
    free(err.buf);
    goto done;
  }
  struct run r = { .nl = -1, .err = &err };
  struct nlmsg *m = NULL;
  if (code == 0) {
    r.nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    r.rbuf = malloc(RECV_BUF);
    m = malloc(sizeof *m);
    int one = 1;
    if (r.nl < 0) { print_errno(&err, "Cannot open netlink socket: ", errno); code = 1; }
    else if (!r.rbuf || !m) { text_printf(&err, "podvnet-netlink: out of memory\n"); code = 1; }
    /* extended acks carry the kernel's own error text, which ip prints; capped acks omit our request */
    else if (setsockopt(r.nl, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) < 0 ||
             setsockopt(r.nl, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) < 0) {
      print_errno(&err, "podvnet-netlink: netlink socket options: ", errno);
      code = 1;
    }
  }
  bool failed = false;
  for (long i = 0; code == 0 && i < n; i++) {
    enum outcome o = run_cmd(&r, &cmds[i], m);
    if (o == LINE_OK) continue;
    if (o == LINE_EXIT) { code = r.exit_code; break; }
    text_printf(&err, "Command failed -:%d\n", cmds[i].lineno);
    /* the batch's status is 1 from the first failure on, whether or not -force goes on */
    failed = true;
    if (!rq->force) break;
  }
  if (code == 0 && failed) code = 1;
  respond(rq->id, "done", code, err.buf ? err.buf : "", err.len);
  if (r.nl >= 0) close(r.nl);
  free(r.rbuf);
  free(m);
  free(err.buf);
done:
  free(cmds);
  free(rq->netns);
  free(rq->text);
  free(rq);
  sem_post(&thread_slots);
  /* this thread may be in another namespace now: it ends here rather than serve anything else */
  return NULL;
}

/* Reads exactly n bytes; 1 = done, 0 = clean end of input before any byte, -1 = error or short read. */
static int read_all(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

/* "<id> <force|nft> <netns>\n<text>" into a request; NULL if malformed. Takes ownership of body. */
static struct request *parse_request(char *body, size_t len) {
  if (memchr(body, '\0', len)) return NULL; /* the batch is text; ip would stop reading a line at a NUL */
  char *nl = memchr(body, '\n', len);
  if (!nl) return NULL;
  *nl = '\0';
  char *sp1 = strchr(body, ' ');
  if (!sp1) return NULL;
  *sp1 = '\0';
  char *sp2 = strchr(sp1 + 1, ' ');
  if (!sp2) return NULL;
  *sp2 = '\0';
  const char *id = body, *force = sp1 + 1, *ns = sp2 + 1;
  size_t idn = strlen(id);
  if (idn == 0 || idn > 19 || strspn(id, "0123456789") != idn) return NULL;
  if (strcmp(force, "0") != 0 && strcmp(force, "1") != 0 && strcmp(force, "nft") != 0) return NULL;
  if (!*ns || strlen(ns) >= PATH_MAX || (strcmp(ns, "-") != 0 && ns[0] != '/')) return NULL;
  struct request *rq = calloc(1, sizeof *rq);
  if (!rq) return NULL;
  rq->id = strtoull(id, NULL, 10);
  rq->force = force[0] == '1';
  rq->nft = force[0] == 'n';
  rq->netns = strdup(ns);
  size_t tl = len - (size_t)(nl + 1 - body);
  rq->text = malloc(tl + 1);
  if (!rq->netns || !rq->text) { free(rq->netns); free(rq->text); free(rq); return NULL; }
  memcpy(rq->text, nl + 1, tl);
  rq->text[tl] = '\0';
  return rq;
}

int main(void) {
  /* a closed stdout must show up as a write error, not kill the helper mid-request */
  struct sigaction ign = { .sa_handler = SIG_IGN };
  if (sigaction(SIGPIPE, &ign, NULL) < 0) { perror("podvnet-netlink: sigaction"); return 1; }
  if (sem_init(&thread_slots, 0, MAX_THREADS) < 0) { perror("podvnet-netlink: sem_init"); return 1; }
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0 || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
      pthread_attr_setstacksize(&attr, THREAD_STACK) != 0) {
    fprintf(stderr, "podvnet-netlink: thread attributes\n");
    return 1;
  }
  for (;;) {
    unsigned char hdr[4];
    int rd = read_all(0, hdr, 4);
    if (rd == 0) break;
    if (rd < 0) { fprintf(stderr, "podvnet-netlink: short read on stdin\n"); return 1; }
    uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
    if (len > MAX_FRAME) { fprintf(stderr, "podvnet-netlink: request of %" PRIu32 " bytes is too large\n", len); return 1; }
    char *body = malloc((size_t)len + 1);
    if (!body) { fprintf(stderr, "podvnet-netlink: out of memory\n"); return 1; }
    if (read_all(0, body, len) != 1) { fprintf(stderr, "podvnet-netlink: short read on stdin\n"); return 1; }
    struct request *rq = parse_request(body, len);
    free(body);
    if (!rq) { fprintf(stderr, "podvnet-netlink: malformed request\n"); return 1; }
    while (sem_wait(&thread_slots) < 0) {
      if (errno != EINTR) { perror("podvnet-netlink: sem_wait"); return 1; }
    }
    pthread_t t;
    int e = pthread_create(&t, &attr, serve, rq);
    if (e != 0) {
      char b[256];
      char msg[300];
      snprintf(msg, sizeof msg, "cannot start a thread: %s", strerror_r(e, b, sizeof b));
      respond_text(rq->id, "error", 0, msg);
      sem_post(&thread_slots);
      free(rq->netns);
      free(rq->text);
      free(rq);
    }
  }
  /* end of input: let the running requests finish and answer, then the process ends with them */
  pthread_exit(NULL);
}

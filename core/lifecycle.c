/* lifecycle: the contract state machine (see lifecycle.h for the contract of
 * lifecycle_apply() and docs/lifecycle.md for the table and its diagram).
 *
 * The whole policy of which answer is possible in which state is the one
 * array `transitions` below; everything else executes what it says. The work
 * of one answer runs inside one BEGIN IMMEDIATE transaction: any failure rolls
 * back the response row, the events, the cancellations, the state change and
 * the owner alert rows together.
 *
 * Also here: how long the current term is and where a customer's one-click
 * renewal takes the expiry (lifecycle_term_start(), lifecycle_renewal_expiry()),
 * reading back the previous= this file writes into "contract.renewed".
 *
 * Owns nothing between calls; no globals except constant tables. Blocks on the
 * store only. */
#include <inttypes.h>

#include "core/lifecycle.h"
#include "core/cal.h"
#include "core/util.h"

/* ---- names ----------------------------------------------------------------- */

static const char *const kind_names[_LIFECYCLE_KIND_MAX] = {
    [LIFECYCLE_RENEWED] = "renewed",
    [LIFECYCLE_DECLINED] = "declined",
    [LIFECYCLE_SNOOZED] = "snoozed",
    [LIFECYCLE_CALLBACK] = "callback",
    [LIFECYCLE_LOST] = "lost",
    [LIFECYCLE_RENEW_INTENT] = "renew_intent",
    [LIFECYCLE_UNSUBSCRIBED] = "unsubscribed",
    [LIFECYCLE_RESUBSCRIBED] = "resubscribed",
    [LIFECYCLE_MESSAGE] = "message",
    [LIFECYCLE_HELP] = "help",
};

static const char *const source_names[_LIFECYCLE_SOURCE_MAX] = {
    [LIFECYCLE_SOURCE_LINK] = "link",
    [LIFECYCLE_SOURCE_SMS] = "sms",
    [LIFECYCLE_SOURCE_API] = "api",
    [LIFECYCLE_SOURCE_RENEWCTL] = "renewctl",
    [LIFECYCLE_SOURCE_OWNER_LINK] = "owner-link",
};

static const char *const reason_names[] = {
    "price", "switched-provider", "no-longer-needed", "budget", "missing-features", "other",
};

const char *lifecycle_kind_to_string(enum lifecycle_kind k) {
  return (unsigned)k < _LIFECYCLE_KIND_MAX ? kind_names[k] : NULL;
}

const char *lifecycle_source_to_string(enum lifecycle_source s) {
  return (unsigned)s < _LIFECYCLE_SOURCE_MAX ? source_names[s] : NULL;
}

int lifecycle_kind_from_string(const char *s) {
  if (isempty(s) || strlen(s) >= 32)
    return -EINVAL;
  char b[32];
  size_t i = 0;
  for (; s[i]; i++)
    b[i] = s[i] == '-' ? '_' : s[i];
  b[i] = 0;
  for (size_t k = 0; k < _LIFECYCLE_KIND_MAX; k++)
    if (streq(b, kind_names[k]))
      return (int)k;
  return -EINVAL;
}

int lifecycle_source_from_string(const char *s) {
  if (isempty(s))
    return -EINVAL;
  for (size_t k = 0; k < _LIFECYCLE_SOURCE_MAX; k++)
    if (streq(s, source_names[k]))
      return (int)k;
  return -EINVAL;
}

const char *lifecycle_reason_name(size_t i) {
  return i < ELEMENTSOF(reason_names) ? reason_names[i] : NULL;
}

bool lifecycle_reason_valid(const char *s) {
  if (isempty(s))
    return false;
  for (size_t i = 0; i < ELEMENTSOF(reason_names); i++)
    if (streq(s, reason_names[i]))
      return true;
  return false;
}

/* ---- THE TRANSITION TABLE --------------------------------------------------------
 *
 * transitions[kind][state] is the state the contract moves to, or one of:
 *   NO  refused (-EPERM)
 *   AL  already there (-EALREADY unless the very same answer is repeated)
 *   KP  allowed, the state stays as it is
 *   NT  allowed, a new term starts (state active, ladder restarts)
 * Keep docs/lifecycle.md in step with this table. */
enum {
  NO = -1,
  AL = -2,
  KP = -3,
  NT = -4,
};
#define DEC CONTRACT_DECLINED
#define SNZ CONTRACT_SNOOZED
#define CBK CONTRACT_CALLBACK
#define CLO CONTRACT_CLOSED

/* clang-format off */
static const signed char transitions[_LIFECYCLE_KIND_MAX][_CONTRACT_STATE_MAX] = {
  /*                          active reminding renewed declined snoozed callback lapsed closed */
  [LIFECYCLE_RENEWED]      = { NT,    NT,       NT,     NT,      NT,     NT,      NT,    NT  },
  [LIFECYCLE_DECLINED]     = { DEC,   DEC,      NO,     AL,      DEC,    DEC,     DEC,   NO  },
  [LIFECYCLE_SNOOZED]      = { SNZ,   SNZ,      NO,     NO,      SNZ,    SNZ,     NO,    NO  },
  [LIFECYCLE_CALLBACK]     = { CBK,   CBK,      NO,     NO,      CBK,    AL,      CBK,   NO  },
  [LIFECYCLE_LOST]         = { CLO,   CLO,      NO,     NO,      CLO,    CLO,     CLO,   AL  },
  [LIFECYCLE_RENEW_INTENT] = { KP,    KP,       AL,     KP,      KP,     KP,      KP,    KP  },
  [LIFECYCLE_UNSUBSCRIBED] = { KP,    KP,       KP,     KP,      KP,     KP,      KP,    KP  },
  [LIFECYCLE_RESUBSCRIBED] = { KP,    KP,       KP,     KP,      KP,     KP,      KP,    KP  },
  [LIFECYCLE_MESSAGE]      = { KP,    KP,       KP,     KP,      KP,     KP,      KP,    KP  },
  [LIFECYCLE_HELP]         = { KP,    KP,       KP,     KP,      KP,     KP,      KP,    KP  },
};
/* clang-format on */
_Static_assert(_CONTRACT_STATE_MAX == 8, "the transition table lists 8 states");
_Static_assert(_LIFECYCLE_KIND_MAX == 10, "the transition table lists 10 kinds");

#undef DEC
#undef SNZ
#undef CBK
#undef CLO

int lifecycle_can(enum contract_state state, enum lifecycle_kind kind,
                  enum contract_state *ret_next) {
  if ((unsigned)state >= _CONTRACT_STATE_MAX || (unsigned)kind >= _LIFECYCLE_KIND_MAX)
    return -EINVAL;
  int t = transitions[kind][state];
  if (t == NO)
    return LIFECYCLE_REFUSED;
  if (ret_next)
    *ret_next = t == KP || t == AL ? state : t == NT ? CONTRACT_ACTIVE : (enum contract_state)t;
  return t == AL ? LIFECYCLE_ALREADY : LIFECYCLE_ALLOWED;
}

bool lifecycle_alerts_owner(enum lifecycle_kind kind, enum lifecycle_source source) {
  return kind == LIFECYCLE_CALLBACK || kind == LIFECYCLE_RENEW_INTENT ||
         kind == LIFECYCLE_MESSAGE ||
         (kind == LIFECYCLE_RENEWED && source == LIFECYCLE_SOURCE_LINK);
}

bool lifecycle_reminder_live(const struct contract *c, const struct reminder *r, bool alert,
                             int64_t now, char *why, size_t whylen) {
  char t[21];
  if (!c || !r || alert || streq_ptr(r->tier, LIFECYCLE_TIER_CALLBACK) ||
      streq_ptr(r->tier, LIFECYCLE_TIER_RENEW_INTENT) ||
      streq_ptr(r->tier, LIFECYCLE_TIER_MESSAGE) ||
      streq_ptr(r->tier, LIFECYCLE_TIER_CUSTOMER_RENEWED))
    return true;
  if (r->term != c->term) {
    snprintf(why, whylen, "term %" PRId32 " is over: contract %s is in term %" PRId32, r->term,
             c->id, c->term);
    return false;
  }
  switch (c->state) {
  case CONTRACT_RENEWED:
  case CONTRACT_DECLINED:
  case CONTRACT_CLOSED:
    snprintf(why, whylen, "contract %s is %s", c->id, contract_state_to_string(c->state));
    return false;
  case CONTRACT_SNOOZED:
  case CONTRACT_CALLBACK:
    if (streq_ptr(r->audience, "customer") && now < c->state_until) {
      snprintf(why, whylen, "contract %s is %s until %s", c->id, contract_state_to_string(c->state),
               format_rfc3339(c->state_until, t));
      return false;
    }
    return true;
  default:
    return true;
  }
}

static const char *alert_tier(enum lifecycle_kind kind) {
  switch (kind) {
  case LIFECYCLE_CALLBACK:
    return LIFECYCLE_TIER_CALLBACK;
  case LIFECYCLE_RENEW_INTENT:
    return LIFECYCLE_TIER_RENEW_INTENT;
  case LIFECYCLE_MESSAGE:
    return LIFECYCLE_TIER_MESSAGE;
  case LIFECYCLE_RENEWED:
    return LIFECYCLE_TIER_CUSTOMER_RENEWED;
  default:
    return NULL;
  }
}

/* "renewed, renew_intent, ..." : the kinds allowed in state. */
static void allowed_list(enum contract_state state, char *out, size_t n) {
  size_t len = 0;
  out[0] = 0;
  for (size_t k = 0; k < _LIFECYCLE_KIND_MAX; k++) {
    if (lifecycle_can(state, (enum lifecycle_kind)k, NULL) != LIFECYCLE_ALLOWED)
      continue;
    int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", kind_names[k]);
    if (w < 0 || (size_t)w >= n - len)
      break;
    len += (size_t)w;
  }
}

/* ---- results ------------------------------------------------------------------------ */

void lifecycle_result_clear(struct lifecycle_result *r) {
  if (!r)
    return;
  response_clear(&r->response);
  *r = (struct lifecycle_result){0};
}

/* Deep copy of a response into the zeroed *dst. 0 or -ENOMEM (dst cleared). */
static int response_copy(const struct response *src, struct response *dst) {
  *dst = (struct response){
      .id = src->id,
      .term = src->term,
      .until_at = src->until_at,
      .new_expires_at = src->new_expires_at,
      .created_at = src->created_at,
  };
  const char *in[] = {src->contract_id, src->kind,   src->source,  src->channel,
                      src->reason,      src->detail, src->idem_key};
  char **out[] = {&dst->contract_id, &dst->kind,   &dst->source,  &dst->channel,
                  &dst->reason,      &dst->detail, &dst->idem_key};
  for (size_t i = 0; i < ELEMENTSOF(in); i++)
    if (in[i] && !(*out[i] = strdup(in[i]))) {
      response_clear(dst);
      return -ENOMEM;
    }
  return 0;
}

/* ---- idempotency -------------------------------------------------------------------- */

/* The answer with irrelevant fields dropped and "" turned into NULL: what is
 * stored, compared and hashed. */
struct norm {
  const char *channel;
  const char *reason;
  const char *detail;
  int64_t until;
  int64_t new_expires_at;
};

static const char *nonempty(const char *s) {
  return isempty(s) ? NULL : s;
}

static void normalize(const struct lifecycle_answer *a, struct norm *n) {
  *n = (struct norm){
      .channel = nonempty(a->channel),
      .detail = nonempty(a->detail),
  };
  if (a->kind == LIFECYCLE_DECLINED || a->kind == LIFECYCLE_LOST)
    n->reason = nonempty(a->reason);
  if (a->kind == LIFECYCLE_SNOOZED || a->kind == LIFECYCLE_CALLBACK)
    n->until = a->until;
  if (a->kind == LIFECYCLE_RENEWED)
    n->new_expires_at = a->new_expires_at;
}

static bool subscription_kind(enum lifecycle_kind k) {
  return k == LIFECYCLE_UNSUBSCRIBED || k == LIFECYCLE_RESUBSCRIBED;
}

/* Is the recorded response r the same answer as (kind, n) for contract c? */
static bool same_answer(const struct response *r, enum lifecycle_kind kind, const struct norm *n,
                        const struct contract *c) {
  if (!streq_ptr(r->kind, kind_names[kind]) || !streq_ptr(r->reason, n->reason) ||
      !streq_ptr(r->detail, n->detail) || r->until_at != n->until ||
      r->new_expires_at != n->new_expires_at)
    return false;
  if (subscription_kind(kind) && !streq_ptr(r->channel, n->channel))
    return false;
  if (kind == LIFECYCLE_RENEWED) /* it took effect: the contract is in the term it began */
    return c->expires_at == n->new_expires_at && r->term + 1 == c->term;
  return r->term == c->term;
}

struct fnv2 {
  uint64_t a, b;
};

static void fnv_bytes(struct fnv2 *h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) {
    h->a = (h->a ^ s[i]) * UINT64_C(0x100000001b3);
    h->b = (h->b ^ s[i]) * UINT64_C(0x100000001b3);
  }
}

static void fnv_str(struct fnv2 *h, const char *s) {
  if (s)
    fnv_bytes(h, s, strlen(s));
  fnv_bytes(h, "\x1f", 1);
}

static void fnv_int(struct fnv2 *h, int64_t v) {
  char b[24];
  snprintf(b, sizeof b, "%" PRId64, v);
  fnv_str(h, b);
}

/* "lc-" + 32 hex over the answer's values and the response it follows. */
static void derive_key(const char *contract_id, int32_t term, enum lifecycle_kind kind,
                       const struct norm *n, int64_t prev_response_id, char out[static 40]) {
  struct fnv2 h = {UINT64_C(0xcbf29ce484222325), UINT64_C(0x84222325cbf29ce4)};
  fnv_str(&h, contract_id);
  fnv_int(&h, term);
  fnv_str(&h, kind_names[kind]);
  fnv_str(&h, subscription_kind(kind) ? n->channel : NULL);
  fnv_str(&h, n->reason);
  fnv_str(&h, n->detail);
  fnv_int(&h, n->until);
  fnv_int(&h, n->new_expires_at);
  fnv_int(&h, prev_response_id);
  snprintf(out, 40, "lc-%016" PRIx64 "%016" PRIx64, h.a, h.b);
}

/* Walk state: the response carrying key (if any) and the latest one. */
struct lookup {
  const char *key;        /* caller key, NULL = none */
  struct response keyed;  /* copy of the response with that key (id 0 = none) */
  struct response latest; /* copy of the last response walked (id 0 = none) */
};

static void lookup_done(struct lookup *l) {
  response_clear(&l->keyed);
  response_clear(&l->latest);
}

static int lookup_cb(const struct response *r, void *ud) {
  struct lookup *l = ud;
  int k;
  if (l->key && streq_ptr(r->idem_key, l->key)) {
    response_clear(&l->keyed);
    if ((k = response_copy(r, &l->keyed)) < 0)
      return k;
  }
  response_clear(&l->latest);
  return response_copy(r, &l->latest);
}

/* ---- the answer's side effects ------------------------------------------------------ */

static unsigned optout_bits(const char *channel) {
  if (!channel)
    return 0;
  if (streq(channel, "email"))
    return OPTOUT_EMAIL;
  if (streq(channel, "sms"))
    return OPTOUT_SMS;
  if (streq(channel, "webhook"))
    return OPTOUT_WEBHOOK;
  if (streq(channel, "all"))
    return OPTOUT_EMAIL | OPTOUT_SMS | OPTOUT_WEBHOOK;
  return 0;
}

/* An opt-out answer for channels `bits`: the customer's email address and
 * phone number are suppressed (or released) for everyone who has them, as
 * carriers and mailbox providers count opt-outs per address; the customer's
 * own bit carries webhooks, and email or SMS when the customer has no such
 * address. */
static int apply_optout(struct store *s, const struct lifecycle_answer *a,
                        const struct customer *cu, unsigned bits, int64_t now) {
  static const struct {
    unsigned bit;
    enum suppress_kind kind;
  } map[] = {{OPTOUT_EMAIL, SUPPRESS_EMAIL}, {OPTOUT_SMS, SUPPRESS_SMS}};
  bool unsub = a->kind == LIFECYCLE_UNSUBSCRIBED;
  const char *source = a->source == LIFECYCLE_SOURCE_SMS ? "sms-inbound" : source_names[a->source];
  _cleanup_free_ char *note = strprintf("customer %.200s", cu->id);
  if (!note)
    return -ENOMEM;
  unsigned by_bit = bits;
  int r;
  for (size_t i = 0; i < ELEMENTSOF(map); i++) {
    const char *addr = map[i].kind == SUPPRESS_EMAIL ? cu->email : cu->phone;
    char norm[STORE_ADDRESS_MAX + 1];
    if (!(bits & map[i].bit) || isempty(addr) ||
        store_address_normalize(map[i].kind, addr, norm) < 0)
      continue;
    if (unsub)
      r = store_suppression_add(s, map[i].kind, norm,
                                a->source == LIFECYCLE_SOURCE_SMS ? "stop" : "unsubscribe", source,
                                note, now);
    else /* also clears the bit of every customer with the address */
      r = store_suppression_remove(s, map[i].kind, norm, true, source, NULL, now);
    if (r < 0)
      return r;
    if (unsub)
      by_bit &= ~map[i].bit;
  }
  _cleanup_(customer_clear) struct customer now_cu = {0};
  if ((r = store_customer_get(s, cu->id, &now_cu)) < 0)
    return r;
  unsigned optout = unsub ? now_cu.optout | by_bit : now_cu.optout & ~bits;
  if (optout != now_cu.optout && (r = store_customer_set_optout(s, cu->id, optout, now)) < 0)
    return r;
  return 0;
}

/* Checks the answer's values against the contract and the policy. */
static int check_values(const struct lifecycle_answer *a, const struct norm *n,
                        const struct lifecycle_policy *pol, const struct contract *c, int64_t now,
                        char *err, size_t errlen) {
  char t1[21], t2[21];
  switch (a->kind) {
  case LIFECYCLE_RENEWED:
    if (n->new_expires_at <= 0) {
      snprintf(err, errlen, "contract %s: renewed needs the new expiry", c->id);
      return -EINVAL;
    }
    if (n->new_expires_at <= c->expires_at) {
      snprintf(err, errlen, "contract %s: the new expiry %s is not later than the current one %s",
               c->id, format_rfc3339(n->new_expires_at, t1), format_rfc3339(c->expires_at, t2));
      return -EINVAL;
    }
    return 0;
  case LIFECYCLE_LOST:
    if (!n->reason) {
      snprintf(err, errlen,
               "contract %s: lost needs a reason (price, switched-provider, "
               "no-longer-needed, budget, missing-features, other)",
               c->id);
      return -EINVAL;
    }
    __attribute__((fallthrough));
  case LIFECYCLE_DECLINED:
    if (n->reason && !lifecycle_reason_valid(n->reason)) {
      snprintf(err, errlen,
               "contract %s: unknown reason '%.48s' (price, switched-provider, "
               "no-longer-needed, budget, missing-features, other)",
               c->id, n->reason);
      return -EINVAL;
    }
    return 0;
  case LIFECYCLE_SNOOZED:
    if (n->until <= now) {
      snprintf(err, errlen, "contract %s: snoozed needs a date in the future", c->id);
      return -EINVAL;
    }
    if (pol->max_snooze > 0 && n->until - now > pol->max_snooze) {
      snprintf(err, errlen, "contract %s: a snooze may last at most %" PRId64 " days (until %s)",
               c->id, pol->max_snooze / 86400, format_rfc3339(now + pol->max_snooze, t1));
      return -EINVAL;
    }
    if (pol->lapse_grace >= 0 && n->until > c->expires_at + pol->lapse_grace) {
      snprintf(err, errlen,
               "contract %s: a snooze may not end after the expiry plus the lapse grace (%s)",
               c->id, format_rfc3339(c->expires_at + pol->lapse_grace, t1));
      return -EINVAL;
    }
    return 0;
  case LIFECYCLE_CALLBACK:
    if (n->until != 0 && n->until < now) {
      snprintf(err, errlen, "contract %s: the preferred call time %s is in the past", c->id,
               format_rfc3339(n->until, t1));
      return -EINVAL;
    }
    return 0;
  case LIFECYCLE_UNSUBSCRIBED:
  case LIFECYCLE_RESUBSCRIBED:
    if (!optout_bits(n->channel)) {
      snprintf(err, errlen, "contract %s: %s needs the channel: email, sms, webhook or all", c->id,
               kind_names[a->kind]);
      return -EINVAL;
    }
    if (isempty(c->customer_id)) {
      snprintf(err, errlen, "contract %s has no customer to %s", c->id,
               a->kind == LIFECYCLE_UNSUBSCRIBED ? "unsubscribe" : "resubscribe");
      return -EINVAL;
    }
    return 0;
  case LIFECYCLE_MESSAGE:
    if (!n->detail) {
      snprintf(err, errlen, "contract %s: a message needs its text", c->id);
      return -EINVAL;
    }
    return 0;
  default:
    return 0;
  }
}

/* Records one owner alert row per channel (pending, or skipped with the reason). */
static int record_owner_alerts(struct store *s, const struct contract *c, const char *tier,
                               int64_t response_id, const struct lifecycle_policy *pol, int64_t now,
                               struct lifecycle_result *res) {
  _cleanup_(customer_clear) struct customer cu = {0};
  _cleanup_(owner_clear) struct owner ow = {0};
  bool have_owner = false;
  int r;

  if (response_id > INT32_MAX)
    return -EOVERFLOW;
  const char *owner_id = NULL;
  if (!isempty(c->customer_id)) {
    r = store_customer_get(s, c->customer_id, &cu);
    if (r < 0 && r != -ENOENT)
      return r;
    if (r >= 0 && !isempty(cu.owner_id))
      owner_id = cu.owner_id;
  }
  if (!owner_id)
    owner_id = nonempty(pol->fallback_owner);
  if (owner_id) {
    r = store_owner_get(s, owner_id, &ow);
    if (r == -ENOENT && !isempty(pol->fallback_owner) && !streq(owner_id, pol->fallback_owner))
      r = store_owner_get(s, pol->fallback_owner, &ow);
    if (r < 0 && r != -ENOENT)
      return r;
    have_owner = r >= 0;
  }

  static const struct lifecycle_channel none = {.name = "none"};
  size_t n = pol->n_owner_channels ? pol->n_owner_channels : 1;
  for (size_t k = 0; k < n; k++) {
    const struct lifecycle_channel *ch = pol->n_owner_channels ? &pol->owner_channels[k] : &none;
    const char *to = NULL, *why = NULL;
    if (!pol->n_owner_channels)
      why = "no owner channel in the policy";
    else if (isempty(ch->name))
      return -EINVAL;
    else if (!have_owner)
      why = "no sales owner";
    else {
      switch (ch->addr) {
      case LIFECYCLE_ADDR_EMAIL:
        to = ow.email;
        break;
      case LIFECYCLE_ADDR_PHONE:
        to = ow.phone;
        break;
      case LIFECYCLE_ADDR_URL:
        to = !isempty(ow.webhook) ? ow.webhook : ch->default_url;
        break;
      default:
        return -EINVAL;
      }
      if (isempty(to)) {
        to = NULL;
        why = "sales owner has no address for this channel";
      }
    }
    struct reminder rm = {
        .contract_rowid = c->rowid,
        .contract_id = c->id,
        .term = c->term,
        .tier = (char *)tier,
        .step = (int32_t)response_id,
        .channel = (char *)ch->name,
        .audience = (char *)"owner",
        .recipient = (char *)to,
        .due_at = now,
        .status = why ? REMINDER_SKIPPED : REMINDER_PENDING,
        .last_error = (char *)why,
    };
    r = store_reminder_insert(s, &rm, now, NULL);
    if (r == -EEXIST)
      continue; /* the same channel listed twice */
    if (r < 0)
      return r;
    if (why)
      res->owner_alerts_skipped++;
    else
      res->owner_alerts++;
  }
  res->alert_owner = true;
  return 0;
}

static int apply_locked(struct store *s, const struct lifecycle_answer *a,
                        const struct lifecycle_policy *pol, int64_t now,
                        struct lifecycle_result *res, char *err, size_t errlen) {
  _cleanup_(contract_clear) struct contract c = {0};
  _cleanup_(lookup_done) struct lookup lk = {.key = nonempty(a->idem_key)};
  _cleanup_free_ char *detail = NULL, *ev = NULL; /* event texts */
  struct norm n;
  char key[40], allowed[160], t1[21];
  int r;

  r = store_contract_get(s, a->contract_id, &c);
  if (r == -ENOENT) {
    snprintf(err, errlen, "no contract '%.128s'", a->contract_id);
    return r;
  }
  if (r < 0)
    goto store_fail;
  normalize(a, &n);

  /* 1. a repeat? */
  r = store_response_foreach_contract(s, c.id, -1, lookup_cb, &lk);
  if (r < 0)
    goto store_fail;
  const struct response *orig = NULL;
  if (lk.key) {
    if (lk.keyed.id != 0) {
      if (!streq_ptr(lk.keyed.kind, kind_names[a->kind])) {
        snprintf(err, errlen,
                 "contract %s: idempotency key '%.64s' was already used for a %s answer "
                 "(response %" PRId64 ")",
                 c.id, lk.key, lk.keyed.kind, lk.keyed.id);
        return -EEXIST;
      }
      orig = &lk.keyed;
    }
  } else if (lk.latest.id != 0 && same_answer(&lk.latest, a->kind, &n, &c))
    orig = &lk.latest;
  if (orig) {
    *res = (struct lifecycle_result){
        .previous_state = c.state,
        .new_state = c.state,
        .term = c.term,
        .expires_at = c.expires_at,
        .state_until = c.state_until,
        .response_id = orig->id,
        .already_recorded = true,
    };
    return response_copy(orig, &res->response);
  }

  /* 2. the table */
  enum contract_state next = c.state;
  int v = lifecycle_can(c.state, a->kind, &next);
  if (v < 0)
    return v;
  allowed_list(c.state, allowed, sizeof allowed);
  if (v == LIFECYCLE_REFUSED) {
    snprintf(err, errlen, "contract %s is %s: %s is not allowed (allowed: %s)", c.id,
             contract_state_to_string(c.state), kind_names[a->kind], allowed);
    return -EPERM;
  }
  if (v == LIFECYCLE_ALREADY) {
    snprintf(err, errlen, "contract %s is already %s%s: %s is not recorded again (allowed: %s)",
             c.id, c.state == CONTRACT_CALLBACK ? "in " : "", contract_state_to_string(c.state),
             kind_names[a->kind], allowed);
    return -EALREADY;
  }
  if (a->kind == LIFECYCLE_LOST &&
      (a->source == LIFECYCLE_SOURCE_LINK || a->source == LIFECYCLE_SOURCE_SMS)) {
    snprintf(err, errlen,
             "contract %s: lost is recorded by the owner or staff, not from a customer's %s", c.id,
             a->source == LIFECYCLE_SOURCE_LINK ? "link" : "SMS");
    return -EPERM;
  }
  if ((r = check_values(a, &n, pol, &c, now, err, errlen)) < 0)
    return r;

  /* 3. the response */
  if (!lk.key)
    derive_key(c.id, c.term, a->kind, &n, lk.latest.id, key);
  struct response p = {
      .contract_id = c.id,
      .term = c.term,
      .kind = (char *)kind_names[a->kind],
      .source = (char *)source_names[a->source],
      .channel = (char *)n.channel,
      .reason = (char *)n.reason,
      .detail = (char *)n.detail,
      .idem_key = (char *)(lk.key ? lk.key : key),
      .until_at = n.until,
      .new_expires_at = n.new_expires_at,
      .created_at = now,
  };
  r = store_response_insert(s, &p, now, &p.id);
  if (r == -EEXIST) {
    snprintf(err, errlen,
             "contract %s: idempotency key '%.64s' was already used for another "
             "contract",
             c.id, p.idem_key);
    return r;
  }
  if (r < 0)
    goto store_fail;
  detail = strprintf("response=%" PRId64 " source=%s%s%s%s%s", p.id, p.source,
                     n.channel ? " channel=" : "", n.channel ? n.channel : "",
                     n.reason ? " reason=" : "", n.reason ? n.reason : "");
  if (!detail)
    return -ENOMEM;
  ev = strprintf("answer.%s", kind_names[a->kind]);
  if (!ev)
    return -ENOMEM;
  if ((r = store_event_append(s, c.id, ev, detail, now)) < 0)
    goto store_fail;

  /* 4. cancel, change state / opt-out */
  enum contract_state prev = c.state;
  int64_t prev_expires_at = c.expires_at;
  const char *state_event = NULL;
  int cancelled = 0;
  switch (a->kind) {
  case LIFECYCLE_RENEWED:
    if (c.term == INT32_MAX)
      return -EOVERFLOW;
    cancelled = store_reminder_cancel_contract(s, c.id, -1, NULL, now);
    c.term++;
    c.expires_at = n.new_expires_at;
    c.state = CONTRACT_ACTIVE;
    c.state_until = 0;
    c.ladder_id = 0;
    state_event = "contract.renewed";
    res->new_term = true;
    break;
  case LIFECYCLE_DECLINED:
  case LIFECYCLE_LOST:
    cancelled = store_reminder_cancel_contract(s, c.id, -1, NULL, now);
    c.state = next;
    c.state_until = 0;
    state_event = a->kind == LIFECYCLE_LOST ? "contract.closed" : "contract.declined";
    break;
  case LIFECYCLE_SNOOZED:
  case LIFECYCLE_CALLBACK:
    cancelled = store_reminder_cancel_contract(s, c.id, c.term, "customer", now);
    c.state = next;
    if (a->kind == LIFECYCLE_SNOOZED) {
      c.state_until = n.until;
      state_event = "contract.snoozed";
    } else {
      int64_t pause = pol->callback_pause > 0 ? pol->callback_pause : 0;
      c.state_until = MAX(now + pause, n.until);
      state_event = "contract.callback";
    }
    break;
  case LIFECYCLE_UNSUBSCRIBED:
  case LIFECYCLE_RESUBSCRIBED: {
    _cleanup_(customer_clear) struct customer cu = {0};
    r = store_customer_get(s, c.customer_id, &cu);
    if (r == -ENOENT) {
      snprintf(err, errlen, "contract %s: customer '%.128s' is not in the store", c.id,
               c.customer_id);
      return -EINVAL;
    }
    if (r < 0 || (r = apply_optout(s, a, &cu, optout_bits(n.channel), now)) < 0)
      goto store_fail;
    break;
  }
  default:
    break;
  }
  if (cancelled < 0) {
    r = cancelled;
    goto store_fail;
  }
  res->cancelled = (unsigned)cancelled;
  if (state_event) {
    _cleanup_free_ char *sd = NULL;
    char t2[21];
    if (res->new_term) /* previous= is read back by lifecycle_term_start() */
      sd = strprintf("from=%s response=%" PRId64 " term=%" PRId32 " expires=%s previous=%s",
                     contract_state_to_string(prev), p.id, c.term, format_rfc3339(c.expires_at, t1),
                     format_rfc3339(prev_expires_at, t2));
    else if (c.state_until)
      sd = strprintf("from=%s response=%" PRId64 " until=%s", contract_state_to_string(prev), p.id,
                     format_rfc3339(c.state_until, t1));
    else
      sd = strprintf("from=%s response=%" PRId64, contract_state_to_string(prev), p.id);
    if (!sd)
      return -ENOMEM;
    if ((r = store_contract_set_state(s, &c, state_event, sd, now)) < 0)
      goto store_fail;
  }

  /* 5. the owner must hear about it now */
  if (lifecycle_alerts_owner(a->kind, a->source) &&
      (r = record_owner_alerts(s, &c, alert_tier(a->kind), p.id, pol, now, res)) < 0) {
    if (r == -EINVAL)
      snprintf(err, errlen, "contract %s: invalid owner channel list", c.id);
    else if (r == -EOVERFLOW)
      snprintf(err, errlen, "contract %s: response id too large for an alert step", c.id);
    else
      goto store_fail;
    return r;
  }

  res->previous_state = prev;
  res->new_state = c.state;
  res->term = c.term;
  res->expires_at = c.expires_at;
  res->state_until = c.state_until;
  res->response_id = p.id;
  return response_copy(&p, &res->response);

store_fail:
  if (r == -ENOMEM)
    snprintf(err, errlen, "out of memory");
  else
    snprintf(err, errlen, "contract %.128s: store error: %s", a->contract_id, store_last_error(s));
  return r;
}

int lifecycle_apply(struct store *s, const struct lifecycle_answer *a, int64_t now,
                    struct lifecycle_result *ret, char *err, size_t errlen) {
  static const struct lifecycle_policy defaults = {
      .callback_pause = LIFECYCLE_DEFAULT_CALLBACK_PAUSE,
      .max_snooze = LIFECYCLE_DEFAULT_MAX_SNOOZE,
      .lapse_grace = LIFECYCLE_DEFAULT_LAPSE_GRACE,
  };
  char dummy[1];
  if (!err || errlen == 0) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = 0;
  if (!s || !a || !ret || isempty(a->contract_id) || (unsigned)a->kind >= _LIFECYCLE_KIND_MAX ||
      (unsigned)a->source >= _LIFECYCLE_SOURCE_MAX ||
      (a->policy && a->policy->n_owner_channels && !a->policy->owner_channels)) {
    snprintf(err, errlen, "invalid arguments to lifecycle_apply");
    return -EINVAL;
  }
  const struct lifecycle_policy *pol = a->policy ? a->policy : &defaults;

  int r = store_begin(s);
  if (r < 0) {
    snprintf(err, errlen, "cannot lock the store: %s",
             r == -EBUSY ? "it is busy (or a transaction is open)" : store_last_error(s));
    return r;
  }
  struct lifecycle_result res = {0};
  r = apply_locked(s, a, pol, now, &res, err, errlen);
  if (r >= 0) {
    r = store_commit(s);
    if (r < 0)
      snprintf(err, errlen, "cannot commit: %s", store_last_error(s));
  }
  if (r < 0) {
    (void)store_rollback(s);
    lifecycle_result_clear(&res);
    return r;
  }
  *ret = res;
  return 0;
}

/* ---- the customer's one-click renewal: how long is a term ------------------------------ */

struct term_walk {
  int64_t previous; /* previous= of the latest event that started a term; 0 = none */
};

/* "... previous=2031-03-31T22:00:00Z ..." -> the instant, or 0. */
static int64_t detail_previous(const char *detail) {
  static const char key[] = "previous=";
  for (const char *p = detail; p && (p = strstr(p, key)); p += sizeof key - 1) {
    if (p != detail && p[-1] != ' ')
      continue;
    char v[32];
    size_t n = strcspn(p + sizeof key - 1, " ");
    if (n == 0 || n >= sizeof v)
      return 0;
    memcpy(v, p + sizeof key - 1, n);
    v[n] = 0;
    int64_t t;
    return cal_parse_rfc3339(v, &t) >= 0 ? t : 0;
  }
  return 0;
}

static int term_walk_cb(const struct event *e, void *ud) {
  struct term_walk *w = ud;
  if (streq_ptr(e->kind, "contract.renewed") || streq_ptr(e->kind, "contract.new_term"))
    w->previous = detail_previous(e->detail);
  return 0;
}

int lifecycle_term_start(struct store *s, const struct contract *c, int64_t *ret) {
  if (!s || !c || isempty(c->id) || !ret)
    return -EINVAL;
  if (c->term <= 1) {
    *ret = MAX(c->starts_at, 0);
    return 0;
  }
  struct term_walk w = {0};
  int r = store_event_foreach_contract(s, c->id, term_walk_cb, &w);
  if (r < 0)
    return r;
  *ret = w.previous > 0 ? MAX(w.previous, c->starts_at) : 0;
  return 0;
}

static int days_in_month(int y, int m) {
  static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : d[m - 1];
}

int lifecycle_renewal_expiry(const struct cal_zone *z, int64_t term_start, int64_t expires_at,
                             int64_t *ret, int *ret_months) {
  const int64_t day = 86400, year = INT64_C(31556952); /* 365.2425 days */
  if (!ret || expires_at <= 0)
    return -EINVAL;
  int64_t len = expires_at - term_start;
  int months = 12;
  if (term_start > 0 && len >= 28 * day && len <= 1827 * day)
    months = (int)MAX((len * 12 + year / 2) / year, 1);

  struct cal_local e, last;
  cal_to_local(z, expires_at, &e);
  cal_to_local(z, expires_at - 1, &last);
  bool day_start = cal_end_of_date(z, last.year, last.month, last.day) == expires_at;
  int m0 = e.year * 12 + (e.month - 1) + months;
  int y = m0 / 12, m = m0 % 12 + 1;
  if (y > 9999)
    return -ERANGE;
  int d = MIN(e.day, days_in_month(y, m));
  int64_t t = day_start ? cal_from_local(z, y, m, d, 0, 0, 0)
                        : cal_from_local(z, y, m, d, e.hour, e.minute, e.second);
  if (t <= expires_at)
    return -ERANGE;
  *ret = t;
  if (ret_months)
    *ret_months = months;
  return 0;
}

/* config_planner: struct planner_env callbacks over a struct config (see
 * config_planner.h). */
#include "config/config_planner.h"

#include "core/util.h"

static const struct policy *env_policy(void *ud, const char *segment) {
  return config_policy_for_segment(ud, segment);
}

static const struct cal_window *env_window(void *ud, const char *name) {
  const struct config_window *w = config_window(ud, name);
  if (!w)
    w = config_window(ud, NULL);
  return w ? &w->window : NULL;
}

static int env_channel(void *ud, const char *name, struct planner_channel *ret) {
  const struct config_channel *ch = config_channel(ud, name);
  if (!ch || !ch->type)
    return -ENOENT;
  const char *type = config_channel_addr_type(ch);
  if (!type)
    return -EINVAL;
  if (streq(type, "smtp"))
    *ret = (struct planner_channel){.kind = PLANNER_ADDR_EMAIL, .optout = OPTOUT_EMAIL};
  else if (streq(type, "sms"))
    *ret = (struct planner_channel){.kind = PLANNER_ADDR_PHONE, .optout = OPTOUT_SMS};
  else if (streq(type, "webhook"))
    *ret = (struct planner_channel){
        .kind = PLANNER_ADDR_URL, .optout = OPTOUT_WEBHOOK, .url = config_channel_get(ch, "URL")};
  else
    return -EINVAL;
  return 0;
}

void config_planner_env(const struct config *cfg, struct store *store, struct cal *cal,
                        struct planner_env *ret) {
  *ret = (struct planner_env){
      .store = store,
      .cal = cal,
      .policy_for_segment = env_policy,
      .window = env_window,
      .channel = env_channel,
      .default_tz = cfg ? cfg->daemon.time_zone : NULL,
      .catchup_grace = PLANNER_CATCHUP_GRACE,
      .ud = (void *)cfg,
  };
}

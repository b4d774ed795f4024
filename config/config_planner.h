/* config_planner: the planner's environment (core/planner.h) taken from a
 * loaded struct config, so the daemon and renewctl plan contracts with the
 * very same rules.
 *
 * Owns nothing: the env borrows the config, the store and the cal, which must
 * outlive it. Pure (no I/O of its own); not thread-safe beyond what the
 * borrowed objects allow. */
#pragma once

#include "config/config.h"
#include "core/planner.h"

/* Fills *ret from cfg: the policy of a segment (config_policy_for_segment),
 * the send windows ([SendWindow], an unknown name gives the default), the
 * channels (Type= smtp/sink: email, sms: phone, webhook: URL with its URL=),
 * the default zone ([Daemon] TimeZone=) and PLANNER_CATCHUP_GRACE. ladders,
 * report and report_ud are left NULL for the caller to set. */
void config_planner_env(const struct config *cfg, struct store *store, struct cal *cal,
                        struct planner_env *ret);

#ifndef MPITRAIN_SETTINGS_H
#define MPITRAIN_SETTINGS_H
/* A run's settings as the protobuf Setting pairs that the plan and the
 * checkpoint manifest carry: every entry of the settings table (config.c)
 * by name, its value as it would be typed (`layers` = "4"). The table is
 * the one definition of the configuration, so neither message copies it
 * field by field. */
#include <stddef.h>
#include "base/err.h"
#include "mpitrain.pb-c.h"
#include "worker/config/config.h"

typedef struct {
    Mpitrain__Setting **ptrs; /* n pointers into sets, as a message's repeated field */
    size_t n;
    Mpitrain__Setting *sets;
    char *text;               /* the values */
} SettingsPB;

/* c's settings, one pair per table entry (all malloc'd: settings_pb_free). */
int settings_encode(const TrainConfig *c, SettingsPB *out, Err *e);
void settings_pb_free(SettingsPB *s);
/* The pairs over c, each through the same parser and range checks as a
 * flag; e names the first bad one ("<what>: setting <key>: ..."). */
int settings_apply(TrainConfig *c, Mpitrain__Setting *const *sets, size_t n, const char *what,
                   Err *e);
/* One table entry's value from src into dst, bit for bit. */
void settings_copy(TrainConfig *dst, const TrainConfig *src, const OptSpec *s);

#endif

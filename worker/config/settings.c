#include "worker/config/settings.h"

#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "base/options.h"

void settings_pb_free(SettingsPB *s)
{
    free(s->ptrs);
    free(s->sets);
    free(s->text);
    memset(s, 0, sizeof *s);
}

int settings_encode(const TrainConfig *c, SettingsPB *out, Err *e)
{
    size_t n;
    const OptSpec *table = train_config_table(&n);
    enum { VALUE_MAX = PATH_BUF };
    memset(out, 0, sizeof *out);
    out->sets = calloc(n, sizeof *out->sets);
    out->ptrs = calloc(n, sizeof *out->ptrs);
    out->text = malloc(n * VALUE_MAX);
    if (!out->sets || !out->ptrs || !out->text) {
        settings_pb_free(out);
        return err_set(e, "out of memory encoding the settings");
    }
    for (size_t i = 0; i < n; i++) {
        if (!train_config_is_setting(&table[i])) continue;
        Mpitrain__Setting *s = &out->sets[out->n];
        mpitrain__setting__init(s);
        s->key = (char *)table[i].name;
        s->value = out->text + i * VALUE_MAX;
        opts_format(&table[i], c, s->value, VALUE_MAX);
        out->ptrs[out->n++] = s;
    }
    return 0;
}

int settings_apply(TrainConfig *c, Mpitrain__Setting *const *sets, size_t n, const char *what,
                   Err *e)
{
    const OptSpec *table = train_config_table(NULL);
    for (size_t i = 0; i < n; i++) {
        const Mpitrain__Setting *s = sets[i];
        if (!s->key || !s->value || !strcmp(s->key, "config"))
            return err_set(e, "%s: setting %zu has no key or value", what, i);
        if (opts_set_value(table, c, s->key, s->value, e))
            return err_wrap(e, "%s: setting %s", what, s->key);
    }
    return 0;
}

void settings_copy(TrainConfig *dst, const TrainConfig *src, const OptSpec *s)
{
    size_t n = s->type == OT_STR                                                    ? s->size
               : s->type == OT_LONG || s->type == OT_U64 || s->type == OT_DURATION ? 8
                                                                                    : 4;
    memcpy((char *)dst + s->offset, (const char *)src + s->offset, n);
}

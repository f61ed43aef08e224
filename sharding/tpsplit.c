#include "sharding/tpsplit.h"

int tp_local_rows(const TpSlice *s)
{
    return s->kind == SPLIT_COLUMN ? s->rows / s->size : s->rows;
}

int tp_local_cols(const TpSlice *s)
{
    return s->kind == SPLIT_ROW ? s->cols / s->size : s->cols;
}

size_t tp_global_index(const TpSlice *s, size_t i)
{
    size_t lc = (size_t)tp_local_cols(s);
    size_t r = i / lc, c = i % lc;
    if (s->kind == SPLIT_COLUMN) {
        size_t per_group = (size_t)s->rows / s->groups;       /* rows of one group */
        size_t local_group = per_group / s->size;              /* our rows of it */
        size_t g = r / local_group, w = r % local_group;
        r = g * per_group + (size_t)s->rank * local_group + w;
    } else if (s->kind == SPLIT_ROW) {
        c += (size_t)s->rank * lc;
    }
    return r * (size_t)s->cols + c;
}

int tp_divides(const TpSlice *s)
{
    long parts = s->kind == SPLIT_COLUMN ? (long)s->groups * s->size : s->size;
    if (parts < 1) return s->kind == SPLIT_ROW ? s->cols : s->rows;
    if (s->kind == SPLIT_COLUMN) return (s->rows % parts) ? s->rows : 0;
    if (s->kind == SPLIT_ROW) return (s->cols % parts) ? s->cols : 0;
    return 0;
}

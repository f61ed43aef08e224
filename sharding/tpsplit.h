#ifndef MPITRAIN_TPSPLIT_H
#define MPITRAIN_TPSPLIT_H
/* How one 2-D weight (rows x cols, row-major, torch Linear layout: rows =
 * outputs) is split over tensor-parallel ranks, Megatron style:
 *   column-parallel: the OUTPUT rows are split. A packed tensor of G groups
 *     (qkv: G = 3, [q | k | v]) splits each group the same way, so a rank's
 *     slice is [q_r | k_r | v_r] and keeps the packed layout.
 *   row-parallel: the INPUT columns are split.
 * 1-D tensors (biases) use rows only. Pure arithmetic. */
#include <stddef.h>

typedef enum { SPLIT_NONE = 0, SPLIT_COLUMN = 1, SPLIT_ROW = 2 } SplitKind;

typedef struct {
    SplitKind kind;
    int groups;        /* column-parallel packing (1 or 3) */
    int rows, cols;    /* full shape (cols = 1 for 1-D) */
    int rank, size;    /* tensor-parallel coordinates */
} TpSlice;

/* Local shape of the slice. */
int tp_local_rows(const TpSlice *s);
int tp_local_cols(const TpSlice *s);
/* Row-major index in the full tensor of local element `i`. */
size_t tp_global_index(const TpSlice *s, size_t i);
/* 0 if the split is exact; else the dimension that does not divide. */
int tp_divides(const TpSlice *s);

#endif

#ifndef MPITRAIN_TASK_H
#define MPITRAIN_TASK_H
/* A multiple-choice task (docs/task.md): JSONL items {"context", "choices":
 * [...], "answer"}, each choice a request whose tokens are the context's and
 * the choice's, split as lm-evaluation-harness splits them: blanks that end
 * the context go to the choice, whole = encode(context + choice), and the
 * choice's tokens are what whole holds past encode(context). */
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "worker/data/bpe.h"

typedef struct Task {
    int *ids;          /* every request's tokens back to back */
    size_t *start;     /* request r: ids[start[r] .. start[r + 1]) */
    uint32_t *cont;    /* ... of which the last cont[r] are the choice's */
    uint32_t *chars;   /* the choice's length in characters (accuracy_norm) */
    size_t *first;     /* item i: requests first[i] .. first[i + 1] */
    uint32_t *answer;  /* item i: the right choice, 0-based */
    size_t n_items, n_req;
} Task;

/* Reads path with tokenizer b (NULL: byte level, a token a byte). Errors name
 * the file, the line and the field. */
int task_read(const char *path, const Bpe *b, Task *t, Err *e);
void task_free(Task *t);
/* Every token below vocab, every choice within a window of T tokens; else
 * an error naming the file (path) and the item. */
int task_check(const Task *t, const char *path, int vocab, int T, Err *e);

#endif

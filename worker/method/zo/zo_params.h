#ifndef MPITRAIN_ZO_PARAMS_H
#define MPITRAIN_ZO_PARAMS_H
/* --zo-params SPEC: which tensors shared-randomness ZO perturbs and updates.
 *
 * SPEC is a comma-separated list of selectors; a tensor is selected when
 * any selector matches it:
 *   all          every tensor (the default)
 *   norms        every layernorm weight and bias (h.<L>.ln1/ln2.w/.b, lnf.w/.b)
 *   biases       every bias vector (every tensor named *.b, layernorm biases too)
 *   embeddings   the token and position embeddings (wte, wpe)
 *   last:K       every tensor of the last K layer blocks and of the final
 *                block: GPT h.<L-K>..h.<L-1> and lnf (the head is tied to
 *                wte, so not included); MLP fc.<L-K>..fc.<L-1> and head;
 *                1 <= K <= --layers
 *   GLOB         an fnmatch pattern over tensor names, '*' crossing dots:
 *                "h.*.attn.*", "h.3.mlp.fc.w", "lnf.?"
 * Names are the model's tensor names (models/gpt.c, models/mlp.c). A tied
 * second copy of wte (on a later pipeline stage) is selected exactly when
 * wte is. Every selector must match at least one tensor of the WHOLE model
 * (a typo is an error, not a silent no-op); a pipeline stage that holds
 * none of the selected tensors simply gets an all-zero mask.
 * Under LoRA (--lora-rank R) the tensors are the adapters only (the base
 * is frozen): `all` is every adapter, `last:K` and globs ("h.*.lora_B")
 * choose among them, and a selector of none of them (norms, embeddings,
 * biases, a base weight's name) is refused saying so. */
#include <stdint.h>
#include "base/err.h"
#include "models/model.h"

#define ZO_PARAMS_DEFAULT "all"
#define ZO_PARAMS_ALL_ID 0ull /* the id of a selection of every tensor */

/* The spec's syntax alone, without a model (parse time): empty selectors,
 * an unknown `word:` preset or a bad K are refused, naming the fix. */
int zo_params_check_syntax(const char *spec, Err *e);

/* Checks spec against the whole model cfg: syntax, K in 1..n_layer, every
 * selector matching some tensor. */
int zo_params_validate(const ModelConfig *cfg, const char *spec, Err *e);

/* active[k] = 1 when tensor k of m->tensors (m may be any shard: a pipeline
 * stage, a tensor-parallel slice) is selected, else 0; m->n_tensors
 * entries. Returns 0, or -1 with e naming the spec and the fix. The flags
 * of a shard equal the whole model's for the same tensors. */
int zo_params_select(const Model *m, const char *spec, uint8_t *active, Err *e);

/* What identifies the selection in the journal: the same on every rank and
 * for every layout (computed from cfg, the WHOLE model). ZO_PARAMS_ALL_ID
 * when every tensor is selected (whatever the spelling: "all",
 * "wte,wpe,h.*,lnf.*"), else a 64-bit hash (never 0) of the selected
 * tensors' names in canonical order. */
int zo_params_id(const ModelConfig *cfg, const char *spec, uint64_t *id, Err *e);

/* Selected tensors and elements of the whole model (for the setup note,
 * "zo: perturbing 9 of 52 tensors, 3.3 k of 3.29 M parameters"). */
int zo_params_count(const ModelConfig *cfg, const char *spec, int *tensors, int *of_tensors,
                    uint64_t *elements, uint64_t *of_elements, Err *e);

/* 0 when a journal written with selection id journal_id may be resumed or
 * replayed by a run whose --zo-params spec has id run_id; else -1 with the
 * message (naming the journal path, both selections and the fix). */
int zo_params_check_journal(const char *path, uint64_t journal_id, uint64_t run_id,
                            const char *spec, Err *e);

#endif

/* coordinator/plan/planner.c's mode predictions as a model should behave (no
 * timing of real runs): ZO barely notices the link, DP's exposed
 * communication grows as bandwidth falls, DiLoCo's per-step share of the
 * outer all-reduce falls with H and overlap hides it; plus the link parser
 * and the oversubscription sentence. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/plan/plan.h"
#include "coordinator/plan/planner.h"
#include "worker/config/config.h"

/* A small GPT on 4 data-parallel ranks, one per core of a 4-core machine. */
static void cfg4(TrainConfig *c)
{
    train_config_defaults(c);
    c->model = (ModelConfig){.kind = MODEL_GPT, .n_layer = 2, .n_head = 4, .n_embd = 64,
                             .seq_len = 64, .vocab = 256};
    c->global_batch = 8;
    c->dp = 4;
    c->tp = 1;
    c->pp = 1;
    c->micro_batches = 1;
    snprintf(c->data, sizeof c->data, "x.tok");
    snprintf(c->out, sizeof c->out, "runs/x");
    Err e;
    cr_assert_eq(plan_resolve(c, 4, 0, &e), 0, "%s", e.msg);
}

static Machine machine(double beta_Bps, double alpha_s)
{
    Machine mc;
    planner_default_machine(&mc, 4);
    mc.cores = 4;
    mc.gemm_gflops = 50;
    mc.beta_Bps = beta_Bps;
    mc.alpha_s = alpha_s;
    return mc;
}

static Prediction predict(const TrainConfig *c, double beta, double alpha)
{
    Machine mc = machine(beta, alpha);
    Prediction p;
    planner_predict(c, &mc, &p);
    return p;
}

Test(planner_modes, zo_time_barely_depends_on_bandwidth)
{
    TrainConfig c;
    cfg4(&c);
    c.optim.kind = OPT_ZO;
    c.zo_samples = 4;
    Prediction fast = predict(&c, 4e9, 100e-6), slow = predict(&c, 1.25e6, 100e-6);
    cr_assert_eq(fast.mode, MODE_ZO);
    cr_assert_eq(fast.k, 4);
    /* 4 machines x 4 codes of one byte: 12 bytes out per rank */
    cr_assert_float_eq(slow.bytes, 12.0, 1e-9);
    /* at 10 Mbit/s the 16 bytes take ~13 us more, nothing else changes */
    cr_assert(slow.step_s - fast.step_s < 20e-6, "zo %g vs %g s", slow.step_s, fast.step_s);
    cr_assert(slow.update_s > 0);
    cr_assert_float_eq(slow.tokens_per_s, 8.0 * 64 / slow.step_s, 1e-6 * slow.tokens_per_s);
}

Test(planner_modes, zo_costs_grow_with_samples)
{
    TrainConfig c;
    cfg4(&c);
    c.optim.kind = OPT_ZO;
    c.zo_samples = 1;
    Prediction k1 = predict(&c, 125e6, 100e-6);
    c.zo_samples = 4;
    Prediction k4 = predict(&c, 125e6, 100e-6);
    cr_assert_float_eq(k4.compute_s, 4 * k1.compute_s, 1e-12);
    cr_assert_float_eq(k4.update_s, 4 * k1.update_s, 1e-12);
    /* the view's perturbation for each of 2K forwards, K loss all-reduces */
    cr_assert_float_eq(k4.fixed_s, 4 * k1.fixed_s, 1e-12);
    cr_assert_float_eq(k4.step_s, k4.compute_s + k4.tp_comm_s + k4.pp_comm_s + k4.dp_exposed_s + k4.update_s + k4.fixed_s,
                       1e-12);
}

Test(planner_modes, dp_exposed_comm_grows_as_bandwidth_falls)
{
    TrainConfig c;
    cfg4(&c);
    double last = -1;
    const double BW[] = {4e9, 125e6, 12.5e6, 1.25e6};
    for (size_t i = 0; i < sizeof BW / sizeof BW[0]; i++) {
        Prediction p = predict(&c, BW[i], 100e-6);
        cr_assert_eq(p.mode, MODE_DP);
        cr_assert(p.comm_s > last, "at %g B/s: %g s after %g s", BW[i], p.comm_s, last);
        last = p.comm_s;
    }
}

Test(planner_modes, diloco_comm_per_step_falls_with_h)
{
    TrainConfig c;
    cfg4(&c);
    Prediction dp = predict(&c, 1.25e6, 100e-6);
    double last_comm = INFINITY, last_bytes = INFINITY;
    const int H[] = {1, 10, 50, 500};
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        c.diloco = H[i];
        Prediction p = predict(&c, 1.25e6, 100e-6);
        cr_assert_eq(p.mode, MODE_DILOCO);
        cr_assert(p.comm_s < last_comm && p.bytes < last_bytes, "H=%d", H[i]);
        last_comm = p.comm_s;
        last_bytes = p.bytes;
    }
    /* H=500 sends a 500th of DP's gradient bytes */
    cr_assert_float_eq(last_bytes, dp.bytes / 500, 1e-6 * dp.bytes);
}

Test(planner_modes, diloco_overlap_hides_the_allreduce_behind_h_inner_steps)
{
    TrainConfig c;
    cfg4(&c);
    c.diloco = 50;
    Prediction plain = predict(&c, 125e6, 100e-6);
    c.diloco_overlap = 1;
    Prediction hidden = predict(&c, 125e6, 100e-6);
    cr_assert(plain.dp_exposed_s > 0);
    /* 1 Gbit/s: the all-reduce takes less than 50 inner steps */
    cr_assert_float_eq(hidden.dp_exposed_s, 0.0, 1e-15);
    /* 10 kbit/s: too slow to hide, only the excess is exposed */
    c.diloco_overlap = 0;
    Prediction slow_plain = predict(&c, 1.25e3, 100e-6);
    c.diloco_overlap = 1;
    Prediction slow_hidden = predict(&c, 1.25e3, 100e-6);
    cr_assert(slow_hidden.dp_exposed_s > 0 && slow_hidden.dp_exposed_s < slow_plain.dp_exposed_s);
}

/* The row of a mode in a comparison, or -1. */
static int row_of(const Prediction *p, int n, PlanMode m, int k)
{
    for (int i = 0; i < n; i++)
        if (p[i].mode == m && (m == MODE_DP || p[i].k == k)) return i;
    return -1;
}

Test(planner_modes, compare_marks_the_configs_own_mode)
{
    TrainConfig c;
    cfg4(&c);
    c.dp = c.tp = c.pp = 0;
    c.micro_batches = 0;
    Machine mc = machine(1.25e6, 100e-6);
    Prediction p[8];
    int own = -1, n = planner_compare_modes(&c, 4, &mc, p, 8, &own);
    cr_assert_eq(n, 6);
    cr_assert_eq(p[own].mode, MODE_DP);
    cr_assert(row_of(p, n, MODE_ZO, 1) >= 0 && row_of(p, n, MODE_ZO, 4) >= 0);
    cr_assert(row_of(p, n, MODE_DILOCO, 500) >= 0);
    c.diloco = 7;
    n = planner_compare_modes(&c, 4, &mc, p, 8, &own);
    cr_assert_eq(n, 7);
    cr_assert_eq(p[own].mode, MODE_DILOCO);
    cr_assert_eq(p[own].k, 7);
}

Test(planner_modes, modes_ranked_by_what_a_step_teaches_not_tokens_per_s)
{
    TrainConfig c;
    cfg4(&c);
    c.dp = c.tp = c.pp = 0;
    c.micro_batches = 0;
    Machine mc = machine(4e9, 5e-6); /* shared memory: DP's all-reduce is cheap */
    Prediction p[8];
    int own = -1, n = planner_compare_modes(&c, 4, &mc, p, 8, &own);
    int zo1 = row_of(p, n, MODE_ZO, 1), dp = row_of(p, n, MODE_DP, 0);
    /* ZO K=1's step is the fastest (two forwards against a backprop step)... */
    cr_assert(p[zo1].tokens_per_s > p[dp].tokens_per_s, "zo %g dp %g tok/s", p[zo1].tokens_per_s,
              p[dp].tokens_per_s);
    /* ...but a ZO step teaches a 60th of a backprop step: DP ranks first */
    cr_assert_eq(dp, 0);
    cr_assert_float_eq(p[zo1].worth, 1.0 / 60, 1e-12);
    for (int i = 0; i < n; i++) {
        cr_assert_float_eq(p[i].dp_equiv_tokens_per_s, p[i].tokens_per_s * p[i].worth, 1e-9 * p[i].tokens_per_s);
        if (i) cr_assert(p[i - 1].dp_equiv_tokens_per_s >= p[i].dp_equiv_tokens_per_s, "row %d", i);
    }
    cr_assert_float_eq(planner_step_worth(MODE_ZO, 4), 4.0 / 60, 1e-12);
    cr_assert_float_eq(planner_step_worth(MODE_ZO, 600), 1.0, 1e-12);
    cr_assert_float_eq(planner_step_worth(MODE_DILOCO, 50), 1.0 / 3, 1e-12);
    cr_assert_float_eq(planner_step_worth(MODE_DILOCO, 500), 1.0 / 6, 1e-12);
    cr_assert_float_eq(planner_step_worth(MODE_DP, 0), 1.0, 1e-12);
}

/* The reference GPT (4 x 256, T=256, batch 8) on 4 ranks sharing 2 cores. */
static void ref4(TrainConfig *c, Machine *mc)
{
    train_config_defaults(c);
    c->micro_batches = 0;
    snprintf(c->data, sizeof c->data, "x.tok");
    snprintf(c->out, sizeof c->out, "runs/x");
    planner_default_machine(mc, 4);
    mc->cores = 2;
    mc->gemm_gflops = 50;
}

Test(planner_modes, zo_keeps_one_byte_per_sample_rather_than_split_a_machine)
{
    TrainConfig c;
    Machine mc;
    ref4(&c, &mc);
    c.optim.kind = OPT_ZO;
    c.zo_samples = 1;
    Prediction p[64];
    int n = planner_search(&c, 4, &mc, 0, p, 64);
    cr_assert(n > 1);
    /* tp or pp would send activations across ranks: dp 2 x pp 2 moved
     * 1,048,577 bytes a step here for a predicted 0.1% */
    cr_assert_eq(p[0].dp, 4, "chose %d x %d x %d", p[0].dp, p[0].tp, p[0].pp);
    cr_assert_eq(p[0].tp * p[0].pp, 1);
    cr_assert_float_eq(p[0].bytes, 3.0, 1e-9); /* one code to each of 3 peers */
    /* a backprop run still takes the fastest layout, whatever it sends */
    c.optim.kind = OPT_ADAMW;
    n = planner_search(&c, 4, &mc, 0, p, 64);
    for (int i = 1; i < n; i++) cr_assert(p[i - 1].step_s <= p[i].step_s);
}

Test(planner_modes, fixed_costs_are_part_of_the_step)
{
    TrainConfig c;
    cfg4(&c);
    Prediction p = predict(&c, 4e9, 5e-6);
    /* zeroing the gradients, their norm, the loss and norm all-reduces */
    cr_assert(p.fixed_s > 0 && p.opt_s > 0);
    cr_assert_float_eq(p.step_s, p.compute_s + p.tp_comm_s + p.pp_comm_s + p.dp_exposed_s + p.opt_s + p.fixed_s,
                       1e-12);
    /* ZeRO shards the optimizer and the norm, not the zeroing */
    c.zero = 1;
    Prediction z = predict(&c, 4e9, 5e-6);
    cr_assert_float_eq(z.opt_s, p.opt_s / 4, 1e-15);
    cr_assert(z.fixed_s < p.fixed_s);
}

static RunTiming timing(double cpu_share, double fair_share)
{
    return (RunTiming){"backprop", 2, 1, 1, 215.6, 516.4, cpu_share, fair_share, 13.3, 2};
}

Test(planner_verdict, a_busy_machine_is_named_not_counted_as_model_error)
{
    char buf[512];
    RunTiming r = timing(0.45, 1.0);
    cr_assert_eq(planner_verdict(&r, buf, sizeof buf), 1);
    cr_assert(strstr(buf, "the machine was busy: the ranks ran 45% of the time they were ready to"), "%s", buf);
    cr_assert(strstr(buf, "load 13.3 on 2 cores"), "%s", buf);
    /* 516.4 ms at 45% of the CPU: about 232.4 on an idle machine */
    cr_assert(strstr(buf, "about 232.4 on an idle machine"), "%s", buf);
    cr_assert(strstr(buf, "prediction for an idle machine: 215.6 ms/step for backprop at dp 2 x tp 1 x pp 1 (-7%)"),
              "%s", buf);
    cr_assert(!strstr(buf, "-58%"), "%s", buf);
}

Test(planner_verdict, an_idle_machine_gets_the_plain_comparison)
{
    char buf[512];
    RunTiming r = timing(0.97, 1.0);
    cr_assert_eq(planner_verdict(&r, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "planner: predicted 215.6 ms/step for backprop at dp 2 x tp 1 x pp 1, "
                          "measured 516.4 ms/step (-58%)");
    /* unknown share (no schedstat): no claim about the machine */
    r = timing(-1, 1.0);
    cr_assert_eq(planner_verdict(&r, buf, sizeof buf), 0);
}

Test(planner_verdict, the_jobs_own_oversubscription_is_not_other_work)
{
    char buf[512];
    /* 4 ranks x 1 thread on 2 cores leave each half a core: 48% is all of it */
    RunTiming r = timing(0.48, 0.5);
    cr_assert_eq(planner_verdict(&r, buf, sizeof buf), 0, "%s", buf);
    /* 20% of a possible 50%: other processes held the rest */
    r = timing(0.20, 0.5);
    cr_assert_eq(planner_verdict(&r, buf, sizeof buf), 1);
    cr_assert(strstr(buf, "(this job's own ranks leave them 50%)"), "%s", buf);
    cr_assert(strstr(buf, "about 206.6 on an idle machine"), "%s", buf);
}

Test(planner_link, parses_bits_and_bytes)
{
    Err e;
    double b = 0, a = 1e-4;
    cr_assert_eq(planner_parse_link("--link", "10mbit", &b, &a, &e), 0, "%s", e.msg);
    cr_assert_float_eq(b, 1.25e6, 1e-3);
    cr_assert_float_eq(a, 1e-4, 1e-15);
    cr_assert_eq(planner_parse_link("--link", "1Gbit/s,200us", &b, &a, &e), 0, "%s", e.msg);
    cr_assert_float_eq(b, 125e6, 1e-3);
    cr_assert_float_eq(a, 200e-6, 1e-15);
    cr_assert_eq(planner_parse_link("--link", "100MB/s,1ms", &b, &a, &e), 0, "%s", e.msg);
    cr_assert_float_eq(b, 100e6, 1e-3);
    cr_assert_float_eq(a, 1e-3, 1e-15);
    cr_assert_eq(planner_parse_link("--link", "2.5gbps", &b, &a, &e), 0, "%s", e.msg);
    cr_assert_float_eq(b, 2.5e9 / 8, 1e-3);
}

Test(planner_link, refuses_garbage_naming_the_flag)
{
    const char *BAD[] = {"", "fast", "10", "10m", "10mb", "-5mbit", "0gbit", "1gbit,", "1gbit,abc",
                         "1gbit,5 parsecs", "nanmbit", "inf gbit"};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        Err e = {{0}};
        double b = 7, a = 7;
        cr_assert_neq(planner_parse_link("--link", BAD[i], &b, &a, &e), 0, "'%s' accepted", BAD[i]);
        cr_assert(strstr(e.msg, "--link") != NULL, "'%s': message \"%s\"", BAD[i], e.msg);
        cr_assert(b == 7 && a == 7, "'%s' changed the link", BAD[i]);
    }
}

Test(planner_link, formats_bandwidth_in_bits)
{
    char buf[32];
    cr_assert_str_eq(planner_format_bps(1.25e6, buf, sizeof buf), "10.0 Mbit/s");
    cr_assert_str_eq(planner_format_bps(125e6, buf, sizeof buf), "1.00 Gbit/s");
    cr_assert_str_eq(planner_format_bps(100e3, buf, sizeof buf), "800 kbit/s");
}

Test(planner_cores, says_when_ranks_oversubscribe)
{
    char buf[256];
    double f = planner_describe_cores(4, 2, 2, 4, "h0", "h3", buf, sizeof buf);
    cr_assert_float_eq(f, 4.0, 1e-12);
    cr_assert_str_eq(buf, "4 ranks x 2 threads on 2 cores of one machine (hosts h0..h3 share a "
                          "kernel): oversubscribed 4x");
    f = planner_describe_cores(2, 1, 2, 1, "a", "a", buf, sizeof buf);
    cr_assert_float_eq(f, 1.0, 1e-12);
    cr_assert_str_eq(buf, "2 ranks x 1 thread on 2 cores of one machine");
}

/* The GEMM probe times the configuration's own layer: GPT-2's fused q|k|v,
 * projection and 4C MLP (the shapes it always measured), the llama
 * family's q|k|v (one GEMM, keys and values kv_width wide), o, gate, up and
 * down at its MLP width. */
static void assert_gemm(const LayerGemm *g, int M, int N, int K, double w, const char *what)
{
    cr_assert(g->M == M && g->N == N && g->K == K, "%s: (%d, %d, %d), not (%d, %d, %d)", what,
              g->M, g->N, g->K, M, N, K);
    cr_assert_float_eq(g->weight, w, 1e-12, "%s: weight %g, not %g", what, g->weight, w);
}

Test(planner_gemm, measures_the_configurations_own_layer)
{
    LayerGemm g[PLANNER_MAX_GEMMS];
    ModelConfig gpt2 = {.kind = MODEL_GPT, .n_layer = 12, .n_head = 12, .n_embd = 768,
                        .seq_len = 1024, .vocab = 50257};
    cr_assert_eq(planner_layer_gemms(&gpt2, 1024, g), 5);
    assert_gemm(&g[0], 1024, 3 * 768, 768, 3, "gpt2 qkv");
    assert_gemm(&g[1], 1024, 768, 768, 1, "gpt2 attn.proj");
    assert_gemm(&g[2], 1024, 4 * 768, 768, 4, "gpt2 fc");
    assert_gemm(&g[3], 1024, 768, 4 * 768, 4, "gpt2 mlp.proj");
    assert_gemm(&g[4], 1024, 1024, 64, 2.0 * 1024 / 768, "gpt2 attention");
    /* SmolLM2-135M: 9 heads of 64, 3 kv heads, MLP 1536 */
    ModelConfig smol = {.kind = MODEL_LLAMA, .n_layer = 30, .n_head = 9, .n_kv_head = 3,
                        .n_embd = 576, .mlp_hidden = 1536, .seq_len = 1024, .vocab = 49152};
    double cc = 576.0 * 576.0;
    cr_assert_eq(planner_layer_gemms(&smol, 1024, g), 6);
    assert_gemm(&g[0], 1024, 576 + 2 * 192, 576, (576 + 2 * 192) * 576 / cc, "q|k|v");
    assert_gemm(&g[1], 1024, 576, 576, 1, "o");
    assert_gemm(&g[2], 1024, 1536, 576, 1536 * 576 / cc, "gate");
    assert_gemm(&g[3], 1024, 1536, 576, 1536 * 576 / cc, "up");
    assert_gemm(&g[4], 1024, 576, 1536, 1536 * 576 / cc, "down");
    assert_gemm(&g[5], 1024, 1024, 64, 2.0 * 1024 / 576, "attention");
    /* a query width that is not the model's (Qwen3: heads x head_dim) */
    ModelConfig wide = smol;
    wide.head_dim = 128;
    cr_assert_eq(planner_layer_gemms(&wide, 1024, g), 6);
    assert_gemm(&g[0], 1024, 9 * 128 + 2 * 3 * 128, 576, (9 + 6) * 128 * 576 / cc, "q|k|v of 128");
    assert_gemm(&g[1], 1024, 576, 9 * 128, 9 * 128 * 576 / cc, "o of 9 x 128");
    assert_gemm(&g[5], 1024, 1024, 128, 2.0 * 1024 * 9 * 128 / cc, "attention of 9 x 128");
}

/* --diloco-wire: the outer all-reduce moves the format's bytes (int8: 64
 * one-byte codes and a float scale per block, 0.27 of fp32's) */
Test(planner_modes, diloco_wire_shrinks_the_outer_all_reduce)
{
    TrainConfig c;
    cfg4(&c);
    c.diloco = 10;
    Prediction f32 = predict(&c, 1.25e6, 100e-6);
    c.diloco_wire = 2; /* int8 */
    Prediction i8 = predict(&c, 1.25e6, 100e-6);
    double ratio = i8.bytes / f32.bytes;
    cr_assert(ratio > 0.26 && ratio < 0.28, "int8/fp32 bytes %g", ratio);
    cr_assert(i8.dp_exposed_s < 0.3 * f32.dp_exposed_s, "%g vs %g s", i8.dp_exposed_s, f32.dp_exposed_s);
}

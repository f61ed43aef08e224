/* coordinator/planner.c's mode predictions as a model should behave (no
 * timing of real runs): ZO barely notices the link, DP's exposed
 * communication grows as bandwidth falls, DiLoCo's per-step share of the
 * outer all-reduce falls with H and overlap hides it; plus the link parser
 * and the oversubscription sentence. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/plan.h"
#include "coordinator/planner.h"
#include "worker/config/config.h"

/* A small GPT on 4 data-parallel ranks, one per core of a 4-core machine. */
static void cfg4(TrainConfig *c)
{
    train_config_defaults(c);
    c->model = (ModelConfig){MODEL_GPT, 2, 4, 64, 64, 256, 0, 0};
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
    cr_assert_eq(own, 0);
    cr_assert_eq(p[1].mode, MODE_ZO);
    cr_assert_eq(p[5].mode, MODE_DILOCO);
    cr_assert_eq(p[5].k, 500);
    c.diloco = 7;
    n = planner_compare_modes(&c, 4, &mc, p, 8, &own);
    cr_assert_eq(n, 7);
    cr_assert_eq(own, 6);
    cr_assert_eq(p[own].k, 7);
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

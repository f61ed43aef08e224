#!/usr/bin/python3
"""Pipeline idle share from an mpitrain Chrome trace (`train --trace FILE`).

usage: trace_bubble.py TRACE.json [--pp P --micro-batches M] [--skip N] [--json]

Per stage (rank = trace pid) and per step, with steps separated by the
rank's "optimizer" spans (every compute span before the k-th optimizer span
and after the (k-1)-th belongs to step k):

  busy       = sum of the "forward mbK" / "backward mbK" span durations
  own window = first compute span start .. last compute span end, on that rank
  idle (own) = 1 - busy / own window               (the figure asked for)
  step window= first compute start .. last compute end over ALL ranks in step k
  idle (step)= 1 - busy / step window
  p2p wait   = sum of "wait send" / "wait recv" durations (cat p2p) in the step

The textbook bubble (p-1)/(M+p-1) is the idle share of a stage inside the
pipeline's whole step window, so "idle (step)" is the figure to hold against
it. "idle (own)" measures each stage against its own first..last compute: in
an ideal pipeline stage s then idles (p-1-s)/(M+p-1-s) (the last stage never
waits inside its own window), so its mean over stages is below the textbook
figure; it is printed with that ideal for comparison ("own theory").

Steps 1..skip are left out (default: step 1, which warms caches and buffers).
Timestamps of all ranks share one clock (one machine, CLOCK_MONOTONIC), which
the step window relies on. Spans outside any compute window (a few "barrier"
spans carry a timestamp on another time base) are ignored.

Prints one human line, or with --json one JSON object:
  {"steps": n, "stages": p, "idle_own": x, "idle_step": x, "idle_stage0": x,
   "own_theory": x, "theory": x, "p2p_wait_ms": x, "step_ms": x,
   "per_stage": [{"rank": r, "idle_own": x, "idle_step": x, "p2p_wait_ms": x}, ...]}
"theory" / "own_theory" need --pp and --micro-batches (else null).
"""
import json
import sys


def load_events(path):
    with open(path) as f:
        d = json.load(f)
    ev = d["traceEvents"] if isinstance(d, dict) else d
    return [e for e in ev if e.get("ph") == "X"]


def split_steps(events):
    """-> {rank: [step dicts]} with busy, first, last, p2p for each step."""
    ranks = {}
    for e in events:
        ranks.setdefault(e.get("pid", 0), []).append(e)
    out = {}
    for r, evs in ranks.items():
        evs.sort(key=lambda e: e["ts"])
        steps, cur = [], None

        def fresh():
            return {"busy": 0.0, "first": None, "last": None, "p2p": 0.0, "n": 0}

        cur = fresh()
        for e in evs:
            name, cat = e.get("name", ""), e.get("cat", "")
            if name == "optimizer":
                if cur["n"]:
                    steps.append(cur)
                cur = fresh()
                continue
            if cat == "compute" and (name.startswith("forward") or name.startswith("backward")):
                t0, t1 = e["ts"], e["ts"] + e["dur"]
                cur["busy"] += e["dur"]
                cur["first"] = t0 if cur["first"] is None else min(cur["first"], t0)
                cur["last"] = t1 if cur["last"] is None else max(cur["last"], t1)
                cur["n"] += 1
            elif cat == "p2p" and name.startswith("wait"):
                cur["p2p"] += e["dur"]
        # compute after the last optimizer span (e.g. evaluation) is not a step
        out[r] = steps
    return out


def analyse(path, pp=None, micro=None, skip=1):
    per_rank = split_steps(load_events(path))
    if not per_rank:
        raise SystemExit(f"trace_bubble: {path}: no spans")
    nsteps = min(len(s) for s in per_rank.values())
    if nsteps <= skip:
        raise SystemExit(f"trace_bubble: {path}: {nsteps} steps found, need more than {skip}")
    ranks = sorted(per_rank)
    # whole-pipeline window per step
    win = []
    for k in range(nsteps):
        first = min(per_rank[r][k]["first"] for r in ranks)
        last = max(per_rank[r][k]["last"] for r in ranks)
        win.append(last - first)
    per_stage = []
    for r in ranks:
        own, stp, p2p = [], [], []
        for k in range(skip, nsteps):
            s = per_rank[r][k]
            w = s["last"] - s["first"]
            own.append(1.0 - s["busy"] / w if w > 0 else 0.0)
            stp.append(1.0 - s["busy"] / win[k] if win[k] > 0 else 0.0)
            p2p.append(s["p2p"] / 1e3)
        n = len(own)
        per_stage.append({"rank": r, "idle_own": sum(own) / n, "idle_step": sum(stp) / n,
                          "p2p_wait_ms": sum(p2p) / n})
    mean = lambda key: sum(s[key] for s in per_stage) / len(per_stage)
    p = pp if pp else len(ranks)
    theory = own_theory = None
    if micro:
        theory = (p - 1) / (micro + p - 1)
        own_theory = sum((p - 1 - s) / (micro + p - 1 - s) for s in range(p)) / p
    return {"steps": nsteps - skip, "stages": len(ranks), "idle_own": mean("idle_own"),
            "idle_step": mean("idle_step"), "idle_stage0": per_stage[0]["idle_own"],
            "own_theory": own_theory, "theory": theory, "p2p_wait_ms": mean("p2p_wait_ms"),
            "step_ms": sum(win[skip:]) / (nsteps - skip) / 1e3, "per_stage": per_stage}


def main(argv):
    path, pp, micro, skip, as_json = None, None, None, 1, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--pp":
            pp = int(argv[i + 1]); i += 2
        elif a == "--micro-batches":
            micro = int(argv[i + 1]); i += 2
        elif a == "--skip":
            skip = int(argv[i + 1]); i += 2
        elif a == "--json":
            as_json = True; i += 1
        elif a in ("-h", "--help"):
            print(__doc__); return 0
        elif path is None:
            path = a; i += 1
        else:
            raise SystemExit(f"trace_bubble: unexpected argument {a}")
    if path is None:
        raise SystemExit("usage: trace_bubble.py TRACE.json [--pp P --micro-batches M] [--skip N] [--json]")
    r = analyse(path, pp, micro, skip)
    if as_json:
        print(json.dumps(r))
        return 0
    print(f"{path}: {r['stages']} stages, {r['steps']} steps (after skipping {skip})")
    for s in r["per_stage"]:
        print(f"  rank {s['rank']}: idle own window {s['idle_own']:.1%}  idle step window "
              f"{s['idle_step']:.1%}  p2p wait {s['p2p_wait_ms']:.2f} ms/step")
    print(f"  mean: idle own {r['idle_own']:.1%}  idle step {r['idle_step']:.1%}  "
          f"p2p wait {r['p2p_wait_ms']:.2f} ms/step  compute window {r['step_ms']:.1f} ms")
    if r["theory"] is not None:
        print(f"  theory (p-1)/(M+p-1) = {r['theory']:.1%}; own-window ideal {r['own_theory']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

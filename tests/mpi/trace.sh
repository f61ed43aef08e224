#!/bin/bash
. "$(dirname "$0")/lib.sh"
  run 2 tr --micro-batches 2 --steps 3 --trace tr.json; check "traced run exits 0" "[ $? -eq 0 ]"
  # the same run spilling its spans every 16: nothing is lost on the way
  MPITRAIN_TEST_TRACE_BUFFER=16 run 2 sp --micro-batches 2 --steps 3 --trace sp.json
  check "a run that spills its spans exits 0" "[ $? -eq 0 ]"
  check "and leaves no span files behind" "[ -z \"\$(ls | grep '\\.part$')\" ]"
  /usr/bin/python3 - tr.json 2 sp.json > trace_check.log 2>&1 <<'PY'
import collections, json, sys
def load(path):
    return json.load(open(path))["traceEvents"]
ev, ranks = load(sys.argv[1]), int(sys.argv[2])
spans = [e for e in ev if e["ph"] == "X"]
assert {e["pid"] for e in spans} == set(range(ranks)), "every rank has a track"
meta = {(e["pid"], e["name"]): e["args"]["name"] for e in ev if e["ph"] == "M" and "name" in e["args"]}
for r in range(ranks):
    assert meta[(r, "process_name")].startswith("rank %d: dp " % r), meta
    assert meta[(r, "thread_name")] == "main", meta
    mine = sorted((e for e in spans if e["pid"] == r), key=lambda e: (e["ts"], -e["dur"]))
    names = {e["name"] for e in mine}
    assert {"forward mb0", "backward mb1", "optimizer", "step 1", "step 3"} <= names, names
    assert all(e["args"]["micro_batch"] == 1 for e in mine if e["name"] == "forward mb1")
    assert any(e["cat"] == "comm" and e["args"]["bytes"] > 0 for e in mine), "comm spans carry bytes"
    stack = []
    for e in mine:
        assert e["dur"] >= 0, e
        while stack and stack[-1] <= e["ts"]:
            stack.pop()
        if stack:  # a span that starts inside another must end inside it
            assert e["ts"] + e["dur"] <= stack[-1] + 1e-3, ("badly nested", e)
        stack.append(e["ts"] + e["dur"])
# the ranks' clocks agree: step k of rank 0 and of rank 1 share an all-reduce,
# so in true time they overlap; an offset error larger than a step would not
step = {(e["pid"], e["name"]): e for e in spans if e["cat"] == "step"}
for k in (1, 2, 3):
    a, b = step[(0, "step %d" % k)], step[(1, "step %d" % k)]
    assert a["ts"] < b["ts"] + b["dur"] and b["ts"] < a["ts"] + a["dur"], ("step %d apart" % k, a, b)
# a "wait ..." span is drawn only when a request was still running at its
# wait, which depends on how far progress calls got: not part of the count
count = lambda evs: collections.Counter((e["pid"], e["name"]) for e in evs
                                        if e["ph"] == "X" and not e["name"].startswith("wait "))
assert count(load(sys.argv[3])) == count(ev), "a spilling trace holds the same spans"
print("trace ok:", len(spans), "spans")
PY
  rc=$?
  check "trace is valid, every rank named, steps aligned across ranks, spans well nested, spills lose nothing ($(tail -1 trace_check.log))" "[ $rc -eq 0 ]"
  [ $rc -eq 0 ] || cat trace_check.log
finish

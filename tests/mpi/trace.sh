#!/bin/bash
. "$(dirname "$0")/lib.sh"
  run 2 tr --micro-batches 2 --steps 3 --trace tr.json; check "traced run exits 0" "[ $? -eq 0 ]"
  /usr/bin/python3 - tr.json 2 > trace_check.log 2>&1 <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
ranks = int(sys.argv[2])
spans = [e for e in ev if e["ph"] == "X"]
assert {e["pid"] for e in spans} == set(range(ranks)), "every rank has a track"
for r in range(ranks):
    mine = sorted((e for e in spans if e["pid"] == r), key=lambda e: (e["ts"], -e["dur"]))
    names = {e["name"] for e in mine}
    assert {"forward mb0", "backward mb1", "optimizer"} <= names, names
    stack = []
    for e in mine:
        assert e["dur"] >= 0, e
        while stack and stack[-1] <= e["ts"]:
            stack.pop()
        if stack:  # a span that starts inside another must end inside it
            assert e["ts"] + e["dur"] <= stack[-1] + 1e-3, ("badly nested", e)
        stack.append(e["ts"] + e["dur"])
print("trace ok:", len(spans), "spans")
PY
  rc=$?
  check "trace is valid JSON, every rank present, spans well nested ($(tail -1 trace_check.log))" "[ $rc -eq 0 ]"
finish

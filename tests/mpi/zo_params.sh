#!/bin/bash
. "$(dirname "$0")/lib.sh"
  # --zo-params: 2 machines perturb and update only the norms and biases; every
  # other tensor keeps its bits, the selected ones move, and the journal replays
  # only with the run's own selection
  Z="--optimizer zo --zo-samples 2 --zo-scale 1e-3 --eval-every 0 --save-every 10 --keep-ckpts 0"
  run 2 sub --dp 2 $Z --zo-params norms,biases; check "2 machines, --zo-params norms,biases" "[ $? -eq 0 ]"
  check "the run records its selection" "grep -q '\"zo-params\":\"norms,biases\"' sub/config.json"
  "$BIN" ckpt export sub/ckpt/step_00000010 --format safetensors --out s10.st > /dev/null
  "$BIN" ckpt export sub --format safetensors --out s20.st > /dev/null
  moved=$(python3 - s10.st s20.st <<'PY'
import json, struct, sys
def tensors(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
print(' '.join(sorted(k for k in a if a[k] != b[k])))
PY
)
  want="h.0.attn.proj.b h.0.attn.qkv.b h.0.ln1.b h.0.ln1.w h.0.ln2.b h.0.ln2.w h.0.mlp.fc.b h.0.mlp.proj.b h.1.attn.proj.b h.1.attn.qkv.b h.1.ln1.b h.1.ln1.w h.1.ln2.b h.1.ln2.w h.1.mlp.fc.b h.1.mlp.proj.b lnf.b lnf.w"
  check "steps 11..20 moved exactly the norms and biases ($moved)" "[ \"$moved\" = \"$want\" ]"
  "$BIN" ckpt replay sub/ckpt/step_00000010 sub/zo/journal.bin --zo-params norms,biases --out rp > rp.log 2>&1
  "$BIN" ckpt export rp --format safetensors --out rp.st > /dev/null
  check "replay with the run's --zo-params gives the live weights bit for bit" "cmp -s s20.st rp.st"
  "$BIN" ckpt replay sub/ckpt/step_00000010 sub/zo/journal.bin --out rp2 > rp2.log 2>&1; rc=$?
  check "replay without it is refused, naming the selection (rc $rc)" "[ $rc -ne 0 ] && grep -q 'zo-params' rp2.log"
  timeout 240 "$LOCAL" -n 2 train --resume sub --steps 25 --dp 2 --optimizer zo --zo-params last:1 --quiet > other.log 2>&1; rc=$?
  check "resuming with another selection is refused (rc $rc)" "[ $rc -ne 0 ] && grep -q 'zo-params' other.log"
  check "and leaves the run's record as it was" "grep -q '\"zo-params\":\"norms,biases\"' sub/config.json && [ \$(losses sub/metrics.jsonl | wc -l) -eq 20 ]"
finish

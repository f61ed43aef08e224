#!/bin/bash
# train --doc-attention (models/ops.h DOC POSITIONS) across ranks: on
# instruction data packed several examples to a window, every layout (data,
# tensor and pipeline parallel, ZeRO) gives the single rank's losses, for
# GPT-2's learned positions and for llama's rotary ones with grouped kv
# heads; the flag changes the losses (so it is in force); `mpitrain eval`
# of the checkpoint keeps examples apart as training did (its validation
# loss is the run's own); zeroth-order training with pipeline stages gives
# the weights it gives without them, bit for bit; and the flag refuses
# what it cannot do, by name.
. "$(dirname "$0")/lib.sh"
python3 - > ex.jsonl <<'EOF'
import json, random
r = random.Random(3)
for i in range(1500):
    a, b = r.randrange(100), r.randrange(100)
    print(json.dumps({"prompt": "%d+%d=" % (a, b), "completion": "%d" % (a + b)}))
EOF
"$BIN" prepare --format jsonl ex.jsonl --out ex.tok --val-fraction 0.25 > prep.log 2>&1
check "prepare --format jsonl writes the examples" "[ -s ex.tok ]"
GPT="--layers 2 --heads 4 --embd 32 --seq-len 48 --batch 16 --data ex.tok --threads 1 --quiet --steps 12"
LL="--model llama --layers 2 --heads 4 --kv-heads 2 --embd 32 --mlp-hidden 48 ${GPT#--layers 2 --heads 4 --embd 32}"
DOC="--doc-attention --eval-every 0"
for model in gpt llama; do
  opts="$GPT $DOC"
  [ $model = llama ] && opts="$LL $DOC"
  timeout 240 "$LOCAL" -n 1 train $opts --out "$model" > "$model.log" 2>&1
  check "$model: single-rank baseline runs" "[ $? -eq 0 ]"
  for lay in "2 1 1 --zero 1" "1 2 1" "1 1 2 --micro-batches 2" "2 1 2 --zero 1 --micro-batches 2"; do
    run_layout "$model" "$opts" $lay
    same_as_base "$model" "$o" "$what"
  done
  # the same run with attention across examples
  timeout 240 "$LOCAL" -n 1 train ${opts% --doc-attention*} --eval-every 0 --out "${model}_across" \
    > "${model}_across.log" 2>&1
  rel=$(max_rel "$model/metrics.jsonl" "${model}_across/metrics.jsonl")
  check "$model: without --doc-attention the losses differ (max rel $rel > 2e-4)" \
    "awk 'BEGIN{exit !($rel > 2e-4)}'"
done

# zeroth-order training reads the positions through the pipeline too: its
# machines' weights agree bit for bit whatever the stages (as zo_layout)
Z="--optimizer zo --zo-samples 2 --steps 10"
timeout 240 "$LOCAL" -n 2 train $LL $DOC $Z --dp 2 --out zflat > zflat.log 2>&1
timeout 240 "$LOCAL" -n 4 train $LL $DOC $Z --dp 2 --pp 2 --micro-batches 2 --out zpiped > zpiped.log 2>&1
timeout 240 "$LOCAL" -n 2 train $LL --eval-every 0 $Z --dp 2 --out zacross > zacross.log 2>&1
for r in zflat zpiped zacross; do "$BIN" ckpt export $r --format safetensors --out $r.st > /dev/null 2>&1; done
check "zo: dp 2 with pp 2 gives dp 2's weights bit for bit" "[ -s zflat.st ] && cmp -s zflat.st zpiped.st"
rel=$(max_rel zflat/metrics.jsonl zacross/metrics.jsonl)
check "zo: without --doc-attention the losses differ (max rel $rel > 2e-4)" \
  "awk 'BEGIN{exit !($rel > 2e-4)}'"

# eval of the checkpoint: the validation loss training reported at its end
timeout 240 "$LOCAL" -n 2 train $GPT --doc-attention --eval-every 12 --eval-batches 2 --out ev \
  > ev.log 2>&1
check "a run with validation trains" "[ $? -eq 0 ]"
val=$(sed -n 's/.*"step":12,.*"val_loss":\([0-9.eE+-]*\).*/\1/p' ev/metrics.jsonl)
"$BIN" eval --ckpt ev --data ex.tok --batch 16 --batches 2 --threads 1 --json > ev.json 2> ev.err
got=$(sed -n 's/.*"loss":\([0-9.eE+-]*\).*/\1/p' ev.json)
check "eval --ckpt keeps the examples apart as training did (val $val, eval $got)" \
  "[ -n '$val' ] && [ -n '$got' ] && awk 'BEGIN{d = $val - $got; exit !((d < 0 ? -d : d) <= 1e-5 * $val)}'"

# refusals, by name
"$BIN" train $GPT --doc-attention --eval-every 0 --data corpus.tok --out plain > plain.log 2>&1
rc=$?
check "a file that marks no examples is refused (exit $rc), naming it" \
  "[ $rc -ne 0 ] && grep -q 'doc-attention: --data corpus.tok marks no examples' plain.log"
"$BIN" train --model mlp --doc-attention --data ex.tok --steps 1 --out mlp > mlp.log 2>&1
rc=$?
check "an mlp is refused (exit $rc)" "[ $rc -ne 0 ] && grep -q 'doc-attention: an mlp' mlp.log"
finish

#!/bin/bash
# Issue 24: a LoRA run's weights in and out (docs/lora.md, "Formats and
# checkpoints"). Bases: a tiny GPT-2 as a Hugging Face directory, a tiny
# llama as a plain mpitrain checkpoint. Checked: a LoRA run from each learns
# (the adapters start from the seed, not at zero); its checkpoint's records
# are adapters only and refer to the base by absolute path and hash;
# --resume continues bit-identically; --lora-save-base stands alone; export
# --format peft has PEFT's names, shapes and config keys; --lora-from of it
# and export again is byte-identical; the merged export's loss equals the
# adapters' (eval); sample merges; every refusal names its reason.
# usage: lora_ckpt_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
REF="$HERE/../ref"
P=$(pwd -P) # the base paths checkpoints record are absolute and real

for i in $(seq 1 60); do
  echo "And it came to pass, in verse $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
run prepare corpus.txt --out corpus.tok --val-fraction 0.1
T="--seq-len 16 --batch 4 --data corpus.tok --threads 1 --quiet --eval-every 0"
run train $T --layers 2 --heads 2 --embd 16 --steps 2 --out g0 &&
  run ckpt export g0 --format hf --out gpt_hf
[ "$rc" -eq 0 ] || { echo "FAIL - the GPT-2 base: $(cat last.err)"; exit 1; }
run train $T --model llama --layers 2 --heads 4 --kv-heads 2 --embd 16 --mlp-hidden 24 --steps 2 --out l0
[ "$rc" -eq 0 ] || { echo "FAIL - the llama base: $(cat last.err)"; exit 1; }
L="--lora-rank 4 --lora-alpha 8 --lora-targets all-linear --lr 1e-2"

# ---- a LoRA run on a HF base: learns, small checkpoints, a reference ----------------
run train $T --init-from gpt_hf $L --steps 4 --save-every 2 --out g1
check "a LoRA run from a HF GPT-2 directory runs" "[ $rc -eq 0 ]"
run ckpt info g1/ckpt/step_00000004
records() { grep -E '^  (param|opt_m|opt_v|base)/' last.out; }
check "its checkpoint's records are the adapters and their moments only" \
  "[ \$(records | wc -l) -eq 48 ] && ! records | grep -vq '\.lora_[AB] '"
check "ckpt info shows the LoRA settings and the base by absolute path and hash" \
  "grep -q 'rank 4, alpha 8, targets all-linear' last.out && grep -q \"lora base      $P/gpt_hf (content hash 0x\" last.out"

run train --resume g1/ckpt/step_00000002 --out g1r --steps 4 --threads 1 --quiet
check "resume reloads the referenced base" "[ $rc -eq 0 ]"
check "resumed steps 3..4 are bit-identical to the uninterrupted run" \
  "[ \$(losses g1r/metrics.jsonl | wc -l) -eq 2 ] && cmp -s <(losses g1/metrics.jsonl | tail -2) <(losses g1r/metrics.jsonl)"

# ---- PEFT out, and in again ----------------------------------------------------------
run ckpt export g1 --format peft --out p1
check "export --format peft" "[ $rc -eq 0 ]"
# check_peft.py DIR gpt2|llama: PEFT's config keys, names and shapes (r 4, all-linear)
cat > check_peft.py <<'EOF'
import json, re, struct, sys
d, fam = sys.argv[1], sys.argv[2]
cfg = json.load(open(d + "/adapter_config.json"))
want = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "bias": "none",
        "fan_in_fan_out": fam == "gpt2", "inference_mode": True, "modules_to_save": None,
        "use_rslora": False, "use_dora": False, "init_lora_weights": True,
        "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {}, "revision": None}
for k, v in want.items():
    assert cfg.get(k, "absent") == v, "%s: %r, want %r" % (k, cfg.get(k, "absent"), v)
assert cfg["lora_dropout"] == 0 and "base_model_name_or_path" in cfg
mods = {"gpt2": ["c_attn", "c_proj", "c_fc"],
        "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}[fam]
assert sorted(cfg["target_modules"]) == sorted(mods), cfg["target_modules"]
raw = open(d + "/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); h.pop("__metadata__")
if fam == "gpt2":
    pat = r"base_model\.model\.transformer\.h\.(\d)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_([AB])\.weight"
    io = {"attn.c_attn": (16, 48), "attn.c_proj": (16, 16), "mlp.c_fc": (16, 64), "mlp.c_proj": (64, 16)}
else:
    pat = r"base_model\.model\.model\.layers\.(\d)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight"
    io = {"self_attn.q_proj": (16, 16), "self_attn.k_proj": (16, 8), "self_attn.v_proj": (16, 8),
          "self_attn.o_proj": (16, 16), "mlp.gate_proj": (16, 24), "mlp.up_proj": (16, 24),
          "mlp.down_proj": (24, 16)}
assert len(h) == 2 * 2 * len(io), "%d tensors" % len(h)
assert list(h) == sorted(h), "not in name order"
for name, t in h.items():
    m = re.fullmatch(pat, name)
    assert m, "not a PEFT name: " + name
    i, o = io[m.group(2)]
    assert t["dtype"] == "F32" and t["shape"] == ([4, i] if m.group(3) == "A" else [o, 4]), (name, t)
    b, e = t["data_offsets"]
    # A from the seed, B moved by training: an adapter left at zero learns nothing
    assert raw[8 + n + b:8 + n + e].strip(b"\0"), name + " is all zero"
EOF
/usr/bin/python3 check_peft.py p1 gpt2 > last.err 2>&1
check "the GPT-2 adapter directory has PEFT's config keys, names and shapes; A and B learned (not zero)" "[ $? -eq 0 ]"

RT="--steps 1 --lr 1e-30 --min-lr 0 --warmup 0 --weight-decay 0"
run train $T --init-from gpt_hf --lora-from p1 $RT --out g2 &&
  run ckpt export g2 --format peft --out p2
check "PEFT -> --lora-from -> PEFT: adapter_model.safetensors byte-identical" \
  "[ $rc -eq 0 ] && cmp -s p1/adapter_model.safetensors p2/adapter_model.safetensors"
check "... and the LoRA settings came from adapter_config.json" \
  "grep -Eq '\"lora-rank\": ?4' g2/config.json && cmp -s p1/adapter_config.json p2/adapter_config.json"

run ckpt export g1 --format peft --dtype bf16 --out pbf &&
  run train $T --init-from gpt_hf --lora-from pbf --steps 1 --out g3
check "a BF16 adapter loads (--lora-from)" "[ $rc -eq 0 ] && grep -q '\"dtype\":\"BF16\"' pbf/adapter_model.safetensors"

# ---- merged: the same loss as the adapters; plain export refused ------------------------
E="--data corpus.tok --batch 4 --batches 4 --threads 1 --json"
run eval --ckpt g1 $E; adapted=$(sed -n 's/.*"loss":\([^,]*\),.*/\1/p' last.out)
run ckpt export g1 --format hf --merge-lora --out merged &&
  run ckpt import merged --out merged_ck && run eval --ckpt merged_ck $E
merged=$(sed -n 's/.*"loss":\([^,]*\),.*/\1/p' last.out)
check "the merged export's loss $merged equals the adapters' $adapted (to float rounding)" \
  "[ -n \"$merged\" ] && awk -v a=$merged -v b=${adapted:-0} 'BEGIN{d=a-b; if(d<0)d=-d; exit !(d <= 1e-5 * b)}'"
run sample --ckpt g1 --prompt And --tokens 8 --seed 1
check "sample of a LoRA checkpoint (adapters merged first)" "[ $rc -eq 0 ] && [ -s last.out ]"

run ckpt export g1 --format hf --out x1
expect "plain --format hf of a LoRA run is refused, pointing at --merge-lora and peft" 2 "is a LoRA run's" "--merge-lora" "--format peft"
run ckpt export g0 --format peft --out x2
expect "--format peft of a run without adapters is refused" 2 "is not a LoRA run's"
run ckpt export g0 --format hf --merge-lora --out x3
expect "--merge-lora of a run without adapters is refused" 2 "no adapters to merge"
run train $T --init-from g1 --steps 1 --out x4
expect "a LoRA checkpoint as --init-from is refused" 1 "is a LoRA run's checkpoint" "--merge-lora"

# ---- --lora-from refusals ---------------------------------------------------------------
run train $T --lora-from p1 --steps 1 --out x5
expect "--lora-from without --init-from" 2 "needs --init-from BASE"
run train $T --lora-save-base --steps 1 --out x7
expect "--lora-save-base without adapters" 2 "--lora-save-base needs a LoRA run"
run train $T --init-from gpt_hf --lora-from p1 --lora-rank 2 --steps 1 --out x6
expect "--lora-rank disagreeing with the adapters' r" 2 "--lora-rank 2 disagrees with" "r 4"
# bad NAME EDIT GREP...: p1 with adapter_config.json edited (python: cfg[...] = ...) is refused
bad_config() {
  local n=$1 edit=$2
  shift 2
  rm -rf "bad_$n" && cp -r p1 "bad_$n"
  /usr/bin/python3 -c "import json; p='bad_$n/adapter_config.json'; cfg=json.load(open(p)); $edit; json.dump(cfg, open(p, 'w'))"
  run train $T --init-from gpt_hf --lora-from "bad_$n" --steps 1 --out "x_$n"
  expect "--lora-from refuses $n" 2 "$@"
}
bad_config dora 'cfg["use_dora"] = True' "use_dora"
bad_config rslora 'cfg["use_rslora"] = True' "use_rslora"
bad_config rank_pattern 'cfg["rank_pattern"] = {"c_fc": 2}' "rank_pattern"
bad_config alpha_pattern 'cfg["alpha_pattern"] = {"c_fc": 2}' "alpha_pattern"
bad_config layers 'cfg["layers_to_transform"] = [0]' "layers_to_transform"
bad_config save 'cfg["modules_to_save"] = ["lm_head"]' "modules_to_save"
bad_config bias 'cfg["bias"] = "all"' "bias"
bad_config regex 'cfg["target_modules"] = ".*c_attn"' "target_modules" "regular expression"
bad_config type 'cfg["peft_type"] = "PREFIX_TUNING"' "peft_type"
bad_config dropout 'cfg["lora_dropout"] = 0.1' "lora_dropout 0.1" "--lora-dropout"
# bad_tensors NAME PYTHON GREP: p1's tensors edited (python over ref_common's st_read/st_write)
bad_tensors() {
  local n=$1 edit=$2 want=$3
  rm -rf "bad_$n" && cp -r p1 "bad_$n"
  /usr/bin/python3 -c "import sys; sys.path.insert(0, '$REF'); import ref_common as rc
p='bad_$n/adapter_model.safetensors'; t={k: (d, a) for k, (d, a, _) in rc.st_read(p).items()}
$edit
rc.st_write(p, t, sorted(t))"
  run train $T --init-from gpt_hf --lora-from "bad_$n" --steps 1 --out "x_$n"
  expect "--lora-from refuses $n" 1 "$want"
}
bad_tensors missing 'del t["base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight"]' \
  "missing tensor 'base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight'"
bad_tensors extra 't["base_model.model.lm_head.lora_A.weight"] = t["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]' \
  "tensor 'base_model.model.lm_head.lora_A.weight' is no adapter of this model"

# ---- a llama base from a plain checkpoint, saved along -----------------------------------
run train $T --init-from l0 $L --lora-save-base --steps 2 --out l1
check "a LoRA run from a plain llama checkpoint with --lora-save-base" "[ $rc -eq 0 ]"
run ckpt export l1 --format peft --out lp
/usr/bin/python3 check_peft.py lp llama > last.err 2>&1
check "the llama adapter directory has PEFT's names and shapes" "[ $? -eq 0 ]"
mv l0 l0.away
run eval --ckpt l1 $E; whole=$(sed -n 's/.*"loss":\([^,]*\),.*/\1/p' last.out)
run ckpt reshard l1 --tp 2 --dp 2 --out l1r && run eval --ckpt l1r $E
check "ckpt reshard carries the saved base: the same eval loss" \
  "[ -n \"$whole\" ] && [ \"\$(sed -n 's/.*\"loss\":\\([^,]*\\),.*/\\1/p' last.out)\" = \"$whole\" ]"
run ckpt info l1
check "ckpt info: the base is saved in the checkpoint" "grep -q 'saved in this checkpoint' last.out"
run eval --ckpt l1 $E
check "eval of a checkpoint that holds its base, the source gone" "[ $rc -eq 0 ]"
run train --resume l1 --steps 3 --threads 1 --quiet
check "resume of it, the source gone" "[ $rc -eq 0 ]"
mv l0.away l0

# ---- the referenced base changed, or gone --------------------------------------------------
run train $T --layers 2 --heads 2 --embd 16 --steps 2 --seed 7 --out g7 &&
  run ckpt export g7 --format hf --out gpt_hf7
cp gpt_hf7/model.safetensors gpt_hf/model.safetensors
run train --resume g1 --steps 5 --threads 1 --quiet --out g1c
expect "resume refuses a base that changed, naming the path and both hashes" 1 \
  "$P/gpt_hf has changed: hash 0x" "now"
run eval --ckpt g1 $E
expect "eval refuses it too" 1 "has changed"
rm -rf gpt_hf
run train --resume g1 --steps 5 --threads 1 --quiet --out g1d
expect "resume refuses a base that is gone, naming it" 1 "its LoRA base $P/gpt_hf (hash 0x" "cannot be opened"

finish

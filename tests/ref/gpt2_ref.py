#!/usr/bin/python3
"""An independent GPT-2 reference for mpitrain's import/export tests.

Written from the math of Hugging Face's GPT-2 (GPT2LMHeadModel) and from the
file formats, not from mpitrain's code: Conv1D weights stored (in, out),
pre-LN blocks, layernorm eps 1e-5, gelu_new (tanh GELU), causal attention
scaled by 1/sqrt(head size), head tied to wte. Computes in float64.
Run with /usr/bin/python3 (Debian python3-torch); `safetensors` and
`transformers` are not installable here, so the safetensors format is read
and written by hand (ref_common.py, shared with llama_ref.py).

  make-hf DIR    random-weight GPT-2 directory (config.json + model.safetensors)
  make-llmc F    the same weights as an llm.c model file (version 3, f32)
  make-tokens F  random tokens in mpitrain's native MPTOKENS format
  loss SRC       mean cross-entropy of the first batch mpitrain's loader takes
                 (--also BxT: and of other batches, a line each)
  compare A B    two HF model.safetensors (or two llm.c files) hold the same
                 weights, byte for byte, tensor by tensor
  make-peft SRC OUT  a random LoRA adapter for SRC in PEFT's format (--r, --alpha,
                 --targets: c_attn, c_proj, c_fc or all-linear); loss takes
                 --adapter DIR: the model with it (PEFT's LoRA on a Conv1D:
                 x @ W + b + alpha / r * (x @ A.T) @ B.T)
  grad-check SRC ADAPTER STEPPED  mpitrain's adapter gradient, (ADAPTER -
                 STEPPED) / lr after one plain SGD step, against ours
  task SRC ITEMS a multiple-choice task (byte level) scored as the harness
                 does: each item's choices' log-likelihoods, then the accuracies
  batch FILE     the commands of FILE in one process, each's output to a file
                 of its own (ref_common.run_batch; tests queue them with refq)
"""
import argparse
import json
import math
import os
import sys

import numpy as np

from ref_common import (LazyTorch, add_batch, add_make_peft, batch_shape, byte_alphabet, first_batch, grad_errors,
                        make_tokens, peft_random, peft_read, peft_write, run_batch, st_header, st_read, st_write)

# only the forwards and check-hf need torch (seconds to import): make-hf,
# make-llmc, make-tokens, make-peft and compare run on numpy alone
torch = LazyTorch(globals())

LAYER_KEYS = [  # name, shape in units of C (HF layout: Conv1D is (in, out))
    ("ln_1.weight", (1,)), ("ln_1.bias", (1,)),
    ("attn.c_attn.weight", (1, 3)), ("attn.c_attn.bias", (3,)),
    ("attn.c_proj.weight", (1, 1)), ("attn.c_proj.bias", (1,)),
    ("ln_2.weight", (1,)), ("ln_2.bias", (1,)),
    ("mlp.c_fc.weight", (1, 4)), ("mlp.c_fc.bias", (4,)),
    ("mlp.c_proj.weight", (4, 1)), ("mlp.c_proj.bias", (1,)),
]
LLMC_MAGIC = 20240326


def expected_shapes(cfg):
    """GPT2LMHeadModel's state dict (weights only, no buffers, lm_head tied)."""
    C, L = cfg["n_embd"], cfg["n_layer"]
    shapes = {"wte.weight": (cfg["vocab_size"], C), "wpe.weight": (cfg["n_positions"], C)}
    for l in range(L):
        for name, units in LAYER_KEYS:
            shapes["h.%d.%s" % (l, name)] = tuple(u * C for u in units)
    shapes["ln_f.weight"] = (C,)
    shapes["ln_f.bias"] = (C,)
    return shapes


# ---- random models ------------------------------------------------------------

def random_weights(cfg, seed):
    g = np.random.default_rng(seed)
    w = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            w[name] = (1.0 + 0.1 * g.standard_normal(shape)).astype(np.float32)
        elif name.endswith("bias"):
            w[name] = (0.02 * g.standard_normal(shape)).astype(np.float32)
        else:
            w[name] = (0.02 * g.standard_normal(shape)).astype(np.float32)
    # no exact zeros in wte: a zero row would hide a transposition bug less
    return w


def model_cfg(a):
    return {"n_layer": a.layers, "n_head": a.heads, "n_embd": a.embd, "n_positions": a.ctx,
            "vocab_size": a.vocab}


def cmd_make_hf(a):
    cfg = model_cfg(a)
    w = random_weights(cfg, a.seed)
    os.makedirs(a.out, exist_ok=True)
    config = dict(cfg, model_type="gpt2", architectures=["GPT2LMHeadModel"], n_ctx=a.ctx,
                  activation_function=a.activation, layer_norm_epsilon=a.eps, n_inner=None,
                  resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, scale_attn_weights=True,
                  scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
                  bos_token_id=50256, eos_token_id=50256, initializer_range=0.02,
                  task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}})
    if a.config_vocab:
        config["vocab_size"] = a.config_vocab
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    prefix = "transformer." if a.prefix else ""
    tensors = {prefix + k: (a.dtype, v) for k, v in w.items()}
    order = [prefix + k for k in w]
    if a.buffers:  # the causal-mask buffers old transformers versions saved
        for l in range(a.layers):
            mask = np.tril(np.ones((a.ctx, a.ctx), dtype=np.float32)).reshape(1, 1, a.ctx, a.ctx)
            tensors[prefix + "h.%d.attn.bias" % l] = ("F32", mask)
            tensors[prefix + "h.%d.attn.masked_bias" % l] = ("F32", np.array(-1e4, dtype=np.float32))
            order += [prefix + "h.%d.attn.bias" % l, prefix + "h.%d.attn.masked_bias" % l]
    if a.lm_head != "none":
        head = w["wte.weight"].copy()
        if a.lm_head == "different":
            head[0, 0] += 1.0
        tensors["lm_head.weight"] = (a.dtype, head)
        order.append("lm_head.weight")
    if a.order == "reverse":
        order.reverse()
    st_write(os.path.join(a.out, "model.safetensors"), tensors, order)
    if a.tokenizer:
        # a small but complete byte-level BPE: GPT-2's 256 byte tokens (its
        # printable byte alphabet), one merge, and end-of-text
        vocab = {ch: i for i, ch in enumerate(byte_alphabet())}
        vocab["Ġt"] = 256
        vocab["<|endoftext|>"] = 257
        with open(os.path.join(a.out, "vocab.json"), "w") as f:
            json.dump(vocab, f)
        with open(os.path.join(a.out, "merges.txt"), "w") as f:
            f.write("#version: 0.2\nĠ t\n")


def hf_to_llmc(cfg, w, vp, bf16=False):
    """llm.c's order and (out, in) layout; wte padded with zero rows to vp;
    bf16 (version 5): the top 16 bits of each f32."""
    C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    wte = np.zeros((vp, C), np.float32)
    wte[:V] = w["wte.weight"]
    parts = [wte, w["wpe.weight"]]
    for name, units in LAYER_KEYS:
        for l in range(L):
            t = w["h.%d.%s" % (l, name)]
            parts.append(t.T if t.ndim == 2 else t)
    parts += [w["ln_f.weight"], w["ln_f.bias"]]
    if bf16:
        return b"".join((np.ascontiguousarray(p, dtype=np.float32).view(np.uint32) >> 16)
                        .astype("<u2").tobytes() for p in parts)
    return b"".join(np.ascontiguousarray(p, dtype=np.float32).tobytes() for p in parts)


def cmd_make_llmc(a):
    cfg = model_cfg(a)
    w = random_weights(cfg, a.seed)
    vp = (a.vocab + 127) // 128 * 128
    header = np.zeros(256, np.int32)
    header[:8] = [a.magic, a.version, a.ctx, a.vocab, a.layers, a.heads, a.embd, vp]
    data = header.tobytes() + hf_to_llmc(cfg, w, vp, bf16=a.version == 5)
    if a.truncate:
        data = data[:-a.truncate]
    with open(a.out, "wb") as f:
        f.write(data)


def cmd_make_tokens(a):
    make_tokens(a.out, a.n, a.vocab, a.seed)


# ---- loading (strict) and the forward ------------------------------------------

def is_buffer(short):
    """h.N.attn.bias (the causal mask) and h.N.attn.masked_bias: not weights."""
    parts = short.split(".", 2)
    return len(parts) == 3 and parts[0] == "h" and parts[2] in ("attn.bias", "attn.masked_bias")


def load_hf(src):
    """A HF GPT-2 dir (or its .safetensors): config and weights in HF layout.
    Strict, as GPT2LMHeadModel.load_state_dict(strict=True) after dropping
    the non-persistent buffers: exactly the expected keys and shapes."""
    d = src if os.path.isdir(src) else os.path.dirname(src)
    st = os.path.join(src, "model.safetensors") if os.path.isdir(src) else src
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg.get("activation_function", "gelu_new") == "gelu_new", "activation"
    assert abs(cfg.get("layer_norm_epsilon", 1e-5) - 1e-5) < 1e-12, "eps"
    assert cfg.get("tie_word_embeddings", True), "untied"
    raw = st_read(st)
    w = {}
    for name, (_, arr, _) in raw.items():
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if is_buffer(short):
            continue
        if short == "lm_head.weight":
            continue
        assert short not in w, "duplicate " + short
        w[short] = arr.astype(np.float64)
    want = expected_shapes(cfg)
    missing, extra = sorted(set(want) - set(w)), sorted(set(w) - set(want))
    assert not missing and not extra, "missing %s extra %s" % (missing, extra)
    for k, shape in want.items():
        assert tuple(w[k].shape) == shape, "%s: %s != %s" % (k, w[k].shape, shape)
    if "lm_head.weight" in raw:
        assert np.array_equal(raw["lm_head.weight"][1], raw[[n for n in raw if n.endswith("wte.weight")][0]][1])
    return cfg, w


def load_llmc(path):
    with open(path, "rb") as f:
        raw = f.read()
    h = np.frombuffer(raw[:1024], dtype="<i4")
    assert h[0] == LLMC_MAGIC and h[1] in (3, 5), "not an llm.c v3 or v5 file"
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    cfg = {"n_layer": L, "n_head": NH, "n_embd": C, "n_positions": maxT, "vocab_size": V}
    if h[1] == 5:
        u = np.frombuffer(raw[1024:], dtype="<u2").astype(np.uint32) << 16
        data = u.view(np.float32).astype(np.float64)
    else:
        data = np.frombuffer(raw[1024:], dtype="<f4").astype(np.float64)
    pos = 0

    def take(n, shape):
        nonlocal pos
        t = data[pos:pos + n].reshape(shape)
        pos += n
        return t
    w = {"wte.weight": take(Vp * C, (Vp, C))[:V], "wpe.weight": take(maxT * C, (maxT, C))}
    for name, units in LAYER_KEYS:
        for l in range(L):
            shape = tuple(u * C for u in units)
            if len(shape) == 2:  # llm.c keeps (out, in): the transpose of HF's
                w["h.%d.%s" % (l, name)] = take(shape[0] * shape[1], (shape[1], shape[0])).T
            else:
                w["h.%d.%s" % (l, name)] = take(shape[0], shape)
    w["ln_f.weight"] = take(C, (C,))
    w["ln_f.bias"] = take(C, (C,))
    assert pos == len(data), "size"
    return cfg, w


def layernorm(x, g, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * g + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def conv1d(x, t, name, ad):
    """HF's Conv1D, x @ W (in, out) + b, and its LoRA adapter if ad has one
    (ad: short module name -> (A, B) tensors, "scale")."""
    y = x @ t[name + ".weight"] + t[name + ".bias"]
    if name not in ad:
        return y
    a, b = ad[name]
    return y + ad["scale"] * ((x @ a.T) @ b.T)


def forward_loss(cfg, w, inputs, targets, ad=None):
    """The mean cross-entropy (a torch scalar); ad: adapters as conv1d takes them."""
    B, T = inputs.shape
    logits = forward_logits(cfg, w, inputs, ad)
    return torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))


def forward_logits(cfg, w, inputs, ad=None):
    """The logits (B, T, V), float64."""
    ad = ad or {}
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in w.items()}
    B, T = inputs.shape
    C, NH = cfg["n_embd"], cfg["n_head"]
    hs = C // NH
    x = t["wte.weight"][inputs] + t["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg["n_layer"]):
        p = lambda n: t["h.%d.%s" % (l, n)]
        h = layernorm(x, p("ln_1.weight"), p("ln_1.bias"))
        name = lambda n: "h.%d.%s" % (l, n)
        qkv = conv1d(h, t, name("attn.c_attn"), ad)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (z.view(B, T, NH, hs).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + conv1d(y, t, name("attn.c_proj"), ad)
        h = layernorm(x, p("ln_2.weight"), p("ln_2.bias"))
        h = gelu_new(conv1d(h, t, name("mlp.c_fc"), ad))
        x = x + conv1d(h, t, name("mlp.c_proj"), ad)
    x = layernorm(x, t["ln_f.weight"], t["ln_f.bias"])
    return x @ t["wte.weight"].T  # lm_head tied to wte


# ---- LoRA (PEFT) ------------------------------------------------------------------

LORA_MODULES = {"c_attn": ["attn.c_attn"], "c_proj": ["attn.c_proj", "mlp.c_proj"], "c_fc": ["mlp.c_fc"]}


def lora_modules(cfg, targets):
    """PEFT's module path -> (out, in) of every module the targets name
    (GPT-2's c_proj is both the attention's and the MLP's)."""
    names = list(LORA_MODULES) if targets == ["all-linear"] else targets
    shapes = expected_shapes(cfg)
    out = {}
    for n in names:
        assert n in LORA_MODULES, "no linear named " + n
        for l in range(cfg["n_layer"]):
            for m in LORA_MODULES[n]:
                i, o = shapes["h.%d.%s.weight" % (l, m)]  # Conv1D: (in, out)
                out["transformer.h.%d.%s" % (l, m)] = (o, i)
    return out


def adapters_of(cfg, d, grad=False):
    """The adapters of PEFT directory d as forward_loss takes them."""
    scale, ad = peft_read(d)
    shapes = lora_modules(cfg, ["all-linear"])
    out = {"scale": scale}
    for mod, (a, b) in ad.items():
        assert mod in shapes, "%s: adapter for %s, which GPT-2 has not" % (d, mod)
        o, i = shapes[mod]
        assert a.shape[1] == i and b.shape[0] == o and a.shape[0] == b.shape[1], "%s: shapes" % mod
        out[mod[len("transformer."):]] = tuple(torch.tensor(x, dtype=torch.float64, requires_grad=grad) for x in (a, b))
    return out


def cmd_make_peft(a):
    cfg, _ = load_hf(a.src)
    mods = lora_modules(cfg, a.targets.split(","))
    names = sorted({m.rsplit(".", 1)[1] for m in mods})
    peft_write(a.out, peft_random(mods, a.r, a.seed), a.r, a.alpha, names, True, os.path.abspath(a.src))


def cmd_loss(a):
    """The loss of the first batch; with --also BxT, then of each such batch
    on a line of its own (the model loaded once: seconds at 124M)."""
    torch.set_num_threads(a.threads)
    cfg, w = load_llmc(a.src) if a.src.endswith(".bin") else load_hf(a.src)
    ad = adapters_of(cfg, a.adapter) if a.adapter else None
    for B, T in [(a.batch, a.seq)] + a.also:
        inputs, targets = first_batch(a.tokens, B, T or cfg["n_positions"])
        print("%.12f" % forward_loss(cfg, w, inputs, targets, ad).item())


def cmd_task(a):
    """A multiple-choice task at byte level, scored as lm-evaluation-harness
    scores it: the context's trailing blanks go to the choice, the choice's
    tokens are those of context + choice past the (stripped) context's, the
    last n_positions + 1 tokens at most; the sum of their log-probabilities
    (acc), and per character of the choice (acc_norm). Prints one JSON line
    per item (logliks), then the accuracies."""
    torch.set_num_threads(a.threads)
    cfg, w = load_hf(a.src)
    T = cfg["n_positions"]
    right = right_norm = n = 0
    for line in open(a.items, encoding="utf-8"):
        if not line.strip():
            continue
        it = json.loads(line)
        ctx, choices, ans = it["context"], it["choices"], it["answer"]
        ans = choices.index(ans) if isinstance(ans, str) else ans
        ctx_enc = list(ctx.rstrip().encode("utf-8"))
        lls = []
        for c in choices:
            whole = list((ctx + c).encode("utf-8"))
            cont = len(whole) - len(ctx_enc)
            seq = whole[-(T + 1):]
            x = torch.tensor([seq[:-1]])
            logp = torch.log_softmax(forward_logits(cfg, w, x), -1)[0]
            L = len(seq) - 1
            lls.append(sum(logp[i, seq[i + 1]].item() for i in range(L - cont, L)))
        print(json.dumps({"logliks": lls}))
        n += 1
        right += int(np.argmax(lls)) == ans
        right_norm += int(np.argmax([l / len(c) for l, c in zip(lls, choices)])) == ans
    print(json.dumps({"accuracy": right / n, "accuracy_norm": right_norm / n, "items": n}))


def cmd_grad_check(a):
    """mpitrain's adapter gradient from one SGD step (STEPPED, the adapter
    it exported) against the float64 one; fails above --tol."""
    torch.set_num_threads(a.threads)
    cfg, w = load_hf(a.src)
    inputs, targets = first_batch(a.tokens, a.batch, a.seq or cfg["n_positions"])
    ad = adapters_of(cfg, a.adapter, grad=True)
    forward_loss(cfg, w, inputs, targets, ad).backward()
    flat = lambda d: {"%s.lora_%s" % (m, x): ab[i].detach().double().numpy()
                      for m, ab in d.items() if m != "scale" for i, x in enumerate("AB")}
    g = {"%s.lora_%s" % (m, x): ab[i].grad.double().numpy() for m, ab in ad.items() if m != "scale"
         for i, x in enumerate("AB")}
    w0, w1 = flat(ad), flat(adapters_of(cfg, a.stepped))
    assert set(w0) == set(w1), "the stepped adapter's tensors differ from the adapter's"
    err = grad_errors(w0, w1, g, a.lr)
    worst = max(err, key=err.get)
    print("max gradient error %.3g of the tensor's largest entry (%s); tolerance %.3g" % (err[worst], worst, a.tol))
    sys.exit(0 if err[worst] <= a.tol else 1)


def cmd_compare(a):
    if a.a.endswith(".bin"):
        same = open(a.a, "rb").read() == open(a.b, "rb").read()
        print("identical" if same else "DIFFERENT")
        sys.exit(0 if same else 1)
    norm = lambda n: n[len("transformer."):] if n.startswith("transformer.") else n
    skip = lambda n: is_buffer(n) or n == "lm_head.weight"
    ta = {norm(k): v for k, v in st_read(a.a).items() if not skip(norm(k))}
    tb = {norm(k): v for k, v in st_read(a.b).items() if not skip(norm(k))}
    bad = sorted(set(ta) ^ set(tb))
    bad += [k for k in ta if k in tb and (ta[k][0] != tb[k][0] or list(ta[k][1].shape) != list(tb[k][1].shape)
                                          or ta[k][2] != tb[k][2])]
    print("identical (%d tensors)" % len(ta) if not bad else "DIFFERENT: " + ", ".join(bad[:5]))
    sys.exit(1 if bad else 0)


def cmd_rows(a):
    """Whether rows [lo, hi) of one tensor hold the same values in two
    .safetensors files (any dtypes; HF's prefix ignored)."""
    norm = lambda n: n[len("transformer."):] if n.startswith("transformer.") else n
    ta = {norm(k): v for k, v in st_read(a.a).items()}
    tb = {norm(k): v for k, v in st_read(a.b).items()}
    x, y = ta[a.tensor][1][a.lo:a.hi], tb[a.tensor][1][a.lo:a.hi]
    same = x.shape == y.shape and x.shape[0] == a.hi - a.lo and np.array_equal(x.astype(np.float32), y.astype(np.float32))
    print("same" if same else "DIFFERENT")
    sys.exit(0 if same else 1)


def cmd_check_hf(a):
    """An exported HF GPT-2 directory as transformers reads it: the json
    files and their keys, the tokenizer under HF's names (merges.txt as
    GPT2Tokenizer parses it: lines[1:-1]), every tensor in --dtype, and,
    with --source, each tensor equal to the source's values converted by
    torch (round to nearest even) to that dtype. Prints what is wrong."""
    d, bad = a.dir, []
    load = lambda n: json.load(open(os.path.join(d, n)))
    cfg, gen = load("config.json"), load("generation_config.json")
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[a.dtype]
    if cfg.get("torch_dtype") != str(tdt).replace("torch.", ""):
        bad.append("config torch_dtype %s" % cfg.get("torch_dtype"))
    eot = None
    if os.path.exists(os.path.join(d, "vocab.json")) or a.tokenizer:
        for n in ("encoder.json", "vocab.bpe"):
            if os.path.exists(os.path.join(d, n)):
                bad.append("OpenAI's %s instead of HF's names" % n)
        vocab = load("vocab.json")
        eot = vocab.get("<|endoftext|>")
        tc = load("tokenizer_config.json")
        want = {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "model_max_length": cfg["n_positions"]}
        bad += ["tokenizer_config %s=%r" % (k, tc.get(k)) for k, v in want.items() if tc.get(k) != v]
        text = open(os.path.join(d, "merges.txt"), encoding="utf-8").read()
        merges = [tuple(l.split()) for l in text.split("\n")[1:-1]]
        if not text.startswith("#version") or any(len(m) != 2 for m in merges):
            bad.append("merges.txt as GPT2Tokenizer reads it")
        if a.merges and merges != [tuple(l.split()) for l in open(a.merges, encoding="utf-8").read().split("\n")
                                   if l.strip() and not l.startswith("#version")]:
            bad.append("merges.txt differs from %s" % a.merges)
    elif cfg["vocab_size"] == 50257:
        eot = 50256
    if os.path.exists(os.path.join(d, "vocab.json")) != os.path.exists(os.path.join(d, "tokenizer_config.json")):
        bad.append("tokenizer_config.json without the tokenizer or the other way round")
    for where, obj in (("config", cfg), ("generation_config", gen)):
        if obj.get("bos_token_id") != eot or obj.get("eos_token_id") != eot:
            bad.append("%s bos/eos %s/%s, not %s" % (where, obj.get("bos_token_id"), obj.get("eos_token_id"), eot))
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    header, base = st_header(raw)
    norm = lambda k: k[len("transformer."):] if k.startswith("transformer.") else k
    src = {norm(k): v[1] for k, v in st_read(a.source).items()} if a.source else {}
    for name, h in header.items():
        if h["dtype"] != a.dtype:
            bad.append("%s dtype %s" % (name, h["dtype"]))
            continue
        b, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + b:base + e]), dtype=tdt).reshape(h["shape"])
        if src:
            want = torch.from_numpy(np.array(src[norm(name)], dtype=np.float32)).to(tdt)
            same = want.shape == t.shape and torch.equal(want.view(torch.int16 if a.dtype != "F32" else torch.int32),
                                                        t.view(torch.int16 if a.dtype != "F32" else torch.int32))
            if not same:
                bad.append("%s values" % name)
    print("ok" if not bad else "WRONG: " + "; ".join(bad[:6]))
    sys.exit(1 if bad else 0)


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("make-hf", "make-llmc"):
        p = sub.add_parser(name)
        p.add_argument("out")
        p.add_argument("--layers", type=int, default=2)
        p.add_argument("--heads", type=int, default=2)
        p.add_argument("--embd", type=int, default=64)
        p.add_argument("--ctx", type=int, default=64)
        p.add_argument("--vocab", type=int, default=50257)
        p.add_argument("--seed", type=int, default=1)
    hf = sub.choices["make-hf"]
    hf.add_argument("--prefix", action="store_true", help="transformer.-prefixed names")
    hf.add_argument("--lm-head", choices=["none", "same", "different"], default="none")
    hf.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    hf.add_argument("--activation", default="gelu_new")
    hf.add_argument("--eps", type=float, default=1e-5)
    hf.add_argument("--config-vocab", type=int, default=0, help="config.json's vocab_size, if not the weights'")
    hf.add_argument("--buffers", action="store_true", help="also store attn.bias/masked_bias buffers")
    hf.add_argument("--tokenizer", action="store_true", help="add (toy) vocab.json + merges.txt")
    hf.add_argument("--order", choices=["model", "reverse"], default="model")
    lc = sub.choices["make-llmc"]
    lc.add_argument("--magic", type=int, default=LLMC_MAGIC)
    lc.add_argument("--version", type=int, choices=[3, 5], default=3, help="5: bf16 weights")
    lc.add_argument("--truncate", type=int, default=0, help="drop this many bytes at the end")
    p = sub.add_parser("make-tokens")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seed", type=int, default=7)
    for name in ("loss", "grad-check"):
        p = sub.add_parser(name)
        p.add_argument("src")
        if name == "grad-check":
            p.add_argument("adapter")
            p.add_argument("stepped")
            p.add_argument("--lr", type=float, default=1.0)
            p.add_argument("--tol", type=float, default=1e-4)
        else:
            p.add_argument("--adapter", help="a PEFT LoRA adapter directory for SRC")
            p.add_argument("--also", type=batch_shape, action="append", default=[], metavar="BxT",
                           help="also the loss of the first B sequences of T tokens (repeatable)")
        p.add_argument("--tokens", required=True)
        p.add_argument("--batch", type=int, default=2)
        p.add_argument("--seq", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
    add_make_peft(sub, "c_attn")
    p = sub.add_parser("check-hf")
    p.add_argument("dir")
    p.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    p.add_argument("--source", help="the .safetensors the values came from")
    p.add_argument("--tokenizer", action="store_true", help="a tokenizer must be there")
    p.add_argument("--merges", help="the merges file the exported merges.txt must hold")
    p = sub.add_parser("rows")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tensor", default="wpe.weight")
    p.add_argument("--lo", type=int, default=0)
    p.add_argument("--hi", type=int, required=True)
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("task")
    p.add_argument("src")
    p.add_argument("items")
    p.add_argument("--threads", type=int, default=1)
    add_batch(sub)
    a = ap.parse_args(argv)
    if a.cmd == "batch":
        return run_batch(main, a.file)
    {"make-hf": cmd_make_hf, "make-llmc": cmd_make_llmc, "make-tokens": cmd_make_tokens,
     "loss": cmd_loss, "compare": cmd_compare, "rows": cmd_rows, "check-hf": cmd_check_hf,
     "make-peft": cmd_make_peft, "grad-check": cmd_grad_check, "task": cmd_task}[a.cmd](a)


if __name__ == "__main__":
    main()

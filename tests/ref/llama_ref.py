#!/usr/bin/python3
"""An independent reference for mpitrain's llama family: Hugging Face's
LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and MistralForCausalLM
in float64 PyTorch, written from the math and the file formats, not from
mpitrain's code (the same for gpt2_ref.py and GPT-2).

The math, per HF's modeling_llama/qwen2/qwen3/mistral.py:
  x = embed_tokens[ids]
  per layer:  x += o_proj(attn(input_layernorm(x)))
              x += down_proj(silu(gate_proj(h)) * up_proj(h)),  h = post_attention_layernorm(x)
  logits = norm(x) @ (lm_head or embed_tokens).T;  loss = mean cross-entropy
  RMSNorm(x) = x * rsqrt(mean(x^2) + rms_norm_eps) * w
  attn: q = q_proj(h), k = k_proj(h), v = v_proj(h), split in heads of
        head_dim (given, or hidden_size / heads); Qwen3: RMSNorm of each
        q and k head over head_dim (q_norm, k_norm) before rope; rope:
        q*cos + rotate_half(q)*sin, rotate_half(x) = (-x2, x1) over the two
        halves of head_dim, angle pos * inv_freq[i mod head_dim/2],
        inv_freq[i] = rope_theta^(-2i/head_dim) (llama3 scaling: below);
        query head j reads key/value head j // (heads / kv_heads);
        causal softmax of q.k / sqrt(head_dim)
  biases: Llama attention_bias -> q,k,v,o; Qwen2 q,k,v always (no o);
          Qwen3 attention_bias -> q,k,v,o; Llama mlp_bias -> gate,up,down;
          Mistral none
  rope_scaling llama3 (factor f, low_freq_factor lo, high_freq_factor hi,
        original_max_position_embeddings N): wavelen = 2 pi / inv_freq;
        wavelen < N/hi: kept; wavelen > N/lo: inv_freq / f; between:
        (1 - s) inv_freq / f + s inv_freq, s = (N / wavelen - lo) / (hi - lo)
What HF computes in float32 (rope angles, norms) is float64 here: the
reference is the math, and mpitrain in float32 must agree to rounding.
Run with /usr/bin/python3 (Debian python3-torch); safetensors by hand
(ref_common.py); no transformers here.

  make-hf DIR       a random model in HF layout (config.json, generation_config.json,
                    model.safetensors or shards + index), config keys as real models carry
  make-tokens F     random tokens in MPTOKENS format (4-byte ids above vocab 65536)
  make-tokenizer DIR  a random byte-level BPE tokenizer.json of --vocab ids (SmolLM2's layout)
  loss SRC          mean cross-entropy of the first batch mpitrain's loader takes
                    (--also BxT: and of other batches, a line each)
  sgd-step SRC      the weights after one plain SGD step (lr) on that batch, as F32
  grad-check SRC STEPPED   mpitrain's gradient, (SRC - STEPPED) / lr, against ours
  compare A B       the same tensors, byte for byte (any shard layouts; --mpitrain-names:
                    B is mpitrain's own safetensors, its names mapped to HF's)
  check-hf DIR      a directory transformers would load (config, names, dtypes,
                    shapes, index, generation_config; --source: values)
  selftest          the reference against itself (see cmd_selftest)
  make-peft SRC OUT a random LoRA adapter for SRC in PEFT's format (--r, --alpha,
                    --targets: HF module names or all-linear); loss and grad-check
                    take --adapter DIR: the model with it (PEFT's LoRA: a target
                    module computes base(x) + alpha / r * (x @ A.T) @ B.T), and
                    grad-check then reads STEPPED as the adapter after the step
  batch FILE        the commands of FILE in one process, each's output to a file of
                    its own (ref_common.run_batch; tests queue them with refq)
"""
import argparse
import json
import math
import os
import sys

import numpy as np

from ref_common import (INDEX, TORCH_DTYPE_NAMES, LazyTorch, add_batch, add_make_peft, batch_shape, byte_alphabet,
                        first_batch, grad_errors, make_tokens, peft_random, peft_read, peft_write, round_to, run_batch,
                        shard_name, st_header, st_read_all, st_write_dir)

# torch only where a forward runs: making, comparing and checking models
# needs numpy alone
torch = LazyTorch(globals())

ARCH_CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
              "mistral": "MistralForCausalLM"}
# config.json keys that do not change the math (HF reads them for training,
# generation or bookkeeping); a key in neither list is unknown to the reference
NEUTRAL_KEYS = {"architectures", "model_type", "torch_dtype", "dtype", "transformers_version", "bos_token_id",
                "eos_token_id", "pad_token_id", "initializer_range", "use_cache", "pretraining_tp",
                "is_llama_config", "_name_or_path", "max_position_embeddings", "attention_dropout",
                "max_window_layers"}
# keys whose values the reference computes with (or requires to be neutral)
MATH_KEYS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling", "vocab_size",
             "tie_word_embeddings", "hidden_act", "attention_bias", "mlp_bias", "sliding_window",
             "use_sliding_window", "rope_interleaved", "use_mrope", "layer_types"}


class Refused(Exception):
    pass


def need(ok, msg):
    if not ok:
        raise Refused(msg)


# ---- the config: what the math reads -------------------------------------------

def hparams(cfg, seq=0):
    """The model's shape and options from an HF config.json, as HF's config
    classes read it (their defaults where a key is absent); refuses what the
    reference does not compute."""
    mt = cfg.get("model_type")
    need(mt in ARCH_CLASS, "model_type %r" % mt)
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads") or NH
    hd_default = 128 if mt == "qwen3" else C // NH  # Qwen3Config's head_dim default is 128
    h = {"arch": mt, "C": C, "L": cfg["num_hidden_layers"], "NH": NH, "NKV": NKV,
         "HD": cfg.get("head_dim") or hd_default, "F": cfg["intermediate_size"], "V": cfg["vocab_size"],
         "eps": cfg.get("rms_norm_eps", 1e-6), "theta": cfg.get("rope_theta", 10000.0),
         "ctx": cfg.get("max_position_embeddings", 0), "tied": cfg.get("tie_word_embeddings", False)}
    need(NH % NKV == 0, "num_key_value_heads %d does not divide num_attention_heads %d" % (NKV, NH))
    need(h["HD"] % 2 == 0, "head_dim %d is odd" % h["HD"])
    need(cfg.get("hidden_act", "silu") == "silu", "hidden_act %r" % cfg.get("hidden_act"))
    need(not cfg.get("rope_interleaved", False), "rope_interleaved true")
    need(not cfg.get("use_mrope", False), "use_mrope true")
    need(not cfg.get("attention_dropout", 0.0), "attention_dropout %r" % cfg.get("attention_dropout"))
    # Mistral's projections never carry biases, Qwen2's q, k, v always do
    bias = bool(cfg.get("attention_bias", False)) and mt in ("llama", "qwen3")
    h["qkv_bias"] = bias or mt == "qwen2"
    h["o_bias"] = bias
    h["mlp_bias"] = bool(cfg.get("mlp_bias", False)) and mt == "llama"
    h["qk_norm"] = mt == "qwen3"
    need(not sliding_window_bites(cfg, h["L"], seq or h["ctx"]), "sliding_window %s shorter than the context %d"
         % (cfg.get("sliding_window"), seq or h["ctx"]))
    h["rope"] = rope_scaling(cfg.get("rope_scaling"))
    return h


def sliding_window_bites(cfg, n_layer, ctx):
    """Whether some layer attends through a window shorter than ctx (the
    reference computes full causal attention only). Mistral: every layer
    slides when sliding_window is set; Qwen2/3: with use_sliding_window,
    the layers from max_window_layers on (or those layer_types names)."""
    w = cfg.get("sliding_window")
    if w is None or not ctx or w >= ctx:
        return False
    if cfg.get("model_type") == "mistral":
        return True
    types = cfg.get("layer_types")
    if types is None:
        on = cfg.get("use_sliding_window", False)
        types = ["sliding_attention" if on and i >= cfg.get("max_window_layers", 28) else "full_attention"
                 for i in range(n_layer)]
    return "sliding_attention" in types


def hparams_differ(a, b, skip=()):
    """The keys where two models' hparams differ; real numbers equal to
    float32 precision (mpitrain keeps eps and the rope figures as floats:
    an export may write 1e-6 as 9.99999997e-07)."""
    def same(x, y):
        if isinstance(x, tuple) and isinstance(y, tuple):
            return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y))
        if isinstance(x, float) or isinstance(y, float):
            return isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= 1e-6 * abs(y)
        return x == y
    return [k for k in a if k not in skip and not same(a[k], b.get(k))]


def rope_scaling(rs):
    """None, or llama3's (factor, low_freq_factor, high_freq_factor,
    original_max_position_embeddings); other types refused by name."""
    if rs is None:
        return None
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "default":
        return None
    need(kind == "llama3", "rope_scaling type %r" % kind)
    return (float(rs["factor"]), float(rs["low_freq_factor"]), float(rs["high_freq_factor"]),
            float(rs["original_max_position_embeddings"]))


def expected_shapes(h):
    """The state dict transformers builds for this config (lm_head only when untied)."""
    C, HD, F = h["C"], h["HD"], h["F"]
    qw, kvw = h["NH"] * HD, h["NKV"] * HD
    s = {"model.embed_tokens.weight": (h["V"], C)}
    for l in range(h["L"]):
        p = "model.layers.%d." % l
        s[p + "input_layernorm.weight"] = (C,)
        for n, rows in (("q", qw), ("k", kvw), ("v", kvw)):
            s[p + "self_attn.%s_proj.weight" % n] = (rows, C)
            if h["qkv_bias"]:
                s[p + "self_attn.%s_proj.bias" % n] = (rows,)
        if h["qk_norm"]:
            s[p + "self_attn.q_norm.weight"] = (HD,)
            s[p + "self_attn.k_norm.weight"] = (HD,)
        s[p + "self_attn.o_proj.weight"] = (C, qw)
        if h["o_bias"]:
            s[p + "self_attn.o_proj.bias"] = (C,)
        s[p + "post_attention_layernorm.weight"] = (C,)
        for n, shape in (("gate", (F, C)), ("up", (F, C)), ("down", (C, F))):
            s[p + "mlp.%s_proj.weight" % n] = shape
            if h["mlp_bias"]:
                s[p + "mlp.%s_proj.bias" % n] = shape[:1]
    s["model.norm.weight"] = (C,)
    if not h["tied"]:
        s["lm_head.weight"] = (h["V"], C)
    return s


# ---- loading (strict, as load_state_dict(strict=True)) ---------------------------

def load_config(src):
    need(os.path.exists(src), "%s: no such file or directory" % src)
    d = src if os.path.isdir(src) else os.path.dirname(src)
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f)


def load_hf(src, seq=0):
    """config, hparams and the weights (float64, HF names) of an HF dir,
    sharded or not; exactly the expected names and shapes. A tied model's
    lm_head.weight, if stored, must equal embed_tokens."""
    cfg = load_config(src)
    try:
        h = hparams(cfg, seq)
    except Refused as e:
        raise Refused("%s: %s" % (src, e))
    raw = st_read_all(src)
    w = {k: arr.astype(np.float64) for k, (_, arr, _) in raw.items()}
    if h["tied"] and "lm_head.weight" in w:
        need(np.array_equal(w["lm_head.weight"], w["model.embed_tokens.weight"]),
             "tied, but lm_head.weight differs from embed_tokens")
        del w["lm_head.weight"]
    want = expected_shapes(h)
    missing, extra = sorted(set(want) - set(w)), sorted(set(w) - set(want))
    need(not missing and not extra, "missing %s, unexpected %s" % (missing[:4], extra[:4]))
    for k, shape in want.items():
        need(tuple(w[k].shape) == shape, "%s: shape %s, config says %s" % (k, w[k].shape, shape))
    return cfg, h, w


# ---- the forward ---------------------------------------------------------------------

def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def inv_freq(h, ablate=()):
    HD = h["HD"]
    inv = 1.0 / h["theta"] ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD)
    if h["rope"] is None or "llama3" in ablate:
        return inv
    factor, lo, hi, n_orig = h["rope"]
    wavelen = 2 * math.pi / inv
    smooth = (n_orig / wavelen - lo) / (hi - lo)
    between = (1 - smooth) * inv / factor + smooth * inv
    out = torch.where(wavelen > n_orig / lo, inv / factor, between)
    return torch.where(wavelen < n_orig / hi, inv, out)


def rope_cos_sin(h, T, ablate=()):
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq(h, ablate)[None, :]
    ang = torch.cat([ang, ang], dim=-1)  # (T, HD): frequency i serves dims i and i + HD/2
    return ang.cos(), ang.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, cos, sin, ablate=()):
    """x (B, heads, T, HD) at positions 0..T-1."""
    if "rope" in ablate:
        return x
    if "interleaved" in ablate:  # the other layout (pairs 2i, 2i+1): must differ
        x = x.reshape(*x.shape[:-1], -1, 2).transpose(-1, -2).reshape(x.shape)
    return x * cos + rotate_half(x) * sin


def linear(x, t, name, ablate=()):
    y = x @ t[name + ".weight"].T
    b = t.get(name + ".bias")
    y = y if b is None or "bias" in ablate else y + b
    a = t.get(name + ".lora_A")
    return y if a is None else y + t["lora.scale"] * ((x @ a.T) @ t[name + ".lora_B"].T)


def attention(h, t, p, x, cos, sin, ablate=()):
    B, T, _ = x.shape
    NH, NKV, HD = h["NH"], h["NKV"], h["HD"]
    q = linear(x, t, p + "q_proj", ablate).view(B, T, NH, HD)
    k = linear(x, t, p + "k_proj", ablate).view(B, T, NKV, HD)
    v = linear(x, t, p + "v_proj", ablate).view(B, T, NKV, HD)
    if h["qk_norm"] and "qk_norm" not in ablate:
        q = rms_norm(q, t[p + "q_norm.weight"], h["eps"])
        k = rms_norm(k, t[p + "k_norm.weight"], h["eps"])
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    q, k = apply_rope(q, cos, sin, ablate), apply_rope(k, cos, sin, ablate)
    rep = NH // NKV
    if "kv_map" in ablate:  # query head j on kv head j % NKV instead of j // rep
        k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)
    else:
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    att = q @ k.transpose(-2, -1) / math.sqrt(HD)
    if "causal" not in ablate:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf"))
    y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * HD)
    return linear(y, t, p + "o_proj", ablate)


def forward_logits(h, t, inputs, ablate=()):
    """t: HF name -> tensor (float64, or float32 for the rounding estimate)."""
    T = inputs.shape[1]
    eps = 0.0 if "eps" in ablate else h["eps"]
    cos, sin = rope_cos_sin(h, T, ablate)
    cos, sin = cos.to(t["model.norm.weight"].dtype), sin.to(t["model.norm.weight"].dtype)
    x = t["model.embed_tokens.weight"][inputs]
    for l in range(h["L"]):
        p = "model.layers.%d." % l
        x = x + attention(h, t, p + "self_attn.", rms_norm(x, t[p + "input_layernorm.weight"], eps), cos, sin, ablate)
        y = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(linear(y, t, p + "mlp.gate_proj", ablate))
        x = x + linear(gate * linear(y, t, p + "mlp.up_proj", ablate), t, p + "mlp.down_proj", ablate)
    x = rms_norm(x, t["model.norm.weight"], eps)
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    if "untied" in ablate:
        head = t["model.embed_tokens.weight"]
    return x @ head.T


def loss_of(h, t, inputs, targets, ablate=()):
    logits = forward_logits(h, t, inputs, ablate)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def tensors(w, dtype=None, grad=False):
    dtype = dtype or torch.float64
    return {k: torch.tensor(v, dtype=dtype, requires_grad=grad and k != "lora.scale") for k, v in w.items()}


def loss_and_grads(h, w, inputs, targets, dtype=None):
    t = tensors(w, dtype, grad=True)
    loss = loss_of(h, t, inputs, targets)
    loss.backward()
    return loss.item(), {k: v.grad.double().numpy() for k, v in t.items() if v.grad is not None}


# ---- LoRA (PEFT) ------------------------------------------------------------------

LORA_MODULES = {"q_proj": "self_attn.", "k_proj": "self_attn.", "v_proj": "self_attn.", "o_proj": "self_attn.",
                "gate_proj": "mlp.", "up_proj": "mlp.", "down_proj": "mlp."}


def lora_modules(h, targets):
    """HF module path -> (out, in) of every module the targets name."""
    names = list(LORA_MODULES) if targets == ["all-linear"] else targets
    for n in names:
        need(n in LORA_MODULES, "no linear named %s" % n)
    shapes = expected_shapes(h)
    return {"model.layers.%d.%s%s" % (l, LORA_MODULES[n], n): shapes["model.layers.%d.%s%s.weight" % (l, LORA_MODULES[n], n)]
            for l in range(h["L"]) for n in names}


def with_adapter(h, w, d):
    """w with the adapter of directory d: "<module>.lora_A"/".lora_B" and
    "lora.scale"; every adapted module must exist with matching shapes."""
    scale, ad = peft_read(d)
    shapes = expected_shapes(h)
    w = dict(w)
    for mod, (a, b) in ad.items():
        out, inp = shapes.get(mod + ".weight", (None, None))
        need(out is not None, "%s: adapter for %s, which the model has not" % (d, mod))
        need(a.shape[1] == inp and b.shape[0] == out and a.shape[0] == b.shape[1],
             "%s: %s: A %s, B %s do not fit the weight (%d, %d)" % (d, mod, a.shape, b.shape, out, inp))
        w[mod + ".lora_A"], w[mod + ".lora_B"] = a, b
    w["lora.scale"] = np.float64(scale)
    return w


def cmd_make_peft(a):
    cfg, h, _ = load_hf(a.src)
    mods = lora_modules(h, a.targets.split(","))
    peft_write(a.out, peft_random(mods, a.r, a.seed), a.r, a.alpha, sorted({m.rsplit(".", 1)[1] for m in mods}),
               False, os.path.abspath(a.src))


# ---- random models --------------------------------------------------------------

def config_for(a):
    """config.json as the real model of the family carries it (key for key:
    Llama-3.2-1B, Qwen2.5-0.5B, Qwen3-0.6B, Mistral-7B-v0.1), at a.'s shape."""
    arch, tied = a.arch, a.tied if a.tied is not None else a.arch != "mistral"
    c = {"architectures": [ARCH_CLASS[arch]], "model_type": arch, "attention_dropout": 0.0,
         "bos_token_id": a.bos, "eos_token_id": a.eos, "hidden_act": "silu", "hidden_size": a.embd,
         "initializer_range": 0.02, "intermediate_size": a.mlp, "max_position_embeddings": a.ctx,
         "num_attention_heads": a.heads, "num_hidden_layers": a.layers,
         "num_key_value_heads": a.kv_heads or a.heads, "rms_norm_eps": a.eps,
         "rope_theta": a.rope_theta, "tie_word_embeddings": tied,
         "torch_dtype": TORCH_DTYPE_NAMES[a.dtype], "transformers_version": "4.51.0", "use_cache": True,
         "vocab_size": a.vocab}
    rope = None
    if a.rope_llama3:
        f, lo, hi, n = (float(x) for x in a.rope_llama3.split(","))
        rope = {"factor": f, "high_freq_factor": hi, "low_freq_factor": lo,
                "original_max_position_embeddings": int(n), "rope_type": "llama3"}
    if arch == "llama":
        c.update(attention_bias=a.bias, mlp_bias=a.mlp_bias, pretraining_tp=1, rope_scaling=rope,
                 head_dim=a.head_dim or a.embd // a.heads)
    elif arch == "qwen2":
        c.update(max_window_layers=a.layers, sliding_window=a.ctx, use_sliding_window=False)
        if rope:
            c["rope_scaling"] = rope
    elif arch == "qwen3":
        c.update(attention_bias=a.bias, head_dim=a.head_dim or 128, max_window_layers=a.layers,
                 rope_scaling=rope, sliding_window=None, use_sliding_window=False)
    else:  # mistral
        c.update(sliding_window=a.sliding_window)
        if a.head_dim:
            c["head_dim"] = a.head_dim
        if rope:
            c["rope_scaling"] = rope
    for kv in a.set or []:
        key, _, val = kv.partition("=")
        if val == "DELETE":
            c.pop(key, None)
        else:
            c[key] = json.loads(val)
    return dict(sorted(c.items()))


def random_weights(h, seed, hf_init=False):
    """hf_init: HF's own initialisation (std 0.02, norms 1), whose loss is
    near ln(vocab) and nearly blind to attention. Otherwise weights that make
    every part matter: matrices of unit gain (std 1/sqrt(fan in)), q and k
    at 1.5 so that scores are O(1) and attention far from uniform (rope, the
    kv-head mapping and the mask show in the loss), embeddings and head at
    0.3 (logits of std about 2), biases 0.3, norm weights near 1 but not 1."""
    g = np.random.default_rng(seed)
    w = {}
    for name, shape in expected_shapes(h).items():
        if name.endswith("norm.weight"):
            w[name] = (1.0 + (0.0 if hf_init else 0.1) * g.standard_normal(shape))
        elif hf_init:
            w[name] = 0.02 * g.standard_normal(shape)
        elif name.endswith("bias") or name in ("model.embed_tokens.weight", "lm_head.weight"):
            w[name] = 0.3 * g.standard_normal(shape)
        else:
            gain = 1.5 if name.endswith(("q_proj.weight", "k_proj.weight")) and not h["qk_norm"] else 1.0
            w[name] = gain / math.sqrt(shape[1]) * g.standard_normal(shape)
    return {k: v.astype(np.float32) for k, v in w.items()}


def write_model(d, cfg, w, dtype, shards):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = {"_from_model_config": True, "bos_token_id": cfg.get("bos_token_id"),
           "eos_token_id": cfg.get("eos_token_id"), "transformers_version": cfg.get("transformers_version")}
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    for stale in [INDEX, "model.safetensors"] + [n for n in os.listdir(d) if n.startswith("model-")]:
        if os.path.exists(os.path.join(d, stale)):
            os.remove(os.path.join(d, stale))
    order = sorted(w)  # the safetensors library writes names in sorted order
    st_write_dir(d, {k: (dtype, w[k]) for k in order}, order, shards)


def cmd_make_hf(a):
    cfg = config_for(a)
    # the weights of the config without its --set keys and window: a config
    # made to be refused still gets weights of the shape it states
    h = hparams(dict(config_for(argparse.Namespace(**dict(vars(a), set=None))), sliding_window=None))
    write_model(a.out, cfg, random_weights(h, a.seed), a.dtype, a.shards)


def cmd_make_tokens(a):
    make_tokens(a.out, a.n, a.vocab, a.seed, a.token_bytes)


SMOL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def cmd_make_tokenizer(a):
    """A byte-level BPE tokenizer.json of exactly --vocab ids in SmolLM2's
    layout (its first special tokens at ids 0.., the 256 bytes, then
    merges), for models whose real tokenizer is not available offline. The
    merges are random (a short token + one byte): the text it gives is
    meaningless, but every id decodes. SmolLM2's own pre-tokenizer adds
    Digits (individual digits) before ByteLevel; this one is ByteLevel alone."""
    rng = np.random.default_rng(a.seed)
    chars = byte_alphabet()
    tokens = list(chars)
    vocab = {t: len(SMOL_SPECIALS) + i for i, t in enumerate(tokens)}
    short = list(tokens)  # tokens short enough to grow by a byte
    merges = []
    while len(SMOL_SPECIALS) + len(tokens) < a.vocab:
        left, right = short[rng.integers(len(short))], chars[rng.integers(256)]
        if left + right in vocab:
            continue
        vocab[left + right] = len(SMOL_SPECIALS) + len(tokens)
        tokens.append(left + right)
        merges.append(left + " " + right)
        if len(left) < 5:
            short.append(left + right)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SMOL_SPECIALS)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "vocab": dict(vocab, **{t: i for i, t in enumerate(SMOL_SPECIALS)}), "merges": merges}}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"add_prefix_space": False, "bos_token": SMOL_SPECIALS[0], "eos_token": SMOL_SPECIALS[0],
                   "unk_token": SMOL_SPECIALS[0], "model_max_length": 8192,
                   "tokenizer_class": "GPT2Tokenizer"}, f, indent=2)


# ---- what the tests ask -----------------------------------------------------------

def batch_of(a, h):
    T = a.seq or h["ctx"]
    return first_batch(a.tokens, a.batch, T)


def cmd_loss(a):
    """The loss of the first batch; with --also BxT, then of each such batch
    on a line of its own (the model loaded once: seconds at 135M)."""
    torch.set_num_threads(a.threads)
    cfg, h, w = load_hf(a.src, a.seq)
    if a.adapter:
        w = with_adapter(h, w, a.adapter)
    t = tensors(w)
    inputs, targets = batch_of(a, h)
    print("%.12f" % loss_of(h, t, inputs, targets).item())
    for B, T in a.also:
        hparams(cfg, T)  # what load_hf refuses at --seq, refused at T too
        inputs, targets = first_batch(a.tokens, B, T)
        print("%.12f" % loss_of(h, t, inputs, targets).item())


def cmd_sgd_step(a):
    """W - lr * grad in float64, stored as F32 with the source's config."""
    torch.set_num_threads(a.threads)
    cfg, h, w = load_hf(a.src, a.seq)
    inputs, targets = batch_of(a, h)
    _, g = loss_and_grads(h, w, inputs, targets)
    stepped = {k: (w[k] - a.lr * g[k]).astype(np.float32) for k in w}
    write_model(a.out, dict(cfg, torch_dtype="float32"), stepped, "F32", 1)


def cmd_grad_check(a):
    """mpitrain's gradient from one SGD step (STEPPED, exported as F32)
    against the float64 one; prints the worst tensor and fails above --tol."""
    torch.set_num_threads(a.threads)
    cfg, h, w0 = load_hf(a.src, a.seq)
    inputs, targets = batch_of(a, h)
    if a.adapter:  # the adapters train, the model is frozen: STEPPED is an adapter
        base = w0
        w0, w1 = with_adapter(h, base, a.adapter), with_adapter(h, base, a.stepped)
        _, g = loss_and_grads(h, w0, inputs, targets)
        g = {k: v for k, v in g.items() if ".lora_" in k}
    else:
        _, h1, w1 = load_hf(a.stepped, a.seq)
        diff = hparams_differ(h1, h, skip=("ctx",))
        need(not diff, "%s is not a model of %s's shape (%s)" % (a.stepped, a.src, ", ".join(diff)))
        _, g = loss_and_grads(h, w0, inputs, targets)
    err = grad_errors(w0, w1, g, a.lr)
    worst = max(err, key=err.get)
    print("max gradient error %.3g of the tensor's largest entry (%s); tolerance %.3g" % (err[worst], worst, a.tol))
    if a.verbose:
        for k in sorted(err):
            print("  %-50s %.3g" % (k, err[k]))
    sys.exit(0 if err[worst] <= a.tol else 1)


def all_tensors(src, cfg):
    """name -> (dtype, shape, bytes) of every tensor of SRC; a tied model's
    stored lm_head (HF leaves it out when it saves) is dropped if equal."""
    raw = st_read_all(src)
    out = {k: (v[0], list(v[1].shape), v[2]) for k, v in raw.items()}
    if cfg.get("tie_word_embeddings") and "lm_head.weight" in out and \
            out["lm_head.weight"][2] == out.get("model.embed_tokens.weight", (0, 0, b""))[2]:
        del out["lm_head.weight"]
    return out


# mpitrain's tensor names (per layer h.L.<part>.w|b) -> HF's
MPITRAIN_WHOLE = {"wte": "model.embed_tokens.weight", "lnf.w": "model.norm.weight", "head.w": "lm_head.weight"}
MPITRAIN_PARTS = {"ln1": "input_layernorm", "ln2": "post_attention_layernorm", "attn.q": "self_attn.q_proj",
                  "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj", "attn.proj": "self_attn.o_proj",
                  "attn.q_norm": "self_attn.q_norm", "attn.k_norm": "self_attn.k_norm",
                  "mlp.gate": "mlp.gate_proj", "mlp.up": "mlp.up_proj", "mlp.proj": "mlp.down_proj"}


def hf_name_of(name):
    if name in MPITRAIN_WHOLE:
        return MPITRAIN_WHOLE[name]
    h, layer, rest = name.split(".", 2)
    part, kind = rest.rsplit(".", 1)
    need(h == "h" and part in MPITRAIN_PARTS and kind in ("w", "b"), "not an mpitrain tensor name: %s" % name)
    return "model.layers.%s.%s.%s" % (layer, MPITRAIN_PARTS[part], "weight" if kind == "w" else "bias")


def mpitrain_tensors(path):
    """name -> (dtype, shape, bytes) of mpitrain's own safetensors (ckpt
    export --format safetensors), under HF's names."""
    return {hf_name_of(k): (v[0], list(v[1].shape), v[2]) for k, v in st_read_all(path).items()}


def cmd_compare(a):
    ta = all_tensors(a.a, load_config(a.a))
    tb = mpitrain_tensors(a.b) if a.mpitrain_names else all_tensors(a.b, load_config(a.b))
    bad = sorted(set(ta) ^ set(tb)) + [k for k in ta if k in tb and ta[k] != tb[k]]
    print("identical (%d tensors)" % len(ta) if not bad else "DIFFERENT: " + ", ".join(bad[:5]))
    sys.exit(1 if bad else 0)


def check_config(cfg, src_cfg, dtype):
    bad = []
    mt = cfg.get("model_type")
    if cfg.get("architectures") != [ARCH_CLASS.get(mt)]:
        bad.append("architectures %s for model_type %s" % (cfg.get("architectures"), mt))
    if cfg.get("torch_dtype", cfg.get("dtype")) != TORCH_DTYPE_NAMES[dtype]:
        bad.append("torch_dtype %s" % cfg.get("torch_dtype"))
    unknown = sorted(set(cfg) - NEUTRAL_KEYS - MATH_KEYS)
    if unknown:
        bad.append("keys no config class of the family defines: %s" % unknown)
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
              "rms_norm_eps", "rope_theta", "max_position_embeddings", "bos_token_id", "eos_token_id"):
        if k not in cfg:  # with the class default instead, a model would change
            bad.append("no %s" % k)
    if mt == "qwen3" and "head_dim" not in cfg:
        bad.append("qwen3 without head_dim (Qwen3Config's default is 128)")
    try:
        h = hparams(cfg)
        if src_cfg is not None:
            hs = hparams(src_cfg)
            diff = hparams_differ(h, hs, skip=("ctx",))
            if diff:
                bad.append("the model differs from the source's in %s" % diff)
    except (Refused, KeyError) as e:
        bad.append("config: %s" % e)
        h = None
    return bad, h


def check_weights(d, h, dtype, source):
    """The files and index as transformers reads them, names and shapes as
    strict loading wants them, all in dtype; --source: each value as torch
    converts the source's (round to nearest even)."""
    bad = []
    index = os.path.join(d, INDEX)
    if os.path.exists(index):
        if os.path.exists(os.path.join(d, "model.safetensors")):
            bad.append("both model.safetensors and an index")
        idx = json.load(open(index))
        wm, files = idx.get("weight_map", {}), sorted(set(idx.get("weight_map", {}).values()))
        n = len(files)
        if files != [shard_name(k, n) for k in range(n)]:
            bad.append("shard names %s" % files[:3])
        headers = {}
        for fn in files:
            raw = open(os.path.join(d, fn), "rb").read()
            hd, base = st_header(raw)
            headers[fn] = hd
            if set(hd) != {k for k, v in wm.items() if v == fn}:
                bad.append("%s holds other tensors than the index maps to it" % fn)
            if base + max([v["data_offsets"][1] for v in hd.values()] or [0]) != len(raw):
                bad.append("%s: size" % fn)
        total = sum(v["data_offsets"][1] - v["data_offsets"][0] for hd in headers.values() for v in hd.values())
        if idx.get("metadata", {}).get("total_size") != total:
            bad.append("index total_size %s, tensors hold %d bytes" % (idx.get("metadata", {}).get("total_size"), total))
    raw = st_read_all(d)
    names = set(raw) - ({"lm_head.weight"} if h["tied"] else set())
    if h["tied"] and "lm_head.weight" in raw and raw["lm_head.weight"][2] != raw.get("model.embed_tokens.weight", [b""] * 3)[2]:
        bad.append("tied, but lm_head.weight differs from embed_tokens")
    want = expected_shapes(h)
    if names != set(want):
        bad.append("tensors missing %s, unexpected %s" % (sorted(set(want) - names)[:3], sorted(names - set(want))[:3]))
    src = st_read_all(source) if source else {}
    for name, (dt, arr, data) in raw.items():
        if dt != dtype:
            bad.append("%s dtype %s" % (name, dt))
            continue
        if name in want and list(arr.shape) != list(want[name]):
            bad.append("%s shape %s" % (name, list(arr.shape)))
        if src and name in src and (list(src[name][1].shape) != list(arr.shape) or
                                    round_to(dtype, src[name][1]) != data):
            bad.append("%s values" % name)
    return bad


def cmd_check_hf(a):
    d = a.dir
    cfg = json.load(open(os.path.join(d, "config.json")))
    src_cfg = load_config(a.source) if a.source else None
    bad, h = check_config(cfg, src_cfg, a.dtype)
    try:
        gen = json.load(open(os.path.join(d, "generation_config.json")))
        for k in ("bos_token_id", "eos_token_id"):
            if gen.get(k) != cfg.get(k):
                bad.append("generation_config %s %s, config %s" % (k, gen.get(k), cfg.get(k)))
    except (OSError, ValueError) as e:
        bad.append("generation_config.json: %s" % e)
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        try:
            json.load(open(os.path.join(d, "tokenizer.json")))
        except ValueError as e:
            bad.append("tokenizer.json: %s" % e)
    if h is not None:
        bad += check_weights(d, h, a.dtype, a.source)
    print("ok" if not bad else "WRONG: " + "; ".join(bad[:6]))
    sys.exit(1 if bad else 0)


# ---- the reference against itself -----------------------------------------------------

def tiny(arch, **kw):
    a = argparse.Namespace(arch=arch, layers=2, heads=4, kv_heads=2, embd=32, head_dim=0, mlp=48, vocab=97,
                           ctx=16, rope_theta=10000.0, rope_llama3="", tied=None, bias=False, mlp_bias=False,
                           eps=1e-5, bos=1, eos=2, dtype="F32", sliding_window=None, set=None)
    for k, v in kw.items():
        setattr(a, k, v)
    cfg = config_for(a)
    return cfg, hparams(cfg)


def mha_loop(h, t, inputs):
    """A second forward written another way: numpy, one head and position at
    a time, rope as complex rotation of the pairs (i, i + HD/2), the kv head
    found by counting groups. Returns the logits."""
    W = {k: v.detach().numpy() for k, v in t.items()}
    HD, NH, NKV = h["HD"], h["NH"], h["NKV"]
    half = HD // 2
    freqs = inv_freq(h).numpy()

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x) + h["eps"]) * w

    def rot(vec, pos):
        z = (vec[:half] + 1j * vec[half:]) * np.exp(1j * pos * freqs)
        return np.concatenate([z.real, z.imag])

    def lin(x, name):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y
    out = []
    for seq in inputs.numpy():
        xs = [W["model.embed_tokens.weight"][i].copy() for i in seq]
        for l in range(h["L"]):
            p = "model.layers.%d." % l
            hs = [norm(x, W[p + "input_layernorm.weight"]) for x in xs]
            qs = [lin(x, p + "self_attn.q_proj") for x in hs]
            ks = [lin(x, p + "self_attn.k_proj") for x in hs]
            vs = [lin(x, p + "self_attn.v_proj") for x in hs]
            ys = []
            for i in range(len(xs)):
                y = np.zeros(NH * HD)
                for j in range(NH):
                    kv = j * NKV // NH  # heads in groups of NH/NKV share a kv head
                    qv = qs[i][j * HD:(j + 1) * HD]
                    if h["qk_norm"]:
                        qv = norm(qv, W[p + "self_attn.q_norm.weight"])
                    qv = rot(qv, i)
                    scores, vals = [], []
                    for m in range(i + 1):
                        kk = ks[m][kv * HD:(kv + 1) * HD]
                        if h["qk_norm"]:
                            kk = norm(kk, W[p + "self_attn.k_norm.weight"])
                        scores.append(qv @ rot(kk, m) / math.sqrt(HD))
                        vals.append(vs[m][kv * HD:(kv + 1) * HD])
                    e = np.exp(np.array(scores) - max(scores))
                    y[j * HD:(j + 1) * HD] = (e / e.sum()) @ np.array(vals)
                ys.append(lin(y, p + "self_attn.o_proj"))
            xs = [x + y for x, y in zip(xs, ys)]
            for i, x in enumerate(xs):
                z = norm(x, W[p + "post_attention_layernorm.weight"])
                gate = lin(z, p + "mlp.gate_proj")
                xs[i] = x + lin(gate / (1 + np.exp(-gate)) * lin(z, p + "mlp.up_proj"), p + "mlp.down_proj")
        head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
        out.append([head @ norm(x, W["model.norm.weight"]) for x in xs])
    return np.array(out)


def cmd_selftest(a):
    """Internal consistency: no second implementation of HF exists here, so
    the reference is checked against the math's own properties and against
    a loop written differently. Prints one line per check."""
    torch.manual_seed(0)
    fails = []

    def check(name, ok, detail=""):
        print("%s %s %s" % ("ok  " if ok else "FAIL", name, detail))
        if not ok:
            fails.append(name)
    variants = {
        "llama tied, llama3 rope": dict(arch="llama", rope_llama3="8,1,4,8"),
        "llama attention_bias + mlp_bias, untied": dict(arch="llama", bias=True, mlp_bias=True, tied=False),
        "qwen2 (q,k,v biases), untied": dict(arch="qwen2", tied=False),
        "qwen3 qk-norm, head_dim 16 != 32/4": dict(arch="qwen3", head_dim=16, bias=True),
        "mistral, no GQA": dict(arch="mistral", kv_heads=4),
    }
    B, T = 2, 12
    for label, kw in variants.items():
        cfg, h = tiny(**kw)
        w = {k: v.astype(np.float64) for k, v in random_weights(h, 3).items()}
        inputs = torch.randint(0, h["V"], (B, T))
        targets = torch.randint(0, h["V"], (B, T))
        t = tensors(w)
        logits = forward_logits(h, t, inputs)
        loop = mha_loop(h, t, inputs)
        d = np.abs(logits.detach().numpy() - loop).max()
        check("%s: the vectorised forward equals the per-head loop with complex rope" % label, d < 1e-12, "(%.2g)" % d)
        # causality: a later token changes no earlier logit
        alt = inputs.clone()
        alt[:, T - 1] = (alt[:, T - 1] + 1) % h["V"]
        d = (forward_logits(h, t, alt)[:, :T - 1] - logits[:, :T - 1]).abs().max().item()
        check("%s: causal (the last token moves no earlier logit)" % label, d == 0.0)
        w_init = tensors({k: v.astype(np.float64) for k, v in random_weights(h, 3, hf_init=True).items()})
        loss = loss_of(h, w_init, inputs, targets).item()
        check("%s: loss at HF's init %.4f near ln(vocab) %.4f" % (label, loss, math.log(h["V"])),
              abs(loss - math.log(h["V"])) < 0.01 * math.log(h["V"]))
        loss = loss_of(h, t, inputs, targets).item()
        # gradients against central differences of the float64 loss
        _, g = loss_and_grads(h, w, inputs, targets)
        rng, worst = np.random.default_rng(5), 0.0
        for name in sorted(w):
            for _ in range(2):
                idx = tuple(rng.integers(0, s) for s in w[name].shape)
                step = 1e-5
                plus, minus = dict(w), dict(w)
                plus[name], minus[name] = w[name].copy(), w[name].copy()
                plus[name][idx] += step
                minus[name][idx] -= step
                fd = (loss_of(h, tensors(plus), inputs, targets).item() -
                      loss_of(h, tensors(minus), inputs, targets).item()) / (2 * step)
                worst = max(worst, abs(fd - g[name][idx]) / (abs(g[name]).max() + 1e-30))
        check("%s: autograd gradients = central differences" % label, worst < 1e-6,
              "(worst %.2g of the tensor's largest entry)" % worst)
        # what a 1e-5 loss check would see of each possible mistake
        for ab in ("rope", "interleaved", "llama3", "kv_map", "qk_norm", "bias", "eps", "untied", "causal"):
            applies = {"llama3": h["rope"] is not None, "kv_map": h["NKV"] < h["NH"], "qk_norm": h["qk_norm"],
                       "bias": h["qkv_bias"] or h["mlp_bias"], "untied": not h["tied"]}.get(ab, True)
            if not applies:
                continue
            r = abs(loss_of(h, t, inputs, targets, (ab,)).item() - loss) / loss
            if ab == "eps":  # 1e-5 against mean squares near 1e-4..1: small by nature
                print("info %s: eps 0 instead of %g moves the loss by %.2g" % (label, h["eps"], r))
            else:
                check("%s: getting '%s' wrong moves the loss by %.2g (> 10 x 1e-5)" % (label, ab, r), r > 1e-4)
    # rope: identity at position 0, the relative-position property, llama3's bands
    _, h = tiny("llama", rope_llama3="8,1,4,32", head_dim=16, rope_theta=100.0)
    cos, sin = rope_cos_sin(h, 9)
    x = torch.randn(1, 1, 9, 16, dtype=torch.float64)
    y = apply_rope(x, cos, sin)
    check("rope at position 0 is the identity", torch.equal(y[..., 0, :], x[..., 0, :]))
    check("rope keeps norms", torch.allclose(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-14, atol=0))
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    qs = apply_rope(q.expand(1, 1, 9, 16), cos, sin)[0, 0]
    ks = apply_rope(k.expand(1, 1, 9, 16), cos, sin)[0, 0]
    check("rope: q_m . k_n depends on m - n only", abs(qs[5] @ ks[3] - qs[7] @ ks[5]) < 1e-12)
    inv, plain = inv_freq(h), inv_freq(h, ("llama3",))
    wl = 2 * math.pi / plain
    short, long = wl < 8, wl > 32
    check("llama3: short wavelengths (< N/hi) kept (%d)" % int(short.sum()),
          bool(short.any()) and torch.equal(inv[short], plain[short]))
    check("llama3: long wavelengths (> N/lo) divided by factor (%d)" % int(long.sum()),
          bool(long.any()) and torch.allclose(inv[long], plain[long] / 8, rtol=1e-15, atol=0))
    mid = ~short & ~long
    check("llama3: between, inside [inv/factor, inv], %d frequencies" % int(mid.sum()),
          bool(mid.any()) and bool(((inv[mid] <= plain[mid]) & (inv[mid] >= plain[mid] / 8)).all()))
    # GQA with kv heads = heads is plain MHA; GQA = MHA with each kv head's rows repeated
    cfg, hg = tiny("llama", kv_heads=2)
    w = {k: v.astype(np.float64) for k, v in random_weights(hg, 4).items()}
    hm = dict(hg, NKV=hg["NH"])
    wm = dict(w)
    HD, rep = hg["HD"], hg["NH"] // hg["NKV"]
    for l in range(hg["L"]):
        for n in ("k", "v"):
            name = "model.layers.%d.self_attn.%s_proj.weight" % (l, n)
            wm[name] = np.repeat(w[name].reshape(hg["NKV"], HD, -1), rep, axis=0).reshape(hg["NH"] * HD, -1)
    inputs = torch.randint(0, hg["V"], (2, 10))
    d = (forward_logits(hg, tensors(w), inputs) - forward_logits(hm, tensors(wm), inputs)).abs().max().item()
    check("GQA (2 kv heads) = MHA with each kv head repeated for its 2 query heads", d < 1e-13, "(%.2g)" % d)
    # the files: one model in 1 and 3 shards, F32 and BF16, reads back the same
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cfg, hs = tiny("qwen3", head_dim=16, tied=False)
        w32 = random_weights(hs, 6)
        for shards, dt in ((1, "F32"), (3, "F32"), (3, "BF16")):
            write_model(os.path.join(tmp, "%d%s" % (shards, dt)), dict(cfg, torch_dtype=TORCH_DTYPE_NAMES[dt]), w32, dt, shards)
        _, _, a1 = load_hf(os.path.join(tmp, "1F32"))
        _, _, a3 = load_hf(os.path.join(tmp, "3F32"))
        _, _, b3 = load_hf(os.path.join(tmp, "3BF16"))
        check("3 shards + index read back as the single file", all(np.array_equal(a1[k], a3[k]) for k in a1) and a1.keys() == a3.keys())
        bf = {k: (v.astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32) for k, v in w32.items()}
        check("BF16 reads back as the top 16 bits of the f32 written", all(np.array_equal(b3[k], bf[k]) for k in bf))
    # RMSNorm with weight 1: unit root-mean-square
    x = torch.randn(5, 32, dtype=torch.float64) * 3
    r = rms_norm(x, torch.ones(32, dtype=torch.float64), 0.0).pow(2).mean(-1)
    check("RMSNorm (w = 1, eps 0) gives unit rms", torch.allclose(r, torch.ones(5, dtype=torch.float64)))
    print("%d failed" % len(fails))
    sys.exit(1 if fails else 0)


def cmd_rounding(a):
    """How far a float32 computation of the same math (torch, one thread)
    lands from float64: the scale of 'float rounding' for loss and
    gradients, to set the tests' tolerances by."""
    torch.set_num_threads(a.threads)
    cfg, h, w = load_hf(a.src, a.seq)
    inputs, targets = batch_of(a, h)
    l64, g64 = loss_and_grads(h, w, inputs, targets)
    l32, g32 = loss_and_grads(h, w, inputs, targets, torch.float32)
    err = {k: np.abs(g32[k] - g64[k]).max() / np.abs(g64[k]).max() for k in g64}
    worst = max(err, key=err.get)
    print("loss rel %.3g; gradient max err %.3g of the tensor's largest (%s), median %.3g"
          % (abs(l32 - l64) / l64, err[worst], worst, float(np.median(list(err.values())))))
    # the same float32 gradient through one float32 SGD step at --lr, read
    # back as grad-check reads mpitrain's: what grad-check sees of a perfect
    # float32 implementation
    lr = np.float32(a.lr)
    w1 = {k: (w[k].astype(np.float32) - lr * g32[k].astype(np.float32)).astype(np.float64) for k in w}
    err = grad_errors(w, w1, g64, float(lr))
    worst = max(err, key=err.get)
    print("a float32 SGD step at lr %g, read back: max err %.3g (%s)" % (a.lr, err[worst], worst))


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-hf")
    p.add_argument("out")
    p.add_argument("--arch", choices=sorted(ARCH_CLASS), default="llama")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--embd", type=int, default=64)
    p.add_argument("--head-dim", type=int, default=0, help="0: embd / heads (qwen3: 128, its config's default)")
    p.add_argument("--mlp", type=int, default=96)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--ctx", type=int, default=64)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--rope-llama3", default="", metavar="F,LO,HI,N",
                   help="llama3 rope_scaling: factor, low_freq_factor, high_freq_factor, original ctx")
    p.add_argument("--tied", dest="tied", action="store_true", default=None)
    p.add_argument("--untied", dest="tied", action="store_false")
    p.add_argument("--bias", action="store_true", help="attention_bias (llama, qwen3); qwen2 has q,k,v biases always")
    p.add_argument("--mlp-bias", action="store_true", help="mlp_bias (llama)")
    p.add_argument("--eps", type=float, default=1e-5)
    p.add_argument("--bos", type=int, default=1)
    p.add_argument("--eos", type=int, default=2)
    p.add_argument("--sliding-window", type=int, default=4096, help="mistral's")
    p.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="set (or DELETE) a config.json key")
    p = sub.add_parser("make-tokens")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--token-bytes", type=int, choices=[0, 2, 4], default=0, help="0: 2, or 4 above vocab 65536")
    p = sub.add_parser("make-tokenizer")
    p.add_argument("out")
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--seed", type=int, default=3)
    for name in ("loss", "sgd-step", "grad-check", "rounding"):
        p = sub.add_parser(name)
        p.add_argument("src")
        if name == "grad-check":
            p.add_argument("stepped")
            p.add_argument("--tol", type=float, default=1e-4)
            p.add_argument("--verbose", action="store_true")
        p.add_argument("--tokens", required=True)
        if name in ("loss", "grad-check"):
            p.add_argument("--adapter", help="a PEFT LoRA adapter directory for SRC")
        if name == "loss":
            p.add_argument("--also", type=batch_shape, action="append", default=[], metavar="BxT",
                           help="also the loss of the first B sequences of T tokens (repeatable)")
        p.add_argument("--batch", type=int, default=2)
        p.add_argument("--seq", type=int, default=0, help="0: max_position_embeddings")
        p.add_argument("--threads", type=int, default=1)
        if name in ("sgd-step", "grad-check", "rounding"):
            p.add_argument("--lr", type=float, required=name != "rounding", default=1.0)
        if name == "sgd-step":
            p.add_argument("--out", required=True)
    add_make_peft(sub, "q_proj,v_proj")
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--mpitrain-names", action="store_true",
                   help="B is mpitrain's own safetensors file (ckpt export --format safetensors)")
    p = sub.add_parser("check-hf")
    p.add_argument("dir")
    p.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    p.add_argument("--source", help="the HF dir the values came from")
    sub.add_parser("selftest")
    add_batch(sub)
    a = ap.parse_args(argv)
    if a.cmd == "batch":
        return run_batch(main, a.file)
    try:
        {"make-hf": cmd_make_hf, "make-tokens": cmd_make_tokens, "make-tokenizer": cmd_make_tokenizer,
         "loss": cmd_loss, "sgd-step": cmd_sgd_step, "grad-check": cmd_grad_check, "compare": cmd_compare, "check-hf": cmd_check_hf,
         "selftest": cmd_selftest, "rounding": cmd_rounding, "make-peft": cmd_make_peft}[a.cmd](a)
    except Refused as e:
        print("llama_ref %s: %s" % (a.cmd, e), file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError) as e:  # a missing or broken file: say which, no traceback
        print("llama_ref %s: %s: %s" % (a.cmd, type(e).__name__, e), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

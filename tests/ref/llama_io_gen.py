#!/usr/bin/python3
"""Tiny Hugging Face llama-family directories and their comparison, for
tests/cli/llama_io_test.sh (mpitrain's import and export), in the Python
standard library alone: the file formats only, no math (tests/ref/
llama_ref.py is the reference of the math).

  make DIR [--arch llama|qwen2|qwen3|mistral] [--dtype F32|F16|BF16]
           [--shards N] [--untied] [--bias] [--mlp-bias] [--set KEY=JSON]...
           [--drop TENSOR] [--reshape TENSOR] [--dtype-of TENSOR=DTYPE]
           [--tokenizer]
      --tokenizer: a small SentencePiece-style tokenizer.json (<unk>, the
      256 <0xXX> bytes, a few pieces; <s> 262, </s> 263) with its
      tokenizer_config.json (bos <s>, eos </s>): vocab_size >= 264
      config.json as the class's save_pretrained writes it, random
      weights under HF's names (model.safetensors, or N shards and
      model.safetensors.index.json)
  compare A B [--as DTYPE] [--names-only]
      the same tensors (names, shapes) in both; without --as byte for
      byte (dtypes equal), with --as every value of A rounded to DTYPE (to
      nearest even) equals B's; --names-only: names, shapes and B's dtype
  config-equal A B     every key of A's config.json that shapes the math
      holds the same value in B's (numbers compared as numbers)
  shards DIR           how many .safetensors files hold the weights
"""
import argparse
import json
import os
import random
import struct
import sys

CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
         "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM"}
SIZE = {"F32": 4, "F16": 2, "BF16": 2}
MATH_KEYS = ["model_type", "architectures", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "hidden_size", "head_dim", "intermediate_size",
             "max_position_embeddings", "vocab_size", "rms_norm_eps", "rope_theta",
             "rope_scaling", "attention_bias", "mlp_bias", "tie_word_embeddings", "hidden_act"]


def bf16_bits(x):
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def encode(vals, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    return struct.pack("<%dH" % len(vals), *[bf16_bits(v) for v in vals])


def decode(raw, dtype):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    return [struct.unpack("<f", struct.pack("<I", h << 16))[0]
            for h in struct.unpack("<%dH" % (len(raw) // 2), raw)]


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes)"""
    header, off = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}


def read_model(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single), 1
    index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    out, files = {}, sorted(set(index["weight_map"].values()))
    for f in files:
        out.update(read_safetensors(os.path.join(d, f)))
    return out, len(files)


def tensor_list(a, cfg):
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or C // H
    F, V = cfg["intermediate_size"], cfg["vocab_size"]
    qkv_b = a.arch == "qwen2" or (a.bias and a.arch in ("llama", "qwen3"))
    o_b = a.bias and a.arch in ("llama", "qwen3")
    mlp_b = a.mlp_bias and a.arch == "llama"
    t = [("model.embed_tokens.weight", [V, C])]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        t.append((p + "input_layernorm.weight", [C]))
        for n, rows in (("q", H * hd), ("k", kv * hd), ("v", kv * hd)):
            t.append((p + "self_attn.%s_proj.weight" % n, [rows, C]))
            if qkv_b:
                t.append((p + "self_attn.%s_proj.bias" % n, [rows]))
        if a.arch == "qwen3":
            t += [(p + "self_attn.q_norm.weight", [hd]), (p + "self_attn.k_norm.weight", [hd])]
        t.append((p + "self_attn.o_proj.weight", [C, H * hd]))
        if o_b:
            t.append((p + "self_attn.o_proj.bias", [C]))
        t.append((p + "post_attention_layernorm.weight", [C]))
        for n, shape in (("gate", [F, C]), ("up", [F, C]), ("down", [C, F])):
            t.append((p + "mlp.%s_proj.weight" % n, shape))
            if mlp_b:
                t.append((p + "mlp.%s_proj.bias" % n, shape[:1]))
    t.append(("model.norm.weight", [C]))
    if not cfg["tie_word_embeddings"]:
        t.append(("lm_head.weight", [V, C]))
    return t


def write_tokenizer(d):
    vocab = {"<unk>": 0}
    vocab.update({"<0x%02X>" % b: b + 1 for b in range(256)})
    vocab.update({"\u2581": 257, "h": 258, "i": 259, "\u2581h": 260, "\u2581hi": 261})
    special = lambda i, t: {"id": i, "content": t, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [special(0, "<unk>"), special(262, "<s>"), special(263, "</s>")],
           "normalizer": None,
           "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                             "split": True},
           "post_processor": None,
           "decoder": {"type": "Sequence", "decoders": [
               {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
               {"type": "ByteFallback"}, {"type": "Fuse"}]},
           "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                     "vocab": vocab, "merges": [["\u2581", "h"], "\u2581h i"]}}
    json.dump(tok, open(os.path.join(d, "tokenizer.json"), "w"))
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True,
               "tokenizer_class": "LlamaTokenizer"},
              open(os.path.join(d, "tokenizer_config.json"), "w"))


def cmd_make(a):
    cfg = {"architectures": [CLASS[a.arch]], "model_type": a.arch, "num_hidden_layers": a.layers,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
           "hidden_size": a.embd, "intermediate_size": a.mlp, "max_position_embeddings": a.ctx,
           "vocab_size": a.vocab, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": None,
           "hidden_act": "silu", "attention_dropout": 0.0, "tie_word_embeddings": not a.untied,
           "initializer_range": 0.02, "use_cache": True, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[a.dtype],
           "transformers_version": "4.46.0"}
    if a.head_dim:
        cfg["head_dim"] = a.head_dim
    if a.arch in ("llama", "qwen3"):
        cfg["attention_bias"] = bool(a.bias)
    if a.arch == "llama":
        cfg["mlp_bias"] = bool(a.mlp_bias)
    if a.arch == "mistral":
        cfg["sliding_window"] = None
    if a.arch in ("qwen2", "qwen3"):
        cfg.update(use_sliding_window=False, sliding_window=4096, max_window_layers=a.layers)
    if a.arch == "qwen3" and not a.head_dim:
        cfg["head_dim"] = a.embd // a.heads
    shapes = tensor_list(a, cfg)
    for kv in a.set or []:
        k, v = kv.split("=", 1)
        if v == "DELETE":
            cfg.pop(k, None)
        else:
            cfg[k] = json.loads(v)
    rng = random.Random(a.seed)
    odd = dict(kv.split("=", 1) for kv in a.dtype_of or [])
    tensors = []
    for name, shape in shapes:
        if name == a.drop:
            continue
        if name == a.reshape:
            shape = [shape[0] + 1] + shape[1:]
        n = 1
        for s in shape:
            n *= s
        vals = [1.0 + rng.uniform(-0.1, 0.1) if name.endswith("norm.weight") else rng.gauss(0, 0.2)
                for _ in range(n)]
        if name in odd:  # a dtype mpitrain does not read: its bytes only
            tensors.append((name, odd[name], shape, bytes(n * (8 if odd[name].endswith("64") else 1))))
        else:
            tensors.append((name, a.dtype, shape, encode(vals, a.dtype)))
    os.makedirs(a.out, exist_ok=True)
    if a.tokenizer:
        write_tokenizer(a.out)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), tensors)
        return
    per = (len(tensors) + a.shards - 1) // a.shards
    wmap, total = {}, 0
    for k in range(a.shards):
        part = tensors[k * per:(k + 1) * per]
        f = "model-%05d-of-%05d.safetensors" % (k + 1, a.shards)
        write_safetensors(os.path.join(a.out, f), part)
        for t in part:
            wmap[t[0]] = f
            total += len(t[3])
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=2)


def cmd_compare(a):
    x, _ = read_model(a.a)
    y, _ = read_model(a.b)
    if sorted(x) != sorted(y):
        sys.exit("tensor names differ: only in %s: %s; only in %s: %s" % (
            a.a, sorted(set(x) - set(y))[:5], a.b, sorted(set(y) - set(x))[:5]))
    for name in sorted(x):
        (dx, sx, rx), (dy, sy, ry) = x[name], y[name]
        if sx != sy:
            sys.exit("%s: shape %s vs %s" % (name, sx, sy))
        if not a.as_dtype:
            if a.names_only:
                continue
            if dx != dy or rx != ry:
                sys.exit("%s: %s vs %s, bytes %s" % (name, dx, dy, "equal" if rx == ry else "differ"))
            continue
        if dy != a.as_dtype:
            sys.exit("%s: dtype %s, not %s" % (name, dy, a.as_dtype))
        if a.names_only:
            continue
        want = encode(decode(rx, dx), a.as_dtype)
        if want != ry:
            sys.exit("%s: values of %s rounded to %s differ from %s" % (name, a.a, a.as_dtype, a.b))
    print("%d tensors equal" % len(x))


def cmd_config_equal(a):
    x = json.load(open(os.path.join(a.a, "config.json")))
    y = json.load(open(os.path.join(a.b, "config.json")))
    for k in MATH_KEYS:
        if k in x and x[k] != y.get(k, "(absent)"):
            sys.exit("%s: %r vs %r" % (k, x[k], y.get(k, "(absent)")))
    print("config keys equal")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make")
    p.add_argument("out")
    p.add_argument("--arch", choices=sorted(CLASS), default="llama")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--embd", type=int, default=32)
    p.add_argument("--head-dim", type=int, default=0)
    p.add_argument("--mlp", type=int, default=48)
    p.add_argument("--vocab", type=int, default=100)
    p.add_argument("--ctx", type=int, default=64)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--bias", action="store_true")
    p.add_argument("--mlp-bias", action="store_true")
    p.add_argument("--dtype", choices=sorted(SIZE), default="F32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", metavar="KEY=JSON")
    p.add_argument("--drop", metavar="TENSOR", help="leave the tensor out")
    p.add_argument("--reshape", metavar="TENSOR", help="one row more than the config asks")
    p.add_argument("--dtype-of", action="append", metavar="TENSOR=DTYPE", help="I64, F8_E4M3, ...")
    p.add_argument("--tokenizer", action="store_true")
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--as", dest="as_dtype", choices=sorted(SIZE))
    p.add_argument("--names-only", action="store_true")
    p = sub.add_parser("config-equal")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("shards")
    p.add_argument("dir")
    a = ap.parse_args()
    if a.cmd == "shards":
        print(read_model(a.dir)[1])
        return
    {"make": cmd_make, "compare": cmd_compare, "config-equal": cmd_config_equal}[a.cmd](a)


if __name__ == "__main__":
    main()

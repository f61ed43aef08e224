"""What the float64 references (gpt2_ref.py, llama_ref.py) share: the file
formats, not any model's math.

  safetensors   read and written by hand (the `safetensors` package is not
                installable here): an 8-byte little-endian header length, a
                JSON header {name: {dtype, shape, data_offsets}}, raw data;
                a sharded checkpoint adds model.safetensors.index.json
                ({"metadata": {"total_size"}, "weight_map": {name: file}})
  MPTOKENS      mpitrain's token file: a 64-byte header (magic, version,
                token bytes, vocab, header size, train and validation
                counts, CRC-32C of the first 40 bytes), then the tokens
  first_batch   the first batch mpitrain's loader takes from such a file
  byte_alphabet GPT-2's byte -> character map, the alphabet of byte-level BPE
                tokenizers (vocab.json, tokenizer.json)
  PEFT          a LoRA adapter directory as PEFT saves it: adapter_config.json
                (LoraConfig's keys) and adapter_model.safetensors, whose names
                are "base_model.model." + the HF module path + ".lora_A.weight"
                (r, in) or ".lora_B.weight" (out, r); the adapted module
                computes base(x) + lora_alpha / r * (x @ A.T) @ B.T
"""
import contextlib
import json
import os
import struct
import sys
import traceback

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
TORCH_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
INDEX = "model.safetensors.index.json"


def byte_alphabet():
    """GPT-2's byte -> printable character map, in byte order: printable
    Latin-1 bytes stand for themselves, the rest take U+0100 onwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


# ---- safetensors by hand ------------------------------------------------------

def st_header(raw):
    """The JSON header of a safetensors file's bytes, and where its data starts."""
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, 8 + n


def st_read(path):
    """name -> (dtype, float array (BF16 widened to f32), raw bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    header, base = st_header(raw)
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        data = raw[base + b:base + e]
        if h["dtype"] == "BF16":
            u = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(data, dtype=DTYPES[h["dtype"]])
        out[name] = (h["dtype"], arr.reshape(h["shape"]), data)
    return out


def round_to(dtype, arr):
    """f32 values narrowed to dtype with round to nearest even, as torch's
    .to() does, as raw bytes (NaN aside)."""
    a32 = np.ascontiguousarray(arr, dtype=np.float32)
    if dtype == "BF16":
        u = a32.view(np.uint32).astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    with np.errstate(over="ignore"):  # beyond F16's range: inf, as torch gives
        return a32.astype(DTYPES[dtype]).tobytes()


def st_bytes(dtype, arr):
    """The raw little-endian bytes of arr stored as dtype (BF16: the top 16
    bits of each f32, a truncation: random test weights need no rounding)."""
    if dtype == "BF16":
        a32 = np.ascontiguousarray(arr, dtype=np.float32)
        return (a32.view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(arr, dtype=DTYPES[dtype]).tobytes()


def st_write(path, tensors, order, compact=False):
    """tensors: name -> (dtype, numpy array); order: names in file order;
    compact: the header without spaces, as the safetensors library (and
    mpitrain) write it. Returns the bytes of tensor data written."""
    header, blobs, off = {}, [], 0
    for name in order:
        dtype, arr = tensors[name]
        data = st_bytes(dtype, arr)
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":") if compact else None).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return off


def shard_name(k, n):
    return "model-%05d-of-%05d.safetensors" % (k + 1, n)


def st_write_dir(d, tensors, order, shards=1):
    """A model directory's weights: model.safetensors, or with shards > 1
    transformers' sharded layout (model-0000k-of-0000N.safetensors, split
    in file order at about equal sizes, and the index)."""
    if shards <= 1:
        st_write(os.path.join(d, "model.safetensors"), tensors, order)
        return
    sizes = [len(st_bytes(*tensors[n])) for n in order]
    total, groups, acc = sum(sizes), [[] for _ in range(shards)], 0
    for name, size in zip(order, sizes):
        groups[min(shards - 1, acc * shards // max(total, 1))].append(name)
        acc += size
    groups = [g for g in groups if g]
    weight_map = {}
    for k, g in enumerate(groups):
        fname = shard_name(k, len(groups))
        st_write(os.path.join(d, fname), tensors, g)
        weight_map.update({n: fname for n in g})
    with open(os.path.join(d, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def st_files(src):
    """The safetensors files of SRC: a file, a dir with model.safetensors, or
    a dir with the sharded index (its files in the index's order)."""
    if not os.path.isdir(src):
        return [src]
    single = os.path.join(src, "model.safetensors")
    if os.path.exists(single):
        return [single]
    with open(os.path.join(src, INDEX)) as f:
        wm = json.load(f)["weight_map"]
    return [os.path.join(src, n) for n in dict.fromkeys(wm.values())]


def st_read_all(src):
    """Every tensor of SRC (sharded or not) as st_read gives them; a name in
    two shards is an error."""
    out = {}
    for path in st_files(src):
        for name, v in st_read(path).items():
            assert name not in out, "%s: tensor %s twice" % (path, name)
            out[name] = v
    return out


# ---- LoRA adapters in PEFT's format ----------------------------------------------

PEFT_PREFIX = "base_model.model."


def peft_write(d, adapters, r, alpha, targets, fan_in_fan_out, base):
    """adapters: HF module path -> (A (r, in), B (out, r)), written as F32."""
    os.makedirs(d, exist_ok=True)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
           "lora_dropout": 0.0, "target_modules": sorted(targets), "bias": "none",
           "fan_in_fan_out": fan_in_fan_out, "base_model_name_or_path": base,
           "inference_mode": True, "modules_to_save": None, "use_rslora": False, "use_dora": False,
           "init_lora_weights": True, "layers_to_transform": None, "rank_pattern": {},
           "alpha_pattern": {}, "revision": None}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = {}
    for mod, (a, b) in adapters.items():
        tensors[PEFT_PREFIX + mod + ".lora_A.weight"] = ("F32", a)
        tensors[PEFT_PREFIX + mod + ".lora_B.weight"] = ("F32", b)
    st_write(os.path.join(d, "adapter_model.safetensors"), tensors, sorted(tensors), compact=True)


def peft_read(d):
    """(lora_alpha / r, HF module path -> (A, B) as float64) of an adapter
    directory; what this reference does not compute is an error."""
    with open(os.path.join(d, "adapter_config.json")) as f:
        cfg = json.load(f)
    for key, ok in (("peft_type", cfg.get("peft_type") == "LORA"), ("use_rslora", not cfg.get("use_rslora")),
                    ("use_dora", not cfg.get("use_dora")), ("bias", cfg.get("bias", "none") == "none")):
        if not ok:
            raise ValueError("%s: adapter_config.json %s=%r: not a plain LoRA" % (d, key, cfg.get(key)))
    pairs = {}
    for name, (_, arr, _) in st_read(os.path.join(d, "adapter_model.safetensors")).items():
        if not name.startswith(PEFT_PREFIX) or not name.endswith((".lora_A.weight", ".lora_B.weight")):
            raise ValueError("%s: tensor %s is not a PEFT LoRA name" % (d, name))
        mod, which = name[len(PEFT_PREFIX):-len(".weight")].rsplit(".lora_", 1)
        pairs.setdefault(mod, {})[which] = arr.astype(np.float64)
    for mod, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ValueError("%s: %s has lora_%s only" % (d, mod, "".join(ab)))
    return cfg["lora_alpha"] / cfg["r"], {m: (ab["A"], ab["B"]) for m, ab in pairs.items()}


def add_make_peft(sub, default_targets):
    """The make-peft command both references take: SRC, OUT and the adapter's shape."""
    p = sub.add_parser("make-peft")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--r", type=int, default=4)
    p.add_argument("--alpha", type=float, default=8)
    p.add_argument("--targets", default=default_targets)
    p.add_argument("--seed", type=int, default=11)
    return p


def peft_random(modules, r, seed):
    """Adapters for modules (path -> (out, in)) that change the model: A as
    PEFT initialises it (uniform, bound 1/sqrt(in)), B random instead of
    zero (std 1/sqrt(r)), so both have gradients."""
    g = np.random.default_rng(seed)
    out = {}
    for mod in sorted(modules):
        o, i = modules[mod]
        a = g.uniform(-1.0, 1.0, (r, i)) / np.sqrt(i)
        b = g.standard_normal((o, r)) / np.sqrt(r)
        out[mod] = (a.astype(np.float32), b.astype(np.float32))
    return out


# ---- mpitrain's gradient from one SGD step ---------------------------------------

def ulp32(x):
    return np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)


def grad_errors(w0, w1, g_ref, lr):
    """Per tensor: the largest error of the gradient (w0 - w1) / lr beyond
    what reading it back through a float32 step can cost, over the tensor's
    largest reference gradient. One step p1 = fl(p0 - fl(lr * g)) loses at
    most half an ulp of p1 and of lr * g: that much is forgiven per element."""
    out = {}
    for k, g in g_ref.items():
        got = (w0[k] - w1[k]) / lr
        slack = (0.5 * ulp32(w1[k]) + 0.5 * ulp32(lr * got)) / lr
        excess = np.maximum(np.abs(got - g) - slack, 0.0)
        out[k] = excess.max() / max(np.abs(g).max(), 1e-300)
    return out


# ---- mpitrain's token files -----------------------------------------------------

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


TOKEN_DTYPES = {1: "u1", 2: "<u2", 4: "<u4"}


def make_tokens(out, n, vocab, seed, token_bytes=0):
    """n random training tokens below vocab (and n/10 validation ones) in
    MPTOKENS format: 2-byte ids (version 1), or 4-byte ones (version 2)
    when vocab > 65536 (or token_bytes says so)."""
    tb = token_bytes or (2 if vocab <= 65536 else 4)
    g = np.random.default_rng(seed)
    n_val = max(n // 10, 1)
    toks = g.integers(0, vocab, size=n + n_val).astype(TOKEN_DTYPES[tb])
    head = b"MPTOKENS" + struct.pack("<IIIIQQ", 2 if tb == 4 else 1, tb, vocab, 64, n, n_val)
    head += struct.pack("<I", crc32c(head)) + b"\0" * 20
    with open(out, "wb") as f:
        f.write(head + toks.tobytes())


class LazyTorch:
    """torch, imported on first use: the import takes seconds on a loaded
    machine, and making, comparing and checking models needs only numpy.
    A reference binds `torch = LazyTorch(globals())`; the first attribute
    read imports torch and rebinds that module's name to the real one."""

    def __init__(self, module_globals):
        self._globals = module_globals

    def __getattr__(self, name):
        import torch as real
        self._globals["torch"] = real
        return getattr(real, name)


def batch_shape(s):
    """BxT (a --also argument): B sequences of T tokens, both positive."""
    b, x, t = s.partition("x")
    if not (x and b.isdigit() and t.isdigit() and int(b) > 0 and int(t) > 0):
        raise ValueError("not BxT: %r" % s)
    return int(b), int(t)


def add_batch(sub):
    """The `batch FILE` command of a reference (run_batch)."""
    p = sub.add_parser("batch", help="the commands of FILE in this one process (see ref_common.run_batch)")
    p.add_argument("file")


def run_batch(main, path):
    """`batch FILE`: each line of FILE is OUT and a command's arguments,
    tab-separated (tests/ref/ref_lib.sh refq writes them). The commands run
    in order in this one process, so python starts and torch is imported
    once instead of once a command (seconds each on a loaded machine):
    each one's stdout goes to OUT, its stderr to OUT.err and its exit
    status, as it would have exited alone, to OUT.rc."""
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    for line in lines:
        out, *args = line.split("\t")
        with open(out, "w") as o, open(out + ".err", "w") as e:
            with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
                try:
                    main(args)
                    code = 0
                except SystemExit as x:
                    if x.code is None or isinstance(x.code, int):
                        code = x.code or 0
                    else:  # sys.exit("message"): printed, status 1
                        print(x.code, file=sys.stderr)
                        code = 1
                except Exception:  # an uncaught error: the traceback and status 1, as python gives
                    traceback.print_exc()
                    code = 1
        with open(out + ".rc", "w") as r:
            r.write("%d\n" % code)


def first_batch(path, B, T):
    """Batch 0 as mpitrain's loader takes it: sequence j reads the train
    split's tokens [j*T, j*T+T]; inputs the first T, targets the last T."""
    import torch  # here: importing torch takes seconds, and only the forwards need it
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:8] == b"MPTOKENS"
    tb, _, hdr, n_train, _ = struct.unpack("<IIIQQ", raw[12:40])
    toks = np.frombuffer(raw[hdr:hdr + n_train * tb], dtype=TOKEN_DTYPES[tb]).astype(np.int64)
    seqs = np.stack([toks[j * T:j * T + T + 1] for j in range(B)])
    return torch.from_numpy(seqs[:, :-1].copy()), torch.from_numpy(seqs[:, 1:].copy())

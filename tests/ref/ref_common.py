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
"""
import json
import os
import struct

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


def st_write(path, tensors, order):
    """tensors: name -> (dtype, numpy array); order: names in file order.
    Returns the bytes of tensor data written."""
    header, blobs, off = {}, [], 0
    for name in order:
        dtype, arr = tensors[name]
        data = st_bytes(dtype, arr)
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
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

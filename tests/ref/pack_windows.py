"""Packs the training examples of a masked byte-level token file (version 3,
from `mpitrain prepare --format jsonl`) into windows two ways, for
instruct_test.sh's --doc-attention check:

  ALONE   each example at the start of a window of its own;
  PACKED  as many whole examples to a window as fit.

A window is T tokens; what an example leaves of it is filler (spaces), a
document of its own (the start bit set) that no target counts. The windows
are followed by filler: the last window's last target, then T+1 tokens
of validation. Prints PACKED's window count.

usage: pack_windows.py IN.tok T ALONE.tok PACKED.tok
"""
import struct
import sys

from ref_common import crc32c

START, HEADER = 2, 64


def examples(raw):
    nt, nv = struct.unpack_from("<QQ", raw, 24)
    n = nt + nv
    assert struct.unpack_from("<I", raw, 12)[0] == 1, "a byte-level file"
    toks, mask = raw[HEADER:HEADER + n], raw[HEADER + n:]
    # every example, the validation split's too (the split may cut one)
    starts = [i for i in range(n) if mask[i] & START] + [n]
    return [(toks[a:b], mask[a:b]) for a, b in zip(starts, starts[1:])]


def window(parts, T):
    toks = b"".join(p[0] for p in parts)
    mask = b"".join(p[1] for p in parts)
    pad = T - len(toks)
    assert pad >= 0, "an example longer than the window"
    return toks + b" " * pad, mask + (bytes([START] + [0] * (pad - 1)) if pad else b"")


def write(path, header, windows, T):
    # the last window's last target is the filler's first token: training
    # holds it, and the T+1 tokens after it are the validation split
    toks = b"".join(w[0] for w in windows) + b" " * (2 * T + 2)
    mask = b"".join(w[1] for w in windows) + bytes([START] + [0] * (2 * T + 1))
    n_train = len(windows) * T + 1
    h = bytearray(header)
    struct.pack_into("<QQ", h, 24, n_train, len(toks) - n_train)
    struct.pack_into("<I", h, 40, crc32c(h[:40]))
    with open(path, "wb") as f:
        f.write(bytes(h) + toks + mask)


def main():
    src, T, alone_path, packed_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    raw = open(src, "rb").read()
    ex = examples(raw)
    packed, cur = [], []
    for e in ex:
        if sum(len(p[0]) for p in cur) + len(e[0]) > T:
            packed.append(window(cur, T))
            cur = []
        cur.append(e)
    packed.append(window(cur, T))
    write(alone_path, raw[:HEADER], [window([e], T) for e in ex], T)
    write(packed_path, raw[:HEADER], packed, T)
    print(len(packed))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""png_check.py FILE MIN_W MIN_H: exit 0 if FILE is a PNG that decodes
(chunks, CRCs, zlib, scanline filters) to at least MIN_W x MIN_H pixels and
is not blank (several colours, some of the picture drawn). Standard library
only: an independent reader, not the one that wrote the file."""
import struct, sys, zlib

def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

def decode(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, "bad CRC in %s" % kind
        if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
        if kind == b"IDAT": idat += body
        pos += 12 + n
        if kind == b"IEND": break
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG kind %s" % (ihdr,)
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            line[i] = (line[i] + [0, a, b, (a + b) // 2, paeth(a, b, c)][f]) & 0xFF
        rows.append(line)
        prev = line
    return w, h, bpp, rows

def main():
    path, min_w, min_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    w, h, bpp, rows = decode(open(path, "rb").read())
    colours, drawn = set(), 0
    for line in rows[::4]:
        for x in range(0, w * bpp, bpp * 4):
            px = bytes(line[x:x + 3])
            colours.add(px)
            drawn += px != b"\xff\xff\xff"
    sampled = len(rows[::4]) * len(range(0, w * bpp, bpp * 4))
    ok = w >= min_w and h >= min_h and len(colours) >= 4 and drawn > 0.01 * sampled
    print("%s: %dx%d, %d colours, %.1f%% drawn" % (path, w, h, len(colours), 100.0 * drawn / sampled))
    sys.exit(0 if ok else 1)

main()

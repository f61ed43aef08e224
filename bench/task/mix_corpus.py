#!/usr/bin/python3
"""A pretraining corpus of several texts mixed (bench/task/pretrain.sh).

Training reads a token file front to back, so a start pretrained for fewer
tokens than its corpus holds sees only the corpus's first texts: the KJV
alone, before the fortunes. This cuts each text into its documents (runs
separated by a blank line; a lone heading line such as "Genesis 2" stays
with the paragraph after it) and writes them all in one order shuffled by a
fixed seed, a blank line between: any prefix of OUT has the mixture of the
whole. usage: mix_corpus.py OUT TEXT... [--seed N]
"""
import argparse
import random


def documents(path):
    out, head = [], ""
    for chunk in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
        chunk = chunk.strip("\n")
        if not chunk.strip():
            continue
        if "\n" not in chunk and len(chunk) < 40:  # a heading: with what follows
            head += chunk + "\n\n"
            continue
        out.append(head + chunk)
        head = ""
    if head:  # the text ended on a short line: a document of its own
        out.append(head.rstrip("\n"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("texts", nargs="+")
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    docs = [d for path in a.texts for d in documents(path)]
    random.Random(a.seed).shuffle(docs)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    print("%s: %d documents of %s, mixed" % (a.out, len(docs), ", ".join(a.texts)))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The fortune topic task (docs/task.md): Debian's fortunes (package
fortunes) by category, as a prompted classification task with label words.

Six categories of distinct topics, the fortunes of each at most MAX_BYTES
long (whitespace runs made one space), PER_CLASS of each drawn by a fixed
seed and split train / validation / test (80 / 20 / 20 by default).
Writes into OUT_DIR:
  train.jsonl       instruction examples {"prompt", "completion"}: the loss
                    on the label word alone (mpitrain prepare --format jsonl)
  train_task.jsonl, val.jsonl, test.jsonl
                    multiple-choice items {"context", "choices", "answer"}
                    (mpitrain eval --task, train --eval-task)
  pretrain_extra.txt  the fortunes of every other category, for a
                    pretraining corpus that never saw the task's fortunes;
                    with --topic-pretraining those of the categories in
                    OTHER_TOPICS in the task's prompt format with their own
                    topic word ("Fortune: ...\nTopic: law"), so the start
                    knows the format and the habit of naming a topic, never
                    the task's topics (MeZO's regime: a prompt the start
                    already answers somewhat)
The same files whatever the machine (sorted inputs, Python's seeded
random). usage: fortune_task.py OUT_DIR [--fortunes DIR] [--seed N] [--topic-pretraining]
"""
import argparse
import json
import os
import random
import re
import sys

TOPICS = [("computers", " computers"), ("love", " love"), ("science", " science"),
          ("startrek", " Star Trek"), ("food", " food"), ("politics", " politics")]
# the other categories that name a topic, and its word
OTHER_TOPICS = {"art": " art", "debian": " Debian", "drugs": " drugs", "education": " education",
                "kids": " kids", "law": " law", "linux": " Linux", "literature": " literature",
                "magic": " magic", "medicine": " medicine", "men-women": " men and women",
                "news": " news", "people": " people", "perl": " Perl", "pets": " pets",
                "riddles": " riddles", "songs-poems": " songs", "sports": " sports", "work": " work"}
MAX_BYTES = 180
PER_CLASS = 120
SPLIT = (80, 20, 20)


def fortunes(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = []
    for f in text.split("\n%\n"):
        f = re.sub(r"\s+", " ", f.replace("%", "")).strip()
        if f:
            out.append(f)
    return out


def context(f):
    return "Fortune: %s\nTopic:" % f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--fortunes", default="/usr/share/games/fortunes")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--topic-pretraining", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    labels = [w for _, w in TOPICS]
    splits = {"train": [], "val": [], "test": []}
    for k, (cat, _) in enumerate(TOPICS):
        path = os.path.join(a.fortunes, cat)
        if not os.path.exists(path):
            sys.exit("%s: missing; install Debian's fortunes package (apt-get install fortunes)" % path)
        pool = sorted(set(f for f in fortunes(path) if len(f.encode()) <= MAX_BYTES))
        if len(pool) < PER_CLASS:
            sys.exit("%s: %d fortunes of at most %d bytes, fewer than %d" % (path, len(pool), MAX_BYTES, PER_CLASS))
        take = rng.sample(pool, PER_CLASS)
        a0, a1 = SPLIT[0], SPLIT[0] + SPLIT[1]
        for name, part in (("train", take[:a0]), ("val", take[a0:a1]), ("test", take[a1:])):
            splits[name] += [(f, k) for f in part]
    os.makedirs(a.out, exist_ok=True)
    for name, items in splits.items():
        rng.shuffle(items)
        with open(os.path.join(a.out, "val.jsonl" if name == "val" else "test.jsonl" if name == "test"
                               else "train_task.jsonl"), "w") as f:
            for text, k in items:
                f.write(json.dumps({"context": context(text), "choices": labels, "answer": k}) + "\n")
        if name == "train":
            with open(os.path.join(a.out, "train.jsonl"), "w") as f:
                for text, k in items:
                    f.write(json.dumps({"prompt": context(text), "completion": labels[k]}) + "\n")
    used = {c for c, _ in TOPICS}
    task_texts = {text for items in splits.values() for text, _ in items}
    skipped = 0
    with open(os.path.join(a.out, "pretrain_extra.txt"), "w") as f:
        for cat in sorted(os.listdir(a.fortunes)):
            p = os.path.join(a.fortunes, cat)
            if cat in used or "." in cat or not os.path.isfile(p) or cat in ("ascii-art", "art"):
                continue
            for text in fortunes(p):
                # the same fortune filed under two categories, or quoted in a longer one
                if any(t in text for t in task_texts):
                    skipped += 1
                    continue
                if a.topic_pretraining and cat in OTHER_TOPICS:
                    f.write(context(text) + OTHER_TOPICS[cat] + "\n\n")
                else:
                    f.write(text + "\n\n")
    print("%s: %d train, %d validation, %d test items; %d topics (chance %.3f); pretraining text "
          "leaves out %d fortunes holding a task's" % (a.out, len(splits["train"]), len(splits["val"]),
                                                     len(splits["test"]), len(TOPICS), 1 / len(TOPICS), skipped))


if __name__ == "__main__":
    main()

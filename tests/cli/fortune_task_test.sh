#!/bin/bash
# The fortune topic task (bench/task/fortune_task.py, docs/task.md): the same
# files on every run (a fixed seed), 80/20/20 items per topic, train,
# validation and test disjoint, none of their fortunes in the pretraining
# text, the instruction examples the training items, and the files read by
# `prepare --format jsonl` (the loss on the label alone) and `eval --task`.
# usage: fortune_task_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../check.sh"
scratch_dir "$1" "$2"
[ -s /usr/share/games/fortunes/love ] || { echo "FAIL - Debian's fortunes are missing (apt-get install fortunes)"; exit 1; }
MAKE="/usr/bin/python3 $HERE/../../bench/task/fortune_task.py"
$MAKE a > a.log 2>&1 && $MAKE b > b.log 2>&1
check "made twice, the same files" "cat a.log && for f in train.jsonl train_task.jsonl val.jsonl test.jsonl pretrain_extra.txt; do cmp -s a/\$f b/\$f || exit 1; done"
check "the splits: disjoint, 80/20/20 of each of 6 topics, none in the pretraining text" "python3 - a <<'EOF'
import json, sys, collections
d = sys.argv[1]
sets = {}
for s in ('train_task', 'val', 'test'):
    items = [json.loads(l) for l in open('%s/%s.jsonl' % (d, s))]
    per = collections.Counter(i['answer'] for i in items)
    want = 80 if s == 'train_task' else 20
    assert sorted(per.values()) == [want] * 6, (s, per)
    sets[s] = {i['context'] for i in items}
assert not (sets['train_task'] & sets['val'] or sets['train_task'] & sets['test'] or sets['val'] & sets['test'])
extra = open(d + '/pretrain_extra.txt').read()
for s in sets.values():
    for c in s:
        text = c[len('Fortune: '):-len('\nTopic:')]
        assert text not in extra, text
ex = [json.loads(l) for l in open(d + '/train.jsonl')]
items = [json.loads(l) for l in open(d + '/train_task.jsonl')]
assert [(e['prompt'], e['completion']) for e in ex] == [(i['context'], i['choices'][i['answer']]) for i in items]
EOF"
$MAKE c --topic-pretraining > c.log 2>&1
check "--topic-pretraining: other topics in the prompt format, never the task's topics or fortunes" "python3 - a c <<'EOF'
import json, re, sys
a, c = sys.argv[1:3]
plain, topical = open(a + '/pretrain_extra.txt').read(), open(c + '/pretrain_extra.txt').read()
topics = re.findall(r'\nTopic:( [^\n]*)\n', topical)
assert len(topics) > 1000, len(topics)
labels = set(json.loads(open(a + '/test.jsonl').readline())['choices'])
assert not labels & set(topics), labels & set(topics)
assert 'Topic:' not in plain
for s in ('train_task', 'val', 'test'):
    for l in open('%s/%s.jsonl' % (a, s)):
        assert json.loads(l)['context'] not in topical
for f in ('train.jsonl', 'val.jsonl', 'test.jsonl'):
    assert open('%s/%s' % (a, f)).read() == open('%s/%s' % (c, f)).read(), f
EOF"
python3 -c "print(''.join('Genesis %d\n\n  1 In the beginning %d.\n  2 And the earth.\n\n' % (c, c) for c in range(1, 201)) + 'Zz the end.')" > kjv.txt
/usr/bin/python3 "$HERE/../../bench/task/mix_corpus.py" mixed.txt kjv.txt a/pretrain_extra.txt > mix.log 2>&1
check "mix_corpus.py: every document once, headings kept with their chapter, both texts in the first tenth" "python3 - mixed.txt a/pretrain_extra.txt <<'EOF'
import sys
mixed = open(sys.argv[1]).read()
for c in range(1, 201):
    assert mixed.count('Genesis %d\n\n  1 In the beginning %d.\n' % (c, c)) == 1, c
assert mixed.count('Zz the end.') == 1
docs = mixed.strip().split('\n\n')
fortunes = [d.strip() for d in open(sys.argv[2]).read().split('\n\n') if d.strip()]
assert sorted(d for d in docs if not d.startswith(('Genesis', '  1', 'Zz the end.'))) == sorted(fortunes)
head = mixed[:len(mixed) // 10]
assert 'Genesis' in head and head.count('\n\n') > 100
EOF"
"$BIN" prepare --format jsonl a/train.jsonl --out train.tok --val-fraction 0.1 > prep.log 2>&1
check "prepare --format jsonl reads the examples (the loss on the label alone)" "grep -q 'counted by the loss' prep.log"
M="--layers 1 --heads 2 --embd 32 --seq-len 256 --batch 2 --threads 1 --progress lines --eval-every 0"
"$BIN" train $M --data train.tok --steps 2 --out run > run.log 2>&1
"$BIN" eval --ckpt run --task a/test.jsonl --json > acc.json 2> acc.err
check "eval --task reads the test items (120)" "grep -q '\"items\":120' acc.json"
finish

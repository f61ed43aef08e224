#!/bin/bash
# Elastic DiLoCo (docs/elastic.md): DiLoCo's outer rounds among machines
# that come and go, each its own mpitrain process on its own libfabric
# endpoint, on five simulated hosts (network namespaces, 100 Mbit/s links;
# loopback without root).
#  1. the issue's scenario, twice: 4 machines start, a 5th joins in round 3
#     and counts from it, one is kill -9'ed mid-round 6, the keeper is
#     SIGTERMed in round 10 and hands over. The survivors end with
#     bit-identical weights and identical round logs (who contributed to
#     which round), and the second run gives the same bits as the first;
#  2. int8 on the wire and overlap (each round's exchange behind the next
#     round's inner steps), a machine that freezes (SIGSTOP) past its
#     deadlines is dropped and, resumed, rejoins by itself; 3000 hostile
#     messages at the keeper change nothing; the three end with identical
#     weights;
#  3. a joiner with another seed is refused by name;
#  4. streaming fragments (--diloco 10 --diloco-fragments 2: a half of the
#     weights every 5 steps) while the keeper dies (SIGKILL) right after
#     deciding a round: the lowest member takes over and voids the round in
#     flight, the run goes on, and its end synchronises both halves;
#  5. a machine dropped (frozen) and resumed only after the run has ended
#     learns that it ended from the keeper's last word and ends cleanly.
# Every ordering is waited for, not timed: the keeper decides round 3 only
# with 5 machines ready (MPITRAIN_TEST_SWARM_HOLD, a test hook capped at
# 120 s), so the 5th machine counts from round 3 however loaded the host.
# usage: elastic_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
. "$(cd "$(dirname "$0")/../netcluster" && pwd)/hosts.sh"
GARBAGE=$(cd "$(dirname "$1")" && pwd)/swarm_garbage
scratch_dir "$1" "$2"
PORT=$((21000 + ($$ * 7) % 20000))

for i in $(seq 1 80); do echo "Line $i: and the evening and the morning were the day, saith the preacher."; done > corpus.txt
for i in $(seq 1 80); do echo "Verse $i: in the beginning was the word, and the word was with the preacher."; done > other.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null &&
  "$BIN" prepare other.txt --out other.tok --val-fraction 0.1 > /dev/null || { echo "FAIL - prepare"; exit 1; }
M="--layers 2 --heads 2 --embd 32 --seq-len 32 --batch 4 --threads 1 --eval-every 0 --save-every 0 --progress lines"

# ---- where the machines live: five namespaces, or loopback ----
netcluster_hosts el 10.215.$(($$ % 200)) 5 100mbit
echo "# the machines run on $MODE"
# until_said LOG REGEX: waits (up to 2 minutes) for a line of LOG to match
until_said() { for _ in $(seq 2400); do grep -qE "$2" "$1" 2> /dev/null && return 0; sleep 0.05; done; return 1; }
rounds() { local n; n=$(wc -l < "$1/elastic/rounds.jsonl" 2> /dev/null); echo "${n:-0}"; }
until_rounds() { for _ in $(seq 2400); do [ "$(rounds "$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1; }
stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status" 2> /dev/null; }
export_st() { "$BIN" ckpt export "$1" --format safetensors --out "$1.st" > /dev/null 2>&1; }
# on runs its command in place of the shell: a subshell, or & for the background
# the round lines without this machine's own figures (bytes, time, its share)
history() { sed 's/,"mine":[a-z]*//; s/,"bytes_sent".*//' "$1/elastic/rounds.jsonl"; }

# ---- 1. the scenario ----
D="--optimizer adamw --lr 1e-3 --diloco 5 --steps 70 --swarm-deadline 3 --swarm-misses 2"
scenario() { # scenario DIR PORT
  mkdir -p "$1" && (
    cd "$1" || exit 1
    local keep; keep="$(host 0):$2"
    MPITRAIN_TEST_SWARM_HOLD=3,5 MPITRAIN_TEST_WAIT_STOP=0,47 on 0 "$BIN" train $M $D --data "$PWD/../corpus.tok" \
      --swarm-listen "$keep" --swarm-wait 4 --out m0 > m0.log 2>&1 & p0=$!
    # one at a time, so that slots (and so data offsets) are the same in every run
    on 1 "$BIN" train $M --data "$PWD/../corpus.tok" --swarm-join "$keep" --out m1 > m1.log 2>&1 & p1=$!
    until_said m1.log "welcomed into the run as machine 1"
    MPITRAIN_TEST_KILL=0,27 on 2 "$BIN" train $M --data "$PWD/../other.tok" --swarm-join "$keep" --out m2 > m2.log 2>&1 & p2=$!
    until_said m2.log "welcomed into the run as machine 2"
    on 3 "$BIN" train $M --data "$PWD/../other.tok" --swarm-join "$keep" --out m3 > m3.log 2>&1 & p3=$!
    until_said m3.log "welcomed into the run as machine 3"
    until_rounds m0 2
    on 4 "$BIN" train $M --data "$PWD/../corpus.tok" --swarm-join "$keep" --out m4 > m4.log 2>&1 & p4=$!
    until_said m0.log "test hook MPITRAIN_TEST_WAIT_STOP fires"
    kill -TERM $p0
    for p in p0 p1 p2 p3 p4; do wait ${!p}; echo "$p $?"; done > exits
    for m in m1 m3 m4; do export_st $m; done
  )
}
scenario run1 "$PORT"
cd run1
ex() { sed -n "s/^$1 //p" exits; }
check "the keeper stopped by SIGTERM left with a checkpoint (exit $(ex p0))" "[ '$(ex p0)' = 3 ]"
check "machine 2 was killed (-9) mid-round 6 (exit $(ex p2))" "[ '$(ex p2)' = 137 ]"
check "machines 1, 3 and 4 (joined in round 3) finished (exit $(ex p1) $(ex p3) $(ex p4))" \
  "[ '$(ex p1) $(ex p3) $(ex p4)' = '0 0 0' ]"
check "the 5th machine received the outer state and counted from round 3" \
  "grep -q 'welcomed into the run as machine 4 at round 3' m4.log && grep -q '\"round\":3,.*\"contributors\":\[0,1,2,3,4\]' m1/elastic/rounds.jsonl"
check "the 5th machine's steps before its first round say they have no loss (not nan)" \
  "grep -q '| loss n/a |' m4.log && ! grep -q 'loss nan' m4.log && grep -q '\"step\":1,\"loss\":null' m4/metrics.jsonl"
check "the killed machine was left out of rounds 6 and 7, then dropped" \
  "grep -q '\"round\":6,.*\"contributors\":\[0,1,3,4\]' m1/elastic/rounds.jsonl && grep -q 'machine 2 (.*) was dropped' m0.log"
check "the keeper handed over: machine 1 keeps the run from round 10" \
  "grep -q 'the keeper (machine 0) left; machine 1 keeps the run from round 10' m1.log m3.log m4.log && grep -q '\"round\":10,.*\"contributors\":\[1,3,4\]' m1/elastic/rounds.jsonl"
check "every round committed, 14 of them" \
  "[ \$(grep -c '\"committed\":true' m1/elastic/rounds.jsonl) -eq 14 ]"
check "the survivors hold bit-identical weights" "[ -s m1.st ] && cmp -s m1.st m3.st && cmp -s m1.st m4.st"
check "... and the same history of rounds (the 5th's from round 3 on)" \
  "cmp -s <(history m1) <(history m3) && cmp -s <(history m1 | tail -n +3) <(history m4)"
cd ..
scenario run2 "$((PORT + 1))"
check "the same schedule of events gives the same bits" "[ -s run2/m1.st ] && cmp -s run1/m1.st run2/m1.st && cmp -s <(history run1/m1) <(history run2/m1)"

# ---- 2. int8 and overlap, a frozen machine that rejoins, hostile messages ----
K="$(host 0):$((PORT + 2))"
D2="--optimizer adamw --lr 1e-3 --diloco 5 --steps 60 --swarm-deadline 1 --swarm-misses 2 --diloco-wire int8 --diloco-overlap 1"
# the keeper decides round 8 only with 3 machines ready: the frozen one,
# dropped by then, is back in the run for it
MPITRAIN_TEST_SWARM_HOLD=8,3 on 0 "$BIN" train $M $D2 --data "$PWD/corpus.tok" --swarm-listen "$K" --swarm-wait 3 \
  --out f0 > f0.log 2>&1 & q0=$!
on 1 "$BIN" train $M --data "$PWD/corpus.tok" --swarm-join "$K" --out f1 > f1.log 2>&1 & q1=$!
until_said f1.log "welcomed into the run as machine 1"
MPITRAIN_TEST_SIGSTOP=0,17 on 2 "$BIN" train $M --data "$PWD/other.tok" --swarm-join "$K" --out f2 > f2.log 2>&1 & q2=$!
for _ in $(seq 2400); do stopped $q2 && break; sleep 0.05; done
check "machine 2 froze itself (SIGSTOP) in round 4" "stopped $q2"
until_said f0.log "machine 2 \(.*\) was dropped"
"$GARBAGE" tcp "$K" 3000 42 > garbage.log 2>&1
check "3000 hostile messages reached the keeper's endpoint" "grep -q 'sent 3000 hostile' garbage.log"
kill -CONT $q2
for q in q0 q1 q2; do wait ${!q}; eval "rc_$q=$?"; done
check "the three finished (exit $rc_q0 $rc_q1 $rc_q2)" "[ $rc_q0 -eq 0 ] && [ $rc_q1 -eq 0 ] && [ $rc_q2 -eq 0 ]"
check "the frozen machine, dropped, rejoined by itself and counted again from round 8" \
  "grep -q 'rejoining through the keeper' f2.log && grep -q 'back in the run at round 8' f2.log && grep -q '\"round\":8,.*\"contributors\":\[0,1,2\]' f0/elastic/rounds.jsonl"
for m in f0 f1 f2; do export_st $m; done
check "all three hold bit-identical weights" "[ -s f0.st ] && cmp -s f0.st f1.st && cmp -s f0.st f2.st"
b8=$(sed -n 's/.*"round":2,.*"bytes_sent":\([0-9]*\).*/\1/p' f1/elastic/rounds.jsonl)
b32=$(sed -n 's/.*"round":2,.*"bytes_sent":\([0-9]*\).*/\1/p' run1/m1/elastic/rounds.jsonl)
echo "# a member's bytes in round 2: int8 $b8 (3 machines), fp32 $b32 (4 machines)"
check "int8 puts about a quarter of fp32's bytes per value on the wire" \
  "[ -n '$b8' ] && [ -n '$b32' ] && awk -v a=$b8 -v b=$b32 'BEGIN { exit !(a / (2 * 2 / 3) < 0.35 * b / (2 * 3 / 4)) }'"

# ---- 3. refused at join ----
K3="$(host 0):$((PORT + 3))"
on 0 "$BIN" train $M --optimizer adamw --diloco 5 --steps 100000 --data "$PWD/corpus.tok" --swarm-listen "$K3" \
  --out r0 > r0.log 2>&1 & pr=$!
(on 1 "$BIN" train $M --data "$PWD/corpus.tok" --swarm-join "$K3" --seed 7 --out r1 > r1.log 2>&1)
rc=$?
check "a joiner with another --seed is refused by name (exit $rc)" \
  "[ $rc -eq 1 ] && grep -q -- '--seed 7: the swarm run at $K3 has seed 1337' r1.log"
kill -TERM $pr
wait $pr

# ---- 4. fragments; the keeper dies mid-exchange ----
K4="$(host 0):$((PORT + 4))"
D4="--optimizer adamw --lr 1e-3 --diloco 10 --diloco-fragments 2 --steps 40 --swarm-deadline 1 --swarm-misses 2"
# it sends round 5's decision, then dies (SIGKILL) before any of its pieces
MPITRAIN_TEST_ELASTIC_DIE=5 on 0 "$BIN" train $M $D4 --data "$PWD/corpus.tok" --swarm-listen "$K4" --swarm-wait 4 \
  --out d0 > d0.log 2>&1 & d0=$!
for i in 1 2 3; do
  on $i "$BIN" train $M --data "$PWD/corpus.tok" --swarm-join "$K4" --out d$i > d$i.log 2>&1 & eval "d$i=\$!"
  until_said d$i.log "welcomed into the run as machine $i"
done
for d in d0 d1 d2 d3; do wait ${!d}; eval "rc_$d=$?"; done
check "the keeper died mid-exchange (exit $rc_d0) and the other three finished (exit $rc_d1 $rc_d2 $rc_d3)" \
  "[ $rc_d0 -eq 137 ] && [ $rc_d1 -eq 0 ] && [ $rc_d2 -eq 0 ] && [ $rc_d3 -eq 0 ]"
check "the lowest member took over and voided the round in flight; the next committed without the dead keeper" \
  "grep -q 'the keeper (machine 0) went silent; machine 1 keeps the run from round 5' d1.log && grep -q '\"round\":5,\"committed\":false' d1/elastic/rounds.jsonl && grep -q '\"round\":6,\"committed\":true,.*\"contributors\":\[1,2,3\]' d1/elastic/rounds.jsonl"
# fragment and values of each round: 8 rounds of 5 steps, then the end's second half
frags() { sed 's/.*"fragment":\([0-9]*\),"values":\([0-9]*\).*/\1 \2/' "$1/elastic/rounds.jsonl" | tr '\n' ' '; }
echo "# d1's rounds (fragment values): $(frags d1)"
check "a round every 5 steps, the two halves in turn, and the end synchronises the other half too" \
  "[ \"\$(frags d1 | awk '{ for (i = 1; i < NF; i += 2) printf \"%s\", \$i }')\" = 121212121 ]"
check "... each half of the weights, to within a block of 64 values" \
  "frags d1 | awk '{ d = \$2 - \$4; exit !(\$2 > 1000 && d <= 64 && d >= -64) }'"
check "... the same rounds on every survivor" "[ \"\$(frags d1)\" = \"\$(frags d2)\" ] && [ \"\$(frags d1)\" = \"\$(frags d3)\" ]"
for m in d1 d2 d3; do export_st $m; done
check "the three hold bit-identical weights" "[ -s d1.st ] && cmp -s d1.st d2.st && cmp -s d1.st d3.st"

# ---- 5. dropped, and back only after the run has ended ----
K5="$(host 0):$((PORT + 5))"
D5="--optimizer adamw --lr 1e-3 --diloco 5 --steps 30 --swarm-deadline 1 --swarm-misses 2"
on 0 "$BIN" train $M $D5 --data "$PWD/corpus.tok" --swarm-listen "$K5" --swarm-wait 3 --out e0 > e0.log 2>&1 & e0=$!
on 1 "$BIN" train $M --data "$PWD/corpus.tok" --swarm-join "$K5" --out e1 > e1.log 2>&1 & e1=$!
until_said e1.log "welcomed into the run as machine 1"
MPITRAIN_TEST_SIGSTOP=0,7 on 2 "$BIN" train $M --data "$PWD/corpus.tok" --swarm-join "$K5" --out e2 > e2.log 2>&1 & e2=$!
wait $e0; rc_e0=$?
wait $e1; rc_e1=$?
check "the keeper dropped the frozen machine and the other two finished (exit $rc_e0 $rc_e1)" \
  "[ $rc_e0 -eq 0 ] && [ $rc_e1 -eq 0 ] && grep -q 'machine 2 (.*) was dropped' e0.log"
kill -CONT $e2
wait $e2; rc_e2=$?
check "resumed after the run's end, it learns that the run ended and ends too (exit $rc_e2)" \
  "[ $rc_e2 -eq 0 ] && grep -q 'the run ended (the run ended at round 6) before this machine could rejoin' e2.log && ! grep -q 'did not answer' e2.log"
finish

#!/bin/bash
# The SLURM batch script end to end on a real single-node SLURM (munged,
# slurmctld, slurmd from Debian's slurm-wlm, brought up in the scratch dir):
# `sbatch --wait` trains 2 ranks through srun --mpi=pmix, then a second
# submission with more steps resumes from the run's latest checkpoint.
# usage: slurm_test.sh MPITRAIN_BINARY SCRATCH_DIR   (needs root)
set -u
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DIR=$2
HERE=$(cd "$(dirname "$0")" && pwd)
SBATCH_SCRIPT=$HERE/../../launch/slurm/train.sbatch

for c in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged sbatch srun; do
  if ! command -v "$c" > /dev/null; then
    echo "################################################################"
    echo "SKIP: slurm_test needs Debian's slurm-wlm and munge ($c is missing):"
    echo "      apt-get install -y slurm-wlm munge"
    echo "################################################################"
    exit 0
  fi
done
[ "$(id -u)" -eq 0 ] || { echo "FAIL - slurm_test must run as root: slurmd launches jobs as their user"; exit 1; }

rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || exit 1
DIR=$PWD
. "$HERE/../check.sh"
rows() { grep -c '"loss":' "$1" 2>/dev/null || true; }

# a test run inside a SLURM job must not hand that job's settings to sbatch
unset $(compgen -e | grep -E '^(SLURM|SBATCH|SALLOC|SRUN)_')
# whatever happens below, stop every daemon and job we started
trap 'bash "$HERE/slurm/down.sh" "$DIR/slurm"' EXIT
t0=$SECONDS
up=$(bash "$HERE/slurm/up.sh" "$DIR/slurm" 8) || { bad "SLURM comes up (logs in $DIR/slurm)"; finish; }
eval "$up"
ok "SLURM comes up ($((SECONDS - t0)) s)"

for i in $(seq 1 40); do
  echo "In the beginning, line $i, the quick brown fox jumped over the lazy dog."
done > corpus.txt
"$BIN" prepare corpus.txt --out corpus.tok --val-fraction 0.1 > /dev/null || { bad "prepare"; finish; }

export MPITRAIN_BIN=$BIN MPITRAIN_OUT=$DIR/run
TINY="--layers 1 --heads 2 --embd 16 --seq-len 16 --batch 4 --data $DIR/corpus.tok --threads 1 --eval-every 0 --save-every 3"
submit() {  # submit STEPS: sets $job (its id) and $job_rc (its exit code)
  local out
  out=$(timeout 40 sbatch --wait --parsable -n 2 "$SBATCH_SCRIPT" $TINY --steps "$1")
  job_rc=$?
  job=${out%%;*}
}

t0=$SECONDS
submit 6
check "first job exits 0 (rc $job_rc, $((SECONDS - t0)) s)" "[ $job_rc -eq 0 ]"
log=mpitrain-$job.out
check "job output $log exists" "[ -s '$log' ]"
check "the script printed the allocation" "grep -q 'mpitrain-slurm: job $job .*2 task(s)' '$log'"
check "mpitrain ran 2 ranks under srun" "grep -q '2 rank(s)' '$log'"
check "metrics.jsonl has 6 step rows" "[ \"\$(rows run/metrics.jsonl)\" = 6 ]"
check "ckpt/latest is step 6" "[ \"\$(cat run/ckpt/latest 2>/dev/null)\" = step_00000006 ]"
if [ "$fail" -gt 0 ]; then   # the resume half would only fail again
  echo "--- $log"; cat "$log" 2>/dev/null
  echo "--- slurmd.log"; tail -n 20 "$DIR/slurm/slurmd.log"
  finish
fi

t0=$SECONDS
submit 9
check "second job exits 0 (rc $job_rc, $((SECONDS - t0)) s)" "[ $job_rc -eq 0 ]"
log2=mpitrain-$job.out
check "second job resumed from step 6" "grep -q 'resuming from $DIR/run/ckpt/step_00000006' '$log2' && grep -q '(resumed)' '$log2'"
check "metrics.jsonl now has 9 step rows" "[ \"\$(rows run/metrics.jsonl)\" = 9 ]"
check "ckpt/latest is step 9" "[ \"\$(cat run/ckpt/latest 2>/dev/null)\" = step_00000009 ]"
[ "$fail" -eq 0 ] || { echo "--- $log2"; cat "$log2"; }

# ---- stop on signal --------------------------------------------------------
# 40 steps on 2 ranks, never saved but at the end, unless a signal asks
STOP="--layers 1 --heads 2 --embd 16 --seq-len 16 --batch 4 --data $DIR/corpus.tok --threads 1 --eval-every 0 --save-every 0 --dp 2 --steps 40"
# until the command succeeds, or the (generous) deadline passes
within() {  # within SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" 2>/dev/null; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
}
await() { within "$1" grep -q "$3" "$2"; }  # await SECONDS FILE GREP-PATTERN
# the requeued $job waits in the queue, and its first attempt's step has
# finished cleaning up: the next attempt's step has the same job and step
# ids, and its PMIx socket cannot be bound while the old one exists
requeued_and_clean() {
  scontrol show job "$job" | grep -q 'JobState=PENDING' &&
    [ ! -e "$DIR/slurm/run/spool/stepd.slurm.pmix.$job.0" ] &&
    [ ! -e "$DIR/slurm/run/tmp/spmix_appdir_0_$job.0" ]
}
# a job whose rank 0 waits before step 20 until it has caught a stop signal
# (MPITRAIN_TEST_WAIT_STOP), so the signal lands at step 20 on any machine;
# sets $job once its heartbeat shows step 19
start_held() {  # start_held RUNDIR
  job=$(MPITRAIN_OUT=$1 MPITRAIN_TEST_WAIT_STOP=0,20 sbatch --parsable -n 2 "$SBATCH_SCRIPT" $STOP)
  job=${job%%;*}
  await 90 "$1/heartbeat" '^19$'
}
stopped_ok() {  # stopped_ok RUNDIR LOG SIGNAL: saved step 20 and exited 3
  check "$3: rank 0 says 'stopped at step 20 by $3'" "grep -q 'stopped at step 20 by $3' $2"
  check "$3: the ranks exited 3 (stopped, checkpoint saved)" "grep -q 'mpitrain exited with status 3' $2"
  check "$3: checkpoint step_00000020 is the latest" "[ \"\$(cat $1/ckpt/latest 2>/dev/null)\" = step_00000020 ]"
}
identical=0
same_as_ref() {  # same_as_ref RUNDIR WHAT
  "$BIN" ckpt export "$1" --format safetensors --out "$1.st" > /dev/null 2>&1
  check "$2: final weights equal the uninterrupted job's, bit for bit" "cmp -s ref.st $1.st"
  cmp -s ref.st "$1.st" && identical=$((identical + 1))
}

out=$(MPITRAIN_OUT=$DIR/ref timeout 60 sbatch --wait --parsable -n 2 "$SBATCH_SCRIPT" $STOP)
check "uninterrupted 40-step job exits 0 (rc $?)" "[ -f ref/ckpt/step_00000040/manifest.pb ]"
"$BIN" ckpt export ref --format safetensors --out ref.st > /dev/null

# USR1 to the batch script (what the time limit's --signal=B:USR1@120
# does): the ranks save and stop, the job requeues itself and resumes
start_held "$DIR/u"; check "USR1 job reaches step 19 and waits" "[ $? -eq 0 ]"
scancel --signal=USR1 --batch "$job"
await 60 "mpitrain-$job.out" 'mpitrain exited with status'
stopped_ok u "mpitrain-$job.out" SIGUSR1
check "SIGUSR1: the job requeued itself" "grep -q 'requeueing to resume from $DIR/u/ckpt/step_00000020' mpitrain-$job.out"
# a requeued job is held back about two minutes (its BeginTime): once the
# first attempt is cleaned up, start it now
within 60 requeued_and_clean && scontrol update JobId="$job" StartTime=now
await 240 "mpitrain-$job.out" 'mpitrain exited with status 0'
check "SIGUSR1: the requeued job resumed from step 20 and finished" \
  "grep -q 'resuming from $DIR/u/ckpt/step_00000020' mpitrain-$job.out && [ \"\$(cat u/ckpt/latest)\" = step_00000040 ]"
same_as_ref u "USR1 + requeue"

# scancel --signal=TERM reaches the ranks only: they save and stop, the job
# ends with 3 (no requeue), and submitting again resumes it
start_held "$DIR/t"; check "TERM job reaches step 19 and waits" "[ $? -eq 0 ]"
scancel --signal=TERM "$job"
await 60 "mpitrain-$job.out" 'mpitrain exited with status'
stopped_ok t "mpitrain-$job.out" SIGTERM
check "SIGTERM: no requeue" "! grep -q requeueing mpitrain-$job.out"
out=$(MPITRAIN_OUT=$DIR/t timeout 60 sbatch --wait --parsable -n 2 "$SBATCH_SCRIPT" $STOP)
check "SIGTERM: submitting again resumes from step 20 and finishes (rc $?)" \
  "grep -q 'resuming from $DIR/t/ckpt/step_00000020' mpitrain-${out%%;*}.out && [ \"\$(cat t/ckpt/latest)\" = step_00000040 ]"
same_as_ref t "TERM + resubmit"
echo "     $identical of 2 signal stops resumed bit-identically"
[ "$fail" -eq 0 ] || for f in mpitrain-*.out; do echo "--- $f"; cat "$f"; done

finish

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

finish

# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # sourced: variables come from and go to the script
# The fine-tuning benchmarks' shared pieces (sourced after bench/common.sh
# with work_dir set, and bench/cluster.sh): the KJV-pretrained reference GPT
# fine-tuned on Debian's fortunes by 4 machines for a budget of training time
# (bench/zo_finetune.sh, bench/time_to_quality.sh).
#   ft_prepare            corpora (kjv.tok, fort.tok) and the pretrained
#                         checkpoint ($work/pre, reused while its command is
#                         unchanged), in $work
#   ft_step_ms ARGS...    ms per step of a run of that kind on the current net
#                         (calibrated by a short run, cached per kind and net)
#   ft_run OUT ARGS...    one fine-tuning run of BUDGET s into OUT: with
#                         --time-budget when `mpitrain train --help` lists it
#                         (USE_TIME_BUDGET=0 refuses it), else the calibrated
#                         number of steps; EVAL_POINTS validations
#   ft_table RUN...       markdown rows: validation loss at the end, steps,
#                         training seconds (the sum of step times), bytes sent
# Env: BUDGET=120 (s of training per run), PRE_STEPS=250, EVAL_POINTS=12,
#      FORTUNES=/usr/share/games/fortunes/fortunes, CAL_STEPS=3 (calibration
#      steps, the first left out; DiLoCo: one whole outer round, H+1),
#      CAL_SECONDS=150 (a calibration is stopped, SIGUSR1, after that long:
#      a DP step at 10 Mbit/s takes ~46 s), MIN_STEPS=3 (steps of a run at
#      least, even when they take longer than BUDGET).
BUDGET=${BUDGET:-120}
PRE_STEPS=${PRE_STEPS:-250}
EVAL_POINTS=${EVAL_POINTS:-12}
FORTUNES=${FORTUNES:-/usr/share/games/fortunes/fortunes}
CAL_STEPS=${CAL_STEPS:-3}
CAL_SECONDS=${CAL_SECONDS:-150}
MIN_STEPS=${MIN_STEPS:-3}
command -v bible > /dev/null || die "the bible command is missing: apt-get install bible-kjv"
[ -s "$FORTUNES" ] || die "$FORTUNES is missing: apt-get install fortunes"
[ "$CAL_STEPS" -ge 2 ] || die "CAL_STEPS must be at least 2 (step 1 is left out)"
ft_shared="--init-from $work/pre --data $work/fort.tok --batch 8 --dp 4 --threads 1 --eval-batches 4 --save-every 0 --quiet --overwrite"
ft_bin_id=$(cksum < "$bin" | cut -d' ' -f1)
ft_budget_flag=""
if [ "${USE_TIME_BUDGET:-1}" = 1 ] && "$bin" train --help 2>&1 | grep -q -- '--time-budget'; then
  ft_budget_flag=--time-budget
fi
ft_budget_mode() {
  if [ -n "$ft_budget_flag" ]; then echo "--time-budget ${BUDGET}s"; else echo "steps from a calibrated step time (no --time-budget)"; fi
}

ft_prepare() {
  local w=$work
  [ -s "$w/kjv.tok" ] || { bible 'gen1:1-rev22:21' > "$w/kjv.txt" && "$bin" prepare "$w/kjv.txt" --out "$w/kjv.tok" > /dev/null; }
  [ -s "$w/fort.tok" ] || { cp "$FORTUNES" "$w/fort.txt" && "$bin" prepare "$w/fort.txt" --out "$w/fort.tok" --val-fraction 0.1 > /dev/null; }
  # pretraining: backprop, one rank
  local pre="train --data $w/kjv.tok --steps $PRE_STEPS --lr 2e-3 --min-lr 2e-4 --warmup 20 --batch 8 --eval-every 50 --eval-batches 4 --save-every 0 --threads 2"
  if [ ! -s "$w/pre/summary.json" ] || [ "$(cat "$w/pre.cmd" 2> /dev/null)" != "$pre" ]; then
    echo "== pretraining the reference GPT on the KJV ($PRE_STEPS AdamW steps)"
    rm -rf "$w/pre"
    # shellcheck disable=SC2086
    bench_job "$bin" $pre --quiet --out "$w/pre" > "$w/pre.log" 2>&1 || die "pretraining failed: $(tail -3 "$w/pre.log")"
    echo "$pre" > "$w/pre.cmd"
  fi
  echo "pretrained: $(sed -n 's/.*"final_val_loss":\([0-9.]*\).*/\1/p' "$w/pre/summary.json") KJV val loss"
}

# the value of FLAG in ARGS... ("" when absent)
ft_flag() {
  local f=$1
  shift
  echo " $* " | sed -n "s/.* $f \([^ ]*\) .*/\1/p"
}

# Step time of a run's kind (optimizer, samples, DiLoCo H and overlap, LoRA rank: the
# ZO subsets train at the speed of two forward passes like ZO of every
# tensor), mean over steps 2.. of a short run, cached per kind and net.
ft_step_ms() {
  local opt samples h ov rank key steps rc=0
  opt=$(ft_flag --optimizer "$@")
  samples=$(ft_flag --zo-samples "$@")
  h=$(ft_flag --diloco "$@")
  ov=$(ft_flag --diloco-overlap "$@")
  rank=$(ft_flag --lora-rank "$@")   # LoRA's adapters step (and send) another amount
  # and per binary: a rebuilt one (DiLoCo landing, say) calibrates afresh
  key=$work/cal/$ft_bin_id/$opt-s${samples:-1}-h${h:-0}-o${ov:-0}${rank:+-r$rank}-$nc_cur
  steps=$CAL_STEPS
  [ "${h:-0}" -gt 0 ] && steps=$((h + 1))
  mkdir -p "$work/cal/$ft_bin_id"
  if [ ! -s "$key.ms" ]; then
    # shellcheck disable=SC2086
    RUN_TIMEOUT=$CAL_SECONDS RUN_SIGNAL=USR1 nc_launch train $ft_shared "$@" --steps "$steps" --eval-every 0 \
      --out "$key" > "$key.log" 2>&1 || rc=$?
    case $rc in 0 | 3 | 124) ;; *) die "calibration of $opt on $nc_cur failed: $(tail -3 "$key.log")" ;; esac
    # steps 2.. (step 1 warms up); only step 1 when the time was up before step 2
    awk '/"time_ms"/ { match($0, /"step":[0-9]*/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
                       match($0, /"time_ms":[0-9.]*/); v = substr($0, RSTART + 10, RLENGTH - 10)
                       if (s < 2) { first = v; next }
                       t += v; n++ }
         END { if (n) printf "%.3f\n", t / n; else if (first != "") printf "%.3f\n", first }' \
      "$key/metrics.jsonl" > "$key.ms" 2> /dev/null || true
    rm -rf "$key/ckpt"
    [ -s "$key.ms" ] || die "calibration of $opt on $nc_cur ran no step in ${CAL_SECONDS}s (CAL_SECONDS): $(tail -2 "$key.log")"
  fi
  cat "$key.ms"
}

# ft_run OUT ARGS...: fine-tune for BUDGET s of training. Evaluations every
# steps/EVAL_POINTS (a multiple of H for DiLoCo, so that they fall after an
# outer step; without --time-budget its step count is a multiple of H too). A failed run keeps its rows and says so; returns 1.
ft_run() {
  local out=$1 ms steps every h cap
  shift
  # a calibration that failed (or ran no step in CAL_SECONDS: full AdamW at
  # 1 Mbit/s, a 20 MB all-reduce a step) has said why; the run is skipped
  ms=$(ft_step_ms "$@") || true
  case $ms in
    '' | *[!0-9.]*) echo "   skipping $(basename "$out") on $nc_cur: no step time" >&2; return 1 ;;
  esac
  steps=$(awk -v b="$BUDGET" -v ms="$ms" -v m="$MIN_STEPS" 'BEGIN {s = int(b * 1000 / ms); print s < m ? m : s}')
  every=$((steps / EVAL_POINTS > 0 ? steps / EVAL_POINTS : 1))
  h=$(ft_flag --diloco "$@")
  if [ "${h:-0}" -gt 0 ]; then
    every=$(((every + h - 1) / h * h))
    [ "$steps" -ge "$h" ] && steps=$((steps / h * h))   # end on an outer step
  fi
  local budget=()
  if [ -n "$ft_budget_flag" ]; then
    # the budget ends the run; the step count only caps it, loosely: a
    # DiLoCo calibration pays an outer all-reduce in few steps, and a run
    # with overlap or bf16 steps several times faster than it
    budget=(--time-budget "${TIME_BUDGET_ARG:-${BUDGET}s}")
    cap=$((steps * 20 + 100))
    echo "   $(basename "$out") on $nc_cur: --time-budget ${TIME_BUDGET_ARG:-${BUDGET}s} (~$steps steps at $ms ms), $*"
    steps=$cap
  else
    echo "   $(basename "$out") on $nc_cur: $steps steps ($ms ms each), $*"
  fi
  # shellcheck disable=SC2086
  RUN_TIMEOUT=$((BUDGET * 4 + 600)) nc_launch train $ft_shared "$@" "${budget[@]}" --steps "$steps" \
    --eval-every "$every" --out "$out" > "$out.log" 2>&1 ||
    { echo "$NAME: $(basename "$out") on $nc_cur failed (its rows so far are kept): $(tail -2 "$out.log")" >&2; return 1; }
}

# markdown rows of runs: name, val end, val best, steps, training s, bytes/machine
ft_table() {
  echo "| run | val end | val best | steps | train s | bytes/machine |"
  echo "|---|---|---|---|---|---|"
  local r
  for r in "$@"; do
    awk -v name="$r" '
      /"val_loss"/ { match($0, /"val_loss":[-0-9.e+]*/); v = substr($0, RSTART + 11, RLENGTH - 11) + 0
                     last = v; if (best == "" || v < best) best = v }
      /"time_ms"/  { match($0, /"time_ms":[0-9.]*/); s += substr($0, RSTART + 10, RLENGTH - 10) / 1000
                     match($0, /"comm_bytes":[0-9.]*/); b += substr($0, RSTART + 13, RLENGTH - 13)
                     match($0, /"step":[0-9]*/); n = substr($0, RSTART + 7, RLENGTH - 7) }
      END { printf "| %s | %.3f | %.3f | %d | %.1f | %.0f |\n", name, last, best, n, s, b }
    ' "$r/metrics.jsonl"
  done
}

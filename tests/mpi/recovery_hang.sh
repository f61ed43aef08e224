#!/bin/bash
# A rank that hangs inside step 6 stalls every rank; the supervisor's
# watchdog (counting from the job's first heartbeat, scaled by the longest
# step seen) kills the job and restarts it: on an idle machine, and again
# with a busy loop competing for every core.
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
  load=()
  stop_load() { local p; for p in "${load[@]}"; do kill "$p" 2> /dev/null; wait "$p" 2> /dev/null; done; load=(); }
  trap stop_load EXIT
  reference; check "the uninterrupted reference run" "[ $? -eq 0 ]"

  # $1 out, $2 what runs beside it
  hang_case() {
    local o=$1 what=$2 fired stuck
    MPITRAIN_TEST_HANG=2,6 timeout 300 "$SUP" --max-restarts 2 --timeout 4 -n 4 train $R --dp 4 --out "$o" > "$o.log" 2>&1
    check "$what: a rank sleeping inside step 6 is detected and the job restarted" \
      "[ $? -eq 0 ] && grep -q 'a rank is stuck' $o.log && grep -q 'restart 1/2 from $o/ckpt/step_00000004' $o.log"
    check "$what: only the hang was taken for one: one restart" "[ \$(grep -c 'attempt [0-9]*: job' $o.log) -eq 2 ]"
    "$BIN" ckpt export "$o" --format safetensors --out "$o.st" > /dev/null
    check "$what: the hung run's final weights are bit-identical too" "cmp -s ref.st $o.st"
    check "$what: no process of either attempt is left" "jobs_gone $o.log"
    # reported, not asserted: how long detection and recovery took
    fired=$(t_of "$o.log" 'MPITRAIN_TEST_HANG fires') stuck=$(t_of "$o.log" 'a rank is stuck')
    [ -n "$fired" ] && [ -n "$stuck" ] && awk -v a="$fired" -v b="$stuck" -v w="$what" \
      'BEGIN{printf "     %s: hang detected %.1f s after it began\n", w, b - a}'
    grep -h -e 'a rank is stuck' -e 'recovered' "$o.log" | sed 's/^/     /'
  }
  hang_case h "idle machine"

  # as many busy loops as there are cores (at least 2), for the whole case
  for ((i = 0; i < $(nproc) || i < 2; i++)); do yes > /dev/null & load+=($!); done
  check "${#load[@]} busy loops run beside the job" "[ ${#load[@]} -ge 2 ] && kill -0 ${load[*]}"
  hang_case hl "under load"
  stop_load
finish

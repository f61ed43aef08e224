#!/bin/bash
# A signal to the supervisor stops its job, all of it, and nothing restarts:
# SIGTERM to the supervisor, ^C (SIGINT to its process group), and a job
# that ignores the graceful stop and SIGTERM is killed after --grace.
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
  long="${R/--steps 16/--steps 100000}"
  # the supervisor itself is signalled, not a timeout(1) in front of it;
  # this bound (120 s) on its exit only keeps a broken one from hanging ctest
  reap() {
    local i
    for ((i = 0; i < 600; i++)); do kill -0 "$1" 2> /dev/null || break; sleep 0.2; done
    kill -0 "$1" 2> /dev/null && { echo "     supervisor $1 still runs: killing it" >&2; kill -KILL -- "-$1"; }
    wait "$1"
  }

  # $1 signal, $2 "pgrp" to signal the supervisor's process group, $3 out
  stop_case() {
    local sig=$1 how=$2 o=$3 sup job members p rc gone=1
    # job control: the supervisor leads a process group of its own (as in a
    # terminal) and does not start with SIGINT ignored, as a plain & would
    set -m
    "$SUP" --grace 30 --max-restarts 3 --timeout 60 -n 4 train $long --dp 4 --out "$o" > "$o.log" 2>&1 &
    sup=$!
    set +m
    wait_beat "$o" 6 "$sup"
    check "SIG$sig: the supervised job trains (step 6 reached)" "[ $? -eq 0 ]"
    job=$(job_of "$o.log")
    members=$(session_procs "$job" | cut -d' ' -f1)
    check "SIG$sig: job $job runs mpirun and 4 ranks in its own session" \
      "[ -n \"$job\" ] && [ \$(echo \"$members\" | grep -c .) -ge 5 ]"
    if [ "$how" = pgrp ]; then kill -"$sig" -- "-$sup"; else kill -"$sig" "$sup"; fi
    reap "$sup"
    rc=$?
    # 128 + the signal, or the job's own stop code once the ranks stop
    # gracefully on SIGUSR1 ("stopped at step N; resume with ...")
    check "SIG$sig: the supervisor exits (exit $rc: 128+signal or the job's stop code)" \
      "[ $rc -eq $((128 + $(kill -l "$sig"))) ] || { [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q 'stopped at step' $o.log; }"
    for p in $members; do
      [ -e "/proc/$p" ] && [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$p/stat" 2> /dev/null)" != Z ] &&
        [ "$(sed 's/.*) . [0-9]* [0-9]* \([0-9]*\).*/\1/' "/proc/$p/stat" 2> /dev/null)" = "$job" ] && gone=0
    done
    check "SIG$sig: none of the job's processes ($(echo $members)) is left" "[ $gone = 1 ] && jobs_gone $o.log && no_children $sup"
    check "SIG$sig: the supervisor forwarded the stop and did not restart" \
      "grep -q 'got SIG$sig' $o.log && ! grep -q 'restart 1' $o.log && [ \$(grep -c 'attempt [0-9]*: job' $o.log) -eq 1 ]"
    local beat
    beat=$(stat -c %.9Y "$o/heartbeat")
    sleep 2
    check "SIG$sig: and nothing trains on (the heartbeat stays put)" "[ -n '$beat' ] && [ \"\$(stat -c %.9Y $o/heartbeat)\" = '$beat' ]"
  }
  stop_case TERM pid t
  stop_case INT pgrp c

  # a job deaf to SIGUSR1 and SIGTERM: the grace period ends in SIGKILL
  cat > deaf <<'EOS'
#!/bin/bash
trap '' USR1 TERM
sleep 600 & sleep 600 &
echo up > deaf.up
wait
EOS
  chmod +x deaf
  set -m
  MPITRAIN_MPIRUN="$PWD/deaf" "$SUP" --grace 1 -n 4 train $R --out d > d.log 2>&1 &
  sup=$!
  set +m
  for ((i = 0; i < 600; i++)); do [ -s deaf.up ] && break; sleep 0.2; done
  job=$(job_of d.log)
  check "the deaf job runs in its own session" "[ -n \"$job\" ] && [ \$(session_procs $job | grep -c .) -ge 3 ]"
  kill -TERM "$sup"
  reap "$sup"
  rc=$?
  check "after --grace 1 it is killed, and the supervisor exits 143 (exit $rc)" "[ $rc -eq 143 ] && grep -q 'still running: SIGTERM' d.log"
  check "and none of its processes is left" "jobs_gone d.log && no_children $sup"
finish

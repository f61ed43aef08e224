#!/bin/bash
# The supervisor restarts a killed job from its latest checkpoint; --elastic
# restarts on the ranks the ranks file names, and falls back to N when it
# names garbage. Hangs: recovery_hang.sh; signals: recovery_signal.sh;
# corrupt checkpoints: recovery_fallback.sh.
. "$(dirname "$0")/lib.sh"
. "$HERE/supervise.bash"
  reference; check "the uninterrupted reference run" "[ $? -eq 0 ]"
  victim=$((RANDOM % 4)) step=$((5 + RANDOM % 10))
  MPITRAIN_TEST_KILL=$victim,$step timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out k > k.log 2>&1
  check "kill -9 of rank $victim at step $step: the supervisor restarts and finishes" "[ $? -eq 0 ] && grep -q 'restart 1/2' k.log"
  "$BIN" ckpt export k --format safetensors --out k.st > /dev/null
  check "final weights equal the uninterrupted run's, bit for bit" "cmp -s ref.st k.st"
  check "no process of either attempt is left" "jobs_gone k.log"
  MPITRAIN_TEST_DIE_IN_SAVE=0,12 timeout 240 "$SUP" --max-restarts 2 --timeout 60 -n 4 train $R --dp 4 --out s > s.log 2>&1
  check "killed while writing checkpoint 12: restarted from the intact step 8" "[ $? -eq 0 ] && grep -q 'from s/ckpt/step_00000008' s.log"
  "$BIN" ckpt export s --format safetensors --out s.st > /dev/null
  check "and the final weights are still bit-identical" "cmp -s ref.st s.st"
  echo 2 > avail
  MPITRAIN_TEST_KILL=3,7 timeout 240 "$SUP" --elastic --ranks-file avail --max-restarts 2 --timeout 60 -n 4 train $R --out el > el.log 2>&1
  check "--elastic restarts with the 2 ranks still available" "[ $? -eq 0 ] && grep -q 'with 2 rank(s)' el.log && grep -q '\"ranks\":2' el/summary.json"
  rel=$(max_rel ref/metrics.jsonl el/metrics.jsonl)
  check "and continues the same trajectory (max rel $rel <= 1e-4)" "awk 'BEGIN{exit !($rel <= 1e-4)}'"

  # garbage in the ranks file: a stand-in launcher (MPITRAIN_MPIRUN) fails
  # every attempt and writes the next value, so one supervisor reads them all
  vals=(abc 0 -2 99 5 3 ' 2 ' 08 02 2.5 1e3 99999999999999999999 4)
  want=(4 4 4 4 4 3 2 4 2 4 4 4 4)
  printf '%s\n' "${vals[@]}" > values
  cat > flaky <<'EOS'
#!/bin/bash
# a job that fails at once, after writing the next ranks-file value
i=$(cat count 2> /dev/null || echo 0)
sed -n "$((i + 1))p" values > avail
echo $((i + 1)) > count
exit 1
EOS
  chmod +x flaky
  MPITRAIN_MPIRUN="$PWD/flaky" timeout 120 "$SUP" --elastic --ranks-file avail --max-restarts ${#vals[@]} -n 4 train $R --out fk > fk.log 2>&1
  check "a failing job is restarted ${#vals[@]} times, then given up" "[ $? -eq 1 ] && grep -q 'restart ${#vals[@]}/${#vals[@]}' fk.log"
  for ((i = 0; i < ${#vals[@]}; i++)); do
    check "ranks file '${vals[$i]}': restart $((i + 1)) uses ${want[$i]} rank(s)" \
      "grep -q 'restart $((i + 1))/${#vals[@]} .* with ${want[$i]} rank(s)' fk.log"
  done
  check "each rejected value is logged with the fallback" \
    "[ \$(grep -c 'not a rank count from 1 to 4: using 4' fk.log) -eq 9 ]"
  echo 0 > avail
  MPITRAIN_TEST_KILL=1,7 timeout 240 "$SUP" --elastic --ranks-file avail --max-restarts 2 --timeout 60 -n 4 train $R --out e0 > e0.log 2>&1
  check "a real job with '0' in the ranks file recovers on 4 ranks" "[ $? -eq 0 ] && grep -q 'restart 1/2 .* with 4 rank(s)' e0.log && grep -q '\"ranks\":4' e0/summary.json"
  grep -h 'recovered' k.log s.log el.log | sed 's/^/     /'
finish

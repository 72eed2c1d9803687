#!/usr/bin/env bash
# Run each fuzz target for FUZZ_SECONDS on a scratch copy of its committed
# seeds (test/fuzz/corpus/<t>) and regression inputs (test/fuzz/regress/<t>),
# one target at a time at the lowest CPU priority, and print a table of
# executions and coverage. Exits non-zero if any target crashed, leaked,
# timed out or ran out of memory; the offending input is kept under
# <build>/artifacts/<t>/ and the log under <build>/logs/<t>.log.
#
# usage: FUZZ_SECONDS=60 test/fuzz/run.sh build/fuzz frame term ...
set -uo pipefail

build=$1
shift
secs=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)
nice_cmd=(nice -n "${FUZZ_NICE:-19}")
failed=()
rows=()

for t in "$@"; do
  bin=$build/fuzz_$t
  corpus=$build/corpus/$t
  arts=$build/artifacts/$t
  log=$build/logs/$t.log
  rm -rf "$corpus" "$arts"
  mkdir -p "$corpus" "$arts" "$build/logs"
  for d in "$here/corpus/$t" "$here/regress/$t"; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name 'README*' -exec cp {} "$corpus/" \;
  done
  # Known crashers first: each must now pass on its own.
  regress=()
  [ -d "$here/regress/$t" ] &&
    while IFS= read -r f; do regress+=("$f"); done \
      < <(find "$here/regress/$t" -maxdepth 1 -type f ! -name 'README*' | sort)
  status=ok
  if [ ${#regress[@]} -gt 0 ] &&
     ! "${nice_cmd[@]}" "$bin" "${regress[@]}" > "$build/logs/$t.regress.log" 2>&1; then
    status="REGRESSION (see $build/logs/$t.regress.log)"
  fi
  "${nice_cmd[@]}" "$bin" "$corpus" -max_total_time="$secs" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
      -artifact_prefix="$arts/" > "$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    status="CRASH rc=$rc: $(ls "$arts" | head -1)"
  fi
  [ "$status" = ok ] || failed+=("$t")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  units=$(find "$corpus" -type f | wc -l)
  rows+=("$(printf '%-14s %12s %7s %7s %7s  %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
           "$units" "$status")")
done

printf '\nfuzz: %ss per target\n%-14s %12s %7s %7s %7s  %s\n' "$secs" target execs cov ft corpus result
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (inputs under $build/artifacts/)" >&2
  exit 1
fi

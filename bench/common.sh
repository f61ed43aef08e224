# Shared set-up of the benchmark scripts (sourced, not run). Before sourcing,
# set NAME (used in messages and the temp dir) and `here` (the bench dir).
# Gives: repo, bin, local_launch, py, data, die, a work dir removed on exit
# unless KEEP=1, and the default KJV token file made if missing.
repo=$(cd "$here/.." && pwd)
export MPITRAIN_BIN=${MPITRAIN_BIN:-$repo/build/mpitrain}
bin=$MPITRAIN_BIN
local_launch=$repo/launch/mpitrain-local
py=/usr/bin/python3
data=${MPITRAIN_DATA:-$repo/data/kjv.tok}

die() { echo "$NAME: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin not found; build first (launch/setup.sh) or set MPITRAIN_BIN"

work=$(mktemp -d "/tmp/mpitrain-$NAME.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "run dirs kept in $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

if [ ! -s "$data" ]; then
  echo "== preparing $data"
  mkdir -p "$(dirname "$data")"
  "$bin" prepare --out "$data" || die "mpitrain prepare --out $data failed"
fi

#!/bin/bash
# The house check (tests/house.py, docs/architecture.md): the source tree has
# no include that points up a floor and no circle between modules or rooms;
# and the checker itself finds each kind of fault in a small made-up tree.
# usage: house_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
. "$(cd "$(dirname "$0")/.." && pwd)/check.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
scratch_dir "$1" "$2"

python3 "$SRC/tests/house.py" "$SRC" > house.out 2>&1; rc=$?
sed 's/^/       /' house.out | head -20
check "the source tree: no upward arrow, no module or room circle (exit $rc)" \
  "[ $rc -eq 0 ] && [ ! -s house.out ]"

# a made-up tree: one fault at a time
tree() { rm -rf t && mkdir -p t/base t/worker/a t/worker/b t/models t/comm; }
src() { printf '%s\n' "${@:2}" > "t/$1"; }
verdict() { python3 "$SRC/tests/house.py" t > v.out 2>&1; echo $?; }

tree
src base/x.h '#include "base/y.h"'
src base/y.c '#include "base/y.h"'
src worker/a/p.c '#include "worker/b/q.h"' '#include "base/x.h"'
src worker/b/q.c '#include "models/m.h"'
src models/m.h '#include "base/x.h"'
check "a clean tree passes" "[ $(verdict) -eq 0 ] && [ ! -s v.out ]"

src base/y.c '#include "worker/a/p.h"'
check "an include up a floor is named with its file and line" \
  "[ $(verdict) -eq 1 ] && grep -q 'base/y.c:1: base/ includes worker/a/p (up a floor)' v.out"

tree
src base/x.c '#include "base/y.h"'
src base/y.c '#include "base/x.h"'
check "two modules that include each other are a circle" \
  "[ $(verdict) -eq 1 ] && grep -q 'module circle: base/x <-> base/y' v.out"

tree
src worker/a/p.c '#include "worker/b/q.h"'
src worker/b/q.c '#include "worker/a/r.h"'
check "two rooms that include each other are a circle, with the arrows" \
  "[ $(verdict) -eq 1 ] && grep -q 'room circle: worker/a <-> worker/b' v.out && grep -q 'worker/b/q.c:1' v.out"

tree
src models/m.c '#include "comm/c.h"'
check "models/ never includes comm/" "[ $(verdict) -eq 1 ] && grep -q 'models/ includes comm/c' v.out"
finish

#!/bin/bash
# The installed copy: `cmake --install` of the build the binary comes from
# into a fresh prefix; the files it puts there; libmpitrain.so exporting the
# API of include/mpitrain.h and nothing else; a program built against it
# with pkg-config (and one with find_package) training a step of a tiny GPT
# on data made by the installed `mpitrain prepare`; the launch scripts
# finding the installed binary.
# usage: install_test.sh MPITRAIN_BINARY SCRATCH_DIR
set -u
BIN=$1
DIR=$2
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
BUILD=$(dirname "$BIN")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR" || { echo "FAIL - cannot create $DIR"; exit 1; }
DIR=$PWD   # the prefix and the consumer's paths must not depend on where we started
export OMP_NUM_THREADS=1

. "$SRC/tests/check.sh"
# run CMD...: stdout -> last.out, stderr -> last.err, exit code -> $rc
run() {
  "$@" > last.out 2> last.err
  rc=$?
}

# ---- install ---------------------------------------------------------------
P=$DIR/prefix
run cmake --install "$BUILD" --prefix "$P"
check "cmake --install into a fresh prefix exits 0" "[ $rc -eq 0 ]"
[ "$rc" -eq 0 ] || { bad "cmake --install runs"; finish; }
# lib/ or lib64/ or lib/<triplet>/: wherever GNUInstallDirs put it
pc=$(find "$P" -name mpitrain.pc | head -1)
LIB=$(cd "$(dirname "${pc:-$P/lib/pkgconfig/x}")/.." 2>/dev/null && pwd)
LIB=${LIB:-$P/lib}
VERSION=$(head -1 "$SRC/VERSION")
for f in bin/mpitrain bin/mpitrain-launch bin/mpitrain-local share/mpitrain/slurm/train.sbatch \
         include/mpitrain.h share/doc/mpitrain/api.md; do
  check "installed $f" "[ -s '$P/$f' ]"
done
for f in libmpitrain.so "libmpitrain.so.${VERSION%.*}" "libmpitrain.so.$VERSION" \
         pkgconfig/mpitrain.pc cmake/mpitrain/mpitrainConfig.cmake \
         cmake/mpitrain/mpitrainConfigVersion.cmake; do
  check "installed lib/$f" "[ -e '$LIB/$f' ]"
done
check "libmpitrain.so links to the versioned file" "[ -L '$LIB/libmpitrain.so' ]"
check "the launch scripts are executable" "[ -x '$P/bin/mpitrain-launch' ] && [ -x '$P/bin/mpitrain-local' ]"

run "$P/bin/mpitrain" --version
check "installed mpitrain --version prints $VERSION" "[ $rc -eq 0 ] && grep -qx 'mpitrain $VERSION' last.out"

# ---- what the library exports ------------------------------------------------
# the function names the header declares, and the defined dynamic symbols
grep -oE '\bmpitrain_[a-z_]+\(' "$P/include/mpitrain.h" | tr -d '(' | sort -u > api.names
nm -D --defined-only "$LIB/libmpitrain.so" | awk '{print $NF}' | sort -u > exported.names
check "the header declares the API (mpitrain_train among $(wc -l < api.names) names)" \
  "grep -qx mpitrain_train api.names"
check "libmpitrain.so exports exactly the header's functions" "cmp -s api.names exported.names"
cmp -s api.names exported.names || diff api.names exported.names | sed 's/^/       /' | head -10
check "no exported name outside mpitrain_*" "! grep -qv '^mpitrain_' exported.names"
check "libmpitrain.so needs no unresolved floor symbol" \
  "! nm -D --undefined-only '$LIB/libmpitrain.so' | grep -Eq ' (comm|plan|train|opts|ckpt|model)_'"

# ---- a token file from the installed binary -----------------------------------
for i in $(seq 1 80); do
  echo "And it came to pass, in verse $i, that the quick brown fox jumped over the lazy dog."
done > corpus.txt
run "$P/bin/mpitrain" prepare corpus.txt --out corpus.tok --val-fraction 0.1
check "installed mpitrain prepare makes corpus.tok" "[ $rc -eq 0 ] && [ -s corpus.tok ]"

# ---- a program built with pkg-config ----------------------------------------------
cat > tiny.c <<'EOF'
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <mpitrain.h>

static int steps_seen;
static void on_step(const mpitrain_step *s, void *user) { (void)s; (*(int *)user)++; }

int main(int argc, char **argv)
{
    char err[1024] = "";
    if (mpitrain_init(&argc, &argv)) return 3;
    /* a second init is refused */
    if (mpitrain_init(NULL, NULL) != MPITRAIN_ERR_USAGE) return 4;
    mpitrain_config *c = mpitrain_config_new();
    if (mpitrain_config_set(c, "layers", "abc", err, sizeof err) != MPITRAIN_ERR_USAGE ||
        !strstr(err, "--layers"))
        return 5;
    printf("bad value: %s\n", err);
    if (mpitrain_config_set(c, "no-such-key", "1", err, sizeof err) != MPITRAIN_ERR_USAGE) return 6;
    const char *opts[][2] = {{"data", argv[1]}, {"out", argv[2]}, {"layers", "1"}, {"heads", "2"},
                             {"embd", "16"}, {"seq-len", "16"}, {"batch", "2"}, {"steps", "1"},
                             {"threads", "1"}, {"quiet", NULL}};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (mpitrain_config_set(c, opts[i][0], opts[i][1], err, sizeof err)) {
            fprintf(stderr, "set %s: %s\n", opts[i][0], err);
            return 7;
        }
    mpitrain_config_on_step(c, on_step, &steps_seen);
    mpitrain_result r;
    int rc = mpitrain_train(c, &r, err, sizeof err);
    if (rc) fprintf(stderr, "train: %s\n", err);
    else
        printf("mpitrain %s rank %d/%d: steps %ld, loss %.6f, callbacks %d, checkpoint %s\n",
               mpitrain_version(), mpitrain_rank(), mpitrain_size(), r.steps, r.final_loss,
               steps_seen, r.checkpoint);
    /* the same --out again is refused, as on the command line */
    int again = mpitrain_train(c, &r, err, sizeof err);
    printf("again: %d %s\n", again, err);
    mpitrain_config_free(c);
    mpitrain_finalize();
    return rc ? rc : again == MPITRAIN_ERR_RUNTIME ? 0 : 8;
}
EOF
export PKG_CONFIG_PATH=$LIB/pkgconfig
run pkg-config --modversion mpitrain
check "pkg-config knows mpitrain $VERSION" "[ $rc -eq 0 ] && grep -qx '$VERSION' last.out"
flags=$(pkg-config --cflags --libs mpitrain)
libdir=$(pkg-config --variable=libdir mpitrain)
run cc -Wall -Wextra -Werror tiny.c -o tiny $flags -Wl,-rpath,"$libdir"
check "cc tiny.c \$(pkg-config --cflags --libs mpitrain) builds" "[ $rc -eq 0 ] && [ -x tiny ]"
found=$(ldd ./tiny 2>/dev/null | awk '/libmpitrain/{print $3}')
check "tiny finds the installed libmpitrain.so (rpath)" \
  "[ -n '$found' ] && [ \"\$(readlink -f '$found')\" = \"\$(readlink -f '$LIB/libmpitrain.so')\" ]"

# loss LINE: the loss number of tiny's report, if it is a finite number
loss_ok() { awk '/ loss /{for (i = 1; i <= NF; i++) if ($i == "loss") v = $(i + 1)} END{v = substr(v, 1, length(v) - 1); exit !(v ~ /^[0-9]+\.[0-9]+$/ && v + 0 > 0)}' last.out; }
if [ -x tiny ]; then
  run ./tiny corpus.tok run1
  check "tiny (one MPI process) exits 0" "[ $rc -eq 0 ]"
  check "tiny prints a finite loss after 1 step" "grep -q 'steps 1, loss' last.out && loss_ok"
  check "the step callback ran once" "grep -q 'callbacks 1,' last.out"
  check "a bad value's message names the option" "grep -q 'bad value: .*--layers' last.out"
  check "tiny wrote the run's checkpoint and metrics" \
    "[ -f run1/ckpt/step_00000001/manifest.pb ] && grep -q '\"loss\":' run1/metrics.jsonl"
  check "a second train into the same out is refused with a message" "grep -q 'again: 1 .*--resume' last.out"
  run mpirun -np 2 --oversubscribe --bind-to none --allow-run-as-root ./tiny corpus.tok run2
  check "tiny under mpirun -np 2 exits 0 on both ranks" \
    "[ $rc -eq 0 ] && grep -q 'rank 0/2: steps 1' last.out && grep -q 'rank 1/2: steps 1' last.out"
  check "both ranks get rank 0's checkpoint path" "[ \$(grep -c 'checkpoint run2/ckpt/step_00000001' last.out) -eq 2 ]"
fi

# the example program of the installed docs/api.md, built the way it says
sed -n '/^```c$/,/^```$/p' "$P/share/doc/mpitrain/api.md" | sed '1d;$d' > example.c
run cc -Wall -Wextra -Werror example.c -o example $flags -Wl,-rpath,"$libdir"
check "the example in docs/api.md builds" "[ $rc -eq 0 ] && [ -x example ]"
if [ -x example ]; then
  run ./example corpus.tok run4
  check "the example in docs/api.md trains a step" "[ $rc -eq 0 ] && grep -q 'step 1, loss' last.out && loss_ok"
fi

# ---- a program built with find_package(mpitrain) -----------------------------------
mkdir -p consumer
cp tiny.c consumer/
cat > consumer/CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(tiny C)
find_package(mpitrain REQUIRED)
add_executable(tiny tiny.c)
target_link_libraries(tiny PRIVATE mpitrain::mpitrain)
EOF
run cmake -S consumer -B consumer/build -DCMAKE_PREFIX_PATH="$P"
[ "$rc" -eq 0 ] && run cmake --build consumer/build
check "a CMake project with find_package(mpitrain) builds" "[ $rc -eq 0 ] && [ -x consumer/build/tiny ]"
if [ -x consumer/build/tiny ]; then
  run consumer/build/tiny corpus.tok run3
  check "the CMake-built program trains a step" "[ $rc -eq 0 ] && loss_ok"
fi
sed -i 's/find_package(mpitrain REQUIRED)/find_package(mpitrain 99 REQUIRED)/' consumer/CMakeLists.txt
run cmake -S consumer -B consumer/build99 -DCMAKE_PREFIX_PATH="$P"
check "find_package(mpitrain 99) is refused by the version file" "[ $rc -ne 0 ]"

# ---- the launch scripts use the installed binary ---------------------------------
run env -u MPITRAIN_BIN "$P/bin/mpitrain-local" -n 1 --version
check "installed mpitrain-local runs bin/mpitrain" "[ $rc -eq 0 ] && grep -qx 'mpitrain $VERSION' last.out"
check "installed train.sbatch names the installed binary" \
  "grep -qx 'installed_bin=\"$P/bin/mpitrain\"' '$P/share/mpitrain/slurm/train.sbatch'"
check "the repository's train.sbatch names none" "grep -qx 'installed_bin=\"\"' '$SRC/launch/slurm/train.sbatch'"

finish

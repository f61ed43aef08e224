"""One SGD step's weight change, compared (instruct_test.sh's --doc-attention
check): from BASE, the run SAME must change every weight as REF does, and
the run APART must not.

usage: st_step_match.py BASE.st REF.st SAME.st APART.st
"""
import sys

import numpy as np

from ref_common import st_read


def main():
    base, ref, same, apart = (st_read(p) for p in sys.argv[1:5])
    scale = worst = across = 0.0
    for name, (_, w0, _) in base.items():
        step = ref[name][1] - w0
        scale = max(scale, float(np.abs(step).max()))
        worst = max(worst, float(np.abs(same[name][1] - ref[name][1]).max()))
        across = max(across, float(np.abs(apart[name][1] - ref[name][1]).max()))
    print("# largest step %.3g; %s differs by %.3g, %s by %.3g"
          % (scale, sys.argv[3], worst, sys.argv[4], across))
    sys.exit(not (scale > 1e-3 and worst < 1e-4 * scale and across > 1e-2 * scale))


if __name__ == "__main__":
    main()

#ifndef MPITRAIN_FUZZ_NOOMP_H
#define MPITRAIN_FUZZ_NOOMP_H
/* Stand-in for <omp.h> when clang has no OpenMP runtime (libomp-dev):
 * tests/fuzz_test.sh then builds the fuzzers without -fopenmp, the pragmas
 * are ignored and everything runs on one thread. */
static inline void omp_set_num_threads(int n) { (void)n; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_procs(void) { return 1; }
static inline int omp_in_parallel(void) { return 0; }
#endif

#ifndef MPITRAIN_SYSINFO_H
#define MPITRAIN_SYSINFO_H
/* What this process may use of the machine: memory it can have without
 * swapping, and the CPUs it may run on. */
#include <stddef.h>

/* Bytes this process can still allocate: the kernel's MemAvailable (free
 * memory plus reclaimable page cache, not just MemFree), capped by the
 * cgroup's limit less its usage when one is set. 0 = unknown. */
size_t sys_available_bytes(void);
/* Physical memory, capped by the cgroup's limit. 0 = unknown. */
size_t sys_total_bytes(void);
/* CPUs this process may run on: SLURM_CPUS_PER_TASK when SLURM sets it,
 * else the affinity mask (a launcher that binds ranks narrows it), else
 * the online CPUs. *bound says whether the count is this process's own
 * share (so not to be divided among the node's ranks). */
int sys_usable_cpus(int *bound);

/* The running kernel's boot id (/proc/sys/kernel/random/boot_id): the
 * same for every process of one machine, network namespaces included, so
 * ranks on "different hosts" that share cores can be told apart from real
 * hosts. Empty string when unknown. */
void sys_boot_id(char *buf, size_t n);
/* The CPUs this process may run on (sched_getaffinity) as a bitmap of the
 * first nbits CPUs, one bit per CPU; returns how many CPUs it may use (all
 * of them, also those past nbits), or the online count when affinity is
 * unknown. */
int sys_affinity_bits(unsigned char *bits, int nbits);

/* Bytes this process holds from malloc now (in use in the arenas plus the
 * blocks malloc mapped on its own): what its own allocations amount to,
 * without the libraries' private mappings (OpenBLAS buffers, MPI segments)
 * that RSS also counts. */
size_t sys_heap_bytes(void);

/* How much of the CPU this process's threads got: the seconds they ran and
 * the seconds they waited, runnable, for a CPU another process held
 * (summed over /proc/self/task/N/schedstat). A thread asleep in a wait
 * counts in neither, so run / (run + wait) is the share of the cores it
 * wanted that the machine gave it: 1 on an idle machine, 0.45 when other
 * work held them for the rest. 0, or -1 when the kernel does not say. */
int sys_sched_times(double *run_s, double *wait_s);
/* The 1-minute load average (/proc/loadavg); -1 when unknown. */
double sys_loadavg(void);

/* Parsers, for tests: a /proc/meminfo text -> MemAvailable bytes (0 if
 * absent); a cgroup limit file ("max" or bytes) -> bytes (0 = no limit). */
size_t sys_parse_meminfo_available(const char *text);
size_t sys_parse_cgroup_limit(const char *text);
/* A schedstat line "RUN_NS WAIT_NS SLICES" -> seconds; -1 if malformed. */
int sys_parse_schedstat(const char *text, double *run_s, double *wait_s);

#endif

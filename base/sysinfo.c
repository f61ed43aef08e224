#include "base/sysinfo.h"

#include <dirent.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of a small text file (proc, sysfs) into buf; 0 or -1. */
static int read_small(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = 0;
    return got ? 0 : -1;
}

size_t sys_parse_meminfo_available(const char *text)
{
    const char *p = text ? strstr(text, "MemAvailable:") : NULL;
    if (!p) return 0;
    unsigned long long kb = strtoull(p + strlen("MemAvailable:"), NULL, 10);
    return (size_t)kb * 1024;
}

size_t sys_parse_cgroup_limit(const char *text)
{
    if (!text || !strncmp(text, "max", 3)) return 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text) return 0;
    /* cgroup v1 writes "no limit" as a huge page-rounded number */
    return v >= (1ull << 60) ? 0 : (size_t)v;
}

/* The cgroup's limit and usage (v2, then v1); 0 when there is no limit. */
static size_t cgroup_limit(size_t *usage)
{
    static const char *const pairs[][2] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (read_small(pairs[i][0], buf, sizeof buf)) continue;
        size_t limit = sys_parse_cgroup_limit(buf);
        if (!limit) return 0;
        *usage = read_small(pairs[i][1], buf, sizeof buf) ? 0 : strtoull(buf, NULL, 10);
        return limit;
    }
    return 0;
}

size_t sys_available_bytes(void)
{
    char text[8192];
    size_t avail = read_small("/proc/meminfo", text, sizeof text) ? 0
                                                                 : sys_parse_meminfo_available(text);
    if (!avail) {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
    }
    size_t usage = 0, limit = cgroup_limit(&usage);
    if (limit) {
        size_t room = limit > usage ? limit - usage : 0;
        if (!avail || room < avail) avail = room;
    }
    return avail;
}

size_t sys_total_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t total = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
    size_t usage = 0, limit = cgroup_limit(&usage);
    return limit && (!total || limit < total) ? limit : total;
}

int sys_usable_cpus(int *bound)
{
    const char *slurm = getenv("SLURM_CPUS_PER_TASK");
    int n = slurm ? atoi(slurm) : 0;
    if (n > 0 && n <= 65536) {
        *bound = 1;
        return n;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    cpu_set_t set;
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    *bound = mine > 0 && mine < online;
    return *bound ? mine : (int)online;
}

void sys_boot_id(char *buf, size_t n)
{
    if (!n) return;
    if (read_small("/proc/sys/kernel/random/boot_id", buf, n)) buf[0] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
}

int sys_affinity_bits(unsigned char *bits, int nbits)
{
    memset(bits, 0, (size_t)(nbits + 7) / 8);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        int n = online > 0 ? (int)online : 1;
        for (int c = 0; c < n && c < nbits; c++) bits[c / 8] |= (unsigned char)(1u << (c % 8));
        return n;
    }
    for (int c = 0; c < nbits && c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) bits[c / 8] |= (unsigned char)(1u << (c % 8));
    return CPU_COUNT(&set);
}

#if defined(__SANITIZE_ADDRESS__) /* gcc's spelling */
#define MPITRAIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang's */
#define MPITRAIN_ASAN 1
#endif
#endif
#ifdef MPITRAIN_ASAN
/* AddressSanitizer's allocator replaces malloc's (mallinfo2 then says 0);
 * it keeps the same count of what is allocated (declared here: gcc ships
 * no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t sys_heap_bytes(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
size_t sys_heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

int sys_parse_schedstat(const char *text, double *run_s, double *wait_s)
{
    unsigned long long run, wait;
    if (!text || sscanf(text, "%llu %llu", &run, &wait) != 2) return -1;
    *run_s = run * 1e-9;
    *wait_s = wait * 1e-9;
    return 0;
}

int sys_sched_times(double *run_s, double *wait_s)
{
    *run_s = *wait_s = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int found = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread has ended since the listing */
        double run, wait;
        if (fgets(line, sizeof line, f) && !sys_parse_schedstat(line, &run, &wait)) {
            *run_s += run;
            *wait_s += wait;
            found = 1;
        }
        fclose(f);
    }
    closedir(d);
    return found ? 0 : -1;
}

double sys_loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

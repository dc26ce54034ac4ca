/* ISA-L crc32_iscsi throughput, measured the same way as `Sluice.Benchmarks crc-gbps`:
 * warm-up, one run sized to ~100 ms, then 7 runs; per size prints
 * "size median min max run1..run7" in GB/s (1e9 bytes/s).
 * usage: isal_bench <iscsi|sse|pclmul|avx512|base> <sizes...>
 * ISA-L's crc32_iscsi takes and returns the raw register (no inversion), so the
 * RFC 3720 value is ~crc32_iscsi(buf, len, 0xFFFFFFFF); checked against B.4 at start-up. */
#define _POSIX_C_SOURCE 199309L
#include <isa-l/crc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Multibinary variants exported by libisal.so.2 but not declared in <isa-l/crc.h>:
 * _00 = SSE4.2 crc32 (three streams), _01 = crc32 + PCLMULQDQ, by16_10 = AVX-512 VPCLMULQDQ. */
unsigned int crc32_iscsi_00(unsigned char *buffer, int len, unsigned int init_crc);
unsigned int crc32_iscsi_01(unsigned char *buffer, int len, unsigned int init_crc);
unsigned int crc32_iscsi_by16_10(unsigned char *buffer, int len, unsigned int init_crc);

typedef unsigned int (*crc_fn)(unsigned char *, int, unsigned int);

#define RUNS 7

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile unsigned int sink;

static void loop(crc_fn fn, unsigned char *buf, int size, long iterations)
{
    unsigned int crc = 0;
    for (long i = 0; i < iterations; i++)
        crc ^= fn(buf, size, 0xFFFFFFFFu);
    sink ^= crc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <iscsi|sse|pclmul|avx512|base> <sizes...>\n", argv[0]);
        return 2;
    }
    crc_fn fn;
    if (!strcmp(argv[1], "iscsi")) fn = crc32_iscsi;
    else if (!strcmp(argv[1], "sse")) fn = crc32_iscsi_00;
    else if (!strcmp(argv[1], "pclmul")) fn = crc32_iscsi_01;
    else if (!strcmp(argv[1], "avx512")) fn = crc32_iscsi_by16_10;
    else if (!strcmp(argv[1], "base")) fn = crc32_iscsi_base;
    else { fprintf(stderr, "unknown variant %s\n", argv[1]); return 2; }

    unsigned char v[32] = {0};
    unsigned int check = ~fn(v, 32, 0xFFFFFFFFu);
    if (check != 0x8A9136AAu) {
        fprintf(stderr, "isal %s: RFC 3720 B.4 zeros vector gave 0x%08X\n", argv[1], check);
        return 1;
    }

    printf("# isal variant=%s\n", argv[1]);
    for (int a = 2; a < argc; a++) {
        int size = atoi(argv[a]);
        unsigned char *buf = aligned_alloc(64, ((size_t)size + 63) & ~(size_t)63);
        srand((unsigned)size);
        for (int i = 0; i < size; i++) buf[i] = (unsigned char)rand();

        long iterations = 1000000L / size > 0 ? 1000000L / size : 1;
        double warm_end = now() + 0.2;
        while (now() < warm_end) loop(fn, buf, size, iterations);
        double t = now();
        loop(fn, buf, size, iterations);
        double probe = now() - t;
        iterations = (long)(iterations * 0.1 / (probe > 1e-6 ? probe : 1e-6));
        if (iterations < 1) iterations = 1;

        double gbps[RUNS], sorted[RUNS];
        for (int r = 0; r < RUNS; r++) {
            t = now();
            loop(fn, buf, size, iterations);
            gbps[r] = (double)size * (double)iterations / (now() - t) / 1e9;
            sorted[r] = gbps[r];
        }
        qsort(sorted, RUNS, sizeof sorted[0], cmp_double);
        printf("%d %.2f %.2f %.2f", size, sorted[RUNS / 2], sorted[0], sorted[RUNS - 1]);
        for (int r = 0; r < RUNS; r++) printf(" %.2f", gbps[r]);
        printf("\n");
        free(buf);
    }
    return 0;
}

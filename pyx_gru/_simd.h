/* The vector path the kernels take: one for every CPU.
 *
 * Design: the per-step products (_gemm.h) and the activations
 * (_activations.h) are written once each and compiled once per path; the
 * paths differ only in vector width and instructions:
 *
 *   PYX_SIMD_AVX512    AVX-512F (x86-64), 16 floats a vector
 *   PYX_SIMD_AVX2      AVX2 + FMA (x86-64-v3, most laptops), 8 floats
 *   PYX_SIMD_PORTABLE  any CPU GCC targets (x86-64 with SSE2 only,
 *                      aarch64, ...): GCC's generic 16-byte vectors
 *
 * The path is picked once, from what the CPU supports, and can be set
 * narrower (pyx_simd_set; the extension reads PYX_GRU_SIMD), so that a wide
 * CPU can test and time the narrower paths. Every path of a function does
 * the same operations in the same order on every element (one chain of
 * fused multiply-adds in k order for a product); the AVX-512 and AVX2 paths
 * therefore give bitwise the same results. The portable path fuses where
 * the CPU has a fused multiply-add (aarch64), and otherwise multiplies and
 * adds (two roundings: x86-64 without FMA), so there it agrees with the
 * others to rounding only.
 */
#ifndef PYX_GRU_SIMD_H
#define PYX_GRU_SIMD_H

#define PYX_SIMD_PORTABLE 0
#define PYX_SIMD_AVX2 1
#define PYX_SIMD_AVX512 2

#if defined(__GNUC__) && defined(__x86_64__) && !defined(PYX_GRU_NO_X86_PATHS)
#define PYX_SIMD_X86 1
#define PYX_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PYX_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define PYX_SIMD_X86 0
#endif

#if PYX_SIMD_X86
#include <cpuid.h>

/* The register state the OS saves (XCR0), 0 if it does not say (no
 * OSXSAVE): a CPU with AVX whose OS does not save the wide registers must
 * not use them. Newer compilers' __builtin_cpu_supports checks this too;
 * older libgcc looked at CPUID only. */
static unsigned pyx_os_xcr0(void) {
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}
#endif

/* The widest path this CPU (and its OS) runs. */
static int pyx_simd_widest(void) {
#if PYX_SIMD_X86
    static int widest = -1;
    if (widest < 0) {
        unsigned xcr0 = pyx_os_xcr0();
        int ymm = (xcr0 & 0x6) == 0x6;       /* SSE and AVX state */
        int zmm = (xcr0 & 0xe6) == 0xe6;     /* and the AVX-512 state */
        __builtin_cpu_init();
        if (zmm && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")
            && __builtin_cpu_supports("fma"))
            widest = PYX_SIMD_AVX512;
        else if (ymm && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            widest = PYX_SIMD_AVX2;
        else
            widest = PYX_SIMD_PORTABLE;
    }
    return widest;
#else
    return PYX_SIMD_PORTABLE;
#endif
}

/* The path in use: -1 until first asked, then the widest unless set (the
 * extension asks on import, before any team of threads could). */
static int pyx_simd_level = -1;

static inline int pyx_simd(void) {
    if (pyx_simd_level < 0)
        pyx_simd_level = pyx_simd_widest();
    return pyx_simd_level;
}

/* Take path `level`, or the widest this CPU runs if that is narrower;
 * returns the path now in use. */
static int pyx_simd_set(int level) {
    int widest = pyx_simd_widest();
    if (level < PYX_SIMD_PORTABLE)
        level = PYX_SIMD_PORTABLE;
    pyx_simd_level = level < widest ? level : widest;
    return pyx_simd_level;
}

#endif

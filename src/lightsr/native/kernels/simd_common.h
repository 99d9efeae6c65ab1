// Helpers shared by lightsr's two kernel sources, safmn.cpp (inference) and safmn_train.cpp
// (training's backward kernels), which are compiled into one library (x86-64 with AVX2 and FMA,
// float32, channels last). lightsr.native.ops and setup.py hash this header with the sources, so
// editing it rebuilds the library.

#ifndef LIGHTSR_NATIVE_SIMD_COMMON_H
#define LIGHTSR_NATIVE_SIMD_COMMON_H

#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// Not exported from the library: only the C functions (lsr_*) are its interface.
#pragma GCC visibility push(hidden)

namespace lsr {

// The first n % 8 lanes, or all eight when n % 8 == 0: the mask of a row of n floats' last vector.
inline __m256i tail_mask(int n) {
    alignas(32) int lanes[8];
    for (int l = 0; l < 8; ++l) lanes[l] = (n % 8 == 0 || l < n % 8) ? -1 : 0;
    return _mm256_load_si256((const __m256i*)lanes);
}

// ---- vector width of the matrix products ---------------------------------------------------

// The Winograd-domain matrix products (the bulk of the 3x3 convolutions' arithmetic) run 16
// lanes wide on CPUs with AVX-512F and 8 wide (AVX2) elsewhere or when lsr_set_isa(0) asked for
// it. Either way every output element is the same chain of FMAs in the same order, so the two
// give identical bits. -1: not decided yet (the CPU decides on first use).
inline int& isa_setting() {
    static int level = -1;
    return level;
}
inline bool wide_products() {
    int& level = isa_setting();
    if (level < 0) level = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return level == 1;
}

// The sum of a vector's eight lanes.
inline float hsum(__m256 v) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// ---- exact (erf) GELU -------------------------------------------------------------------------

// exp(x) for x <= 0 (Cephes expf: range reduction by ln 2, degree-5 polynomial).
inline __m256 exp_neg(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// erf(x / sqrt 2), the core of the exact GELU 0.5 x (1 + erf(x / sqrt 2)), by Abramowitz &
// Stegun 7.1.26 (|error| <= 1.5e-7); gauss = exp(-x^2 / 2), which that formula computes anyway
// (the normal density, up to 1 / sqrt(2 pi), for GELU's derivative).
inline __m256 erf_over_sqrt2(__m256 x, __m256& gauss) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    const __m256 az = _mm256_andnot_ps(sign, z);
    // t = 1 / (1 + p |z|): the approximate reciprocal refined by one Newton step (~2e-7 relative)
    const __m256 den = _mm256_fmadd_ps(az, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f));
    const __m256 r0 = _mm256_rcp_ps(den);
    const __m256 t = _mm256_mul_ps(r0, _mm256_fnmadd_ps(den, r0, _mm256_set1_ps(2.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    gauss = exp_neg(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), az), az));
    const __m256 erf_abs = _mm256_fnmadd_ps(p, gauss, _mm256_set1_ps(1.0f));
    return _mm256_or_ps(erf_abs, _mm256_and_ps(sign, z));
}

// Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = exp(-x^2 / 2) / sqrt(2 pi), so that the exact
// GELU (torch's default) is x Phi(x) and its derivative Phi(x) + x phi(x).
inline void normal_cdf_pdf(__m256 x, __m256& cdf, __m256& pdf) {
    __m256 gauss;
    const __m256 erf = erf_over_sqrt2(x, gauss);
    cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
    pdf = _mm256_mul_ps(gauss, _mm256_set1_ps(0.39894228040143268f));
}

// ---- Winograd F(4x4, 3x3) input transform (Lavin & Gray 2016) --------------------------------

// r = B^T d for six rows of channels (B^T of F(4x4, 3x3)), eight channels at a time: n_full
// whole vectors, then, when has_tail, one vector of which only the lanes in `tail` are read
// (masked loads, so that no byte past a pixel's channels is touched). r rows are written whole
// (padded).
inline void input_rows(const float* const d[6], float* const r[6], int n_full, __m256i tail,
                       bool has_tail) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f),
                 two = _mm256_set1_ps(2.0f);
    const int n = n_full + (has_tail ? 1 : 0);
    for (int v = 0; v < n; ++v) {
        __m256 x[6];
        if (v < n_full)
            for (int i = 0; i < 6; ++i) x[i] = _mm256_loadu_ps(d[i] + 8 * v);
        else
            for (int i = 0; i < 6; ++i) x[i] = _mm256_maskload_ps(d[i] + 8 * v, tail);
        const __m256 d4_d2 = _mm256_sub_ps(x[4], x[2]);
        const __m256 d3_d1 = _mm256_sub_ps(x[3], x[1]);
        // r0 = 4 d0 - 5 d2 + d4;       r5 = 4 d1 - 5 d3 + d5
        _mm256_storeu_ps(r[0] + 8 * v, _mm256_fnmadd_ps(five, x[2], _mm256_fmadd_ps(four, x[0], x[4])));
        _mm256_storeu_ps(r[5] + 8 * v, _mm256_fnmadd_ps(five, x[3], _mm256_fmadd_ps(four, x[1], x[5])));
        // r1 = (d3 + d4) - 4 (d1 + d2); r2 = (d4 - d3) + 4 (d1 - d2)
        _mm256_storeu_ps(r[1] + 8 * v, _mm256_fnmadd_ps(four, _mm256_add_ps(x[1], x[2]), _mm256_add_ps(x[3], x[4])));
        _mm256_storeu_ps(r[2] + 8 * v, _mm256_fmadd_ps(four, _mm256_sub_ps(x[1], x[2]), _mm256_sub_ps(x[4], x[3])));
        // r3 = (d4 - d2) + 2 (d3 - d1); r4 = (d4 - d2) - 2 (d3 - d1)
        _mm256_storeu_ps(r[3] + 8 * v, _mm256_fmadd_ps(two, d3_d1, d4_d2));
        _mm256_storeu_ps(r[4] + 8 * v, _mm256_fnmadd_ps(two, d3_d1, d4_d2));
    }
}

// One tile's input transform: v[(a * 6 + b) * stride ...] = (B^T d B)[a][b] (CP floats, C
// rounded up to 8, zero padded) for the 6x6 patch d of C channels whose pixel (i, j) is at
// pixel(i, j) (a row of CP zeros outside the image). `tail` is tail_mask(C); rowt: 36 CP floats
// of scratch, B^T d along the patch's rows, [6 i][6 j][CP].
template <class Pixel>
inline void input_tile(const Pixel& pixel, int C, __m256i tail, float* rowt, float* v,
                       size_t stride) {
    const int CP = (C + 7) / 8 * 8;
    for (int j = 0; j < 6; ++j) {
        const float* d[6];
        float* r[6];
        for (int i = 0; i < 6; ++i) {
            d[i] = pixel(i, j);
            r[i] = rowt + ((size_t)i * 6 + j) * CP;
        }
        input_rows(d, r, C / 8, tail, C % 8 != 0);
    }
    for (int a = 0; a < 6; ++a) {
        const float* d[6];
        float* r[6];
        for (int j = 0; j < 6; ++j) {
            d[j] = rowt + ((size_t)a * 6 + j) * CP;
            r[j] = v + ((size_t)a * 6 + j) * stride;
        }
        input_rows(d, r, CP / 8, tail, false);
    }
}

// ---- threads ----------------------------------------------------------------------------------

// Runs body(r, scratch) for r in [0, rows) on the OpenMP threads with a static schedule (each
// thread gets one contiguous range, in increasing order), each thread with its own zeroed,
// 64-byte aligned scratch of `bytes` bytes. Returns 0, or 2 when a thread's scratch could not
// be allocated (its rows are then left undone).
template <class Body>
int parallel_rows(long rows, size_t bytes, const Body& body) {
    bytes = (bytes + 63) / 64 * 64;
    int failed = 0;
#pragma omp parallel
    {
        void* scratch = aligned_alloc(64, bytes);
        if (!scratch) {
#pragma omp atomic write
            failed = 2;
        } else {
            memset(scratch, 0, bytes);
        }
#pragma omp for schedule(static)
        for (long r = 0; r < rows; ++r)
            if (scratch) body(r, scratch);
        free(scratch);
    }
    return failed;
}

}  // namespace lsr

#pragma GCC visibility pop

#endif  // LIGHTSR_NATIVE_SIMD_COMMON_H

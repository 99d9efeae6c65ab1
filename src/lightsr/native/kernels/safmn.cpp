// Native CPU kernels for SAFMN's feature mixing module (x86-64 with AVX2 and FMA, float32, all
// activations channels last). Built when lightsr is installed (setup.py), or on first use in a
// source checkout, by lightsr.native.ops (g++ -O3 -mavx2 -mfma -fopenmp); called through
// ctypes. Two kernels, which together cover everything in a block after the first LayerNorm,
// the pooling and the depth-wise convolutions:
//
// lsr_safm_out: the SAFM's aggregation, activation, modulation and residual, then the CCM's
//   LayerNorm, per pixel (the nearest upsampling of the pooled levels is an index lookup):
//
//     x' = x + gelu(conv1x1(cat(s0, up2(s1), up4(s2), up8(s3))) + ba) * y      (Eqs. 3-4, 1)
//     y' = LayerNorm(x')
//
// lsr_ccm_f43: the convolutional channel mixer and its residual:
//
//     out = x' + conv1x1(gelu(conv3x3(y') + b1)) + b2
//
//   The 3x3 convolution uses Winograd's minimal filtering algorithm F(4x4, 3x3) (Lavin & Gray,
//   "Fast Algorithms for Convolutional Neural Networks", 2016): a 4x4 output tile costs 36
//   multiplications per channel pair instead of 144. Groups of tiles go through the input
//   transform, 36 small matrix products, the output transform, bias, exact (erf) GELU, the 1x1
//   projection and the residual while they are in the core's caches; the expanded activations
//   (twice the channels) are never written to memory.
//
// Layouts (float32, C-contiguous; C channels, E = expanded channels; H, W multiples of 8):
//   x, y, out, x', y'   (N, H, W, C)
//   s_i                 (N, H >> i, W >> i, C / levels)   the SAFM's levels after their 3x3 dw
//   Wa                  (C, CP)       aggregation weights transposed, CP = C rounded up to 8
//   ba, b2, lw, lb      (CP)          zero padded (lw, lb: the LayerNorm's weight and bias)
//   U                   (36, C, EP)   Winograd-domain 3x3 weights, EP = E rounded up to 24
//   b1                  (EP)
//   W2                  (E, CP)       1x1 projection weights transposed

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simd_common.h"

namespace {

using lsr::erf_over_sqrt2;
using lsr::hsum;
using lsr::normal_cdf_pdf;
using lsr::wide_products;
using lsr::input_tile;
using lsr::parallel_rows;
using lsr::tail_mask;

// Tiles per group: the products run as NT / 4 register-blocked passes of four tiles each, so a
// block of Winograd weights, read from L2, is reused from L1 by the later passes.
constexpr int NT = 8;
constexpr int MAX_C = 512;  // lsr_safm_out's per-pixel buffers

// 0.5 x (1 + erf(x / sqrt 2)): the exact GELU, torch's default.
inline __m256 gelu(__m256 x) {
    __m256 gauss;
    const __m256 erf = erf_over_sqrt2(x, gauss);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                         _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

// ---- Winograd transforms --------------------------------------------------------------------

// Four outputs from six vectors: A^T m (A^T of F(4x4, 3x3)).
inline void output_rows(const __m256 m[6], __m256 o[4]) {
    const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
    const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d34, d12);
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), s34, s12);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d34, d12), m[5]);
}

// ---- register-blocked matrix products ---------------------------------------------------------

// The register-blocked core of every matrix product here: acc[i][v] += sum_k a[i][k] *
// w[k * ldw + 8 v .. 8 v + 7] for P rows and NV vectors of 8 columns (P * NV accumulators,
// NV weight vectors and one broadcast: at most 16 AVX registers).
template <int P, int NV>
__attribute__((always_inline)) inline void mac(const float* const a[P], const float* w, int ldw,
                                               int k, __m256 (&acc)[P][NV]) {
    for (int c = 0; c < k; ++c) {
        const float* wc = w + (size_t)c * ldw;
        __m256 wv[NV];
        for (int v = 0; v < NV; ++v) wv[v] = _mm256_loadu_ps(wc + 8 * v);
        for (int i = 0; i < P; ++i) {
            const __m256 av = _mm256_broadcast_ss(a[i] + c);
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, wv[v], acc[i][v]);
        }
    }
}

// o[t * ldo + 0:24] = sum_c a[t * lda + c] * b[c * ldb + 0:24] for t < 4.
inline void gemm_4x24(const float* a, int lda, const float* b, int ldb, int k, float* o, int ldo) {
    const float* rows[4] = {a, a + lda, a + 2 * (size_t)lda, a + 3 * (size_t)lda};
    __m256 acc[4][3];
    for (int t = 0; t < 4; ++t)
        for (int v = 0; v < 3; ++v) acc[t][v] = _mm256_setzero_ps();
    mac<4, 3>(rows, b, ldb, k, acc);
    for (int t = 0; t < 4; ++t)
        for (int v = 0; v < 3; ++v) _mm256_storeu_ps(o + (size_t)t * ldo + 8 * v, acc[t][v]);
}

// gemm_4x24 for 16 NZ + 8 NY columns (NY 0 or 1) in NZ 16-lane AVX-512 vectors and NY 8-lane
// ones: the same FMAs, in the same order, so the same bits. <4, 1> covers 72 columns in one
// pass (20 accumulators of the 32 registers), <3, 0> 48, <1, 1> 24.
template <int NZ, int NY>
__attribute__((target("avx512f"))) void gemm_4xw(const float* a, int lda, const float* b, int ldb,
                                                  int k, float* o, int ldo) {
    __m512 acc[4][NZ];
    __m256 accy[4];
    for (int t = 0; t < 4; ++t) {
        for (int v = 0; v < NZ; ++v) acc[t][v] = _mm512_setzero_ps();
        accy[t] = _mm256_setzero_ps();
    }
    for (int c = 0; c < k; ++c) {
        const float* wc = b + (size_t)c * ldb;
        __m512 wv[NZ];
        for (int v = 0; v < NZ; ++v) wv[v] = _mm512_loadu_ps(wc + 16 * v);
        const __m256 wy = NY ? _mm256_loadu_ps(wc + 16 * NZ) : _mm256_setzero_ps();
        for (int t = 0; t < 4; ++t) {
            const __m512 av = _mm512_set1_ps(a[(size_t)t * lda + c]);
            for (int v = 0; v < NZ; ++v) acc[t][v] = _mm512_fmadd_ps(av, wv[v], acc[t][v]);
            if (NY) accy[t] = _mm256_fmadd_ps(_mm512_castps512_ps256(av), wy, accy[t]);
        }
    }
    for (int t = 0; t < 4; ++t) {
        for (int v = 0; v < NZ; ++v) _mm512_storeu_ps(o + (size_t)t * ldo + 16 * v, acc[t][v]);
        if (NY) _mm256_storeu_ps(o + (size_t)t * ldo + 16 * NZ, accy[t]);
    }
}

// The product of four rows of a (lda apart) with columns [e, e + width) of b into o, width the
// widest of 72 / 48 / 24 that fits in n - e columns (all 24 on AVX2, where only gemm_4x24
// runs); returns the width.
inline int gemm_4_cols(bool wide, int n, int e, const float* a, int lda, const float* b, int ldb,
                       int k, float* o, int ldo) {
    if (!wide) {
        gemm_4x24(a, lda, b + e, ldb, k, o + e, ldo);
        return 24;
    }
    if (n - e >= 72) {
        gemm_4xw<4, 1>(a, lda, b + e, ldb, k, o + e, ldo);
        return 72;
    }
    if (n - e >= 48) {
        gemm_4xw<3, 0>(a, lda, b + e, ldb, k, o + e, ldo);
        return 48;
    }
    gemm_4xw<1, 1>(a, lda, b + e, ldb, k, o + e, ldo);
    return 24;
}

// The 1x1 projection of P pixels to NV vectors of output channels, with bias and residual:
// o[i][0:8 NV] = x[i][0:8 NV] + b[0:8 NV] + sum_e a[i][e] w[e * ldw + 0:8 NV]. With `masked`,
// the last vector is read and written only in the lanes of `tail` (a pixel's last channels).
template <int P, int NV>
inline void project(const float* const a[P], const float* w, int ldw, int k, const float* b,
                    const float* const x[P], float* const o[P], bool masked, __m256i tail) {
    __m256 acc[P][NV];
    for (int v = 0; v < NV; ++v) {
        const bool part = masked && v == NV - 1;
        const __m256 bv = _mm256_loadu_ps(b + 8 * v);
        for (int i = 0; i < P; ++i) {
            const __m256 xv = part ? _mm256_maskload_ps(x[i] + 8 * v, tail)
                                   : _mm256_loadu_ps(x[i] + 8 * v);
            acc[i][v] = _mm256_add_ps(xv, bv);
        }
    }
    mac<P, NV>(a, w, ldw, k, acc);
    for (int v = 0; v < NV; ++v) {
        const bool part = masked && v == NV - 1;
        for (int i = 0; i < P; ++i) {
            if (part) _mm256_maskstore_ps(o[i] + 8 * v, tail, acc[i][v]);
            else _mm256_storeu_ps(o[i] + 8 * v, acc[i][v]);
        }
    }
}

// project() over all output channels in chunks of at most 3 vectors: 4 x 3 accumulators, 3
// weight vectors and a broadcast fill the 16 AVX registers.
template <int P>
inline void project_all(const float* const a[P], const float* w, int ldw, int k, const float* b,
                        const float* const x[P], float* const o[P], int C, __m256i tail) {
    const int nvec = (C + 7) / 8;
    for (int v0 = 0; v0 < nvec; v0 += 3) {
        const int nv = nvec - v0 < 3 ? nvec - v0 : 3;
        const bool masked = (v0 + nv == nvec) && (C % 8 != 0);
        const float* xs[P];
        float* os[P];
        for (int i = 0; i < P; ++i) {
            xs[i] = x[i] + 8 * v0;
            os[i] = o[i] + 8 * v0;
        }
        const float* wc = w + 8 * v0;
        const float* bc = b + 8 * v0;
        switch (nv) {
            case 3: project<P, 3>(a, wc, ldw, k, bc, xs, os, masked, tail); break;
            case 2: project<P, 2>(a, wc, ldw, k, bc, xs, os, masked, tail); break;
            default: project<P, 1>(a, wc, ldw, k, bc, xs, os, masked, tail); break;
        }
    }
}

// Writes n floats from src (n % 8 lanes of the last vector through a mask: one vmaskmovps per
// run of four pixels, since those stores are slow on AMD).
inline void write_run(float* dst, const float* src, int n, __m256i tail) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    if (i < n) _mm256_maskstore_ps(dst + i, tail, _mm256_loadu_ps(src + i));
}

// Four pixels' channel vectors t[q][0:C] packed into one contiguous run (each pixel's padded
// last vector spills into the next pixel's place before that is written), then written.
inline void write_run(float* dst, const float (*t)[MAX_C], int C, int nvec, float* stage,
                      __m256i tail) {
    for (int q = 0; q < 4; ++q)
        for (int v = 0; v < nvec; ++v)
            _mm256_storeu_ps(stage + q * C + 8 * v, _mm256_load_ps(t[q] + 8 * v));
    write_run(dst, stage, 4 * C, tail);
}

// LayerNorm over the C channels of four pixels (pixel q at x + q * sx; two passes in float32,
// like torch's), written as one contiguous run of 4 C floats at dst through `stage`
// (4 C + 8 floats). lw, lb: weight and bias padded to whole vectors.
inline void layer_norm4(const float* x, int sx, int C, __m256i tail, const float* lw,
                        const float* lb, float eps, float* stage, float* dst, __m256i run_tail) {
    const int nvec = (C + 7) / 8;
    const __m256i all = _mm256_set1_epi32(-1);
    for (int q = 0; q < 4; ++q) {
        const float* xq = x + (size_t)q * sx;
        __m256 sum = _mm256_setzero_ps();
        for (int v = 0; v < nvec; ++v)
            sum = _mm256_add_ps(sum, _mm256_maskload_ps(xq + 8 * v, v == nvec - 1 ? tail : all));
        const __m256 mean = _mm256_set1_ps(hsum(sum) / C);
        __m256 sq = _mm256_setzero_ps();
        for (int v = 0; v < nvec; ++v) {
            const __m256i m = v == nvec - 1 ? tail : all;
            const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(xq + 8 * v, m), mean),
                                           _mm256_castsi256_ps(m));
            sq = _mm256_fmadd_ps(d, d, sq);
        }
        const __m256 rstd = _mm256_set1_ps(1.0f / sqrtf(hsum(sq) / C + eps));
        for (int v = 0; v < nvec; ++v) {
            const __m256 xv = _mm256_maskload_ps(xq + 8 * v, v == nvec - 1 ? tail : all);
            const __m256 nrm = _mm256_mul_ps(_mm256_sub_ps(xv, mean), rstd);
            // unaligned: a pixel's padded last vector spills into the next pixel's place
            _mm256_storeu_ps(stage + q * C + 8 * v,
                             _mm256_fmadd_ps(nrm, _mm256_loadu_ps(lw + 8 * v), _mm256_loadu_ps(lb + 8 * v)));
        }
    }
    write_run(dst, stage, 4 * C, run_tail);
}

}  // namespace

extern "C" {

// Scratch floats one thread of lsr_ccm_f43 needs.
long lsr_ccm_scratch_floats(int C, int E) {
    const long EP = (E + 23) / 24 * 24, CP = (C + 7) / 8 * 8;
    return 36L * NT * CP     // V: transformed input tiles
           + 36L * NT * EP   // M: products in the Winograd domain
           + NT * 16L * EP   // h: expanded activations of the group's pixels
           + 36L * CP        // row-transformed patch of one tile
           + CP              // zeros (the image border)
           + 4L * C + 8;     // staging run of the output LayerNorm
}

}  // extern "C"

namespace {

// One row of tiles of one image (output rows 4 ty .. 4 ty + 3). With `ring`, y and x hold only
// rows r at slot r % 8 (lsr_block's ring buffers); else they are the whole image. With
// `conv_only`, out (E channels per pixel) gets the 3x3 convolution plus b1 and nothing else;
// with `slope` too, out gets the GELU of that and slope (as out) the GELU's derivative there.
void tile_row(const float* y, const float* x, bool ring, float* out, int H, int W, int C, int E,
              const float* U, const float* b1, const float* W2, const float* b2, float* yn,
              const float* lw, const float* lb, float eps, int ty, float* scratch,
              bool conv_only = false, const long* shuffle_at = nullptr, int shuffle = 0,
              float* slope = nullptr) {
    const size_t row_floats = (size_t)W * C;
    auto at_row = [&](const float* base, int r) {
        return base + (ring ? (size_t)(r & 7) : (size_t)r) * row_floats;
    };
    const int EP = (E + 23) / 24 * 24, CP = (C + 7) / 8 * 8, TW = W / 4;
    float* V = scratch;                         // [36][NT][CP]
    float* M = V + 36L * NT * CP;               // [36][NT][EP]
    float* h = M + 36L * NT * EP;               // [NT * 16][EP]
    float* rowt = h + NT * 16L * EP;            // [6 a][6 j][CP]
    const float* zeros = rowt + 36L * CP;       // [CP]
    float* stage = rowt + 36L * CP + CP;        // [4 C + 8]
    const __m256i tail = tail_mask(C), run_tail = tail_mask(4 * C), e_tail = tail_mask(E);
    const bool wide = wide_products();

    {
        for (int tx0 = 0; tx0 < TW; tx0 += NT) {
            const int nt = TW - tx0 < NT ? TW - tx0 : NT;
            // 1. input transform: V[a*6+b][t] = (B^T d B)[a][b] of the 6x6 patch at (4ty-1, 4tx-1)
            for (int t = 0; t < nt; ++t) {
                const int oy = 4 * ty - 1, ox = 4 * (tx0 + t) - 1;
                const auto pixel = [&](int i, int j) {
                    const int row = oy + i, col = ox + j;
                    return (row < 0 || row >= H || col < 0 || col >= W)
                               ? zeros
                               : at_row(y, row) + (size_t)col * C;
                };
                input_tile(pixel, C, tail, rowt, V + (size_t)t * CP, (size_t)NT * CP);
            }
            // 2. 36 products (NT x C) @ (C x EP), up to 72 columns at a time where AVX-512 runs
            for (int k = 0; k < 36; ++k)
                for (int e = 0; e < EP;) {
                    int width = 24;
                    for (int t0 = 0; t0 < nt; t0 += 4)
                        width = gemm_4_cols(wide, EP, e, V + ((size_t)k * NT + t0) * CP, CP,
                                            U + (size_t)k * C * EP, EP, C,
                                            M + ((size_t)k * NT + t0) * EP, EP);
                    e += width;
                }
            // 3. output transform, bias, GELU -> h[t * 16 + p * 4 + q][e]
            for (int t = 0; t < nt; ++t) {
                for (int e = 0; e < EP; e += 8) {
                    __m256 s[4][6];
                    for (int b = 0; b < 6; ++b) {
                        __m256 m[6], o[4];
                        for (int a = 0; a < 6; ++a)
                            m[a] = _mm256_loadu_ps(M + ((size_t)(a * 6 + b) * NT + t) * EP + e);
                        output_rows(m, o);
                        for (int p = 0; p < 4; ++p) s[p][b] = o[p];
                    }
                    const __m256 bias = _mm256_loadu_ps(b1 + e);
                    for (int p = 0; p < 4; ++p) {
                        __m256 o[4];
                        output_rows(s[p], o);
                        if (conv_only && shuffle_at) {  // scattered to pixel-shuffle places
                            const int ne = E - e < 8 ? E - e : 8;
                            if (ne <= 0) continue;
                            const size_t ws = (size_t)W * shuffle;
                            float* base = out + (size_t)(4 * ty + p) * shuffle * ws +
                                          (size_t)4 * (tx0 + t) * shuffle;
                            alignas(32) float lanes8[8];
                            for (int q = 0; q < 4; ++q) {
                                _mm256_store_ps(lanes8, _mm256_add_ps(o[q], bias));
                                float* pq = base + (size_t)q * shuffle;
                                for (int l = 0; l < ne; ++l) pq[shuffle_at[e + l]] = lanes8[l];
                            }
                            continue;
                        }
                        if (conv_only) {  // the convolution itself, E channels per pixel
                            const size_t at = ((size_t)(4 * ty + p) * W + 4 * (tx0 + t)) * E + e;
                            for (int q = 0; q < 4; ++q) {
                                if (e >= E) break;
                                __m256 v = _mm256_add_ps(o[q], bias);
                                const size_t i = at + (size_t)q * E;
                                if (slope) {  // GELU and its derivative (training's CCM)
                                    __m256 cdf, pdf;
                                    normal_cdf_pdf(v, cdf, pdf);
                                    const __m256 d = _mm256_fmadd_ps(v, pdf, cdf);
                                    v = _mm256_mul_ps(v, cdf);
                                    if (e + 8 <= E) _mm256_storeu_ps(slope + i, d);
                                    else _mm256_maskstore_ps(slope + i, e_tail, d);
                                }
                                if (e + 8 <= E) _mm256_storeu_ps(out + i, v);
                                else _mm256_maskstore_ps(out + i, e_tail, v);
                            }
                            continue;
                        }
                        for (int q = 0; q < 4; ++q)
                            _mm256_storeu_ps(h + ((size_t)t * 16 + p * 4 + q) * EP + e,
                                             gelu(_mm256_add_ps(o[q], bias)));
                    }
                }
            }
            // 4. 1x1 projection, bias and residual, four pixels (one row of a tile) at a time
            for (int px = 0; px < (conv_only ? 0 : nt * 16); px += 4) {
                const int t = px / 16, p = px % 16 / 4;
                const size_t at = ((size_t)(4 * ty + p) * W + 4 * (tx0 + t)) * C;
                const float* a[4];
                const float* xr[4];
                float* o[4];
                for (int q = 0; q < 4; ++q) {
                    a[q] = h + (size_t)(px + q) * EP;
                    xr[q] = at_row(x, 4 * ty + p) + (size_t)(4 * (tx0 + t) + q) * C;
                    o[q] = out + at + (size_t)q * C;
                }
                project_all<4>(a, W2, CP, E, b2, xr, o, C, tail);
                // the next block's first LayerNorm of these four (contiguous) pixels
                if (yn) layer_norm4(out + at, C, C, tail, lw, lb, eps, stage, yn + at, run_tail);
            }
        }
    }
}

}  // namespace

extern "C" {

// The whole batch: out = x + conv1x1(gelu(conv3x3(y))) for N images of (H, W, C), rows of tiles
// shared among the OpenMP threads (torch's own pool: this library links the libgomp that torch
// has already loaded, so torch.set_num_threads applies and no second pool spins). With yn (else
// NULL), also yn = LayerNorm(out) with weight lw, bias lb (padded to CP): the next block's first
// norm. Returns 0, or 1 for bad sizes, 2 when scratch memory could not be allocated.
int lsr_ccm_f43(const float* y, const float* x, float* out, int N, int H, int W, int C, int E,
                const float* U, const float* b1, const float* W2, const float* b2, float* yn,
                const float* lw, const float* lb, float eps) {
    if (H % 4 || W % 4 || N <= 0 || C <= 0 || E <= 0) return 1;
    const size_t image = (size_t)H * W * C;
    return parallel_rows((long)N * (H / 4), (size_t)lsr_ccm_scratch_floats(C, E) * 4,
                         [&](long r, void* scratch) {
                             const size_t n = (size_t)(r / (H / 4));
                             tile_row(y + n * image, x + n * image, false, out + n * image, H, W,
                                      C, E, U, b1, W2, b2, yn ? yn + n * image : nullptr, lw, lb,
                                      eps, (int)(r % (H / 4)), (float*)scratch);
                         });
}


}  // extern "C"

namespace {

// The aggregation of four pixels (a row's columns c0 .. c0 + 3) for NV vectors of channels
// from vector v0: t[q][8 v0 ...] = Wa^T a[q] + ba.
template <int NV>
inline void aggregate(const float (*a)[MAX_C + 16], const float* Wa, int CP, int C, const float* ba,
                      int v0, float (*t)[MAX_C]) {
    const float* rows[4] = {a[0], a[1], a[2], a[3]};
    __m256 acc[4][NV];
    for (int v = 0; v < NV; ++v) {
        const __m256 b = _mm256_loadu_ps(ba + 8 * (v0 + v));
        for (int q = 0; q < 4; ++q) acc[q][v] = b;
    }
    mac<4, NV>(rows, Wa + 8 * v0, CP, C, acc);
    for (int q = 0; q < 4; ++q)
        for (int v = 0; v < NV; ++v) _mm256_store_ps(t[q] + 8 * (v0 + v), acc[q][v]);
}

}  // namespace

extern "C" {

// A plain 3x3 convolution (zero padding) with bias by F(4x4, 3x3): out (N, H, W, E) from
// y (N, H, W, C), weights U, b as lsr_ccm_f43's U, b1; or, with shuffle > 0, its pixel shuffle
// (the upsampler's). Returns as lsr_ccm_f43.
int lsr_conv3x3_f43(const float* y, float* out, int N, int H, int W, int C, int E,
                    const float* U, const float* b, int shuffle) {
    if (H % 4 || W % 4 || N <= 0 || C <= 0 || E <= 0 || shuffle < 0) return 1;
    if (shuffle && E % (shuffle * shuffle)) return 1;
    // With shuffle = s, out is the pixel shuffle of the result: (N, E / s^2, H s, W s), channel
    // c s^2 + i s + j of pixel (y, x) going to (c, y s + i, x s + j).
    long* shuffle_at = nullptr;
    if (shuffle) {
        shuffle_at = (long*)malloc(sizeof(long) * E);
        if (!shuffle_at) return 2;
        const long plane = (long)H * shuffle * W * shuffle;
        for (int ch = 0; ch < E; ++ch) {
            const int c = ch / (shuffle * shuffle), i = ch / shuffle % shuffle, j = ch % shuffle;
            shuffle_at[ch] = c * plane + (long)i * W * shuffle + j;
        }
    }
    const size_t image = (size_t)H * W * C, out_image = (size_t)H * W * E;
    const int failed = parallel_rows(
        (long)N * (H / 4), (size_t)lsr_ccm_scratch_floats(C, E) * 4, [&](long r, void* scratch) {
            const size_t n = (size_t)(r / (H / 4));
            tile_row(y + n * image, nullptr, false, out + n * out_image, H, W, C, E, U, b, nullptr,
                     nullptr, nullptr, nullptr, nullptr, 0.0f, (int)(r % (H / 4)),
                     (float*)scratch, true, shuffle_at, shuffle);
        });
    free(shuffle_at);
    return failed;
}

// lsr_conv3x3_f43 followed by the exact GELU, for training's CCM: act (N, H, W, E) = gelu(z)
// and slope (N, H, W, E) = gelu'(z) for z = conv3x3(y) + b, written while the tiles are in
// cache (the convolution's own output never goes to memory). Returns as lsr_ccm_f43.
int lsr_conv3x3_gelu_f43(const float* y, float* act, float* slope, int N, int H, int W, int C,
                         int E, const float* U, const float* b) {
    if (H % 4 || W % 4 || N <= 0 || C <= 0 || E <= 0 || !act || !slope) return 1;
    const size_t image = (size_t)H * W * C, out_image = (size_t)H * W * E;
    return parallel_rows(
        (long)N * (H / 4), (size_t)lsr_ccm_scratch_floats(C, E) * 4, [&](long r, void* scratch) {
            const size_t n = (size_t)(r / (H / 4));
            tile_row(y + n * image, nullptr, false, act + n * out_image, H, W, C, E, U, b,
                     nullptr, nullptr, nullptr, nullptr, nullptr, 0.0f, (int)(r % (H / 4)),
                     (float*)scratch, true, nullptr, 0, slope + n * out_image);
        });
}

// The SAFM's pooled levels: out[i - 1] (N, H >> i, W >> i, k) = max over 2^i x 2^i windows of
// y's channels [i k, (i + 1) k), k = C / levels, for i = 1 .. levels - 1 (y: (N, H, W, C)).
// One pass: blocks of K x K pixels (K = 2^(levels - 1), the largest window) yield every
// level's cells inside them while their pixels are in L1.
int lsr_pool_levels(const float* y, int N, int H, int W, int C, int levels, float* const* out) {
    if (levels < 2 || C % levels || H % (1 << (levels - 1)) || W % (1 << (levels - 1)) ||
        (C / levels + 7) / 8 > 8 || N <= 0)
        return 1;
    const int chunk = C / levels, nch = (chunk + 7) / 8, K = 1 << (levels - 1);
    const __m256i tail = tail_mask(chunk);
    const __m256i all = _mm256_set1_epi32(-1);
    const long bands = (long)N * (H / K);
#pragma omp parallel for schedule(static)
    for (long band = 0; band < bands; ++band) {
        const long n = band / (H / K);
        const int b = (int)(band % (H / K));
        for (int cb = 0; cb < W / K; ++cb) {
            for (int i = 1; i < levels; ++i) {
                const int k = 1 << i, cells = K / k, hi = H >> i, wi = W >> i;
                for (int ci = 0; ci < cells; ++ci) {
                    const int r = b * cells + ci;
                    float* orow = out[i - 1] + ((size_t)n * hi + r) * wi * chunk;
                    for (int cj = 0; cj < cells; ++cj) {
                        const int c = cb * cells + cj;
                        __m256 acc[8];
                        for (int v = 0; v < nch; ++v) acc[v] = _mm256_set1_ps(-INFINITY);
                        for (int dy = 0; dy < k; ++dy) {
                            const float* src = y + (((size_t)n * H + (size_t)r * k + dy) * W +
                                                    (size_t)c * k) * C + i * chunk;
                            for (int dx = 0; dx < k; ++dx, src += C)
                                for (int v = 0; v < nch; ++v)
                                    acc[v] = _mm256_max_ps(
                                        acc[v], _mm256_maskload_ps(src + 8 * v,
                                                                   v == nch - 1 ? tail : all));
                        }
                        // cells are written in column order: a cell's padded last vector
                        // spills into the following cells' places before those are written; a
                        // vector that would spill past the row's end is stored through the mask
                        for (int v = 0; v < nch; ++v) {
                            float* dst = orow + (size_t)c * chunk + 8 * v;
                            if (v == nch - 1 && (c + 1) * chunk + 8 * nch - chunk > wi * chunk)
                                _mm256_maskstore_ps(dst, tail, acc[v]);
                            else
                                _mm256_storeu_ps(dst, acc[v]);
                        }
                    }
                }
            }
        }
    }
    return 0;
}

// The ABI number and the source digest have one home each: lightsr.native.ops.ABI and the
// SHA-256 of the kernels' sources and simd_common.h, passed as -DLSR_ABI and
// -DLSR_SOURCE_DIGEST by setup.py and ops.py; the loader refuses a library whose values do not
// match.
#if !defined(LSR_ABI) || !defined(LSR_SOURCE_DIGEST)
#error "build with -DLSR_ABI and -DLSR_SOURCE_DIGEST, as setup.py and lightsr.native.ops do"
#endif
// The matrix products' vector width: level 0 keeps them to AVX2, 1 lets them use AVX-512 where
// the CPU has it (the default), -1 returns to the default, -2 changes nothing. Returns 1 when
// they now run AVX-512.
int lsr_set_isa(int level) {
    if (level != -2) {
        const int wide = __builtin_cpu_supports("avx512f") ? 1 : 0;
        lsr::isa_setting() = level == -1 ? -1 : (level == 0 ? 0 : wide);
    }
    return wide_products() ? 1 : 0;
}

int lsr_abi(void) { return LSR_ABI; }
uint64_t lsr_source_digest(void) { return LSR_SOURCE_DIGEST; }

}  // extern "C"

namespace {

// Everything lsr_safm_out needs (see there).
struct Safm {
    const float* x;
    const float* y;
    const float* const* s;
    int levels;
    const float* w0;
    const float* b0;
    int N, H, W, C;
    const float* Wa;
    const float* ba;
    const float* lw;
    const float* lb;
    float eps;

    bool valid() const {
        return levels > 0 && C > 0 && C <= MAX_C && C % levels == 0 &&
               H % (1 << (levels - 1)) == 0 && W % (1 << (levels - 1)) == 0 && W % 4 == 0 &&
               N > 0 && (C / levels + 7) / 8 <= 8;
    }
};

// Per-thread buffers of safm_row.
struct SafmScratch {
    alignas(32) float a[4][MAX_C + 16];  // cat vectors of four pixels
    alignas(32) float t[4][MAX_C];       // x' of four pixels
    alignas(32) float stage[4 * MAX_C + 16];
};

// The full-resolution 3x3 depth-wise convolution (zero padding) of y's first chunk channels at
// (row, col), NV vectors of channels (only the lanes of `tail` in the last), into dst.
template <int NV>
inline void dw3x3(const Safm& A, const float* img, int row, int col, __m256i tail, float* dst) {
    const int H = A.H, W = A.W, C = A.C, nch = (A.C / A.levels + 7) / 8;
    __m256 acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = v < nch ? _mm256_loadu_ps(A.b0 + 8 * v) : _mm256_setzero_ps();
    for (int dy = -1; dy <= 1; ++dy) {
        const int rr = row + dy;
        if (rr < 0 || rr >= H) continue;
        for (int dx = -1; dx <= 1; ++dx) {
            const int cc = col + dx;
            if (cc < 0 || cc >= W) continue;
            const float* src = img + ((size_t)rr * W + cc) * C;
            const float* w = A.w0 + (size_t)((dy + 1) * 3 + dx + 1) * (8 * nch);
            for (int v = 0; v < NV; ++v) {
                if (v >= nch) break;
                const __m256 yv = v == nch - 1 ? _mm256_maskload_ps(src + 8 * v, tail)
                                               : _mm256_loadu_ps(src + 8 * v);
                acc[v] = _mm256_fmadd_ps(yv, _mm256_loadu_ps(w + 8 * v), acc[v]);
            }
        }
    }
    for (int v = 0; v < NV; ++v)
        if (v < nch) _mm256_storeu_ps(dst + 8 * v, acc[v]);
}

// x' and y' of one row of image n, written to xo_row and yo_row (W * C floats each).
void safm_row(const Safm& A, long n, int row, float* xo_row, float* yo_row, SafmScratch* S) {
    const int H = A.H, W = A.W, C = A.C, levels = A.levels;
    const int CP = (C + 7) / 8 * 8, chunk = C / levels, nvec = CP / 8, nch = (chunk + 7) / 8;
    const size_t image = (size_t)H * W * C;
    const __m256i tail = tail_mask(C), run_tail = tail_mask(4 * C),
                  chunk_tail = tail_mask(chunk), all = _mm256_set1_epi32(-1);
    const float* img = A.y + n * image;
    const float* xr = A.x + n * image + (size_t)row * W * C;
    const float* yr = img + (size_t)row * W * C;
    const float* ynext = row + 1 < H ? yr + (size_t)W * C : nullptr;
    for (int c0 = 0; c0 < W; c0 += 4) {
        // prefetch the x and newest y pixels PF columns ahead (first touches of those rows)
        constexpr int PF = 16;
        if (c0 + PF + 4 <= W) {
            const char* px = (const char*)(xr + (size_t)(c0 + PF) * C);
            const char* py = ynext ? (const char*)(ynext + (size_t)(c0 + PF) * C) : nullptr;
            for (int off = 0; off < 4 * C * 4; off += 64) {
                _mm_prefetch(px + off, _MM_HINT_T0);
                if (py) _mm_prefetch(py + off, _MM_HINT_T0);
            }
        }
        for (int q = 0; q < 4; ++q) {
            const int col = c0 + q;
            // level 0: 3x3 depth-wise convolution of y's first chunk channels
            switch (nch) {
                case 1: dw3x3<1>(A, img, row, col, chunk_tail, S->a[q]); break;
                case 2: dw3x3<2>(A, img, row, col, chunk_tail, S->a[q]); break;
                case 3: dw3x3<3>(A, img, row, col, chunk_tail, S->a[q]); break;
                case 4: dw3x3<4>(A, img, row, col, chunk_tail, S->a[q]); break;
                default: dw3x3<8>(A, img, row, col, chunk_tail, S->a[q]); break;
            }
            // levels 1..: nearest upsampling is the value at (row >> i, col >> i); the padded
            // last vector spills into the next level's place before that is set
            for (int i = 1; i < levels; ++i) {
                const int hi = H >> i, wi = W >> i;
                const float* src =
                    A.s[i - 1] + (((size_t)n * hi + (row >> i)) * wi + (col >> i)) * chunk;
                for (int v = 0; v < nch; ++v)
                    _mm256_storeu_ps(S->a[q] + i * chunk + 8 * v,
                                     _mm256_maskload_ps(src + 8 * v, v == nch - 1 ? chunk_tail : all));
            }
        }
        // aggregation 1x1 + bias, three vectors at a time (4 x 3 accumulators)
        for (int v0 = 0; v0 < nvec; v0 += 3) {
            const int nv = nvec - v0 < 3 ? nvec - v0 : 3;
            if (nv == 3) aggregate<3>(S->a, A.Wa, CP, C, A.ba, v0, S->t);
            else if (nv == 2) aggregate<2>(S->a, A.Wa, CP, C, A.ba, v0, S->t);
            else aggregate<1>(S->a, A.Wa, CP, C, A.ba, v0, S->t);
        }
        // GELU, modulation by y, residual: t = x + gelu(t) * y (0 in padded lanes)
        for (int q = 0; q < 4; ++q) {
            const size_t at = (size_t)(c0 + q) * C;
            for (int v = 0; v < nvec; ++v) {
                const __m256i m = v == nvec - 1 ? tail : all;
                const __m256 yv = _mm256_maskload_ps(yr + at + 8 * v, m);
                const __m256 xv = _mm256_maskload_ps(xr + at + 8 * v, m);
                const __m256 g = gelu(_mm256_load_ps(S->t[q] + 8 * v));
                _mm256_store_ps(S->t[q] + 8 * v, _mm256_fmadd_ps(g, yv, xv));
            }
        }
        // write x', then y' = LayerNorm(x')
        write_run(xo_row + (size_t)c0 * C, S->t, C, nvec, S->stage, run_tail);
        layer_norm4(S->t[0], MAX_C, C, tail, A.lw, A.lb, A.eps, S->stage,
                    yo_row + (size_t)c0 * C, run_tail);
    }
}

}  // namespace

extern "C" {

// SAFM output and the next LayerNorm for N images; rows shared among the OpenMP threads.
// Level 0 (the first C / levels channels of y at full resolution) goes through its 3x3
// depth-wise convolution here (w0: 9 taps x CHP, tap-major, CHP = the chunk rounded up to 8;
// b0: CHP); s: levels - 1 pointers to the other levels after their depth-wise convolutions
// (level i at (H >> i, W >> i)).
int lsr_safm_out(const float* x, const float* y, const float* const* s, int levels,
                 const float* w0, const float* b0, float* xo, float* yo, int N, int H, int W,
                 int C, const float* Wa, const float* ba, const float* lw, const float* lb,
                 float eps) {
    const Safm A{x, y, s, levels, w0, b0, N, H, W, C, Wa, ba, lw, lb, eps};
    if (!A.valid()) return 1;
    const size_t image = (size_t)H * W * C;
    return parallel_rows((long)N * H, sizeof(SafmScratch), [&](long r, void* scratch) {
        const long n = r / H;
        const int row = (int)(r % H);
        const size_t at = n * image + (size_t)row * W * C;
        safm_row(A, n, row, xo + at, yo + at, (SafmScratch*)scratch);
    });
}

// One whole feature mixing module after its first LayerNorm, streamed: lsr_safm_out's rows go
// into per-thread ring buffers of eight rows, from which lsr_ccm_f43's tiles read them right
// away, so x' and y' never travel through memory. Arguments as in those two functions; out and
// (optionally) yn as in lsr_ccm_f43. Tile rows are shared among the OpenMP threads in
// contiguous bands; each band recomputes the one SAFM row above it.
int lsr_block(const float* x, const float* y, const float* const* s, int levels,
              const float* w0, const float* b0, const float* Wa, const float* ba,
              const float* l2w, const float* l2b, float eps, int N, int H, int W, int C, int E,
              const float* U, const float* b1, const float* W2, const float* b2, float* out,
              float* yn, const float* lw, const float* lb, float eps_next) {
    const Safm A{x, y, s, levels, w0, b0, N, H, W, C, Wa, ba, l2w, l2b, eps};
    if (!A.valid() || H % 4 || E <= 0) return 1;
    const size_t image = (size_t)H * W * C, ring = 8 * (size_t)W * C;
    const size_t ccm = ((size_t)lsr_ccm_scratch_floats(C, E) * 4 + 63) / 64 * 64;
    // per thread: [progress][CCM scratch][x ring][y ring][SAFM scratch]
    const size_t head = 64, bytes = head + ccm + 2 * ring * 4 + sizeof(SafmScratch) + 64;
    struct Progress {  // rows of image n up to `row` are in the rings (when `valid`)
        long n;
        int row;
        int valid;
    };
    return parallel_rows((long)N * (H / 4), bytes, [&](long r, void* scratch) {
        Progress* done = (Progress*)scratch;
        float* ccm_scratch = (float*)((char*)scratch + head);
        float* xring = (float*)((char*)ccm_scratch + ccm);
        float* yring = xring + ring;
        SafmScratch* S = (SafmScratch*)(((uintptr_t)(yring + ring) + 63) / 64 * 64);
        const long n = r / (H / 4);
        const int ty = (int)(r % (H / 4));
        const int first = 4 * ty - 1 > 0 ? 4 * ty - 1 : 0;
        const int last = 4 * ty + 4 < H - 1 ? 4 * ty + 4 : H - 1;
        int from = first;
        if (done->valid && done->n == n && done->row >= first - 1) from = done->row + 1;
        for (int row = from; row <= last; ++row)
            safm_row(A, n, row, xring + (size_t)(row & 7) * W * C,
                     yring + (size_t)(row & 7) * W * C, S);
        *done = Progress{n, last, 1};
        tile_row(yring, xring, true, out + n * image, H, W, C, E, U, b1, W2, b2,
                 yn ? yn + n * image : nullptr, lw, lb, eps_next, ty, ccm_scratch);
    });
}

}  // extern "C"

// Native CPU kernels for training SAFMN (x86-64 with AVX2 and FMA, float32, channels last),
// compiled into the same library as safmn.cpp (lightsr.native.ops builds both sources; the
// helpers both use are in simd_common.h).
//
// A 3x3 convolution with zero padding, out = conv3x3(y, w) (C -> E channels), needs three
// products in training, all three by Winograd's F(4x4, 3x3) (Lavin & Gray 2016):
//
//   forward        out = conv3x3(y, w)                    safmn.cpp's lsr_conv3x3_f43
//   input grad.    dy  = conv3x3(dout, flip(w)^T)         the same kernel, with the flipped,
//                                                         transposed weights (E -> C)
//   weight grad.   dw  = sum over pixels of dout x y      lsr_conv3x3_wgrad_f43 below
//
// The weight gradient by the same algorithm: writing F(4, 3) as the trilinear form
// sum_i z_i sum_k g_k d_{i+k} = sum_l (A z)_l (G g)_l (B^T d)_l (A^T, G, B^T of F(4x4, 3x3)),
// the derivative in g gives dw_k = sum_i dout_i d_{i+k} = (G^T [(A dout) . (B^T d)])_k, and in
// two dimensions, summed over all tiles t of the batch,
//
//   dw = G^T M G,   M[a, b][c, e] = sum_t (B^T d_t B)[a, b][c] (A dout_t A^T)[a, b][e]
//
// with d_t the 6x6 patch of y at (4 ty - 1, 4 tx - 1) (zeros outside the image) and dout_t the
// 4x4 tile of the output gradient at (4 ty, 4 tx). This kernel computes M, 36 products of
// (C x T) by (T x E) matrices summed over the T tiles (a quarter of the direct method's
// multiplications); lightsr.native.train_ops applies G^T . G in float64.
//
// Layouts (float32, C-contiguous; H, W multiples of 4):
//   y     (N, H, W, C)      dout  (N, H, W, E)
//   M     (36, CP, EP)      CP = C rounded up to 8, EP = E rounded up to 24; padded entries 0

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simd_common.h"

namespace {

using lsr::erf_over_sqrt2;
using lsr::hsum;
using lsr::wide_products;
using lsr::input_tile;
using lsr::normal_cdf_pdf;
using lsr::parallel_rows;
using lsr::tail_mask;

constexpr int GT = 16;  // tiles per group (a group's transforms stay in L2)

// z = A u for four rows of nvec vectors (A = (A^T)^T of F(4x4, 3x3), 6 x 4):
// z0 = u0, z1 = u0 + u1 + u2 + u3, z2 = u0 - u1 + u2 - u3, z3 = u0 + 2 u1 + 4 u2 + 8 u3,
// z4 = u0 - 2 u1 + 4 u2 - 8 u3, z5 = u3. Vectors from nload on are zeros (padding); vector
// nload - 1 is read through `tail` when has_tail.
inline void a_rows(const float* const u[4], float* const z[6], int nload, int nvec,
                   __m256i tail, bool has_tail) {
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f),
                 eight = _mm256_set1_ps(8.0f);
    for (int v = 0; v < nvec; ++v) {
        __m256 x[4];
        if (v >= nload)
            for (int i = 0; i < 4; ++i) x[i] = _mm256_setzero_ps();
        else if (has_tail && v == nload - 1)
            for (int i = 0; i < 4; ++i) x[i] = _mm256_maskload_ps(u[i] + 8 * v, tail);
        else
            for (int i = 0; i < 4; ++i) x[i] = _mm256_loadu_ps(u[i] + 8 * v);
        const __m256 e02 = _mm256_add_ps(x[0], x[2]), o13 = _mm256_add_ps(x[1], x[3]);
        const __m256 e4 = _mm256_fmadd_ps(four, x[2], x[0]);
        const __m256 o8 = _mm256_fmadd_ps(eight, x[3], _mm256_mul_ps(two, x[1]));
        _mm256_storeu_ps(z[0] + 8 * v, x[0]);
        _mm256_storeu_ps(z[1] + 8 * v, _mm256_add_ps(e02, o13));
        _mm256_storeu_ps(z[2] + 8 * v, _mm256_sub_ps(e02, o13));
        _mm256_storeu_ps(z[3] + 8 * v, _mm256_add_ps(e4, o8));
        _mm256_storeu_ps(z[4] + 8 * v, _mm256_sub_ps(e4, o8));
        _mm256_storeu_ps(z[5] + 8 * v, x[3]);
    }
}

// M[c0 .. c0 + 3][e0 .. e0 + 8 NV) += sum_t V[t][c] Z[t][e] over nt tiles (V rows of CP floats,
// Z rows of EP floats): 4 x NV accumulators kept in registers over the tiles.
template <int NV>
inline void accumulate(const float* V, int CP, const float* Z, int EP, int nt, float* M) {
    __m256 acc[4][NV];
    for (int i = 0; i < 4; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_load_ps(M + (size_t)i * EP + 8 * v);
    for (int t = 0; t < nt; ++t) {
        const float* vt = V + (size_t)t * CP;
        const float* zt = Z + (size_t)t * EP;
        __m256 zv[NV];
        for (int v = 0; v < NV; ++v) zv[v] = _mm256_load_ps(zt + 8 * v);
        for (int i = 0; i < 4; ++i) {
            const __m256 b = _mm256_broadcast_ss(vt + i);
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(b, zv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < 4; ++i)
        for (int v = 0; v < NV; ++v) _mm256_store_ps(M + (size_t)i * EP + 8 * v, acc[i][v]);
}

// accumulate<3> for 16 NZ + 8 NY columns (NY 0 or 1) in NZ 16-lane AVX-512 vectors and NY
// 8-lane ones: the same FMAs, in the same order, so the same bits. <4, 1> covers 72 columns,
// <3, 0> 48, <1, 1> 24.
template <int NZ, int NY>
__attribute__((target("avx512f"))) void accumulate_w(const float* V, int CP, const float* Z,
                                                      int EP, int nt, float* M) {
    __m512 acc[4][NZ];
    __m256 accy[4];
    for (int i = 0; i < 4; ++i) {
        for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_loadu_ps(M + (size_t)i * EP + 16 * v);
        accy[i] = NY ? _mm256_loadu_ps(M + (size_t)i * EP + 16 * NZ) : _mm256_setzero_ps();
    }
    for (int t = 0; t < nt; ++t) {
        const float* vt = V + (size_t)t * CP;
        const float* zt = Z + (size_t)t * EP;
        __m512 zv[NZ];
        for (int v = 0; v < NZ; ++v) zv[v] = _mm512_loadu_ps(zt + 16 * v);
        const __m256 zy = NY ? _mm256_loadu_ps(zt + 16 * NZ) : _mm256_setzero_ps();
        for (int i = 0; i < 4; ++i) {
            const __m512 b = _mm512_set1_ps(vt[i]);
            for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_fmadd_ps(b, zv[v], acc[i][v]);
            if (NY) accy[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(b), zy, accy[i]);
        }
    }
    for (int i = 0; i < 4; ++i) {
        for (int v = 0; v < NZ; ++v) _mm512_storeu_ps(M + (size_t)i * EP + 16 * v, acc[i][v]);
        if (NY) _mm256_storeu_ps(M + (size_t)i * EP + 16 * NZ, accy[i]);
    }
}

// One group of nt tiles of one image's tile row ty, from tile column tx0: transforms into V
// (36, GT, CP) and Z (36, GT, EP), then M (36, CP, EP) += the 36 products.
void wgrad_group(const float* y, const float* g, int H, int W, int C, int E, int ty, int tx0,
                 int nt, float* V, float* Z, float* rowt, const float* zeros, float* M) {
    const int CP = (C + 7) / 8 * 8, EP = (E + 23) / 24 * 24;
    const __m256i ctail = tail_mask(C), etail = tail_mask(E);
    const bool wide = wide_products();
    for (int t = 0; t < nt; ++t) {
        // V[a * 6 + b][t] = (B^T d B)[a][b] of the 6x6 patch at (4 ty - 1, 4 tx - 1)
        const int oy = 4 * ty - 1, ox = 4 * (tx0 + t) - 1;
        const auto pixel = [&](int i, int j) {
            const int row = oy + i, col = ox + j;
            return (row < 0 || row >= H || col < 0 || col >= W) ? zeros
                                                                : y + ((size_t)row * W + col) * C;
        };
        input_tile(pixel, C, ctail, rowt, V + (size_t)t * CP, (size_t)GT * CP);
        // Z[a * 6 + b][t] = (A u A^T)[a][b]; rowt holds A^T along the columns: [4 p][6 b][EP]
        for (int p = 0; p < 4; ++p) {
            const float* px = g + ((size_t)(4 * ty + p) * W + 4 * (tx0 + t)) * E;
            const float* u[4] = {px, px + E, px + 2 * (size_t)E, px + 3 * (size_t)E};
            float* z[6];
            for (int b = 0; b < 6; ++b) z[b] = rowt + ((size_t)p * 6 + b) * EP;
            a_rows(u, z, (E + 7) / 8, EP / 8, etail, E % 8 != 0);
        }
        for (int b = 0; b < 6; ++b) {
            const float* u[4];
            float* z[6];
            for (int p = 0; p < 4; ++p) u[p] = rowt + ((size_t)p * 6 + b) * EP;
            for (int a = 0; a < 6; ++a) z[a] = Z + (((size_t)a * 6 + b) * GT + t) * EP;
            a_rows(u, z, EP / 8, EP / 8, etail, false);
        }
    }
    for (int k = 0; k < 36; ++k) {
        const float* Vk = V + (size_t)k * GT * CP;
        const float* Zk = Z + (size_t)k * GT * EP;
        float* Mk = M + (size_t)k * CP * EP;
        for (int c0 = 0; c0 < CP; c0 += 4) {
            // V rows for channels c0..c0+3: accumulate() reads V[t][c0 + i] with stride CP
            // up to 72 columns at a time where AVX-512 runs, else 24
            for (int e0 = 0; e0 < EP;) {
                const float* Ze = Zk + e0;
                float* Me = Mk + (size_t)c0 * EP + e0;
                if (wide && EP - e0 >= 72) {
                    accumulate_w<4, 1>(Vk + c0, CP, Ze, EP, nt, Me);
                    e0 += 72;
                } else if (wide && EP - e0 >= 48) {
                    accumulate_w<3, 0>(Vk + c0, CP, Ze, EP, nt, Me);
                    e0 += 48;
                } else {
                    if (wide) accumulate_w<1, 1>(Vk + c0, CP, Ze, EP, nt, Me);
                    else accumulate<3>(Vk + c0, CP, Ze, EP, nt, Me);
                    e0 += 24;
                }
            }
        }
    }
}

// Loads and stores of a whole vector, or of the lanes in `mask` (masked stores are slow on AMD:
// used only for a row's last, partial vector).
inline __m256 load_part(const float* p, bool whole, __m256i mask) {
    return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}
inline void store_part(float* p, bool whole, __m256i mask, __m256 v) {
    if (whole) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mask, v);
}

}  // namespace

extern "C" {

// act = gelu(z + bias) and, with m (else NULL), out = act * m, and with slope (else NULL)
// slope = gelu'(z + bias), which the backward then reads instead of evaluating erf and exp
// again; elementwise over rows x C floats, bias (C floats, else NULL: none, and then C may be
// any split of the floats into rows) added to every row.
int lsr_gelu_forward(const float* z, const float* bias, const float* m, float* act, float* out,
                     float* slope, long rows, int C) {
    if (rows < 0 || C <= 0) return 1;
    const auto one = [&](size_t i, bool whole, __m256i mask, __m256 x) {
        __m256 cdf, pdf;
        normal_cdf_pdf(x, cdf, pdf);
        const __m256 a = _mm256_mul_ps(x, cdf);
        store_part(act + i, whole, mask, a);
        if (m) store_part(out + i, whole, mask, _mm256_mul_ps(a, load_part(m + i, whole, mask)));
        if (slope) store_part(slope + i, whole, mask, _mm256_fmadd_ps(x, pdf, cdf));
    };
    if (!bias) {  // one flat run of 8-float blocks, the last one partial
        const long n = rows * C, blocks = n / 8;
        const __m256i all = _mm256_set1_epi32(-1);
#pragma omp parallel for schedule(static)
        for (long b = 0; b < blocks; ++b) one(8 * b, true, all, _mm256_loadu_ps(z + 8 * b));
        if (n % 8) {
            const __m256i mask = tail_mask((int)(n % 8));
            one(8 * blocks, false, mask, _mm256_maskload_ps(z + 8 * blocks, mask));
        }
        return 0;
    }
    const int nvec = (C + 7) / 8;
    const __m256i tail = tail_mask(C);
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; ++r)
        for (int v = 0; v < nvec; ++v) {
            const bool whole = v < nvec - 1 || C % 8 == 0;
            const size_t i = (size_t)r * C + 8 * v;
            one(i, whole, tail, _mm256_add_ps(load_part(z + i, whole, tail),
                                              load_part(bias + 8 * v, whole, tail)));
        }
    return 0;
}

// The backward of act = gelu(z), out = act * m over rows x C (C <= 512), from the forward's
// slope = gelu'(z): dz = g m slope (m NULL: 1) and dbias[c] = sum over rows of dz[., c]; with
// gm (else NULL) also gm = g act, the gradient of m. One pass; per-thread column sums added at
// the end.
int lsr_gelu_backward(const float* g, const float* slope, const float* m, const float* act,
                      float* dz, float* gm, float* dbias, long rows, int C) {
    if (rows < 0 || C <= 0 || C > 512 || (gm && !act)) return 1;
    const int nvec = (C + 7) / 8;
    const __m256i tail = tail_mask(C);
    memset(dbias, 0, sizeof(float) * C);
#pragma omp parallel
    {
        __m256 acc[64];
        for (int v = 0; v < nvec; ++v) acc[v] = _mm256_setzero_ps();
#pragma omp for schedule(static)
        for (long r = 0; r < rows; ++r) {
            const size_t at = (size_t)r * C;
            for (int v = 0; v < nvec; ++v) {
                const bool whole = v < nvec - 1 || C % 8 == 0;
                const size_t i = at + 8 * v;
                const __m256 gv = load_part(g + i, whole, tail);
                const __m256 gmod = m ? _mm256_mul_ps(gv, load_part(m + i, whole, tail)) : gv;
                const __m256 d = _mm256_mul_ps(gmod, load_part(slope + i, whole, tail));
                store_part(dz + i, whole, tail, d);
                acc[v] = _mm256_add_ps(acc[v], d);
                if (gm) store_part(gm + i, whole, tail, _mm256_mul_ps(gv, load_part(act + i, whole, tail)));
            }
        }
        alignas(32) float part[512];
        for (int v = 0; v < nvec; ++v) _mm256_store_ps(part + 8 * v, acc[v]);
#pragma omp critical
        for (int c = 0; c < C; ++c) dbias[c] += part[c];
    }
    return 0;
}

// ---- channel LayerNorm, with the residual add before it --------------------------------------

// Over rows of C channels (C <= 512): y = x + r (r NULL: y is x itself and is not written),
// n = (y - mean) rstd w + b with the biased variance (two passes in float32, as torch) and
// rstd = 1 / sqrt(var + eps); stats[2 i], stats[2 i + 1] = row i's mean and rstd.
int lsr_add_layer_norm(const float* x, const float* r, const float* w, const float* b, float* y,
                       float* n, float* stats, long rows, int C, float eps) {
    if (rows < 0 || C <= 0 || C > 512 || (r && !y)) return 1;
    const int nvec = (C + 7) / 8;
    const __m256i tail = tail_mask(C);
    const __m256 keep = _mm256_castsi256_ps(tail);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < rows; ++i) {
        const size_t at = (size_t)i * C;
        __m256 a[64];
        __m256 sum = _mm256_setzero_ps();
        for (int v = 0; v < nvec; ++v) {
            const bool whole = v < nvec - 1 || C % 8 == 0;
            a[v] = load_part(x + at + 8 * v, whole, tail);
            if (r) {
                a[v] = _mm256_add_ps(a[v], load_part(r + at + 8 * v, whole, tail));
                store_part(y + at + 8 * v, whole, tail, a[v]);
            }
            sum = _mm256_add_ps(sum, a[v]);
        }
        const float mean = hsum(sum) / C;
        const __m256 mv = _mm256_set1_ps(mean);
        __m256 sq = _mm256_setzero_ps();
        for (int v = 0; v < nvec; ++v) {
            const bool whole = v < nvec - 1 || C % 8 == 0;
            a[v] = _mm256_sub_ps(a[v], mv);
            if (!whole) a[v] = _mm256_and_ps(a[v], keep);  // the padding lanes out of the sum
            sq = _mm256_fmadd_ps(a[v], a[v], sq);
        }
        const float rstd = 1.0f / sqrtf(hsum(sq) / C + eps);
        const __m256 rv = _mm256_set1_ps(rstd);
        for (int v = 0; v < nvec; ++v) {
            const bool whole = v < nvec - 1 || C % 8 == 0;
            const __m256 wv = load_part(w + 8 * v, whole, tail);
            const __m256 bv = load_part(b + 8 * v, whole, tail);
            store_part(n + at + 8 * v, whole, tail,
                       _mm256_fmadd_ps(_mm256_mul_ps(a[v], rv), wv, bv));
        }
        stats[2 * i] = mean;
        stats[2 * i + 1] = rstd;
    }
    return 0;
}

// The backward of lsr_add_layer_norm: from gn (the gradient of n), y (the LayerNorm's input),
// w and the forward's stats, dx = rstd (gh - mean(gh) - xhat mean(gh xhat)) + gy with
// gh = gn w, xhat = (y - mean) rstd, and gy (else NULL) the gradient y receives from its other
// uses (dx is then the gradient of both x and r); dw = sum over rows of gn xhat, db = sum of gn
// (per-thread sums added at the end).
int lsr_layer_norm_backward(const float* gn, const float* gy, const float* y, const float* w,
                            const float* stats, float* dx, float* dw, float* db, long rows,
                            int C) {
    if (rows < 0 || C <= 0 || C > 512) return 1;
    const int nvec = (C + 7) / 8;
    const __m256i tail = tail_mask(C);
    memset(dw, 0, sizeof(float) * C);
    memset(db, 0, sizeof(float) * C);
#pragma omp parallel
    {
        __m256 accw[64], accb[64];
        for (int v = 0; v < nvec; ++v) accw[v] = accb[v] = _mm256_setzero_ps();
#pragma omp for schedule(static)
        for (long i = 0; i < rows; ++i) {
            const size_t at = (size_t)i * C;
            const __m256 mv = _mm256_set1_ps(stats[2 * i]), rv = _mm256_set1_ps(stats[2 * i + 1]);
            __m256 xh[64], gh[64];
            __m256 s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
            for (int v = 0; v < nvec; ++v) {
                const bool whole = v < nvec - 1 || C % 8 == 0;
                const __m256 g = load_part(gn + at + 8 * v, whole, tail);
                // padding lanes: y and g load as 0, so gh = 0 and xhat's value does not matter
                xh[v] = _mm256_mul_ps(_mm256_sub_ps(load_part(y + at + 8 * v, whole, tail), mv), rv);
                gh[v] = _mm256_mul_ps(g, load_part(w + 8 * v, whole, tail));
                s1 = _mm256_add_ps(s1, gh[v]);
                s2 = _mm256_fmadd_ps(gh[v], xh[v], s2);
                accw[v] = _mm256_fmadd_ps(g, xh[v], accw[v]);
                accb[v] = _mm256_add_ps(accb[v], g);
            }
            const __m256 m1 = _mm256_set1_ps(hsum(s1) / C), m2 = _mm256_set1_ps(hsum(s2) / C);
            for (int v = 0; v < nvec; ++v) {
                const bool whole = v < nvec - 1 || C % 8 == 0;
                __m256 d = _mm256_mul_ps(rv, _mm256_sub_ps(_mm256_sub_ps(gh[v], m1),
                                                           _mm256_mul_ps(xh[v], m2)));
                if (gy) d = _mm256_add_ps(d, load_part(gy + at + 8 * v, whole, tail));
                store_part(dx + at + 8 * v, whole, tail, d);
            }
        }
        alignas(32) float pw[512], pb[512];
        for (int v = 0; v < nvec; ++v) {
            _mm256_store_ps(pw + 8 * v, accw[v]);
            _mm256_store_ps(pb + 8 * v, accb[v]);
        }
#pragma omp critical
        for (int c = 0; c < C; ++c) {
            dw[c] += pw[c];
            db[c] += pb[c];
        }
    }
    return 0;
}

// The SAFM's levels, nearest-upsampled and concatenated: cat (N, H, W, C) channels
// [i k, (i + 1) k) at (y, x) = levels[i] (N, H >> i, W >> i, k) at (y >> i, x >> i), k = C / L.
int lsr_levels_gather(const float* const* levels, int L, float* cat, int N, int H, int W, int C) {
    if (L <= 0 || C % L || H % (1 << (L - 1)) || W % (1 << (L - 1)) || N <= 0) return 1;
    const int k = C / L;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)N * H; ++r) {
        const long n = r / H;
        const int y = (int)(r % H);
        float* row = cat + (size_t)r * W * C;
        for (int i = 0; i < L; ++i) {
            const int wi = W >> i;
            const float* src = levels[i] + ((size_t)n * (H >> i) + (y >> i)) * wi * k;
            for (int x = 0; x < W; ++x)
                memcpy(row + (size_t)x * C + i * k, src + (size_t)(x >> i) * k, sizeof(float) * k);
        }
    }
    return 0;
}

// The backward of lsr_levels_gather: dlevels[i] (N, H >> i, W >> i, k) = the sum of dcat's
// channels [i k, (i + 1) k) over each 2^i x 2^i block.
int lsr_levels_scatter(const float* dcat, float* const* dlevels, int L, int N, int H, int W,
                       int C) {
    if (L <= 0 || C % L || H % (1 << (L - 1)) || W % (1 << (L - 1)) || N <= 0) return 1;
    const int k = C / L;
    for (int i = 0; i < L; ++i) {
        const int f = 1 << i, hi = H >> i, wi = W >> i;
#pragma omp parallel for schedule(static)
        for (long r = 0; r < (long)N * hi; ++r) {
            const long n = r / hi;
            const int y = (int)(r % hi);
            float* out = dlevels[i] + (size_t)r * wi * k;
            memset(out, 0, sizeof(float) * wi * k);
            for (int dy = 0; dy < f; ++dy) {
                const float* src = dcat + ((size_t)n * H + (size_t)y * f + dy) * W * C + i * k;
                for (int x = 0; x < W; ++x) {
                    float* o = out + (size_t)(x >> i) * k;
                    const float* sx = src + (size_t)x * C;
                    for (int j = 0; j < k; ++j) o[j] += sx[j];
                }
            }
        }
    }
    return 0;
}

// ---- the SAFM's channel split and max pooling -----------------------------------------------

// The SAFM's levels before their depth-wise convolutions, in one pass over x (N, H, W, C), C = L k,
// H and W multiples of 2^(L - 1): c0 (N, H, W, k) = channels [0, k) (level 0 is not pooled);
// for i = 1 .. L - 1, pooled[i - 1] (N, H >> i, W >> i, k) = the maximum of channels
// [i k, (i + 1) k) over each 2^i x 2^i window and arg[i - 1] (int32, same shape) the position
// dy 2^i + dx in the window of the first maximum in row-major order, a NaN counting as a new
// maximum: the element torch's max_pool2d picks, so that the backward routes the gradient to
// the same pixel. Bands of 2^(L - 1) rows are shared among the OpenMP threads.
int lsr_split_pool(const float* x, int N, int H, int W, int C, int L, float* c0,
                   float* const* pooled, int32_t* const* arg) {
    if (L < 1 || N <= 0 || C <= 0 || C % L) return 1;
    const int K = 1 << (L - 1), k = C / L, nch = (k + 7) / 8;
    if (H % K || W % K || nch > 8) return 1;
    const __m256i tail = tail_mask(k), all = _mm256_set1_epi32(-1);
    const long bands = (long)N * (H / K);
#pragma omp parallel for schedule(static)
    for (long band = 0; band < bands; ++band) {
        const long n = band / (H / K);
        const int r0 = (int)(band % (H / K)) * K;
        for (int r = r0; r < r0 + K; ++r) {
            const float* src = x + ((size_t)n * H + r) * W * C;
            float* dst = c0 + ((size_t)n * H + r) * W * k;
            for (int col = 0; col < W; ++col)
                memcpy(dst + (size_t)col * k, src + (size_t)col * C, sizeof(float) * k);
        }
        for (int i = 1; i < L; ++i) {
            const int f = 1 << i, hi = H >> i, wi = W >> i;
            for (int cr = r0 >> i; cr < (r0 + K) >> i; ++cr) {
                for (int cc = 0; cc < wi; ++cc) {
                    const size_t cell = (((size_t)n * hi + cr) * wi + cc) * k;
                    for (int v = 0; v < nch; ++v) {
                        const __m256i m = v == nch - 1 ? tail : all;
                        __m256 best = _mm256_set1_ps(-INFINITY);
                        __m256 pos = _mm256_setzero_ps();  // int32 lanes, blended as floats
                        for (int dy = 0; dy < f; ++dy) {
                            const float* p = x + (((size_t)n * H + (size_t)cr * f + dy) * W +
                                                  (size_t)cc * f) * C + i * k + 8 * v;
                            for (int dx = 0; dx < f; ++dx, p += C) {
                                const __m256 val = _mm256_maskload_ps(p, m);
                                const __m256 take = _mm256_or_ps(
                                    _mm256_cmp_ps(val, best, _CMP_GT_OQ),
                                    _mm256_cmp_ps(val, val, _CMP_UNORD_Q));
                                best = _mm256_blendv_ps(best, val, take);
                                pos = _mm256_blendv_ps(
                                    pos, _mm256_castsi256_ps(_mm256_set1_epi32(dy * f + dx)), take);
                            }
                        }
                        _mm256_maskstore_ps(pooled[i - 1] + cell + 8 * v, m, best);
                        _mm256_maskstore_ps((float*)(arg[i - 1] + cell + 8 * v), m, pos);
                    }
                }
            }
        }
    }
    return 0;
}

// The backward of lsr_split_pool: dx (N, H, W, C) = g0 in channels [0, k) and, in channels
// [i k, (i + 1) k), gp[i - 1]'s value of the pixel's window where arg[i - 1] names the pixel,
// 0 elsewhere (g0 or gp[i - 1] NULL: zeros). One pass over dx, rows shared among the threads.
int lsr_split_pool_backward(const float* g0, const float* const* gp, const int32_t* const* arg,
                            int N, int H, int W, int C, int L, float* dx) {
    if (L < 1 || N <= 0 || C <= 0 || C % L) return 1;
    const int K = 1 << (L - 1), k = C / L, nch = (k + 7) / 8;
    if (H % K || W % K || nch > 8) return 1;
    const __m256i tail = tail_mask(k), all = _mm256_set1_epi32(-1);
    // a row is assembled in scratch (a chunk's padded last vector spills into the next
    // chunk's place before that is written, and past the row's end into 8 spare floats)
    return parallel_rows((long)N * H, sizeof(float) * ((size_t)W * C + 8), [&](long r, void* buf) {
        const long n = r / H;
        const int row = (int)(r % H);
        float* out = (float*)buf;
        for (int col = 0; col < W; ++col) {
            float* px = out + (size_t)col * C;
            for (int v = 0; v < nch; ++v) {
                const __m256i m = v == nch - 1 ? tail : all;
                _mm256_storeu_ps(px + 8 * v,
                                 g0 ? _mm256_maskload_ps(g0 + ((size_t)r * W + col) * k + 8 * v, m)
                                    : _mm256_setzero_ps());
            }
            for (int i = 1; i < L; ++i) {
                const int f = 1 << i, hi = H >> i, wi = W >> i;
                const size_t cell = (((size_t)n * hi + (row >> i)) * wi + (col >> i)) * k;
                const __m256i here = _mm256_set1_epi32((row & (f - 1)) * f + (col & (f - 1)));
                for (int v = 0; v < nch; ++v) {
                    const __m256i m = v == nch - 1 ? tail : all;
                    __m256 g = _mm256_setzero_ps();
                    if (gp[i - 1]) {
                        const __m256i a = _mm256_castps_si256(
                            _mm256_maskload_ps((const float*)(arg[i - 1] + cell + 8 * v), m));
                        g = _mm256_and_ps(_mm256_maskload_ps(gp[i - 1] + cell + 8 * v, m),
                                          _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, here)));
                    }
                    _mm256_storeu_ps(px + i * k + 8 * v, g);
                }
            }
        }
        memcpy(dx + (size_t)r * W * C, out, sizeof(float) * W * C);
    });
}

// M (36, CP, EP) = the Winograd-domain weight gradient of a 3x3 convolution (see the top of
// this file) for N images: y (N, H, W, C), dout (N, H, W, E). Tile rows are shared among the
// OpenMP threads (torch's pool), each accumulating its own M, summed at the end. Returns 0, 1
// for bad sizes, 2 when memory could not be allocated.
int lsr_conv3x3_wgrad_f43(const float* y, const float* dout, int N, int H, int W, int C, int E,
                          float* M) {
    if (H % 4 || W % 4 || N <= 0 || C <= 0 || E <= 0 || H <= 0 || W <= 0) return 1;
    const int CP = (C + 7) / 8 * 8, EP = (E + 23) / 24 * 24, TW = W / 4;
    const size_t msize = 36 * (size_t)CP * EP;
    const size_t scratch = 36 * (size_t)GT * (CP + EP) + 36 * (size_t)(CP > EP ? CP : EP) + CP;
    const int threads = omp_get_max_threads();
    float* partial = (float*)aligned_alloc(64, ((msize * threads * 4) + 63) / 64 * 64);
    if (!partial) return 2;
    memset(partial, 0, msize * threads * 4);
    const long rows = (long)N * (H / 4);
    // parallel_rows' team has at most omp_get_max_threads() threads: one M each
    const int failed = parallel_rows(rows, scratch * 4, [&](long r, void* buf) {
        float* V = (float*)buf;
        float* Z = V + 36 * (size_t)GT * CP;
        float* rowt = Z + 36 * (size_t)GT * EP;
        const float* zeros = rowt + 36 * (size_t)(CP > EP ? CP : EP);
        float* Mt = partial + msize * omp_get_thread_num();
        const size_t n = (size_t)(r / (H / 4));
        const int ty = (int)(r % (H / 4));
        for (int tx0 = 0; tx0 < TW; tx0 += GT)
            wgrad_group(y + n * H * W * C, dout + n * H * W * E, H, W, C, E, ty, tx0,
                        TW - tx0 < GT ? TW - tx0 : GT, V, Z, rowt, zeros, Mt);
    });
    if (!failed) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (long i = 0; i < (long)msize; ++i) {
            float s = 0.0f;
            for (int t = 0; t < threads; ++t) s += partial[msize * t + i];
            M[i] = s;
        }
    }
    free(partial);
    return failed;
}

}  // extern "C"

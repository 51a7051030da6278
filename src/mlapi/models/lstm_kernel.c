/* The recurrent-dropout LSTM's step loops (forward and backward through time), called
   through ctypes by mlapi/models/recurrent_dropout.py and built on first use by
   mlapi/models/lstm_kernel.py, which documents the flags. `make kernel-check` compiles this
   file with -Wall -Wextra -Werror, with and without OpenMP. */

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* exp(x) = 2^n * p(r), |r| <= ln2/2, with Cephes' expf polynomial (about 1 ulp).
   Branch-free so that gcc vectorizes the loops that call it. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln2); the +128 offset makes truncation a floor (x / ln2 > -126). */
    const int32_t n = (int32_t)(x * 1.44269504088896341f + 128.5f) - 128;
    const float nf = (float)n;
    float r = x - nf * 0.693359375f;
    r = r + nf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = (n + 127) << 23};
    return p * scale.f;
}
static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
static inline float tanh_approx(float x) { return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f; }

/* Vectors of 16 floats (one AVX-512 register, two AVX ones), loaded unaligned. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
#define ROWS 4 /* batch rows per register block: each loaded weight vector serves ROWS rows */
#define VLOAD(p) (*(const v16 *)(p))
#define VSTORE(p, v) (*(v16 *)(p) = (v))
/* Inlined at each call, so that R and Q are constants and the accumulators stay in registers */
#define SPECIALIZED static inline __attribute__((always_inline))

/* Layouts (G = 4H, gates in the order o, i, f, g, batch-major):
   xproj (x @ W_ih^T, without bias), acts, d_pre [B,T,G]; bias [G];
   cells [B,T+1,H] (c(t-1) at t); tanh_cells, h_prev [B,T,H] (h_prev: h(t-1), unmasked);
   masks [B,4,H] (one recurrent mask per gate); wt = W_hh^T [H,G]; w = W_hh [G,H]. */

/* a[r] = xp[r] + bias + sum over k of hm[r, gate(j), k] * wt[k, j] for R <= ROWS rows, in
   blocks of 16*Q columns (Q vectors; a block never straddles two gates: 16*Q divides H).
   Rows of xp and a are `stride` floats apart; hm [R,4,H]. */
SPECIALIZED void gates_block(int R, int Q, int H, size_t stride, const float *restrict hm,
                               const float *restrict wt, const float *restrict bias,
                               const float *restrict xp, float *restrict a) {
    const int G = 4 * H, W = 16 * Q;
    for (int j0 = 0; j0 < G; j0 += W) {
        const float *restrict hg = hm + (j0 / H) * H;
        v16 acc[ROWS][4];
        for (int r = 0; r < R; ++r)
            for (int q = 0; q < Q; ++q)
                acc[r][q] = VLOAD(xp + r * stride + j0 + 16 * q) + VLOAD(bias + j0 + 16 * q);
        for (int k = 0; k < H; ++k) {
            v16 w[4];
            for (int q = 0; q < Q; ++q) w[q] = VLOAD(wt + (size_t)k * G + j0 + 16 * q);
            for (int r = 0; r < R; ++r) {
                const float hk = hg[r * G + k];
                for (int q = 0; q < Q; ++q) acc[r][q] += hk * w[q];
            }
        }
        for (int r = 0; r < R; ++r)
            for (int q = 0; q < Q; ++q) VSTORE(a + r * stride + j0 + 16 * q, acc[r][q]);
    }
}

static void gates_matmul(int R, int H, size_t stride, const float *restrict hm,
                         const float *restrict wt, const float *restrict bias,
                         const float *restrict xp, float *restrict a) {
    const int G = 4 * H;
    if (R == ROWS && H % 64 == 0) {
        gates_block(ROWS, 4, H, stride, hm, wt, bias, xp, a);
    } else if (R == ROWS && H % 32 == 0) {
        gates_block(ROWS, 2, H, stride, hm, wt, bias, xp, a);
    } else if (H % 16 == 0) {
        for (int r = 0; r < R; ++r)
            gates_block(1, 1, H, stride, hm + r * G, wt, bias, xp + r * stride, a + r * stride);
    } else {
        for (int r = 0; r < R; ++r) {
            for (int j = 0; j < G; ++j) {
                const float *restrict hg = hm + r * G + (j / H) * H;
                float acc = xp[r * stride + j] + bias[j];
                for (int k = 0; k < H; ++k) acc += hg[k] * wt[(size_t)k * G + j];
                a[r * stride + j] = acc;
            }
        }
    }
}

/* One row's gate activations and cell update at one step. a [G]: pre-activations in,
   activations out; writes c, tanh(c) and h = o * tanh(c). */
static inline void cell_forward(int H, float *restrict a, const float *restrict c_prev,
                                float *restrict c, float *restrict tc, float *restrict h) {
    for (int j = 0; j < 3 * H; ++j) a[j] = sigmoid(a[j]);
    for (int j = 3 * H; j < 4 * H; ++j) a[j] = tanh_approx(a[j]);
    const float *restrict o = a, *restrict ig = a + H, *restrict fg = a + 2 * H;
    const float *restrict g = a + 3 * H;
    for (int j = 0; j < H; ++j) {
        c[j] = fg[j] * c_prev[j] + ig[j] * g[j];
        tc[j] = tanh_approx(c[j]);
        h[j] = o[j] * tc[j];
    }
}

/* hm[r, g, :] = h(t-1) of row b0 + r, times its mask for gate g. */
static inline void masked_h(int R, int T, int H, int t, int b0, const float *restrict h_prev,
                            const float *restrict masks, float *restrict hm) {
    const int G = 4 * H;
    for (int r = 0; r < R; ++r) {
        const float *restrict h = h_prev + ((size_t)(b0 + r) * T + t) * H;
        const float *restrict m = masks + (size_t)(b0 + r) * G;
        for (int gate = 0; gate < 4; ++gate)
            for (int k = 0; k < H; ++k) hm[r * G + gate * H + k] = h[k] * m[gate * H + k];
    }
}

/* Forward through all T steps for batch rows [row0, row1). cells[:, 0] and h_prev[:, 0]
   must be zero on entry; writes the rest, acts, tanh_cells and h_last [B,H] = h(T). */
static void forward_rows(int T, int B, int H, const float *restrict xproj,
                         const float *restrict wt, const float *restrict bias,
                  const float *restrict masks, float *restrict acts, float *restrict cells,
                  float *restrict tanh_cells, float *restrict h_prev, float *restrict h_last,
                  int row0, int row1) {
    const int G = 4 * H;
    float hm[ROWS * 4 * H]; /* h(t-1) * mask, per row and gate */
    (void)B;
    for (int t = 0; t < T; ++t) {
        for (int b0 = row0; b0 < row1; b0 += ROWS) {
            const int R = row1 - b0 < ROWS ? row1 - b0 : ROWS;
            masked_h(R, T, H, t, b0, h_prev, masks, hm);
            const size_t at = ((size_t)b0 * T + t) * G;
            gates_matmul(R, H, (size_t)T * G, hm, wt, bias, xproj + at, acts + at);
            for (int b = b0; b < b0 + R; ++b) {
                const size_t bt = (size_t)b * T + t;
                float *restrict h_out =
                    t + 1 < T ? h_prev + (bt + 1) * H : h_last + (size_t)b * H;
                cell_forward(H, acts + bt * G, cells + (bt + b) * H, cells + (bt + b + 1) * H,
                             tanh_cells + bt * H, h_out);
            }
        }
    }
}

/* dh[r] = sum over gates g of (d[r, g block] @ w[g block]) * masks[r, g] for R <= ROWS rows,
   in blocks of 16*Q columns. Rows of d are `stride` floats apart; masks [R,4,H]. */
SPECIALIZED void hidden_grad_block(int R, int Q, int H, size_t stride,
                                     const float *restrict d, const float *restrict w,
                                     const float *restrict masks, float *restrict dh) {
    const int G = 4 * H;
    for (int k0 = 0; k0 < H; k0 += 16 * Q) {
        v16 total[ROWS][4];
        for (int r = 0; r < R; ++r)
            for (int q = 0; q < Q; ++q) total[r][q] = (v16){0};
        for (int gate = 0; gate < 4; ++gate) {
            v16 acc[ROWS][4];
            for (int r = 0; r < R; ++r)
                for (int q = 0; q < Q; ++q) acc[r][q] = (v16){0};
            for (int j = gate * H; j < (gate + 1) * H; ++j) {
                v16 wv[4];
                for (int q = 0; q < Q; ++q) wv[q] = VLOAD(w + (size_t)j * H + k0 + 16 * q);
                for (int r = 0; r < R; ++r) {
                    const float dj = d[r * stride + j];
                    for (int q = 0; q < Q; ++q) acc[r][q] += dj * wv[q];
                }
            }
            for (int r = 0; r < R; ++r)
                for (int q = 0; q < Q; ++q)
                    total[r][q] += acc[r][q] * VLOAD(masks + r * G + gate * H + k0 + 16 * q);
        }
        for (int r = 0; r < R; ++r)
            for (int q = 0; q < Q; ++q) VSTORE(dh + r * H + k0 + 16 * q, total[r][q]);
    }
}

static void hidden_grad(int R, int H, size_t stride, const float *restrict d,
                        const float *restrict w, const float *restrict masks,
                        float *restrict dh) {
    const int G = 4 * H;
    if (R == ROWS && H % 64 == 0) {
        hidden_grad_block(ROWS, 4, H, stride, d, w, masks, dh);
    } else if (R == ROWS && H % 32 == 0) {
        hidden_grad_block(ROWS, 2, H, stride, d, w, masks, dh);
    } else if (H % 16 == 0) {
        for (int r = 0; r < R; ++r)
            hidden_grad_block(1, 1, H, stride, d + r * stride, w, masks + r * G, dh + r * H);
    } else {
        for (int r = 0; r < R; ++r) {
            for (int k = 0; k < H; ++k) {
                float total = 0.0f;
                for (int gate = 0; gate < 4; ++gate) {
                    float acc = 0.0f;
                    for (int j = gate * H; j < (gate + 1) * H; ++j)
                        acc += d[r * stride + j] * w[(size_t)j * H + k];
                    total += acc * masks[r * G + gate * H + k];
                }
                dh[r * H + k] = total;
            }
        }
    }
}

/* One row's step of backpropagation through the cell: from dh = dL/dh(t) and dc = dL/dc(t)
   carried from step t+1, writes d [G] = dL/d(pre-activations) and replaces dc by the part
   of dL/dc(t-1) that flows through the forget gate. */
static inline void cell_backward(int H, const float *restrict a, const float *restrict c_prev,
                                 const float *restrict tc, const float *restrict dh,
                                 float *restrict dc, float *restrict d) {
    const float *restrict o = a, *restrict ig = a + H, *restrict fg = a + 2 * H;
    const float *restrict g = a + 3 * H;
    for (int j = 0; j < H; ++j) {
        const float dcj = dc[j] + dh[j] * o[j] * (1.0f - tc[j] * tc[j]);
        d[j] = dh[j] * tc[j] * o[j] * (1.0f - o[j]);
        d[H + j] = dcj * g[j] * ig[j] * (1.0f - ig[j]);
        d[2 * H + j] = dcj * c_prev[j] * fg[j] * (1.0f - fg[j]);
        d[3 * H + j] = dcj * ig[j] * (1.0f - g[j] * g[j]);
        dc[j] = dcj * fg[j];
    }
}

/* dw[j, :] += sum over rows r of d[r, j] * hm[r, gate(j), :] for R <= ROWS rows: the step's
   share of dW_hh = d^T @ (h(t-1) * mask). Each gate's hm rows stay in registers while the
   gate's rows of dw are updated; blocks of 16*Q columns. */
SPECIALIZED void weight_grad_block(int R, int Q, int H, size_t stride,
                                     const float *restrict d, const float *restrict hm,
                                     float *restrict dw) {
    const int G = 4 * H;
    for (int k0 = 0; k0 < H; k0 += 16 * Q) {
        for (int gate = 0; gate < 4; ++gate) {
            v16 hv[ROWS][4];
            for (int r = 0; r < R; ++r)
                for (int q = 0; q < Q; ++q) hv[r][q] = VLOAD(hm + r * G + gate * H + k0 + 16 * q);
            for (int j = gate * H; j < (gate + 1) * H; ++j) {
                float *restrict row = dw + (size_t)j * H + k0;
                v16 acc[4];
                for (int q = 0; q < Q; ++q) acc[q] = VLOAD(row + 16 * q);
                for (int r = 0; r < R; ++r) {
                    const float dj = d[r * stride + j];
                    for (int q = 0; q < Q; ++q) acc[q] += dj * hv[r][q];
                }
                for (int q = 0; q < Q; ++q) VSTORE(row + 16 * q, acc[q]);
            }
        }
    }
}

static void weight_grad(int R, int H, size_t stride, const float *restrict d,
                        const float *restrict hm, float *restrict dw) {
    const int G = 4 * H;
    if (R == ROWS && H % 64 == 0) {
        weight_grad_block(ROWS, 4, H, stride, d, hm, dw);
    } else if (R == ROWS && H % 32 == 0) {
        weight_grad_block(ROWS, 2, H, stride, d, hm, dw);
    } else if (H % 16 == 0) {
        for (int r = 0; r < R; ++r)
            weight_grad_block(1, 1, H, stride, d + r * stride, hm + r * G, dw);
    } else {
        for (int r = 0; r < R; ++r)
            for (int j = 0; j < G; ++j)
                for (int k = 0; k < H; ++k)
                    dw[(size_t)j * H + k] += d[r * stride + j] * hm[r * G + (j / H) * H + k];
    }
}

/* Backward through time for rows [row0, row1): from grad_h [B,H] = dL/dh(T), writes
   d_pre [B,T,G] = dL/d(pre-activation gates) and adds these rows' dL/dW_hh to dw [G,H] and
   dL/dbias to db [G]. dh and dc [B,H] are scratch. */
static void backward_rows(int T, int B, int H, const float *restrict grad_h,
                          const float *restrict w,
                   const float *restrict masks, const float *restrict acts,
                   const float *restrict cells, const float *restrict tanh_cells,
                   const float *restrict h_prev, float *restrict d_pre, float *restrict dh,
                   float *restrict dc, float *restrict dw, float *restrict db, int row0,
                   int row1) {
    const int G = 4 * H;
    float hm[ROWS * 4 * H];
    (void)B;
    for (size_t k = (size_t)row0 * H; k < (size_t)row1 * H; ++k) {
        dh[k] = grad_h[k];
        dc[k] = 0.0f;
    }
    for (int t = T - 1; t >= 0; --t) {
        for (int b0 = row0; b0 < row1; b0 += ROWS) {
            const int R = row1 - b0 < ROWS ? row1 - b0 : ROWS;
            for (int b = b0; b < b0 + R; ++b) {
                const size_t bt = (size_t)b * T + t;
                cell_backward(H, acts + bt * G, cells + (bt + b) * H, tanh_cells + bt * H,
                              dh + (size_t)b * H, dc + (size_t)b * H, d_pre + bt * G);
                for (int j = 0; j < G; ++j) db[j] += d_pre[bt * G + j];
            }
            if (t > 0) { /* h(-1) = 0: step 0 adds nothing to dW_hh and has no dh to pass on */
                const float *restrict d = d_pre + ((size_t)b0 * T + t) * G;
                masked_h(R, T, H, t, b0, h_prev, masks, hm);
                weight_grad(R, H, (size_t)T * G, d, hm, dw);
                hidden_grad(R, H, (size_t)T * G, d, w, masks + (size_t)b0 * G,
                            dh + (size_t)b0 * H);
            }
        }
    }
}

/* Row k of `parts` equal slices of [0, B). */
static inline int slice(int B, int k, int parts) { return (int)((long)B * k / parts); }

/* The exported entry points: the whole batch, its rows split over `threads` OpenMP threads.
   Backward: thread k adds its rows' dW_hh and dbias to dw[k] [G,H] and db[k] [G]. */
void lstm_forward(int T, int B, int H, const float *xproj, const float *wt, const float *bias,
                  const float *masks, float *acts, float *cells, float *tanh_cells,
                  float *h_prev, float *h_last, int threads) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#else
    (void)threads; /* built without OpenMP: one thread */
#endif
    {
        int k = 0, n = 1;
#ifdef _OPENMP
        k = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        forward_rows(T, B, H, xproj, wt, bias, masks, acts, cells, tanh_cells, h_prev, h_last,
                     slice(B, k, n), slice(B, k + 1, n));
    }
}

void lstm_backward(int T, int B, int H, const float *grad_h, const float *w, const float *masks,
                   const float *acts, const float *cells, const float *tanh_cells,
                   const float *h_prev, float *d_pre, float *dh, float *dc, float *dw, float *db,
                   int threads) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#else
    (void)threads; /* built without OpenMP: one thread */
#endif
    {
        int k = 0, n = 1;
#ifdef _OPENMP
        k = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        const size_t G = 4 * (size_t)H;
        backward_rows(T, B, H, grad_h, w, masks, acts, cells, tanh_cells, h_prev, d_pre, dh, dc,
                      dw + k * G * H, db + k * G, slice(B, k, n), slice(B, k + 1, n));
    }
}

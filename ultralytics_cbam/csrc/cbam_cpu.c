/* Fused CPU kernels for CBAM (Woo et al., ECCV 2018) on contiguous float32 NCHW maps.
 *
 * x is viewed as N x C x P (P = H * W pixels); y = x * gate is the channel-refined map and out = y * spatial. Each
 * kernel makes one pass over the full-size tensors it reads, so that a forward reads x three times and writes once,
 * and a backward reads x and the output gradient three times and writes dL/dx once. The shared MLP and the 2 -> 1
 * convolution run here too (cbam_forward chains everything for inference); the gradients of the MLP and of the
 * convolution, which are small, are left to PyTorch.
 *
 * Reductions over C run on tiles of pixels, one tile per work item; all others run on (n, c) rows. Every sum is
 * accumulated by one thread, so results do not depend on the thread count. Max pooling follows torch.amax: NaN wins,
 * and in the backward tied maxima share the gradient evenly.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TILE_MAX 512       /* pixels per tile of the kernels that reduce over C */
#define TILE_MIN 64        /* smallest tile made to give every thread work */
#define MIN_PARALLEL 32768 /* elements below which one thread beats waking the others */

typedef struct {
  int64_t per_map, size;
} Tiling;

/* Tiles of at most TILE_MAX pixels per map, more (down to TILE_MIN) when there are fewer tiles than threads. */
static Tiling tiling(int64_t n, int64_t p, int threads) {
  int64_t per_map = (p + TILE_MAX - 1) / TILE_MAX;
  if (n * per_map < threads) {
    int64_t wanted = (threads + n - 1) / n, most = (p + TILE_MIN - 1) / TILE_MIN;
    per_map = wanted < most ? wanted : most;
  }
  int64_t size = (p + per_map - 1) / per_map;
  size = (size + 15) / 16 * 16; /* whole vectors */
  Tiling t = {(p + size - 1) / size, size};
  return t;
}

/* Mean and max over the P pixels of every (n, c) row: desc[n, 0, c] and desc[n, 1, c]. */
void cbam_channel_pool(const float *x, int64_t n, int64_t c, int64_t p, float *desc, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t r = 0; r < n * c; ++r) {
    const float *v = x + r * p;
    double sum = 0.;
    float top = -INFINITY;
#pragma omp simd reduction(+ : sum) reduction(max : top)
    for (int64_t i = 0; i < p; ++i) {
      sum += v[i];
      top = v[i] > top ? v[i] : top;
    }
    if (isnan(sum)) /* a NaN somewhere (or inf - inf): the max is NaN only in the first case */
      for (int64_t i = 0; i < p; ++i)
        if (isnan(v[i])) {
          top = v[i];
          break;
        }
    float *d = desc + (r / c) * 2 * c + r % c;
    d[0] = (float)(sum / (double)p);
    d[c] = top;
  }
}

/* The shared MLP on both descriptors of desc (N, 2, C), weights w1 (H, C) and w2 (C, H), biases b1 (H) and b2 (C) or
 * NULL: hidden (N, 2, H) = relu(desc w1^T + b1), gate (N, C) = sigmoid(sum over both of hidden w2^T + b2). */
void cbam_channel_gate(const float *desc, const float *w1, const float *b1, const float *w2, const float *b2,
                       int64_t n, int64_t c, int64_t hid, float *hidden, float *gate, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * hid >= MIN_PARALLEL)
  for (int64_t b = 0; b < n; ++b) {
    float *h = hidden + b * 2 * hid;
    for (int64_t j = 0; j < 2 * hid; ++j) {
      const float *v = desc + (b * 2 + j / hid) * c, *wj = w1 + j % hid * c;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < c; ++i) acc += v[i] * wj[i];
      if (b1) acc += b1[j % hid];
      h[j] = acc < 0.f ? 0.f : acc;
    }
    for (int64_t i = 0; i < c; ++i) {
      const float *wi = w2 + i * hid;
      float avg = 0.f, top = 0.f;
      for (int64_t j = 0; j < hid; ++j) {
        avg += h[j] * wi[j];
        top += h[hid + j] * wi[j];
      }
      const float logit = b2 ? (avg + b2[i]) + (top + b2[i]) : avg + top;
      gate[b * c + i] = 1.f / (1.f + expf(-logit));
    }
  }
}

/* Mean and max over C of y = x * gate at every (n, pixel): desc[n, 0, pixel] and desc[n, 1, pixel]. */
void cbam_spatial_pool(const float *x, const float *gate, int64_t n, int64_t c, int64_t p, float *desc,
                       int threads) {
  Tiling t = tiling(n, p, threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t item = 0; item < n * t.per_map; ++item) {
    int64_t b = item / t.per_map, p0 = item % t.per_map * t.size;
    int64_t len = p - p0 < t.size ? p - p0 : t.size;
    const float *xb = x + b * c * p + p0, *g = gate + b * c;
    double sum[TILE_MAX];
    float top[TILE_MAX];
    for (int64_t i = 0; i < len; ++i) sum[i] = top[i] = xb[i] * g[0];
    for (int64_t k = 1; k < c; ++k) {
      const float *v = xb + k * p, gk = g[k];
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        float y = v[i] * gk;
        sum[i] += y;
        top[i] = y > top[i] ? y : top[i];
      }
    }
    float *mean = desc + b * 2 * p + p0, *max = mean + p;
    for (int64_t i = 0; i < len; ++i) {
      if (isnan(sum[i]))
        for (int64_t k = 0; k < c; ++k)
          if (isnan(xb[k * p + i] * g[k])) {
            top[i] = xb[k * p + i] * g[k];
            break;
          }
      mean[i] = (float)(sum[i] / (double)c);
      max[i] = top[i];
    }
  }
}

/* out = (x * gate) * spatial, the channel gate per (n, c) and the spatial gate per (n, pixel). */
void cbam_apply(const float *x, const float *gate, const float *spatial, int64_t n, int64_t c, int64_t p, float *out,
                int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t r = 0; r < n * c; ++r) {
    const float *v = x + r * p, *s = spatial + r / c * p, g = gate[r];
    float *o = out + r * p;
#pragma omp simd
    for (int64_t i = 0; i < p; ++i) o[i] = v[i] * g * s[i];
  }
}

/* At every (n, pixel): dL/dspatial = sum over C of grad * y, and how many channels hold the max of y over C
 * (desc[n, 1, pixel]). */
void cbam_spatial_grad(const float *grad, const float *x, const float *gate, const float *desc, int64_t n, int64_t c,
                       int64_t p, float *d_spatial, float *ties, int threads) {
  Tiling t = tiling(n, p, threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t item = 0; item < n * t.per_map; ++item) {
    int64_t b = item / t.per_map, p0 = item % t.per_map * t.size;
    int64_t len = p - p0 < t.size ? p - p0 : t.size, offset = b * c * p + p0;
    const float *g = gate + b * c, *top = desc + b * 2 * p + p + p0;
    double sum[TILE_MAX];
    float count[TILE_MAX];
    for (int64_t i = 0; i < len; ++i) sum[i] = count[i] = 0.f;
    for (int64_t k = 0; k < c; ++k) {
      const float *v = x + offset + k * p, *d = grad + offset + k * p, gk = g[k];
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        float y = v[i] * gk;
        sum[i] += d[i] * y;
        count[i] += y == top[i] ? 1.f : 0.f;
      }
    }
    for (int64_t i = 0; i < len; ++i) {
      d_spatial[b * p + p0 + i] = (float)sum[i];
      ties[b * p + p0 + i] = count[i];
    }
  }
}

/* dL/dy = grad * spatial + share[n, 0, pixel] + (y is the max over C) * share[n, 1, pixel], where share holds the
 * descriptor gradients already divided by C and by the number of tied maxima. */
static inline float d_refined(float grad, float y, float spatial, const float *share, const float *top, int64_t i,
                              int64_t p) {
  return grad * spatial + share[i] + (y == top[i] ? share[p + i] : 0.f);
}

/* dL/dgate[n, c] = sum over pixels of dL/dy * x. */
void cbam_gate_grad(const float *grad, const float *x, const float *gate, const float *spatial, const float *desc,
                    const float *share, int64_t n, int64_t c, int64_t p, float *d_gate, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t r = 0; r < n * c; ++r) {
    int64_t b = r / c;
    const float *v = x + r * p, *d = grad + r * p, *s = spatial + b * p;
    const float *sh = share + b * 2 * p, *top = desc + b * 2 * p + p, g = gate[r];
    double acc = 0.;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < p; ++i) acc += d_refined(d[i], v[i] * g, s[i], sh, top, i, p) * v[i];
    d_gate[r] = (float)acc;
  }
}

/* dL/dx = dL/dy * gate + d_channel[n, 0, c] / P + (x is the max over P) * d_channel[n, 1, c] / (tied maxima), where
 * d_channel is the gradient of the channel descriptors (channel_desc[n, 1, c] holds the max). */
void cbam_input_grad(const float *grad, const float *x, const float *gate, const float *spatial, const float *desc,
                     const float *share, const float *channel_desc, const float *d_channel, int64_t n, int64_t c,
                     int64_t p, float *dx, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (n * c * p >= MIN_PARALLEL)
  for (int64_t r = 0; r < n * c; ++r) {
    int64_t b = r / c, k = r % c;
    const float *v = x + r * p, *d = grad + r * p, *s = spatial + b * p;
    const float *sh = share + b * 2 * p, *top = desc + b * 2 * p + p, g = gate[r];
    const float top_hw = channel_desc[b * 2 * c + c + k];
    float ties = 0.f;
#pragma omp simd reduction(+ : ties)
    for (int64_t i = 0; i < p; ++i) ties += v[i] == top_hw ? 1.f : 0.f;
    const float avg = d_channel[b * 2 * c + k] / (float)p;
    const float peak = ties > 0.f ? d_channel[b * 2 * c + c + k] / ties : 0.f;
    float *o = dx + r * p;
#pragma omp simd
    for (int64_t i = 0; i < p; ++i) o[i] = d_refined(d[i], v[i] * g, s[i], sh, top, i, p) * g + avg + (v[i] == top_hw ? peak : 0.f);
  }
}

/* The 2 -> 1 k x k convolution of the spatial gate ('same' zero padding, no bias, k <= KMAX) on desc (N, 2, H, W),
 * without the sigmoid: out (N, 1, H, W). Each thread makes whole output rows: it copies the input rows under a span of
 * the output row (those inside the map) into zero-padded buffers, then sums their taps for LANES outputs at a time. */
#define KMAX 15
#define SPAN 256
#define LANES 16
void cbam_spatial_conv(const float *desc, const float *weight, int64_t n, int64_t h, int64_t w, int64_t k, float *out,
                       int threads) {
  const int64_t pad = k / 2;
#pragma omp parallel for num_threads(threads) schedule(static) if (n * h * w * k >= MIN_PARALLEL)
  for (int64_t item = 0; item < n * h; ++item) {
    const int64_t b = item / h, i = item % h;
    const int64_t ky0 = pad - i > 0 ? pad - i : 0, ky1 = h - i + pad < k ? h - i + pad : k; /* rows inside the map */
    float rows[2 * KMAX][SPAN + KMAX - 1 + LANES];
    const float *taps[2 * KMAX];
    for (int64_t j0 = 0; j0 < w; j0 += SPAN) {
      const int64_t len = w - j0 < SPAN ? w - j0 : SPAN, filled = (len + LANES - 1) / LANES * LANES + k - 1;
      const int64_t lo = pad - j0 > 0 ? pad - j0 : 0, hi = w - j0 + pad < filled ? w - j0 + pad : filled;
      int64_t used = 0;
      for (int64_t ch = 0; ch < 2; ++ch)
        for (int64_t ky = ky0; ky < ky1; ++ky, ++used) {
          const float *src = desc + ((b * 2 + ch) * h + i + ky - pad) * w + j0 - pad;
          float *dst = rows[used];
          for (int64_t t = 0; t < lo; ++t) dst[t] = 0.f;
          memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
          for (int64_t t = hi; t < filled; ++t) dst[t] = 0.f;
          taps[used] = weight + (ch * k + ky) * k;
        }
      for (int64_t t0 = 0; t0 < len; t0 += LANES) {
        float acc[LANES] = {0.f};
        for (int64_t r = 0; r < used; ++r)
          for (int64_t kx = 0; kx < k; ++kx) {
            const float wv = taps[r][kx], *v = rows[r] + t0 + kx;
#pragma omp simd
            for (int u = 0; u < LANES; ++u) acc[u] += wv * v[u];
          }
        float *o = out + (b * h + i) * w + j0 + t0;
        for (int64_t u = 0; u < LANES && t0 + u < len; ++u) o[u] = acc[u];
      }
    }
  }
}

/* The whole forward without autograd, in one call: out = CBAM(x) for weights as in cbam_channel_gate and
 * cbam_spatial_conv. scratch holds N * (3 C + 2 H + 3 P) floats for the descriptors, gates and hidden activations. */
void cbam_forward(const float *x, const float *w1, const float *b1, const float *w2, const float *b2,
                  const float *conv_weight, int64_t n, int64_t c, int64_t hid, int64_t h, int64_t w, int64_t k,
                  float *scratch, float *out, int threads) {
  const int64_t p = h * w;
  float *channel_desc = scratch, *hidden = channel_desc + n * 2 * c, *gate = hidden + n * 2 * hid;
  float *spatial_desc = gate + n * c, *spatial = spatial_desc + n * 2 * p;
  cbam_channel_pool(x, n, c, p, channel_desc, threads);
  cbam_channel_gate(channel_desc, w1, b1, w2, b2, n, c, hid, hidden, gate, threads);
  cbam_spatial_pool(x, gate, n, c, p, spatial_desc, threads);
  cbam_spatial_conv(spatial_desc, conv_weight, n, h, w, k, spatial, threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (n * p >= MIN_PARALLEL)
  for (int64_t i = 0; i < n * p; ++i) spatial[i] = 1.f / (1.f + expf(-spatial[i]));
  cbam_apply(x, gate, spatial, n, c, p, out, threads);
}

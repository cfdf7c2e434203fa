// One row window of the prefix-max dynamic program of batch predictive inference (Lee et al.,
// 2024; see dp.rs):
//   cur[j] = max over d in [1, min(n+1, j-(i-1))] of h(prev[j-d], S_d)   for j < i(n+1),
//   cur[j] = full (the composition of i copies of S_(n+1))                for j >= i(n+1),
// for j in [lo, hi], with h = + (op 0: sums, means) or h = max (op 1), and w the calibration scores
// reversed (w[x] = S_(n+1-x), so S_d = w[n+1-d]). One thread per j.
//
// A (max, h) convolution of prev with S, tiled: a block of B = blockDim.x (at most TILE) threads
// holds j in [j0, j0+B); for each run of B offsets d in [d0, d0+B) it stages S_d and the 2B-1
// values of prev those pairs read (t = j-d in [j0-d0-B+1, j0+B-1-d0]) in shared memory, so each
// value read from global memory serves B threads. The set of pairs each j reduces over is the
// one of the plain recurrence, and the maximum of a set does not depend on the order it is read
// in (NaN never wins `v > best`), so the result equals the CPU's exactly. Compiled with
// --fmad=false: the sums are rounded as the CPU rounds them.

#define TILE 256

extern "C" __global__ void mean_dp_row(
    const double* __restrict__ prev,
    const double* __restrict__ w,
    long long n, long long i, long long lo, long long hi, double full, int op,
    double* __restrict__ cur)
{
    __shared__ double s_w[TILE];          // S_d for d in [d0, d0 + B)
    __shared__ double s_prev[2 * TILE];   // prev[t] for t in [j0 - d0 - B + 1, j0 - d0 + B - 1]
    const long long b = blockDim.x;
    const long long tx = threadIdx.x;
    const long long j0 = lo + (long long)blockIdx.x * b;
    const long long j = j0 + tx;
    const bool saturated = j >= i * (n + 1);
    const bool active = j <= hi && !saturated;
    // this j reads d up to dmax (t = j - d >= i - 1, d <= n + 1); the block up to that of its last j
    long long dmax = j - (i - 1);
    if (dmax > n + 1) dmax = n + 1;
    long long last = j0 + b - 1;
    if (last > hi) last = hi;
    long long dblock = last - (i - 1);
    if (dblock > n + 1) dblock = n + 1;
    double best = __longlong_as_double(0xfff0000000000000ULL);  // -inf (NVRTC has no math.h)
    for (long long d0 = 1; d0 <= dblock; d0 += b) {
        const long long d = d0 + tx;
        s_w[tx] = d <= n + 1 ? w[n + 1 - d] : 0.0;
        const long long base = j0 - d0 - b + 1;
        for (long long k = tx; k < 2 * b - 1; k += b) {
            const long long t = base + k;
            // only t in [i - 1, hi - 1] is ever read; the rest is staged as 0 and left unread
            s_prev[k] = (t >= 0 && t < hi) ? prev[t] : 0.0;
        }
        __syncthreads();
        if (active) {
            long long kmax = dmax - d0 + 1;
            if (kmax > b) kmax = b;
            for (long long k = 0; k < kmax; ++k) {
                const double a = s_prev[tx - k + b - 1];
                const double s = s_w[k];
                const double v = (op == 0) ? a + s : (a > s ? a : s);
                best = v > best ? v : best;
            }
        }
        __syncthreads();
    }
    if (j <= hi) cur[j] = saturated ? full : best;
}

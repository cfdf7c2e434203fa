// Xie, Kou & Brown's profile SURE (sure-normal xkb-estimated): the point sums of one sweep, for
// many units at many points in one launch. Points are t in [0, 1] (lambda = s t / (1 - t)); at a
// point t < 1, unit i has, with A~ = A/s, u = s b/A = (1 - t) / (A~ (1 - t) + t), b = A~ u,
// w = b^2 and, in lambda~ = lambda/s (derivatives of order one whatever A's units), w' = -2 w u,
// w'' = 6 w u^2 -- the CPU sweep's arithmetic (ProfiledRisk::point_chunk), operation for
// operation. With x centred at `mean`, the twelve sums of a point are
//   S0, S1, S2, S1+ (w x^j; the last over x > 0 only), D0, D1, D2, D1+ (w' x^j), E0, E1, E2
//   (w'' x^j) and G = sum of -2 A b
// (the layout of the CPU sweep; points at t = 1 have b = 0 and are left at zero). Grid row q
// (blockIdx.y) handles point q; blocks reduce in shared memory, then atomicAdd into out[12 q + j].

extern "C" __global__ void sure_profile_sweep(
    const double* __restrict__ x, const double* __restrict__ a, long long p, double mean, double s,
    const double* __restrict__ ts, int k,
    double* __restrict__ out)          // 12 k point sums
{
    int q = blockIdx.y;
    double t = ts[q];
    if (t >= 1.0) return;              // the whole block: q is the block's
    double one_t = 1.0 - t, inv_s = 1.0 / s;
    double acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p; i += (long long)gridDim.x * blockDim.x) {
        double xi = x[i] - mean, ai = a[i];
        double u = one_t / (ai * inv_s * one_t + t);
        double b = ai * inv_s * u;
        double w = b * b, w1 = -2.0 * w * u, w2 = 6.0 * w * u * u;
        double xp = xi > 0.0 ? xi : 0.0, x2 = xi * xi;
        acc[0] += w;  acc[1] += w * xi;  acc[2] += w * x2;  acc[3] += w * xp;
        acc[4] += w1; acc[5] += w1 * xi; acc[6] += w1 * x2; acc[7] += w1 * xp;
        acc[8] += w2; acc[9] += w2 * xi; acc[10] += w2 * x2;
        acc[11] += -2.0 * ai * b;
    }
    __shared__ double red[256];
    for (int j = 0; j < 12; ++j) {
        red[threadIdx.x] = acc[j];
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) atomicAdd(&out[12 * q + j], red[0]);
        __syncthreads();
    }
}

// Unbiased risk estimates of linear shrinkage, for many units at many points in one launch.
// Points are t in [0, 1] (lambda = s t / (1 - t)); unit i has, with D = h + (s - h) t,
//   decreasing: b = h (1 - t) / D, b' = -h s / D^2, b'' = 2 h s (s - h) / D^3
//   increasing: b = s t / D,       b' =  h s / D^2, b'' = -2 h s (s - h) / D^3
// and the risk term f = b (d b - 2 e), f' = 2 (d b - e) b', f'' = 2 d b'^2 + 2 (d b - e) b''.
// Grid row q (blockIdx.y) handles point q: the sums of f, f', f'' there, and for the cell
// [t_q, t_{q+1}] the sums of (first order) each unit's quadratic minimised over its b-range and
// (second order) a lower bound of f'' on the cell. Blocks reduce in shared memory, then
// atomicAdd into out: 3 sums per point, then 2 per cell (the layout of the CPU sweep).

__device__ void unit_at(double t, double s, double h, int increasing, double* b, double* b1, double* b2) {
    double inv = 1.0 / (h + (s - h) * t);
    double hd = h * inv, sd = s * inv;
    double p = hd * sd;
    double c = 2.0 * p * ((s - h) * inv);
    if (increasing) { *b = t * sd; *b1 = p; *b2 = -c; }
    else { *b = (1.0 - t) * hd; *b1 = -p; *b2 = c; }
}

extern "C" __global__ void sure_sweep(
    const double* __restrict__ d, const double* __restrict__ e, const double* __restrict__ h,
    long long p, int increasing, double s,
    const double* __restrict__ ts, int k,
    double* __restrict__ out)          // 3k point sums, then 2(k - 1) cell sums
{
    int q = blockIdx.y;
    double t = ts[q];
    int cell = q + 1 < k;
    double tn = cell ? ts[q + 1] : t;
    double acc[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p; i += (long long)gridDim.x * blockDim.x) {
        double di = d[i], ei = e[i], hi = h[i];
        double b, b1, b2;
        unit_at(t, s, hi, increasing, &b, &b1, &b2);
        double g = 2.0 * (di * b - ei);
        acc[0] += b * (di * b - 2.0 * ei);
        acc[1] += g * b1;
        acc[2] += 2.0 * di * b1 * b1 + g * b2;
        if (cell) {
            double c, c1, c2;
            unit_at(tn, s, hi, increasing, &c, &c1, &c2);
            double lo = fmin(b, c), up = fmax(b, c);
            double x;
            if (di > 0.0) { x = fmax(fmin(ei / di, up), lo); }
            else { x = ei > 0.0 ? up : lo; }
            acc[3] += x * x * di - 2.0 * x * ei;
            double glo = 2.0 * (di * lo - ei), ghi = 2.0 * (di * up - ei);
            double clo = fmin(b2, c2), chi = fmax(b2, c2);
            double corner = fmin(fmin(glo * clo, glo * chi), fmin(ghi * clo, ghi * chi));
            acc[4] += 2.0 * di * fmin(b1 * b1, c1 * c1) + corner;
        }
    }
    __shared__ double red[256];
    int sums = cell ? 5 : 3;
    for (int j = 0; j < sums; ++j) {
        red[threadIdx.x] = acc[j];
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) atomicAdd(j < 3 ? &out[3 * q + j] : &out[3 * k + 2 * q + (j - 3)], red[0]);
        __syncthreads();
    }
}

// Unbiased risk estimates of linear shrinkage, for many units and many lambdas in one pass.
// Unit i has b_i(l) = h_i/(h_i + l) (increasing == 0) or l/(h_i + l) (increasing == 1), and its
// risk term b^2 d_i - 2 b e_i. For K lambdas (l = inf allowed) each thread accumulates, over a
// grid-stride loop of units, the K point sums and the K-1 cell lower bounds (the minimum of the
// convex quadratic over [b(l_k), b(l_{k+1})]); blocks reduce in shared memory, then atomicAdd.
// K is at most 64.

#define MAXK 64

__device__ double weight(double h, double l, int increasing) {
    if (isinf(l)) return increasing ? 1.0 : 0.0;
    return increasing ? l / (h + l) : h / (h + l);
}

__device__ double term(double b, double d, double e) { return b * b * d - 2.0 * b * e; }

extern "C" __global__ void sure_batch(
    const double* __restrict__ d, const double* __restrict__ e, const double* __restrict__ h,
    long long p, int increasing,
    const double* __restrict__ lambdas, int k,
    double* __restrict__ out_points,   // k sums
    double* __restrict__ out_cells)    // k - 1 sums
{
    double pts[MAXK];
    double cel[MAXK];
    for (int q = 0; q < k; ++q) { pts[q] = 0.0; cel[q] = 0.0; }
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p; i += (long long)gridDim.x * blockDim.x) {
        double di = d[i], ei = e[i], hi = h[i];
        double prev_b = 0.0;
        for (int q = 0; q < k; ++q) {
            double b = weight(hi, lambdas[q], increasing);
            pts[q] += term(b, di, ei);
            if (q > 0) {
                double lo = fmin(prev_b, b), up = fmax(prev_b, b);
                double bs;
                if (di > 0.0) { bs = fmin(fmax(ei / di, lo), up); }
                else { bs = ei > 0.0 ? up : lo; }
                cel[q - 1] += term(bs, di, ei);
            }
            prev_b = b;
        }
    }
    __shared__ double red[256];
    for (int q = 0; q < 2 * k - 1; ++q) {
        red[threadIdx.x] = q < k ? pts[q] : cel[q - k];
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
            __syncthreads();
        }
        if (threadIdx.x == 0) atomicAdd(q < k ? &out_points[q] : &out_cells[q - k], red[0]);
        __syncthreads();
    }
}

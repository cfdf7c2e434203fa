// Many target policies from one bandit log (quiver_rl::ope_many), one chunk of m rows on the GPU:
// the chunk's matrix Z = [C | Y] (row-major, m x W, W = K + R), its column means, centring, and
// the responses' sums of squares; cuBLAS then multiplies C_c^T Z_c. The arithmetic of the CPU's
// CoMoments::of_rows, operation for operation:
//   w = target_k / mu,  C = w - 1,  Y_ipw = w r,  Y_dr = vhat_k + w (r - qhat)
// Columns arrive column-major (targets[k * m + i], vhat[k * m + i]); vhat and qhat are null
// without a reward model (then R = K).

extern "C" __global__ void many_rows(const double* r, const double* mu, const double* targets,
                                     const double* vhat, const double* qhat, long long m, int k,
                                     double* z) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= m * k) return;
    long long i = idx / k;
    int j = (int)(idx % k);
    int width = vhat ? 3 * k : 2 * k;
    double w = targets[(long long)j * m + i] / mu[i];
    double* line = z + i * width;
    line[j] = w - 1.0;
    line[k + j] = w * r[i];
    if (vhat) line[2 * k + j] = vhat[(long long)j * m + i] + w * (r[i] - qhat[i]);
}

// Column sums of z (m x width): one thread per column, rows in order, so the sum is the CPU's
// (which adds the rows in order too).
extern "C" __global__ void column_sums(const double* z, long long m, int width, double* sums) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= width) return;
    double acc = 0.0;
    for (long long i = 0; i < m; ++i) acc += z[i * width + c];
    sums[c] = acc;
}

// Subtract each column's mean; then, for the response columns (from k on), the sum of squares
// of the centred values, rows in order (one thread per column).
extern "C" __global__ void centre(double* z, long long m, int width, int k, const double* means,
                                  double* sumsq) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= width) return;
    double mean = means[c], acc = 0.0;
    for (long long i = 0; i < m; ++i) {
        double x = z[i * width + c] - mean;
        z[i * width + c] = x;
        acc += x * x;
    }
    if (c >= k) sumsq[c - k] = acc;
}

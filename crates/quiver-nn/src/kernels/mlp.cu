// quiver-nn's training step on an NVIDIA GPU (f32), beside cuBLAS's SGEMMs: the per-row, per-column
// and per-element parts of `Mlp::forward`, `Mlp::backward`, `Adam::step` and `Mlp::polyak_toward`,
// written in the same arithmetic as the CPU (compiled without fused multiply-adds). Matrices are
// row-major, rows × width; a block of QV_THREADS threads takes one row where a row's sums are needed
// (layer norm), and its threads meet in a tree of partial sums.
#define QV_THREADS 256

// the sum of every thread's `v` in the block, in a fixed tree order
__device__ float qv_block_sum(float v, float* red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] = red[threadIdx.x] + red[threadIdx.x + w];
        __syncthreads();
    }
    float s = red[0];
    __syncthreads();
    return s;
}

// z ← z + b; then, for a hidden layer, layer norm (x̂ = (z − mean)/σ kept in `xhat`, 1/σ in `rstd`)
// and ReLU(x̂ g + shift), or ReLU alone without layer norm; the output layer adds its bias only.
// `norm` points at the gains, the shifts follow them. One block per row.
extern "C" __global__ void bias_norm_relu(float* z, const float* bias, const float* norm, int has_norm, int relu,
                                          int rows, int width, float* xhat, float* rstd) {
    __shared__ float red[QV_THREADS];
    int r = blockIdx.x;
    if (r >= rows) return;
    float* zr = z + (long long)r * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) zr[j] = zr[j] + bias[j];
    if (!has_norm) {
        if (relu)
            for (int j = threadIdx.x; j < width; j += blockDim.x) zr[j] = zr[j] > 0.0f ? zr[j] : 0.0f;
        return;
    }
    float n = (float)width;
    float part = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) part = part + zr[j];
    float mean = qv_block_sum(part, red) / n;
    part = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float d = zr[j] - mean;
        part = part + d * d;
    }
    float var = qv_block_sum(part, red) / n;
    float s = 1.0f / sqrtf(var + 1e-5f);
    if (threadIdx.x == 0) rstd[r] = s;
    const float* gain = norm;
    const float* shift = norm + width;
    float* xr = xhat + (long long)r * width;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float x = (zr[j] - mean) * s;
        xr[j] = x;
        float y = x * gain[j] + shift[j];
        zr[j] = y > 0.0f ? y : 0.0f;
    }
}

// The gradient in a hidden layer's output (`delta`) taken back through its ReLU (`act`: the
// layer's output) and, with layer norm, through the norm: dz = σ⁻¹ (d − mean(d) − x̂ mean(d ⊙ x̂))
// with d = dy ⊙ g, in place. The ReLU-masked dy is kept in `masked` for the gains' and shifts'
// gradients (column sums). One block per row.
extern "C" __global__ void norm_backward(float* delta, const float* act, const float* xhat, const float* rstd,
                                         const float* gain, int has_norm, int rows, int width, float* masked) {
    __shared__ float red[QV_THREADS];
    int r = blockIdx.x;
    if (r >= rows) return;
    float* d = delta + (long long)r * width;
    const float* a = act + (long long)r * width;
    if (!has_norm) {
        for (int j = threadIdx.x; j < width; j += blockDim.x) d[j] = a[j] > 0.0f ? d[j] : 0.0f;
        return;
    }
    const float* x = xhat + (long long)r * width;
    float* mk = masked + (long long)r * width;
    float p1 = 0.0f, p2 = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float dy = a[j] > 0.0f ? d[j] : 0.0f;
        mk[j] = dy;
        float dg = dy * gain[j];
        d[j] = dg;
        p1 = p1 + dg;
        p2 = p2 + dg * x[j];
    }
    float n = (float)width;
    float m1 = qv_block_sum(p1, red) / n;
    float m2 = qv_block_sum(p2, red) / n;
    float s = rstd[r];
    for (int j = threadIdx.x; j < width; j += blockDim.x) d[j] = s * (d[j] - m1 - x[j] * m2);
}

// out[j] = Σ_r x[r, j] (· y[r, j] when use_y), the rows in order: a bias's, a gain's or a shift's
// gradient. One thread per column.
extern "C" __global__ void column_sums(const float* x, const float* y, int use_y, int rows, int width, float* out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++) {
        long long i = (long long)r * width + j;
        acc = acc + (use_y ? x[i] * y[i] : x[i]);
    }
    out[j] = acc;
}

// One Adam step (torch.optim.Adam's arithmetic, as quiver-nn's CPU step), the gradient scaled by
// `scale` (clipping) first.
extern "C" __global__ void adam(float* p, const float* g, float* m, float* v, long long n, float b1, float b2,
                                float scale, float eps, float step_size, float sqrt_bc2) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i] * scale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = p[i] - step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

// Polyak averaging: t ← t + τ (o − t).
extern "C" __global__ void polyak(float* t, const float* o, long long n, float tau) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        t[i] = t[i] + tau * (o[i] - t[i]);
}

// Σ g², in doubles, by one block (a gradient's squared norm, for clipping).
extern "C" __global__ void sum_squares(const float* g, long long n, double* out) {
    __shared__ double red[QV_THREADS];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) acc = acc + (double)g[i] * (double)g[i];
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] = red[threadIdx.x] + red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = red[0];
}

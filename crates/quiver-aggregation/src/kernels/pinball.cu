// Pinball loss of global aggregation weights and its gradient, over a batch of rows.
//
// q:      forecasts, column-major: column c = j * K + k (model j, level k) at q + c * n
// y:      outcomes (n)
// levels: tau_k (K)
// wjk:    the weight of model j at level k, at wjk[j * K + k] (coarse: w_j for every k)
// rows:   the batch's row indices (n_rows)
// grad:   G[j * K + k] += sum over the batch of (1{y < qhat} - tau_k) * q[j, k]   (zeroed by the caller)
// loss:   loss[0] += sum over the batch and the levels of max(tau u, (tau - 1) u), u = y - qhat
//
// Grid: x = level k, y = chunks of the batch; 256 threads a block. Each thread keeps its partial
// sums for up to MAX_MODELS models in registers, then the block reduces them through shared
// memory and one thread per model adds the block's sum with atomicAdd (double, sm_60+).

#define MAX_MODELS 32
#define THREADS 256

extern "C" __global__ void pinball_grad(const double* __restrict__ q, const double* __restrict__ y,
                                        const double* __restrict__ levels, const double* __restrict__ wjk,
                                        const unsigned int* __restrict__ rows, unsigned int n_rows,
                                        unsigned long long n, unsigned int n_models, unsigned int n_levels,
                                        double* __restrict__ grad, double* __restrict__ loss) {
    __shared__ double red[THREADS];
    const unsigned int k = blockIdx.x;
    const double tau = levels[k];
    double part[MAX_MODELS];
    for (unsigned int j = 0; j < n_models; ++j) part[j] = 0.0;
    double part_loss = 0.0;
    for (unsigned int r = blockIdx.y * blockDim.x + threadIdx.x; r < n_rows; r += gridDim.y * blockDim.x) {
        const unsigned long long i = rows[r];
        double qhat = 0.0;
        for (unsigned int j = 0; j < n_models; ++j) {
            qhat += wjk[j * n_levels + k] * q[(unsigned long long)(j * n_levels + k) * n + i];
        }
        const double u = y[i] - qhat;
        part_loss += u >= 0.0 ? tau * u : (tau - 1.0) * u;
        const double g = y[i] < qhat ? 1.0 - tau : -tau;
        for (unsigned int j = 0; j < n_models; ++j) {
            part[j] += g * q[(unsigned long long)(j * n_levels + k) * n + i];
        }
    }
    // block reductions: the loss, then one per model
    for (int j = -1; j < (int)n_models; ++j) {
        red[threadIdx.x] = j < 0 ? part_loss : part[j];
        __syncthreads();
        for (unsigned int s = THREADS / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            if (j < 0) atomicAdd(loss, red[0]);
            else atomicAdd(&grad[j * n_levels + k], red[0]);
        }
        __syncthreads();
    }
}

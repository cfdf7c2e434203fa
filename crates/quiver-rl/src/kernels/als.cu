// The low-rank completion's alternating least squares on an NVIDIA GPU, for a batch of matrices
// that share one mask of observed cells (the reward, the continuation mass and every next state's
// transition slice of `critic-lowrank`): B matrices Y_b (rows × cols, row-major, one after another),
// their factors U_b (rows × r) and V_b (cols × r), row-major. A block solves one line's ridge least
// squares — a row of U_b from V_b, or a row of V_b from U_b — accumulating the normal equations
// (ρ_b I + Σ f fᵀ, Σ y f over the line's observed cells, in the cells' order, as the CPU does) in
// shared memory, then solving them by Cholesky on one thread (r is small).

// the line's normal equations and their solution; `a` (r × r) and `x` (r) in shared memory
extern "C" __global__ void als_lines(const double* y, const unsigned char* observed, const double* other,
                                     double* mine, const int* active, const double* rho, int rows, int cols,
                                     int r, int by_rows, int* failed) {
    extern __shared__ double sh[];
    double* a = sh;
    double* x = sh + r * r;
    int line = blockIdx.x;
    int b = blockIdx.y;
    int lines = by_rows ? rows : cols;
    int others = by_rows ? cols : rows;
    if (line >= lines || !active[b]) return;
    const double* yb = y + (long long)b * rows * cols;
    const double* f = other + (long long)b * others * r;
    // the lower triangle (the factorisation reads no other)
    for (int idx = threadIdx.x; idx < r * r; idx += blockDim.x) {
        int p = idx / r, q = idx % r;
        if (q > p) continue;
        double acc = p == q ? rho[b] : 0.0;
        for (int o = 0; o < others; o++) {
            long long cell = by_rows ? (long long)line * cols + o : (long long)o * cols + line;
            if (observed[cell]) acc = acc + f[(long long)o * r + p] * f[(long long)o * r + q];
        }
        a[idx] = acc;
    }
    for (int p = threadIdx.x; p < r; p += blockDim.x) {
        double acc = 0.0;
        for (int o = 0; o < others; o++) {
            long long cell = by_rows ? (long long)line * cols + o : (long long)o * cols + line;
            if (observed[cell]) acc = acc + yb[cell] * f[(long long)o * r + p];
        }
        x[p] = acc;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        // A = L Lᵀ in place (lower triangle), then L z = x, Lᵀ w = z
        int ok = 1;
        for (int j = 0; j < r && ok; j++) {
            double d = a[j * r + j];
            for (int k = 0; k < j; k++) d = d - a[j * r + k] * a[j * r + k];
            if (!(d > 0.0)) {
                ok = 0;
                break;
            }
            double l = sqrt(d);
            a[j * r + j] = l;
            for (int i = j + 1; i < r; i++) {
                double s = a[i * r + j];
                for (int k = 0; k < j; k++) s = s - a[i * r + k] * a[j * r + k];
                a[i * r + j] = s / l;
            }
        }
        if (!ok) {
            atomicMax(failed, 1);
        } else {
            for (int i = 0; i < r; i++) {
                double s = x[i];
                for (int k = 0; k < i; k++) s = s - a[i * r + k] * x[k];
                x[i] = s / a[i * r + i];
            }
            for (int i = r - 1; i >= 0; i--) {
                double s = x[i];
                for (int k = i + 1; k < r; k++) s = s - a[k * r + i] * x[k];
                x[i] = s / a[i * r + i];
            }
            double* out = mine + (long long)b * lines * r + (long long)line * r;
            for (int p = 0; p < r; p++) out[p] = x[p];
        }
    }
}

// One block per matrix: the sweep's change max |Z − L| against the scale max |Z| of the new
// product Z = U Vᵀ; a matrix whose change is at most 1e-12 of its scale stops (`active` = 0), as
// the CPU's loop does; L ← Z.
extern "C" __global__ void als_converged(const double* z, double* last, int* active, long long cells) {
    __shared__ double change[256];
    __shared__ double scale[256];
    int b = blockIdx.x;
    if (!active[b]) return;
    const double* zb = z + (long long)b * cells;
    double* lb = last + (long long)b * cells;
    double c = 0.0, s = 0.0;
    for (long long i = threadIdx.x; i < cells; i += blockDim.x) {
        c = fmax(c, fabs(zb[i] - lb[i]));
        s = fmax(s, fabs(zb[i]));
        lb[i] = zb[i];
    }
    change[threadIdx.x] = c;
    scale[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
            change[threadIdx.x] = fmax(change[threadIdx.x], change[threadIdx.x + w]);
            scale[threadIdx.x] = fmax(scale[threadIdx.x], scale[threadIdx.x + w]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0 && change[0] <= 1e-12 * fmax(scale[0], 2.2250738585072014e-308)) active[b] = 0;
}

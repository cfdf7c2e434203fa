// Off-policy evaluation on the GPU: segmented scans over episodes and the counter-based Poisson
// bootstrap. The counts are bit-for-bit those of the CPU path (quiver_rl::bootstrap): unit e's
// count in resample b is poisson1(mix(key_b + k_e * PHI)), key_b = mix(seed + mix(b * PHI + 1)),
// k_e the unit's key (keys[e], or first + e), mix the SplitMix64 finaliser, poisson1 the inverse
// of the Poisson(1) CDF at the uniform of the word's top 53 bits. Compiled with --fmad=false.

#define PHI 0x9E3779B97F4A7C15ULL

__device__ __forceinline__ unsigned long long mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// POISSON1_CDF[20], the Poisson(1) CDF at 0..20: the host prepends the constants of
// quiver_rl::bootstrap::POISSON1_CDF (quiver_rl::gpu::ope_kernel), so both read one table.

// The same comparisons as quiver_rl::bootstrap::poisson1: the first k with U < F_k, at most 20.
__device__ __forceinline__ unsigned int poisson1(unsigned long long u) {
    double x = (double)(u >> 11) * (1.0 / 9007199254740992.0);
    unsigned int k = 0;
    while (k < 20 && x >= POISSON1_CDF[k]) ++k;
    return k;
}

// Cumulative importance weights w_t = prod_{k<=t} rho_k within each episode (a segmented product
// scan): one thread per episode, rows start[e] .. end[e].
extern "C" __global__ void episode_weights(const double* rho, const long long* start, const long long* end,
                                           long long episodes, double* w) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= episodes) return;
    double acc = 1.0;
    for (long long i = start[e]; i < end[e]; ++i) {
        acc *= rho[i];
        w[i] = acc;
    }
}

// h-step discounted reward sums inside each episode, one thread per row:
//   ret[i] = sum_{k < h'} gamma^k r[i + k],  h' = min(h, end_of_episode(i) - i),  len[i] = h'.
extern "C" __global__ void nstep_returns(const double* r, const long long* episode_end, long long n, int h,
                                         double gamma, double* ret, int* len) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long stop = episode_end[i];
    if (stop > i + h) stop = i + h;
    double acc = 0.0, disc = 1.0;
    for (long long k = i; k < stop; ++k) {
        acc += disc * r[k];
        disc *= gamma;
    }
    ret[i] = acc;
    len[i] = (int)(stop - i);
}

// Counts of resamples b0 .. b0 + gridDim.y - 1: counts[b][e] for unit e, whose key is keys[e]
// (keys non-null) or first + e.
extern "C" __global__ void bootstrap_counts(unsigned long long seed, unsigned long long b0, long long n,
                                            const unsigned long long* keys, unsigned long long first,
                                            unsigned int* counts) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    unsigned long long b = b0 + blockIdx.y;
    unsigned long long key = mix(seed + mix(b * PHI + 1ULL));
    unsigned long long k = keys ? keys[e] : first + (unsigned long long)e;
    counts[(long long)blockIdx.y * n + e] = poisson1(mix(key + k * PHI));
}

// Slot sums of each resample and its size, S[b][slot] = sum_e counts[b][e] X[e][slot] and
// S[b][width] = sum_e counts[b][e] (rows of width + 1), X sparse in compressed rows (offsets,
// slots, values). blockIdx.y is the resample; threads stride over units. With use_shared the
// block accumulates in shared memory (width + 1 doubles) and adds its totals once.
extern "C" __global__ void resample_sums(const unsigned int* counts, const long long* offsets,
                                         const unsigned int* slots, const double* values, long long n,
                                         int width, int use_shared, double* sums) {
    extern __shared__ double acc[];
    const unsigned int* c = counts + (long long)blockIdx.y * n;
    double* out = sums + (long long)blockIdx.y * (width + 1);
    if (use_shared) {
        for (int s = threadIdx.x; s <= width; s += blockDim.x) acc[s] = 0.0;
        __syncthreads();
    }
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        unsigned int ce = c[e];
        if (ce == 0) continue;
        double cf = (double)ce;
        if (use_shared) atomicAdd(&acc[width], cf);
        else atomicAdd(&out[width], cf);
        for (long long p = offsets[e]; p < offsets[e + 1]; ++p) {
            double v = cf * values[p];
            if (use_shared) atomicAdd(&acc[slots[p]], v);
            else atomicAdd(&out[slots[p]], v);
        }
    }
    if (use_shared) {
        __syncthreads();
        for (int s = threadIdx.x; s <= width; s += blockDim.x)
            if (acc[s] != 0.0) atomicAdd(&out[s], acc[s]);
    }
}

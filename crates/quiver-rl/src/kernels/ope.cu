// Off-policy evaluation on the GPU: segmented scans over episodes and the counter-based bootstrap.
// The draws are bit-for-bit those of the CPU path (quiver_rl::bootstrap): draw j of resample b is
//   mulhi(mix(key_b + j * PHI), n),  key_b = mix(seed + mix(b * PHI + 1)),
// mix the SplitMix64 finaliser. Compiled with --fmad=false.

#define PHI 0x9E3779B97F4A7C15ULL

__device__ __forceinline__ unsigned long long mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
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

// Draw counts of resamples b0 .. b0 + gridDim.y - 1: counts[b][idx] += 1 for each of n draws.
extern "C" __global__ void bootstrap_counts(unsigned long long seed, unsigned long long b0, long long n,
                                            unsigned int* counts) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    unsigned long long b = b0 + blockIdx.y;
    unsigned long long key = mix(seed + mix(b * PHI + 1ULL));
    unsigned long long u = mix(key + (unsigned long long)j * PHI);
    unsigned long long idx = __umul64hi(u, (unsigned long long)n);
    atomicAdd(&counts[(long long)blockIdx.y * n + (long long)idx], 1u);
}

// Slot sums of each resample, S[b][slot] = sum_e counts[b][e] X[e][slot], X sparse in compressed
// rows (offsets, slots, values). blockIdx.y is the resample; threads stride over units. With
// use_shared the block accumulates in shared memory (width doubles) and adds its totals once.
extern "C" __global__ void resample_sums(const unsigned int* counts, const long long* offsets,
                                         const unsigned int* slots, const double* values, long long n,
                                         int width, int use_shared, double* sums) {
    extern __shared__ double acc[];
    const unsigned int* c = counts + (long long)blockIdx.y * n;
    double* out = sums + (long long)blockIdx.y * width;
    if (use_shared) {
        for (int s = threadIdx.x; s < width; s += blockDim.x) acc[s] = 0.0;
        __syncthreads();
    }
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        unsigned int ce = c[e];
        if (ce == 0) continue;
        double cf = (double)ce;
        for (long long p = offsets[e]; p < offsets[e + 1]; ++p) {
            double v = cf * values[p];
            if (use_shared) atomicAdd(&acc[slots[p]], v);
            else atomicAdd(&out[slots[p]], v);
        }
    }
    if (use_shared) {
        __syncthreads();
        for (int s = threadIdx.x; s < width; s += blockDim.x)
            if (acc[s] != 0.0) atomicAdd(&out[s], acc[s]);
    }
}

// One row window of the prefix-max dynamic program of batch predictive inference (Lee et al.,
// 2024; see dp.rs):
//   cur[j] = max over t in [max(i-1, j-(n+1)), j-1] of h(prev[t], S_(j-t))   for j < i(n+1),
//   cur[j] = full (the composition of i copies of S_(n+1))                    for j >= i(n+1),
// for j in [lo, hi], with h = + (op 0: sums, means) or h = max (op 1), and w the calibration scores
// reversed (w[x] = S_(n+1-x), so S_(j-t) = w[n+1-j+t]). One thread per j.
// Compiled with --fmad=false: the maximum of identically rounded sums equals the CPU's exactly.

extern "C" __global__ void mean_dp_row(
    const double* __restrict__ prev,
    const double* __restrict__ w,
    long long n, long long i, long long lo, long long hi, double full, int op,
    double* __restrict__ cur)
{
    long long j = lo + (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j > hi) return;
    if (j >= i * (n + 1)) { cur[j] = full; return; }
    long long t0 = j - (n + 1);
    if (t0 < i - 1) t0 = i - 1;
    double best = __longlong_as_double(0xfff0000000000000ULL);  // -inf (NVRTC has no math.h)
    for (long long t = t0; t < j; ++t) {
        double a = prev[t];
        double b = w[n + 1 - j + t];
        double v = (op == 0) ? a + b : (a > b ? a : b);
        best = v > best ? v : best;
    }
    cur[j] = best;
}

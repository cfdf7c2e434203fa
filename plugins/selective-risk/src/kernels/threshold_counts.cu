// Threshold search for selective risk: for each candidate threshold lambda_g, the number of
// calibration judgments accepted (score <= lambda_g) and the number of errors among them.
// One thread per candidate: a binary search (upper bound) in the sorted calibration scores, then
// a read of the prefix error counts. Integer results: CUDA equals the CPU exactly.

extern "C" __global__ void threshold_counts(
    const double* __restrict__ sorted_scores, long long n,
    const long long* __restrict__ error_prefix,  // n + 1 entries: errors among the first i
    const double* __restrict__ lambdas, long long g,
    long long* __restrict__ n_accepted,
    long long* __restrict__ n_errors)
{
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= g) return;
    double lam = lambdas[k];
    long long lo = 0, hi = n;
    while (lo < hi) { long long mid = (lo + hi) >> 1; if (sorted_scores[mid] <= lam) lo = mid + 1; else hi = mid; }
    n_accepted[k] = lo;
    n_errors[k] = error_prefix[lo];
}

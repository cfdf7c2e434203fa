// Conformal p-values of Jin & Candes (2023) for many test scores against sorted calibration scores.
// One thread per test unit: two binary searches (strictly-below and at-or-below counts), then
//   unweighted: p = (lt + u * (1 + (le - lt))) / (n + 1)
//   weighted:   p = (W[lt] + (w_j + (W[le] - W[lt])) * u) / (w_j + W[n])
// with W the exclusive prefix sums of the calibration weights in sorted order (computed on the host,
// so both devices use identical sums). Compiled with --fmad=false: results equal the CPU bit for bit.

extern "C" __global__ void conformal_pvalues(
    const double* __restrict__ cal_sorted, long long n,
    const double* __restrict__ wprefix,   // n + 1 entries, or nullptr when unweighted
    const double* __restrict__ test_scores,
    const double* __restrict__ test_w,    // m entries, or nullptr when unweighted
    const double* __restrict__ u,
    long long m,
    double* __restrict__ out)
{
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    double v = test_scores[j];
    long long lo = 0, hi = n;
    while (lo < hi) { long long mid = (lo + hi) >> 1; if (cal_sorted[mid] < v) lo = mid + 1; else hi = mid; }
    long long lt = lo;
    hi = n;
    while (lo < hi) { long long mid = (lo + hi) >> 1; if (cal_sorted[mid] <= v) lo = mid + 1; else hi = mid; }
    long long le = lo;
    double uj = u[j];
    if (wprefix == nullptr) {
        out[j] = ((double)lt + uj * (1.0 + (double)(le - lt))) / ((double)n + 1.0);
    } else {
        double wj = test_w[j];
        out[j] = (wprefix[lt] + (wj + (wprefix[le] - wprefix[lt])) * uj) / (wj + wprefix[n]);
    }
}

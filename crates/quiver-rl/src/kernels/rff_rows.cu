// Random Fourier features of one chunk of transitions, one thread per (row, feature):
//   psi_j(s) = scale * cos(b_j + sum_c w[j][c] * s[c])
//   phi[i]  = e_{a_i} (x) psi(s_i)                      (the row's own action block)
//   next[i] = sum_q pnext[i][q] e_q (x) psi(s'_i)       (the target at s'; pnext is 0 on ended rows)
// All matrices row-major. Compiled with --fmad=false, so the sums round as on the CPU.
extern "C" __global__ void rff_rows(const double* s, const double* s_next, const long long* a,
                                    const double* pnext, const double* w, const double* b, int m, int k,
                                    int D, int n_actions, double scale, double* phi, double* next) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)m * D) return;
    int i = (int)(idx / D);
    int j = (int)(idx % D);
    double z = 0.0, z2 = 0.0;
    for (int c = 0; c < k; ++c) {
        z += w[j * k + c] * s[(long long)i * k + c];
        z2 += w[j * k + c] * s_next[(long long)i * k + c];
    }
    double psi = scale * cos(b[j] + z);
    double psi2 = scale * cos(b[j] + z2);
    long long d = (long long)D * n_actions;
    for (int q = 0; q < n_actions; ++q) {
        phi[i * d + (long long)q * D + j] = (a[i] == q) ? psi : 0.0;
        next[i * d + (long long)q * D + j] = pnext[(long long)i * n_actions + q] * psi2;
    }
}

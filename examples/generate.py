#!/usr/bin/env python3
"""Regenerate the built-in examples of `cargo xtask demo` (deterministic; standard library only).

conformal-selection: virtual screening. A model predicts the binding affinity (pIC50) of compounds;
2000 assayed compounds calibrate it, 1000 new candidates are screened for pIC50 > 7 with at most
10% false discoveries among those sent to the lab. truth.csv holds the held-back assay results.

batch-pi: the screening model's absolute errors on 2000 assayed compounds calibrate a bound on the
mean absolute error over the next batch of 100 compounds (pIC50 lives in [2, 12], so an error is at
most 10). truth.csv holds the batch's realised errors.

selective-risk: an LLM judge compares answer pairs, asked twice with the order swapped (p_fwd,
p_rev = its probability that A wins). 3000 judgments with human labels calibrate which verdicts to
trust; 2000 new verdicts are accepted or deferred so that accepted ones are wrong at most 10% of
the time (Learn then Test, 90% confidence). truth.csv says which new verdicts were wrong.

critic-lstd, critic-expectile, critic-cql, critic-quantile, critic-chunked, ope: a streaming
service's customer journeys. Each week a
customer is at an engagement level 0 (about to leave) .. 4 (power user); the service does nothing,
offers a discount or makes a personal call; the reward is the week's revenue less the action's cost;
a customer who leaves ends the journey. The logging (behaviour) policy never calls the two least
engaged levels. A proposed policy discounts the at-risk customers. The MDP is small, so its values
are exact linear algebra: truth.csv holds V of the proposed policy (critic-lstd, critic-cql,
critic-quantile: the mean of its return quantiles) and
the best value reachable with the logged actions alone (critic-expectile), V of the logging policy
(critic-chunked); for ope, the proposed
policy's expected discounted return over the 20 logged weeks.

quantile-aggregation: day-ahead electricity demand of a region (GW) against the forecast
temperature. Demand grows with heat and swings more on hot days (heteroscedastic noise). Three
base models fitted on 3000 past days forecast 7 quantiles (5%..95%): a linear model with a constant
spread, a 60-nearest-neighbour quantile model, and a Gaussian model with a smooth mean and a
spread growing with temperature. No model wins everywhere. 2000 days fit the aggregation weights,
2000 calibrate its intervals, 2000 are forecast; truth.csv holds their realised demand.
"""
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def write(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")


def screening():
    rng = random.Random(20231)
    def compound():
        latent = rng.gauss(6.0, 1.0)
        y = latent + rng.gauss(0.0, 0.4)
        mu = latent + rng.gauss(0.0, 0.3)
        return y, mu
    cal = [compound() for _ in range(2000)]
    test = [compound() for _ in range(1000)]
    d = os.path.join(HERE, "conformal-selection")
    write(os.path.join(d, "calibration.csv"), ["compound", "y", "mu"],
          [(f"C{i:05d}", f"{y:.3f}", f"{mu:.3f}") for i, (y, mu) in enumerate(cal)])
    write(os.path.join(d, "test.csv"), ["compound", "mu"],
          [(f"N{j:05d}", f"{mu:.3f}") for j, (_, mu) in enumerate(test)])
    write(os.path.join(d, "truth.csv"), ["compound", "y", "truth"],
          [(f"N{j:05d}", f"{y:.3f}", "1" if y > 7.0 else "0") for j, (y, _) in enumerate(test)])


def batch_errors():
    rng = random.Random(777)
    def compound():
        latent = rng.gauss(6.0, 1.0)
        y = min(12.0, max(2.0, latent + rng.gauss(0.0, 0.4)))
        mu = latent + rng.gauss(0.0, 0.3)
        return min(10.0, abs(y - mu))
    cal = [compound() for _ in range(2000)]
    test = [compound() for _ in range(100)]
    d = os.path.join(HERE, "batch-pi")
    write(os.path.join(d, "calibration.csv"), ["score"], [(f"{e:.4f}",) for e in cal])
    write(os.path.join(d, "truth.csv"), ["truth"], [(f"{e:.4f}",) for e in test])


def judge():
    rng = random.Random(4242)
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))
    def judgment():
        margin = rng.gauss(0.0, 1.5)
        human_a = margin + rng.gauss(0.0, 0.6) > 0
        p_fwd = sig(margin + rng.gauss(0.0, 0.8) + 0.4)   # position bias towards the first answer
        p_rev = sig(margin + rng.gauss(0.0, 0.8) - 0.4)
        verdict_a = (p_fwd + p_rev) / 2 > 0.5
        return p_fwd, p_rev, int(verdict_a != human_a)
    cal = [judgment() for _ in range(3000)]
    test = [judgment() for _ in range(2000)]
    d = os.path.join(HERE, "selective-risk")
    write(os.path.join(d, "calibration.csv"), ["p_fwd", "p_rev", "error"],
          [(f"{a:.4f}", f"{b:.4f}", str(e)) for a, b, e in cal])
    write(os.path.join(d, "test.csv"), ["p_fwd", "p_rev"], [(f"{a:.4f}", f"{b:.4f}") for a, b, _ in test])
    write(os.path.join(d, "truth.csv"), ["truth"], [(str(e),) for _, _, e in test])


def solve(a, b):
    """Gaussian elimination with partial pivoting."""
    n = len(b)
    a = [row[:] for row in a]
    b = b[:]
    for c in range(n):
        p = max(range(c, n), key=lambda i: abs(a[i][c]))
        a[c], a[p] = a[p], a[c]
        b[c], b[p] = b[p], b[c]
        for i in range(c + 1, n):
            f = a[i][c] / a[c][c]
            for k in range(c, n):
                a[i][k] -= f * a[c][k]
            b[i] -= f * b[c]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (b[i] - sum(a[i][k] * x[k] for k in range(i + 1, n))) / a[i][i]
    return x


def critics():
    S, A, gamma = 5, 3, 0.9
    cost = [0.0, 0.8, 1.5]
    churn = [0.25, 0.10, 0.05, 0.03, 0.02]

    def model(s, a):
        up = 0.2 + [0.0, 0.15, 0.25][a]
        down = 0.25 - [0.0, 0.0, 0.1][a]
        leave = churn[s] * [1.0, 0.8, 0.5][a]
        p = [0.0] * S
        p[min(s + 1, S - 1)] += up
        p[max(s - 1, 0)] += down
        p[s] += 1.0 - up - down
        return p, leave, (s + 1) - cost[a]

    behaviour = [[0.7, 0.3, 0.0], [0.7, 0.3, 0.0], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]
    target = [[0.2, 0.8, 0.0], [0.2, 0.8, 0.0], [0.6, 0.2, 0.2], [0.6, 0.2, 0.2], [0.6, 0.2, 0.2]]
    # exact Q of the target: (I - gamma P_pi) Q = R over the S*A pairs
    n = S * A
    m = [[0.0] * n for _ in range(n)]
    r = [0.0] * n
    for s_ in range(S):
        for a in range(A):
            k = s_ * A + a
            p, leave, rew = model(s_, a)
            m[k][k] += 1.0
            r[k] = rew
            for s2 in range(S):
                for a2 in range(A):
                    m[k][s2 * A + a2] -= gamma * (1 - leave) * p[s2] * target[s2][a2]
    q = solve(m, r)
    v_target = [sum(target[s_][a] * q[s_ * A + a] for a in range(A)) for s_ in range(S)]
    # the same for the logging policy (critic-chunked's behaviour value)
    mb = [[0.0] * n for _ in range(n)]
    for s_ in range(S):
        for a in range(A):
            k = s_ * A + a
            p, leave, _ = model(s_, a)
            mb[k][k] += 1.0
            for s2 in range(S):
                for a2 in range(A):
                    mb[k][s2 * A + a2] -= gamma * (1 - leave) * p[s2] * behaviour[s2][a2]
    qb = solve(mb, r)
    v_behaviour = [sum(behaviour[s_][a] * qb[s_ * A + a] for a in range(A)) for s_ in range(S)]
    # the best value with the logged actions only (value iteration over the behaviour's support)
    v_best = [0.0] * S
    for _ in range(3000):
        v_best = [max(model(s_, a)[2] + gamma * (1 - model(s_, a)[1]) * sum(pp * v for pp, v in zip(model(s_, a)[0], v_best))
                      for a in range(A) if behaviour[s_][a] > 0) for s_ in range(S)]

    rng = random.Random(4242)
    def draw(p):
        u, acc = rng.random(), 0.0
        for i, x in enumerate(p):
            acc += x
            if u < acc:
                return i
        return max(i for i, x in enumerate(p) if x > 0)
    rows = []
    for e in range(300):
        s_ = rng.randrange(S)
        a = draw(behaviour[s_])
        for t in range(20):
            p, leave, rew = model(s_, a)
            s2 = draw(p)
            done = rng.random() < leave
            a2 = draw(behaviour[s2])
            rows.append((str(e), str(t), str(s_), str(a), f"{rew + rng.gauss(0.0, 0.5):.4f}", str(s2),
                         "1" if done else "0", str(a2), f"{behaviour[s_][a]:.2f}", f"{target[s_][a]:.2f}"))
            if done:
                break
            s_, a = s2, a2
    header = ["episode", "t", "s", "a", "r", "s_next", "done", "a_next", "mu_prob", "pi_prob"]
    policy = [(str(s_), str(a), f"{target[s_][a]:.2f}") for s_ in range(S) for a in range(A) if target[s_][a] > 0]
    # the target's expected discounted return over the logged horizon (20 weeks), uniform start
    v_h = [0.0] * S
    for _ in range(20):
        v_h = [sum(target[s_][a] * (model(s_, a)[2] + gamma * (1 - model(s_, a)[1])
                                      * sum(pp * v for pp, v in zip(model(s_, a)[0], v_h)))
                   for a in range(A)) for s_ in range(S)]
    j_horizon = sum(v_h) / S
    d = os.path.join(HERE, "ope")
    write(os.path.join(d, "policy.csv"), ["s", "a", "prob"], policy)
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j_over_20_weeks", f"{j_horizon:.6f}")])
    for method, truth in [("critic-lstd", v_target), ("critic-expectile", v_best), ("critic-cql", v_target),
                          ("critic-quantile", v_target), ("critic-chunked", v_behaviour)]:
        d = os.path.join(HERE, method)
        write(os.path.join(d, "transitions.csv"), header, rows)
        if method == "critic-lstd":
            write(os.path.join(HERE, "ope", "transitions.csv"), header, rows)
        if method not in ("critic-expectile", "critic-chunked"):
            write(os.path.join(d, "policy.csv"), ["s", "a", "prob"], policy)
        write(os.path.join(d, "truth.csv"), ["state", "truth"], [(str(s_), f"{v:.6f}") for s_, v in enumerate(truth)])


LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


def normal_quantile(p):
    """Inverse of the standard normal CDF by bisection on math.erf (to 1e-12)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def aggregation():
    rng = random.Random(20231)

    def mean(x):
        return 30.0 + 4.0 * math.sin(x / 4.0) + 0.04 * (x - 15.0) ** 2

    def spread(x):
        return 0.6 + 0.12 * x

    def draw(n):
        # hot days are rare: temperatures 35 u^2 (dense when cool)
        xs = [35.0 * rng.random() ** 2 for _ in range(n)]
        # skewed noise: a normal plus an exponential spike on some days
        ys = [mean(x) + spread(x) * (rng.gauss(0.0, 1.0) + (rng.expovariate(1.0) - 1.0) * 0.6) for x in xs]
        return xs, ys

    tx, ty = draw(3000)
    n = len(tx)
    # linear model, constant spread
    mx, my = sum(tx) / n, sum(ty) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(tx, ty)) / sum((a - mx) ** 2 for a in tx)
    icpt = my - slope * mx
    res = [b - (icpt + slope * a) for a, b in zip(tx, ty)]
    sd = math.sqrt(sum(r * r for r in res) / (n - 2))
    z = [normal_quantile(t) for t in LEVELS]

    def linear(x):
        return [icpt + slope * x + sd * zt for zt in z]

    # k-nearest-neighbour empirical quantiles
    order = sorted(range(n), key=lambda i: tx[i])
    sx = [tx[i] for i in order]
    sy = [ty[i] for i in order]
    k = 60

    def knn(x):
        import bisect
        c = bisect.bisect_left(sx, x)
        lo, hi = c, c
        while hi - lo < k:
            if lo == 0:
                hi += 1
            elif hi == n:
                lo -= 1
            elif x - sx[lo - 1] <= sx[hi] - x:
                lo -= 1
            else:
                hi += 1
        ys = sorted(sy[lo:hi])
        return [ys[min(k - 1, max(0, math.ceil(t * k) - 1))] for t in LEVELS]

    # Gaussian: a smooth (over-smoothed) mean by binned averages, a spread linear in x
    bins = 5
    width = 35.0 / bins
    sums = [[0.0, 0] for _ in range(bins)]
    for a, b in zip(tx, ty):
        j = min(bins - 1, int(a / width))
        sums[j][0] += b
        sums[j][1] += 1
    centres = [(j + 0.5) * width for j in range(bins)]
    means = [s_ / max(c, 1) for s_, c in sums]

    def smooth(x):
        if x <= centres[0]:
            return means[0]
        if x >= centres[-1]:
            return means[-1]
        j = int((x - centres[0]) / width)
        w = (x - centres[j]) / width
        return (1 - w) * means[j] + w * means[j + 1]

    # |residual| regressed on x: E|e| = sigma sqrt(2/pi) for a normal
    ar = [abs(b - smooth(a)) for a, b in zip(tx, ty)]
    ma = sum(ar) / n
    s1 = sum((a - mx) * (r - ma) for a, r in zip(tx, ar)) / sum((a - mx) ** 2 for a in tx)
    s0 = ma - s1 * mx
    f = math.sqrt(math.pi / 2.0)

    def gauss(x):
        s_ = max(0.05, f * (s0 + s1 * x))
        return [smooth(x) + s_ * zt for zt in z]

    models = [("linear", linear), ("knn", knn), ("gauss", gauss)]
    header = ["y", "x_temp"] + [f"q_{m}_{t}" for m, _ in models for t in LEVELS]
    d = os.path.join(HERE, "quantile-aggregation")

    def rows(xs, ys, with_y):
        out = []
        for x, y in zip(xs, ys):
            r = ([f"{y:.4f}"] if with_y else []) + [f"{x:.3f}"]
            for _, m in models:
                r += [f"{v:.4f}" for v in m(x)]
            out.append(r)
        return out

    for name, size in [("fit", 2000), ("calibration", 2000)]:
        xs, ys = draw(size)
        write(os.path.join(d, f"{name}.csv"), header, rows(xs, ys, True))
    xs, ys = draw(2000)
    write(os.path.join(d, "test.csv"), header[1:], rows(xs, ys, False))
    write(os.path.join(d, "truth.csv"), ["row", "truth"], [(str(i), f"{y:.4f}") for i, y in enumerate(ys)])


def thermostat():
    """critic-net-fqe: a room's temperature deviation from its setpoint, read every 10 minutes over
    200 evenings of 40 readings, with the heating power the controller chose. The logged controller
    is a proportional one with dithering; the proposed one is power = -0.5 x deviation, without.
    Dynamics deviation' = 0.9 deviation + 0.5 power + N(0, 0.1^2); reward = -(deviation^2 + 0.1
    power^2). Linear-quadratic, so V of the proposed controller is exactly -p s^2 - c with
    p = (1 + 0.1 k^2)/(1 - gamma (0.9 + 0.5 k)^2), c = gamma 0.01 p/(1 - gamma): truth.csv holds
    J, the mean of V over the evenings' first readings."""
    rng = random.Random(11)
    a, b, rho, sigma, gamma, k = 0.9, 0.5, 0.1, 0.1, 0.9, -0.5
    rows, starts = [], []
    for e in range(200):
        x = rng.gauss(0.0, 1.0)
        starts.append(x)
        for t in range(40):
            u = k * x + rng.gauss(0.0, 0.3)
            x2 = a * x + b * u + sigma * rng.gauss(0.0, 1.0)
            r = -(x * x + rho * u * u)
            rows.append((str(e), str(t), f"{x:.6f}", f"{u:.6f}", f"{r:.6f}", f"{x2:.6f}", "0",
                         f"{k * x2:.6f}", f"{k * x:.6f}"))
            x = x2
    m = a + b * k
    p = (1 + rho * k * k) / (1 - gamma * m * m)
    c = gamma * sigma * sigma * p / (1 - gamma)
    j = sum(-p * s * s - c for s in starts) / len(starts)
    d = os.path.join(HERE, "critic-net-fqe")
    write(os.path.join(d, "transitions.csv"),
          ["episode", "t", "s_0", "a_0", "r", "s_next_0", "done", "a_next_0", "a_pi_0"], rows)
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j", f"{j:.6f}")])
    # critic-net-dsac: the same evenings and proposal, with the return's spread beside J
    # (its demo reads critic-net-fqe's transitions.csv: one log for the four continuous examples)
    d = os.path.join(HERE, "critic-net-dsac")
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j", f"{j:.6f}")])
    # critic-net-flow: the same evenings and proposal, read out through a learned flow
    d = os.path.join(HERE, "critic-net-flow")
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j", f"{j:.6f}")])
    # critic-net-iql: the same evenings; at tau = 0.5 its value is the logged (dithered)
    # controller's own: V = -p s^2 - c with the dither's variance 0.09 in the cost and the moves
    c_mu = (rho * 0.09 + gamma * p * (sigma * sigma + b * b * 0.09)) / (1 - gamma)
    j_mu = sum(-p * s * s - c_mu for s in starts) / len(starts)
    d = os.path.join(HERE, "critic-net-iql")
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j", f"{j_mu:.6f}")])
    # critic-net-dqc: the same evenings judged four readings at a time; at kappa 0.5 its value is
    # again the logged controller's
    d = os.path.join(HERE, "critic-net-dqc")
    write(os.path.join(d, "truth.csv"), ["quantity", "truth"], [("j", f"{j_mu:.6f}")])


if __name__ == "__main__":
    screening()
    judge()
    batch_errors()
    critics()
    aggregation()
    thermostat()

#!/usr/bin/env python3
"""Baselines for quantile-aggregation in `cargo xtask bench`.

Case "lp": the coarse global aggregation LP (Fakoor et al., JMLR 2023) solved by SciPy's HiGHS
(`linprog(method=method)`), built as Quiver builds it: variables (w_1..w_J, t_ik), minimise
(1/nK) sum_ik [tau_k (y_i - qhat_ik) + t_ik] subject to qhat_ik - t_ik <= y_i, t >= 0, w >= 0,
sum w = 1, on data standardised by the mean and standard deviation of y.

Case "adam" (NumPy) and "adam-torch" (PyTorch on the CPU): the medium global aggregator fitted by
Quiver's procedure: blocks of `block` (512) consecutive rows, a seeded 10% of the blocks held out, every
epoch the other blocks in a random order, `batch_rows / block` blocks a step, softmax logits
(zero at the start) updated by Adam on the mean pinball loss, early stopping after `patience`
epochs without a lower held-out loss; the weights of the best epoch are returned.

Reads raw little-endian f64 files written by the harness (q is column-major: column j*K + k);
prints one JSON line."""
import json
import sys

import numpy as np
from timing import load, time_runs



def lp(q, y, levels, method):
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n, j, k = q.shape
    mu, sd = y.mean(), y.std()
    ys = (y - mu) / sd
    qs = (q - mu) / sd
    norm = 1.0 / (n * k)
    # rows (k, i): sum_j w_j q_ijk - t_ik <= y_i
    wblock = qs.transpose(2, 0, 1).reshape(n * k, j)
    a_ub = sp.hstack([sp.csr_matrix(wblock), -sp.identity(n * k, format="csr")], format="csc")
    b_ub = np.tile(ys, k)
    c = np.concatenate([-norm * np.einsum("k,ijk->j", levels, qs), np.full(n * k, norm)])
    a_eq = sp.csr_matrix(np.concatenate([np.ones(j), np.zeros(n * k)])[None, :])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=(0, None), method=method)
    w = np.maximum(res.x[:j], 0.0)
    w /= w.sum()
    qhat = np.einsum("ijk,j->ik", q, w)
    u = y[:, None] - qhat
    obj = float(np.mean(np.maximum(levels * u, (levels - 1.0) * u)))
    return {"objective": obj, "weights": w.tolist(), "status": int(res.status)}


def split_blocks(n, block, holdout, seed):
    rng = np.random.default_rng(seed)
    nb = -(-n // block)
    order = rng.permutation(nb)
    n_hold = min(max(int(round(holdout * nb)), 1), nb - 1)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold]), rng


def rows_of(blocks, block, n):
    r = (blocks[:, None] * block + np.arange(block)[None, :]).ravel()
    return r[r < n]


def adam_numpy(q, y, levels, cfg):
    n, j, k = q.shape
    block, sd = cfg["block"], y.std()
    train, hold, rng = split_blocks(n, block, cfg["holdout"], cfg["seed"])
    per = max(cfg["batch_rows"] // block, 1)
    hold_rows = rows_of(hold, block, n)
    qh_hold, y_hold = q[hold_rows], y[hold_rows]
    logits = np.zeros((j, k))
    m, v = np.zeros_like(logits), np.zeros_like(logits)
    b1, b2, eps, lr, t = 0.9, 0.999, 1e-8, cfg["lr"], 0

    def weights(z):
        e = np.exp(z - z.max(axis=0, keepdims=True))
        return e / e.sum(axis=0, keepdims=True)

    def loss(qb, yb, w):
        u = yb[:, None] - np.einsum("ijk,jk->ik", qb, w)
        return float(np.mean(np.maximum(levels * u, (levels - 1.0) * u)))

    w = weights(logits)
    best, best_w, best_epoch, epochs = np.inf, w, 0, 0
    for epoch in range(1, cfg["max_epochs"] + 1):
        order = rng.permutation(train)
        for s in range(0, len(order), per):
            rows = rows_of(order[s:s + per], block, n)
            qb, yb = q[rows], y[rows]
            qhat = np.einsum("ijk,jk->ik", qb, w)
            g = (yb[:, None] < qhat) - levels[None, :]
            a = np.einsum("ik,ijk->jk", g, qb) / (len(rows) * k * sd)
            dz = w * (a - (w * a).sum(axis=0, keepdims=True))
            t += 1
            m = b1 * m + (1 - b1) * dz
            v = b2 * v + (1 - b2) * dz * dz
            logits -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            w = weights(logits)
        epochs = epoch
        h = loss(qh_hold, y_hold, w)
        if h < best:
            best, best_w, best_epoch = h, w, epoch
        elif epoch - best_epoch >= cfg["patience"]:
            break
    return {"objective": loss(q, y, best_w), "holdout_loss": best, "epochs": epochs, "best_epoch": best_epoch}


def adam_torch(q, y, levels, cfg):
    import torch

    torch.set_num_threads(cfg.get("threads", torch.get_num_threads()))
    n, j, k = q.shape
    block = cfg["block"]
    train, hold, rng = split_blocks(n, block, cfg["holdout"], cfg["seed"])
    per = max(cfg["batch_rows"] // block, 1)
    qt, yt, lv = torch.from_numpy(q), torch.from_numpy(y / y.std()), torch.from_numpy(levels)
    qt = qt / y.std()
    logits = torch.zeros((j, k), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=cfg["lr"])
    hold_rows = torch.from_numpy(rows_of(hold, block, n))

    def loss(rows, w):
        u = yt[rows][:, None] - torch.einsum("ijk,jk->ik", qt[rows], w)
        return torch.mean(torch.maximum(lv * u, (lv - 1.0) * u))

    best, best_w, best_epoch, epochs = np.inf, None, 0, 0
    for epoch in range(1, cfg["max_epochs"] + 1):
        order = rng.permutation(train)
        for s in range(0, len(order), per):
            rows = torch.from_numpy(rows_of(order[s:s + per], block, n))
            opt.zero_grad()
            loss(rows, torch.softmax(logits, dim=0)).backward()
            opt.step()
        epochs = epoch
        with torch.no_grad():
            w = torch.softmax(logits, dim=0)
            h = float(loss(hold_rows, w)) * y.std()
        if h < best:
            best, best_w, best_epoch = h, w.clone(), epoch
        elif epoch - best_epoch >= cfg["patience"]:
            break
    w = best_w.numpy()
    u = y[:, None] - np.einsum("ijk,jk->ik", q, w)
    obj = float(np.mean(np.maximum(levels * u, (levels - 1.0) * u)))
    return {"objective": obj, "holdout_loss": best, "epochs": epochs, "best_epoch": best_epoch,
            "torch": torch.__version__}


def main():
    spec = json.loads(sys.argv[1])
    d = spec["data"]
    y, levels = load(d, "y"), load(d, "levels")
    n, k = len(y), len(levels)
    q = load(d, "q").reshape(-1, k, n).transpose(2, 0, 1).copy()  # (n, J, K)
    case = spec["case"]
    if case == "lp":
        method = spec.get("lp_method", "highs-ipm")
        times, result = time_runs(lambda: lp(q, y, levels, method), spec["repeats"])
        result["lp_method"] = method
    elif case == "adam":
        times, result = time_runs(lambda: adam_numpy(q, y, levels, spec["adam"]), spec["repeats"])
    else:
        times, result = time_runs(lambda: adam_torch(q, y, levels, spec["adam"]), spec["repeats"])
    print(json.dumps({"times": times, "result": result, "numpy": np.__version__}))


if __name__ == "__main__":
    main()

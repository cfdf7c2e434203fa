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


if __name__ == "__main__":
    screening()
    judge()
    batch_errors()

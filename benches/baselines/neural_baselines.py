#!/usr/bin/env python3
"""Baselines for the neural critics in `cargo xtask bench` (`--baselines full`: PyTorch on the CPU).

Case "fqe-torch": neural fitted Q evaluation as `critic-net-fqe` runs it, written as a plain PyTorch
training loop: the same network (Linear -> LayerNorm -> ReLU, twice, then Linear; one output per
action), PyTorch's default initialisation, Adam with the same step size on a cosine schedule, the
same Polyak-averaged target network, minibatches drawn with replacement, states standardised and
rewards divided by their root mean square; J = the mean over episodes of sum_a pi(a|s0) Q(s0, a).
float32, as Quiver trains.

Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import math
import sys

import numpy as np
from timing import load, time_runs


def fqe_torch(d, cfg):
    import torch

    torch.set_num_threads(cfg.get("threads", torch.get_num_threads()))
    torch.manual_seed(cfg["seed"])
    k, dims = cfg["actions"], cfg["state_dim"]
    s = np.stack([load(d, f"s_{j}") for j in range(dims)], axis=1)
    s2 = np.stack([load(d, f"s_next_{j}") for j in range(dims)], axis=1)
    both = np.concatenate([s, s2])
    mean, sd = both.mean(axis=0), both.std(axis=0)
    f32 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    st, st2 = f32((s - mean) / sd), f32((s2 - mean) / sd)
    r = load(d, "r")
    scale = math.sqrt(float(np.mean(r * r))) or 1.0
    rt = f32(r / scale)
    a = torch.from_numpy(load(d, "a").astype(np.int64))
    done = f32(load(d, "done"))
    pi_next = f32(np.stack([load(d, f"pi_next_{j}") for j in range(k)], axis=1))
    pi = f32(np.stack([load(d, f"pi_{j}") for j in range(k)], axis=1))
    first = torch.from_numpy(load(d, "first").astype(np.int64))
    n = len(r)

    def net():
        h = cfg["hidden"]
        layers, width = [], dims
        for _ in range(cfg["layers"]):
            layers += [torch.nn.Linear(width, h), torch.nn.LayerNorm(h), torch.nn.ReLU()]
            width = h
        return torch.nn.Sequential(*layers, torch.nn.Linear(width, k))

    q = net()
    target = net()
    target.load_state_dict(q.state_dict())
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(q.parameters(), lr=cfg["lr"])
    steps, batch, gamma, tau = cfg["steps"], cfg["batch"], cfg["gamma"], cfg["polyak"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / steps)))
    online, frozen = list(q.parameters()), list(target.parameters())
    for _ in range(steps):
        rows = torch.randint(0, n, (batch,))
        with torch.no_grad():
            nxt = (target(st2[rows]) * pi_next[rows]).sum(dim=1)
            y = rt[rows] + gamma * (1.0 - done[rows]) * nxt
        pred = q(st[rows]).gather(1, a[rows, None])[:, 0]
        loss = torch.mean((pred - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(frozen, online, tau)
    with torch.no_grad():
        j = float((q(st[first]) * pi[first]).sum(dim=1).mean()) * scale
    return {"j": j, "compare": "statistical"}


def main():
    spec = json.loads(sys.argv[1])
    import torch

    times, value = time_runs(lambda: fqe_torch(spec["data"], spec), spec["repeats"])
    print(json.dumps({"times": times, "result": value, "numpy": np.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

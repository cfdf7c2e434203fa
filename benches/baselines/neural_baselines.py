#!/usr/bin/env python3
"""Baselines for the neural critics in `cargo xtask bench` (`--baselines full`: PyTorch on the CPU).

Case "fqe-torch": neural fitted Q evaluation as `critic-net-fqe` runs it, written as a plain PyTorch
training loop: the same network (Linear -> LayerNorm -> ReLU, twice, then Linear; one output per
action), PyTorch's default initialisation, Adam with the same step size on a cosine schedule, the
same Polyak-averaged target network, minibatches drawn with replacement, states standardised and
rewards divided by their root mean square; J = the mean over episodes of sum_a pi(a|s0) Q(s0, a).
float32, as Quiver trains.

Case "fqe-d3rlpy": d3rlpy's own `DiscreteFQE` (the FQE users of d3rlpy run) on the same data, network
size (2 x 256 with layer norm: d3rlpy's VectorEncoder, ReLU before its norm), step size, batch,
discount and number of steps, with d3rlpy's hard target copy every 100 steps (it has no Polyak
averaging) and a constant step size. d3rlpy's FQE evaluates `algo.impl.predict_best_action(s')`:
the target policy here is a function of the state, pi(1|s) = sigmoid(2 s_0) (as the harness's data
define it), so a small policy object draws a' ~ pi(.|s') for each row of a minibatch — a sampled
target where `critic-net-fqe` takes the expectation over pi, the same fixed point. States are
standardised and rewards divided by their root mean square before d3rlpy sees them, as Quiver does.

Reads raw little-endian f64 files written by the harness; prints one JSON line."""
import json
import math
import os
import sys

import numpy as np
from timing import load, time_runs


def states_and_rewards(d, cfg):
    """The states and next states (rows x state_dim), their joint mean and sd (Quiver's
    standardisation), the rewards and their root mean square (the networks' unit of value)."""
    dims = cfg["state_dim"]
    s = np.stack([load(d, f"s_{j}") for j in range(dims)], axis=1)
    s2 = np.stack([load(d, f"s_next_{j}") for j in range(dims)], axis=1)
    both = np.concatenate([s, s2])
    r = load(d, "r")
    return s, s2, both.mean(axis=0), both.std(axis=0), r, math.sqrt(float(np.mean(r * r))) or 1.0


def fqe_torch(d, cfg):
    import torch

    torch.set_num_threads(cfg.get("threads", torch.get_num_threads()))
    torch.manual_seed(cfg["seed"])
    k, dims = cfg["actions"], cfg["state_dim"]
    s, s2, mean, sd, r, scale = states_and_rewards(d, cfg)
    f32 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    st, st2 = f32((s - mean) / sd), f32((s2 - mean) / sd)
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


def fqe_d3rlpy(d, cfg):
    import d3rlpy
    import torch
    from d3rlpy.dataset import MDPDataset
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.ope import DiscreteFQE, FQEConfig

    torch.set_num_threads(cfg.get("threads", torch.get_num_threads()))
    d3rlpy.seed(cfg["seed"])
    k = cfg["actions"]
    s, _, mean, sd, r, scale = states_and_rewards(d, cfg)
    first = load(d, "first").astype(np.int64)
    n = len(r)
    # episodes run from each `first` row to the next; the log's next states are the next rows'
    timeouts = np.zeros(n, dtype=np.float32)
    timeouts[np.append(first[1:] - 1, n - 1)] = 1.0
    dataset = MDPDataset(
        observations=((s - mean) / sd).astype(np.float32),
        actions=load(d, "a").astype(np.int64).reshape(-1, 1),
        rewards=(r / scale).astype(np.float32).reshape(-1, 1),
        terminals=load(d, "done").astype(np.float32),
        timeouts=timeouts,
        action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=k,
    )

    class Policy:
        """pi(1|s) = sigmoid(2 s_0) on the raw state; d3rlpy asks its `impl` for actions."""

        def __init__(self):
            self.impl = self

        def predict_best_action(self, x):
            raw0 = x[:, 0] * float(sd[0]) + float(mean[0])
            return (torch.rand_like(raw0) < torch.sigmoid(2.0 * raw0)).long()

    config = FQEConfig(
        learning_rate=cfg["lr"],
        batch_size=cfg["batch"],
        gamma=cfg["gamma"],
        target_update_interval=100,
        encoder_factory=VectorEncoderFactory(hidden_units=[cfg["hidden"]] * cfg["layers"], use_layer_norm=True),
    )
    fqe = DiscreteFQE(algo=Policy(), config=config, device=False)
    steps = cfg["steps"]
    fqe.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, logger_adapter=NoopAdapterFactory(), show_progress=False)
    x0 = ((s[first] - mean) / sd).astype(np.float32)
    p1 = 1.0 / (1.0 + np.exp(-2.0 * s[first, 0]))
    q0 = fqe.predict_value(x0, np.zeros(len(first), dtype=np.int64))
    q1 = fqe.predict_value(x0, np.ones(len(first), dtype=np.int64))
    j = float(np.mean((1.0 - p1) * q0 + p1 * q1)) * scale
    return {"j": j, "compare": "statistical"}


def main():
    spec = json.loads(sys.argv[1])
    import torch

    run = {"fqe-torch": fqe_torch, "fqe-d3rlpy": fqe_d3rlpy}[spec["case"]]
    # d3rlpy logs to standard output: the runs write there to standard error, so that the one
    # line the harness reads is the JSON below
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        times, value = time_runs(lambda: run(spec["data"], spec), spec["repeats"])
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps({"times": times, "result": value, "numpy": np.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

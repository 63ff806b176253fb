"""Trains a 3-layer MLP written with raw tensor ops (no nn, no optim) on the XOR
of signs of two Gaussian coordinates: the autograd engine on its own.

    python examples/raw_ops_demo.py [--steps 300] [--seed 0]
"""
import argparse

import numpy as np

import minigrad as mg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)

    mg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((1024, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int64)
    n_train = 768
    X, Y = mg.tensor(x), mg.tensor(y)

    def param(fan_in, fan_out):  # He initialisation keeps ReLU activations near unit scale
        return (mg.randn(fan_in, fan_out) * (2.0 / fan_in) ** 0.5).requires_grad_()

    params = [param(2, 64), mg.zeros(64, requires_grad=True), param(64, 64),
              mg.zeros(64, requires_grad=True), param(64, 2), mg.zeros(2, requires_grad=True)]

    def logits_of(inputs):
        w1, b1, w2, b2, w3, b3 = params
        h = (inputs @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        return h @ w3 + b3

    for step in range(1, args.steps + 1):
        logits = logits_of(X[:n_train])
        logp = logits - logits.logsumexp(dim=1, keepdim=True)
        loss = -logp[mg.arange(n_train), Y[:n_train]].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with mg.no_grad():
            for p in params:
                p.sub_(p.grad * args.lr)
        if step % 50 == 0 or step == 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with mg.no_grad():
        pred = logits_of(X[n_train:]).argmax(dim=1)
        acc = (pred == Y[n_train:]).float().mean().item()
    print(f"test accuracy: {acc:.3f}")
    return acc


if __name__ == "__main__":
    main()

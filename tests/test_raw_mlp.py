"""A 3-layer MLP written with raw tensor ops (no nn) learns a synthetic task."""
import numpy as np

import minigrad as mg


def test_raw_op_mlp_trains_on_two_spirals_like_task():
    mg.manual_seed(0)
    r = np.random.default_rng(0)
    n = 512
    x = r.standard_normal((n, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int64)  # XOR of signs: not linearly separable
    X, Y = mg.tensor(x), mg.tensor(y)

    def param(*shape):
        return (mg.randn(*shape) * (2.0 / shape[0]) ** 0.5).requires_grad_()

    params = [param(2, 32), mg.zeros(32, requires_grad=True), param(32, 32),
              mg.zeros(32, requires_grad=True), param(32, 2), mg.zeros(2, requires_grad=True)]
    w1, b1, w2, b2, w3, b3 = params

    def loss_and_acc():
        h = (X @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        logits = h @ w3 + b3
        logp = logits - logits.logsumexp(dim=1, keepdim=True)
        loss = -logp[mg.arange(n), Y].mean()
        acc = (logits.argmax(dim=1) == Y).float().mean().item()
        return loss, acc

    first, _ = loss_and_acc()
    for _ in range(300):
        loss, acc = loss_and_acc()
        for p in params:
            p.grad = None
        loss.backward()
        with mg.no_grad():
            for p in params:
                p.sub_(p.grad * 0.1)
    final, acc = loss_and_acc()
    assert final.item() < 0.5 * first.item()
    assert acc > 0.9

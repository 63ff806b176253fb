"""The same model, the same seed, trained on the CPU and (when present) on a
CUDA GPU: compares final losses, weights and time per step.

Switching is one call, `.to(device)`, for the model and for each batch. Without
a GPU this says so plainly and runs the CPU half only.

    python examples/backend_switch.py [--steps 200] [--batch-size 256]
"""
import argparse
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim


def make_model():
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def train(device, steps, batch_size, seed):
    """Trains from identical initial weights and data; returns (losses, weights, ms/step)."""
    mg.manual_seed(seed)
    model = make_model()  # initialised on the CPU from the seeded generator, then moved
    model.to(device)
    rng = np.random.default_rng(seed)
    x = mg.tensor(rng.standard_normal((batch_size * 4, 64)).astype(np.float32)).to(device)
    y = mg.tensor(rng.integers(0, 10, batch_size * 4)).to(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    t0 = None
    for step in range(steps):
        if step == 5:  # skip warm-up (kernel compilation on the GPU)
            if device.type == "cuda":
                mg.cuda.synchronize()
            t0 = time.perf_counter()
        lo = (step % 4) * batch_size
        opt.zero_grad()
        loss = loss_fn(model(x[lo:lo + batch_size]), y[lo:lo + batch_size])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if device.type == "cuda":
        mg.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1e3 / max(steps - 5, 1)
    weights = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
    return losses, weights, ms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cpu_losses, cpu_w, cpu_ms = train(mg.device("cpu"), args.steps, args.batch_size, args.seed)
    print(f"cpu : final loss {cpu_losses[-1]:.5f}   {cpu_ms:.3f} ms/step")
    if not mg.cuda.is_available():
        print("no GPU: CUDA is not available on this machine (needs CuPy via "
              "`pip install minigrad[gpu]` and an NVIDIA GPU with its driver); ran on the CPU only.")
        return {"cpu_ms": cpu_ms, "cuda_ms": None}
    gpu_losses, gpu_w, gpu_ms = train(mg.device("cuda"), args.steps, args.batch_size, args.seed)
    worst = max(float(np.max(np.abs(cpu_w[k] - gpu_w[k]) / (np.abs(cpu_w[k]).max() + 1e-12)))
                for k in cpu_w)
    print(f"cuda: final loss {gpu_losses[-1]:.5f}   {gpu_ms:.3f} ms/step")
    print(f"largest relative weight difference cpu vs cuda after {args.steps} steps: {worst:.2e}")
    print(f"speed-up on cuda: {cpu_ms / gpu_ms:.1f}x")
    return {"cpu_ms": cpu_ms, "cuda_ms": gpu_ms, "max_rel_weight_diff": worst}


if __name__ == "__main__":
    main()

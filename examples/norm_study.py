"""Why normalization helps: the same small CNN trained on the real 8x8 digits
with no normalization, BatchNorm, LayerNorm, GroupNorm and InstanceNorm, each
at several learning rates; then BatchNorm against GroupNorm at batch size 2
and 64 (BatchNorm's statistics get noisy with tiny batches, GroupNorm's do
not depend on the batch).

Prints a table of final test accuracy per (norm, learning rate), the std of
the activations entering the second ReLU (measured by ActivationStats: the
normalized nets stay near 1), and saves loss curves to docs/norm_study.png.

    python examples/norm_study.py            # about a minute on 2 cores
    python examples/norm_study.py --quick    # a few batches per run (smoke test)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minigrad as mg  # noqa: E402
from minigrad import nn, optim  # noqa: E402
from minigrad.data import DataLoader, TensorDataset, datasets  # noqa: E402
from minigrad.utils import ActivationStats  # noqa: E402

import training  # noqa: E402

NORMS = {
    "none": lambda c, hw: nn.Identity(),
    "batch": lambda c, hw: nn.BatchNorm2d(c),
    "layer": lambda c, hw: nn.LayerNorm([c, hw, hw]),
    "group": lambda c, hw: nn.GroupNorm(4, c),
    "instance": lambda c, hw: nn.InstanceNorm2d(c, affine=True),
}


def build_cnn(norm):
    make = NORMS[norm]
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), make(16, 8), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), make(32, 8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )


def run(norm, lr, batch_size, data, epochs, max_batches, seed):
    """Trains one configuration; returns (loss per step, final accuracy, (first, last)
    std of the activations entering the second ReLU)."""
    mg.manual_seed(seed)
    model = build_cnn(norm)
    watch = ActivationStats({"pre_relu2": model[4]}, track_grads=False)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size, shuffle=True)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(epochs):
        model.train()
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    stds = watch.history("pre_relu2", "std")
    watch.remove()
    acc = training.accuracy(model, data.x_test, data.y_test, mg.device("cpu"))
    return losses, acc, (stds[0], stds[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lrs", default="0.01,0.05,0.2")
    parser.add_argument("--quick", action="store_true", help="a few batches per run")
    parser.add_argument("--plot", default=os.path.join("docs", "norm_study.png"))
    args = parser.parse_args(argv)
    lrs = [float(v) for v in args.lrs.split(",")]
    epochs, max_batches = (1, 3) if args.quick else (args.epochs, None)

    data = datasets.load_digits(flatten=False)
    mean, std = data.x_train.mean().item(), data.x_train.std().item()
    data = data._replace(x_train=(data.x_train - mean) / std, x_test=(data.x_test - mean) / std)

    results, curves = {}, {}
    middle = lrs[len(lrs) // 2]
    print("final test accuracy per learning rate (SGD momentum 0.9, batch 64), and the std of the")
    print(f"activations entering the second ReLU at the first and last step of the lr {middle} run")
    print(f"{'norm':<10}" + "".join(f"{'lr ' + str(lr):>10}" for lr in lrs) + f"{'act std first -> last':>24}")
    for norm in NORMS:
        row, stds = [], None
        for lr in lrs:
            losses, acc, act_std = run(norm, lr, 64, data, epochs, max_batches, args.seed)
            results[(norm, lr, 64)] = acc
            curves[(norm, lr, 64)] = losses
            row.append(acc)
            if lr == middle:
                stds = act_std
        print(f"{norm:<10}" + "".join(f"{a:10.3f}" for a in row) +
              f"{stds[0]:14.2f} -> {stds[1]:<8.2f}", flush=True)

    print("\nbatch size study (lr 0.05): final test accuracy")
    for norm in ("batch", "group"):
        for bs in (2, 64):
            losses, acc, _ = run(norm, 0.05, bs, data, 1 if not args.quick else 1,
                                 max_batches, args.seed)
            results[("batch size", norm, bs)] = acc
            curves[("batch size", norm, bs)] = losses
            print(f"  {norm:<6} batch {bs:<3} accuracy {acc:.3f}", flush=True)

    if args.plot:
        plot(curves, lrs, args.plot)
    return results


def plot(curves, lrs, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure written")
        return
    fig, axes = plt.subplots(1, len(lrs) + 1, figsize=(4.2 * (len(lrs) + 1), 3.6))
    for ax, lr in zip(axes, lrs):
        for norm in NORMS:
            ax.plot(_smooth(curves[(norm, lr, 64)]), label=norm)
        ax.set_title(f"lr {lr}, batch 64")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0].set_ylabel("training loss (smoothed)")
    axes[0].legend()
    ax = axes[-1]
    for norm in ("batch", "group"):
        for bs in (2, 64):
            c = curves[("batch size", norm, bs)]
            ax.plot([i * bs for i in range(len(c))], _smooth(c), label=f"{norm} bs={bs}")
    ax.set_title("BatchNorm vs GroupNorm, 1 epoch")
    ax.set_xlabel("samples seen")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def _smooth(values, weight=0.9):
    """Exponential moving average, so single noisy batches do not hide the trend."""
    out, avg = [], None
    for v in values:
        avg = v if avg is None else weight * avg + (1 - weight) * v
        out.append(avg)
    return out


if __name__ == "__main__":
    main()

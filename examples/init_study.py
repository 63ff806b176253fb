"""Why initialization matters, in numbers.

A 10-layer MLP (width 256) with tanh or relu, initialized five ways: zeros,
N(0, 1) * 0.01, N(0, 1), Xavier (Glorot uniform, gain 1) and Kaiming (He
normal, relu gain). One forward and backward pass of a cross-entropy loss on a
batch of N(0, 1) inputs is recorded with minigrad.utils.ActivationStats, and
the standard deviation of the activations (forward) and of the gradients
reaching them (backward) is printed layer by layer, with a verdict:

  dead        everything is zero (symmetric weights never learn anything)
  vanishing   the signal shrinks through depth (std falls 10x or more)
  exploding   the signal grows through depth (std grows 10x or more)
  saturated   tanh units sit at +-1 (gradient ~0 through them)
  healthy     the scale stays roughly constant

Histograms of every layer's activations are saved to
docs/init_study_<nonlinearity>.png when matplotlib is installed.

    python examples/init_study.py            # the full study (a few seconds)
    python examples/init_study.py --quick    # smaller width and batch
"""
import argparse
import math
import pathlib
import sys

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn
from minigrad.nn import init
from minigrad.utils import ActivationStats, plot_histograms

SCHEMES = {
    "zeros": lambda w: init.zeros_(w),
    "N(0,1)*0.01": lambda w: init.normal_(w, 0.0, 0.01),
    "N(0,1)": lambda w: init.normal_(w, 0.0, 1.0),
    "xavier": lambda w: init.xavier_uniform_(w),
    "kaiming": lambda w: init.kaiming_normal_(w, nonlinearity="relu"),
}
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def make_mlp(depth, width, activation, scheme, classes=10):
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    model = nn.Sequential(*layers, nn.Linear(width, classes))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            SCHEMES[scheme](m.weight)
            init.zeros_(m.bias)
    return model


def run_once(depth, width, batch, activation, scheme, device):
    """One forward/backward pass; returns the ActivationStats of the activation layers."""
    model = make_mlp(depth, width, ACTIVATIONS[activation], scheme).to(device)
    x = mg.randn(batch, width, device=device)
    y = mg.randint(0, 10, (batch,), device=device)
    acts = [m for m in model if isinstance(m, ACTIVATIONS[activation])]
    stats = ActivationStats({f"L{i + 1}": m for i, m in enumerate(acts)})
    F.cross_entropy(model(x), y).backward()
    stats.remove()
    return stats


def verdict(stds, saturated=0.0):
    """Classifies a per-layer std profile, listed in the direction the signal travels."""
    if all(s == 0 for s in stds):
        return "dead"
    if not all(math.isfinite(s) for s in stds) or stds[-1] > 10 * stds[0]:
        return "exploding"
    if stds[-1] < 0.1 * stds[0]:
        return "vanishing"
    if saturated > 0.5:
        return "saturated"
    return "healthy"


def study(activation, depth, width, batch, device):
    """{scheme: (act stds, grad stds, act verdict, grad verdict)} and the stats objects."""
    rows, all_stats = {}, {}
    for scheme in SCHEMES:
        stats = run_once(depth, width, batch, activation, scheme, device)
        names = list(stats.layers)
        act = [stats.latest(n)["std"] for n in names]
        grad = [stats.latest(n)["grad_std"] for n in names]
        saturated = stats.latest(names[-1])["saturated"]
        # gradients travel from the last layer back to the first
        rows[scheme] = (act, grad, verdict(act, saturated), verdict(grad[::-1], saturated))
        all_stats[scheme] = stats
    return rows, all_stats


def format_table(title, rows, column):
    depth = len(next(iter(rows.values()))[0])
    head = f"{'init':<13}" + "".join(f"{'L' + str(i + 1):>9}" for i in range(depth)) + "   verdict"
    lines = [title, head, "-" * len(head)]
    for scheme, row in rows.items():
        values = row[column]
        lines.append(f"{scheme:<13}" + "".join(f"{v:>9.2g}" for v in values) + f"   {row[column + 2]}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="width 64, batch 128 (a smoke test)")
    parser.add_argument("--out-dir", default=str(pathlib.Path(__file__).resolve().parent.parent / "docs"),
                        help="where the PNG figures go")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.batch = 64, 128
    if args.device == "cuda" and not mg.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available on this machine")
    mg.manual_seed(args.seed)
    results = {}
    for activation in ACTIVATIONS:
        rows, all_stats = study(activation, args.depth, args.width, args.batch, args.device)
        results[activation] = rows
        print(format_table(f"\n{activation}: std of activations per layer (forward)", rows, 0))
        print(format_table(f"\n{activation}: std of gradients dL/dh per layer (backward)", rows, 1))
        if not args.no_plot:
            try:
                out = pathlib.Path(args.out_dir)
                out.mkdir(parents=True, exist_ok=True)
                path = plot_histograms(all_stats, out / f"init_study_{activation}.png",
                                       title=f"{activation} MLP: activation histograms per layer")
                print(f"saved {path}")
            except ImportError as e:
                print(f"(no figure: {e})")
    return results


if __name__ == "__main__":
    main()

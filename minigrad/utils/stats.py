"""ActivationStats: per-layer activation and gradient statistics through hooks.

Attach it to the layers you want to watch; every forward call of one of them
records the mean, std, fraction of exact zeros (dead ReLUs) and of saturated
units (|y| >= saturation, e.g. tanh near +-1) of its output, and, once
backward reaches that output, the norm and std of the gradient there. This is
the tool that shows whether an initialization or a normalization keeps the
signal near N(0, 1) through depth, or lets it vanish or explode.

    stats = ActivationStats(model, types=(nn.ReLU,))
    loss_fn(model(x), y).backward()
    stats.table()              # prints the latest record of every layer
    stats.plot("acts.png")     # histograms of the latest activations
    stats.remove()
"""
import math

import numpy as np  # statistics are taken on host copies of the tensors

from ..tensor import Tensor

FIELDS = ("mean", "std", "zeros", "saturated", "grad_norm", "grad_std")


def _host(t):
    """float64 numpy copy of a tensor's values."""
    return np.asarray(t._device.backend.to_host(t._data), dtype=np.float64)


class ActivationStats:
    """Records statistics of chosen layers' outputs and output gradients.

    modules: a dict {name: module}, a list of modules, or a Module. For a
    Module, `types` picks its submodules of those classes (named as in
    named_modules); without `types`, its direct children are watched.
    """

    def __init__(self, modules, types=None, saturation=0.99, sample_size=20000, track_grads=True):
        self.saturation, self.sample_size, self.track_grads = saturation, sample_size, track_grads
        self.layers = _named_layers(modules, types)
        if not self.layers:
            raise ValueError("ActivationStats: no layers to watch (check `modules` and `types`)")
        self.records = {name: [] for name in self.layers}
        self.samples = {}  # name -> evenly strided values of the latest output, for histograms
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers.items()]

    # -- recording ------------------------------------------------------------------
    def _hook(self, name):
        def hook(module, args, output):
            if not isinstance(output, Tensor) or not output.is_floating_point():
                return None
            record = self._summary(name, output)
            self.records[name].append(record)
            if self.track_grads and output.requires_grad:
                output.register_hook(lambda g: record.update(_grad_summary(g)))
            return None
        return hook

    def _summary(self, name, y):
        values = _host(y).reshape(-1)
        # a fixed stride, not a random subset: watching must not consume random numbers
        self.samples[name] = values[::max(1, values.size // self.sample_size)].copy()
        n = max(values.size, 1)
        return {
            "mean": float(values.mean()) if values.size else math.nan,
            "std": float(values.std()) if values.size else math.nan,
            "zeros": float((values == 0).sum()) / n,
            "saturated": float((np.abs(values) >= self.saturation).sum()) / n,
            "grad_norm": math.nan,
            "grad_std": math.nan,
        }

    def latest(self, name):
        """The most recent record of a layer (a dict of FIELDS)."""
        if not self.records[name]:
            raise RuntimeError(f"ActivationStats: layer {name!r} has not run forward yet")
        return self.records[name][-1]

    def history(self, name, field):
        """One field over all recorded calls of a layer."""
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
        return [r[field] for r in self.records[name]]

    def reset(self):
        for name in self.records:
            self.records[name].clear()
        self.samples.clear()

    def remove(self):
        """Detaches the hooks; recorded values stay available."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    # -- reporting -----------------------------------------------------------------
    def table(self, file=None):
        """Prints (and returns) one line per layer with its latest record."""
        head = f"{'layer':<24}{'mean':>11}{'std':>11}{'zeros':>8}{'satur.':>8}{'grad norm':>12}{'grad std':>11}"
        lines = [head, "-" * len(head)]
        for name in self.layers:
            if not self.records[name]:
                lines.append(f"{name:<24}{'(not run)':>11}")
                continue
            r = self.records[name][-1]
            lines.append(f"{name:<24}{r['mean']:>11.3g}{r['std']:>11.3g}{r['zeros']:>8.1%}"
                         f"{r['saturated']:>8.1%}{r['grad_norm']:>12.3g}{r['grad_std']:>11.3g}")
        text = "\n".join(lines)
        print(text, file=file)
        return text

    def plot(self, path, title=None):
        """Saves histograms of every layer's latest activations to `path` (PNG)."""
        return plot_histograms({title or "": self}, path)


def _named_layers(modules, types):
    if isinstance(modules, dict):
        return dict(modules)
    if isinstance(modules, (list, tuple)):
        return {f"{i}:{type(m).__name__}": m for i, m in enumerate(modules)}
    if types is not None:
        return {name: m for name, m in modules.named_modules() if name and isinstance(m, types)}
    return dict(modules.named_children())


def _grad_summary(g):
    data = _host(g)
    return {"grad_norm": float((data * data).sum()) ** 0.5,
            "grad_std": float(data.std()) if data.size else math.nan}


def plot_histograms(stats_by_row, path, title=None, bins=50):
    """A grid of activation histograms: one row per ActivationStats (labelled
    by its key), one column per layer, the latest output of each. Each row
    shares one x-range, so shrinking or growing scales are visible. Exact zeros
    (dead units) are left out of the histograms; their fraction is in the
    titles. Needs matplotlib; returns the path."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    rows = list(stats_by_row.items())
    ncols = max(len(s.layers) for _, s in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.7 * ncols + 1, 1.5 * len(rows) + 0.7),
                             squeeze=False)
    for r, (label, stats) in enumerate(rows):
        names = list(stats.layers)
        values = {n: _plotted(stats.samples[n]) for n in names if n in stats.samples}
        span = _row_range(values.values())
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(names) or names[c] not in values:
                ax.axis("off")
                continue
            rec = stats.latest(names[c])
            if values[names[c]].size:
                counts, edges = np.histogram(np.clip(values[names[c]], *span), bins=bins, range=span)
                ax.stairs(counts, edges, fill=True, color="tab:blue")  # one artist, not one per bar
            else:
                ax.text(0.5, 0.5, "all zero", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_xlim(*span)
            ax.set_yticks([])
            ax.locator_params(axis="x", nbins=3)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{names[c]}: std {rec['std']:.2g}" +
                         (f", {rec['zeros']:.0%} zero" if rec["zeros"] else ""), fontsize=7)
            if c == 0 and label:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title)
    # fixed margins: tight_layout costs seconds on large grids
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.06, top=0.86 if title else 0.92,
                        wspace=0.15, hspace=0.75)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plotted(values):
    return values[np.isfinite(values) & (values != 0)]


def _row_range(arrays):
    lo = min((float(a.min()) for a in arrays if a.size), default=-1.0)
    hi = max((float(a.max()) for a in arrays if a.size), default=1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi

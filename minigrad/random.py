"""The global random generators: one per device type, all reseeded by manual_seed."""
import numbers
import threading

import numpy as np

_lock = threading.Lock()
_state = {"seed": None, "cpu": np.random.default_rng()}
_seed_hooks = []  # called with the seed (e.g. to seed CuPy's generator)


def manual_seed(seed):
    """Makes every random draw (init, dropout, randn, shuffling) reproducible.
    Seeds are integers in [-2**63, 2**64); a negative one is remapped to
    seed + 2**64, as PyTorch does."""
    seed = _checked_seed(seed)
    with _lock:
        _state["seed"] = seed
        _state["cpu"] = np.random.default_rng(seed)
        for hook in _seed_hooks:
            hook(seed)
    return seed


def _checked_seed(seed):
    if isinstance(seed, numbers.Integral):
        seed = int(seed)
    elif isinstance(seed, numbers.Real) and float(seed).is_integer():
        seed = int(seed)  # 3.0: an int written as a float
    elif isinstance(seed, numbers.Real):
        raise ValueError(f"manual_seed: seed must be an integer, got {seed!r}")
    else:
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__} ({seed!r})")
    if not -2 ** 63 <= seed < 2 ** 64:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    return seed + 2 ** 64 if seed < 0 else seed


def seed():
    """Reseeds from fresh entropy; returns nothing reproducible."""
    with _lock:
        _state["seed"] = None
        _state["cpu"] = np.random.default_rng()


def initial_seed():
    return _state["seed"]


def cpu_generator():
    return _state["cpu"]


def on_manual_seed(hook):
    _seed_hooks.append(hook)


def draw(device, kind, shape, dtype, a=0.0, b=1.0):
    """Random array on `device`: kind is 'normal' (mean a, std b), 'uniform' [a, b),
    'integers' [a, b), 'permutation' of range(shape[0]), or 'bernoulli' (p=a)."""
    backend = device.backend
    sampler = getattr(backend, "sample", None)
    if sampler is not None:
        return sampler(kind, shape, dtype, a, b)
    with _lock:
        arr = sample_numpy(_state["cpu"], kind, shape, dtype, a, b)
    return backend.from_host(arr)


def sample_numpy(gen, kind, shape, dtype, a, b):
    dtype = np.dtype(dtype)
    if kind == "normal":
        if dtype.kind == "f":
            out = gen.standard_normal(shape, dtype=dtype)
        else:
            out = gen.standard_normal(shape)
        if b != 1.0:
            out *= b
        if a != 0.0:
            out += a
        return out.astype(dtype, copy=False)
    if kind == "uniform":
        out = gen.random(shape, dtype=dtype) if dtype.kind == "f" else gen.random(shape)
        if (a, b) != (0.0, 1.0):
            out *= (b - a)
            out += a
        return out.astype(dtype, copy=False)
    if kind == "integers":
        return gen.integers(a, b, size=shape).astype(dtype, copy=False)
    if kind == "permutation":
        return gen.permutation(shape[0]).astype(dtype, copy=False)
    if kind == "bernoulli":
        return gen.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64) < a
    raise ValueError(f"unknown random kind {kind!r}")


def get_rng_state():
    """The CPU generator's state as a plain (JSON-serialisable) dict, for checkpoints."""
    with _lock:
        state = _state["cpu"].bit_generator.state
    return {"seed": _state["seed"], "bit_generator": state}


def set_rng_state(state):
    """Restores a state from get_rng_state(): later draws continue exactly as they would have."""
    try:
        bit_state = state["bit_generator"]
        kind = bit_state["bit_generator"]
        bitgen = getattr(np.random, kind)()
        bitgen.state = bit_state
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"set_rng_state: not a state returned by get_rng_state() ({e})") from None
    with _lock:
        _state["seed"] = state.get("seed")
        _state["cpu"] = np.random.Generator(bitgen)

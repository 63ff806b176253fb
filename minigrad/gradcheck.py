"""Finite-difference gradient checks: gradcheck, gradgradcheck, gradcheck_module.

Central differences in float64 against the analytic gradients from autograd.
float32 inputs are refused: their rounding error is the size of the effect
being measured, so such checks flake.
"""
import numpy as np

from . import autograd
from .tensor import Tensor


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _checked_inputs(inputs, what="gradcheck"):
    inputs = _as_tuple(inputs)
    diff = []
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            if t._data.dtype != np.float64:
                raise GradcheckError(
                    f"{what}: input {i} is {t.dtype}; gradient checks need float64 inputs (float32 "
                    "rounding is as large as the differences being measured). Use .double().")
            if t._device.type != "cpu" and not hasattr(t._device.backend, "to_host"):
                raise GradcheckError(f"{what}: input {i} is on an unsupported device {t._device}")
            diff.append(i)
    if not diff:
        raise GradcheckError(f"{what}: no input requires grad; nothing to check")
    return inputs, diff


def _outputs(fn, inputs):
    out = _as_tuple(fn(*inputs))
    return [o for o in out if isinstance(o, Tensor) and o.is_floating_point()]


def _flat_host(t):
    return np.asarray(t._device.backend.to_host(t._data), dtype=np.float64).reshape(-1)


def _perturbed(t, flat_index, delta):
    """Adds delta to one element in place; returns the old value."""
    host = np.array(t._device.backend.to_host(t._data))
    old = host.reshape(-1)[flat_index]
    host.reshape(-1)[flat_index] = old + delta
    t._data[...] = t._device.backend.from_host(host)
    return old


def _restore(t, flat_index, old):
    host = np.array(t._device.backend.to_host(t._data))
    host.reshape(-1)[flat_index] = old
    t._data[...] = t._device.backend.from_host(host)


def _numeric_jacobian(fn, inputs, i, eps):
    """Columns: d(all outputs flattened)/d(input i element k)."""
    # fn runs with grad mode on: it may itself use autograd (gradgradcheck does)
    t = inputs[i]
    cols = []
    for k in range(t._data.size):
        old = _perturbed(t, k, eps)
        plus = np.concatenate([_flat_host(o) for o in _outputs(fn, inputs)] or [np.zeros(0)])
        _restore(t, k, old)
        _perturbed(t, k, -eps)
        minus = np.concatenate([_flat_host(o) for o in _outputs(fn, inputs)] or [np.zeros(0)])
        _restore(t, k, old)
        cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


def _analytic_jacobian(outputs, inputs, diff):
    """Rows per output element: gradient with respect to each differentiable input."""
    sizes = [o._data.size for o in outputs]
    rows = {i: [] for i in diff}
    targets = [inputs[i] for i in diff]
    for oi, o in enumerate(outputs):
        for k in range(sizes[oi]):
            if not o.requires_grad:
                for i in diff:
                    rows[i].append(np.zeros(inputs[i]._data.size))
                continue
            onehot = np.zeros(sizes[oi])
            onehot[k] = 1.0
            g = Tensor._wrap(o._device.backend.from_host(onehot.reshape(o.shape).astype(o._data.dtype)),
                             o._device)
            grads = autograd.grad([o], targets, [g], retain_graph=True, allow_unused=True)
            for i, gi in zip(diff, grads):
                rows[i].append(np.zeros(inputs[i]._data.size) if gi is None else _flat_host(gi))
    return {i: (np.stack(r) if r else np.zeros((0, inputs[i]._data.size))) for i, r in rows.items()}


def _report(i, t, out_index, elem, numeric, analytic):
    where = np.unravel_index(elem, t.shape) if t.shape else ()
    return (f"Jacobian mismatch for input {i} (shape {tuple(t.shape)}) at element {tuple(int(w) for w in where)}"
            f", output element {out_index}:\n  numerical: {float(numeric)!r}\n  analytical: "
            f"{float(analytic)!r}\n  difference: {float(abs(numeric - analytic))!r}")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, fast_mode=False,
              nondet_tol=0.0):
    """True if the analytic gradients of `fn` at `inputs` match central differences.
    On mismatch raises GradcheckError naming the input, element, and both values
    (or returns False when raise_exception=False)."""
    inputs, diff = _checked_inputs(inputs)
    try:
        if fast_mode:
            _fast_check(fn, inputs, diff, eps, atol, rtol)
        else:
            _full_check(fn, inputs, diff, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _full_check(fn, inputs, diff, eps, atol, rtol):
    outputs = _outputs(fn, inputs)
    analytic = _analytic_jacobian(outputs, inputs, diff)
    for i in diff:
        numeric = _numeric_jacobian(fn, inputs, i, eps)
        a = analytic[i]
        if numeric.shape != a.shape:
            raise GradcheckError(f"input {i}: Jacobian shapes differ (numerical {numeric.shape}, "
                                 f"analytical {a.shape})")
        bad = np.abs(a - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            oi, k = np.unravel_index(np.argmax(np.where(bad, np.abs(a - numeric), -1)), bad.shape)
            raise GradcheckError(_report(i, inputs[i], int(oi), int(k), numeric[oi, k], a[oi, k]))


def _fast_check(fn, inputs, diff, eps, atol, rtol):
    """Compares v^T J u, for random u (inputs) and v (outputs), both ways."""
    rng = np.random.default_rng(0)
    outputs = _outputs(fn, inputs)
    vs = [rng.standard_normal(o._data.size) for o in outputs]
    for i in diff:
        t = inputs[i]
        u = rng.standard_normal(t._data.size)
        u /= np.linalg.norm(u) or 1.0
        base = np.array(t._device.backend.to_host(t._data), dtype=np.float64)
        vals = []
        for sign in (1.0, -1.0):
            t._data[...] = t._device.backend.from_host((base.reshape(-1) + sign * eps * u).reshape(base.shape))
            outs = _outputs(fn, inputs)
            vals.append(sum(float(v @ _flat_host(o)) for v, o in zip(vs, outs)))
        t._data[...] = t._device.backend.from_host(base)
        numeric = (vals[0] - vals[1]) / (2 * eps)
        grads_out = [Tensor._wrap(o._device.backend.from_host(v.reshape(o.shape)), o._device)
                     for v, o in zip(vs, outputs) if o.requires_grad]
        outs_req = [o for o in outputs if o.requires_grad]
        if outs_req:
            (g,) = autograd.grad(outs_req, [t], grads_out, retain_graph=True, allow_unused=True)
        else:
            g = None
        analytic = 0.0 if g is None else float(_flat_host(g) @ u)
        if abs(analytic - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(f"fast gradcheck: directional derivative mismatch for input {i} "
                                 f"(shape {tuple(t.shape)}):\n  numerical: {numeric!r}\n  analytical: "
                                 f"{analytic!r}")


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, fast_mode=False):
    """Checks second derivatives: gradcheck of (inputs, grad_outputs) -> d(fn)/d(inputs)."""
    inputs, diff = _checked_inputs(inputs, "gradgradcheck")
    outputs = _outputs(fn, inputs)
    rng = np.random.default_rng(1)
    if grad_outputs is None:
        grad_outputs = [Tensor._wrap(o._device.backend.from_host(rng.standard_normal(o.shape)), o._device)
                        .requires_grad_() for o in outputs if o.requires_grad]
    grad_outputs = list(_as_tuple(grad_outputs))
    n_in = len(inputs)

    def first_derivatives(*args):
        xs, gos = args[:n_in], args[n_in:]
        outs = [o for o in _outputs(fn, xs) if o.requires_grad]
        targets = [xs[i] for i in diff]
        grads = autograd.grad(outs, targets, list(gos), create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception, fast_mode=fast_mode)


def gradcheck_module(module, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                     fast_mode=False):
    """gradcheck of a module's output with respect to its inputs and parameters
    (the module must be in float64: call module.double())."""
    params = [p for p in module.parameters() if p.requires_grad]
    for name, p in module.named_parameters():
        if p._data.dtype != np.float64:
            raise GradcheckError(f"gradcheck_module: parameter '{name}' is {p.dtype}; call "
                                 "module.double() first")
    n = len(inputs)

    def run(*args):
        return module(*args[:n])

    return gradcheck(run, tuple(inputs) + tuple(params), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode)

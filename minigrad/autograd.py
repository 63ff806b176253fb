"""Reverse-mode automatic differentiation: grad mode, graph nodes, the backward
engine, `Function` (the user extension point) and `grad()`.

A node is created per recorded operation and doubles as the `ctx` of its
Function. Each node keeps `edges`, one per positional input: None (constant or
no grad needed), `(node, output_index)` for a non-leaf tensor, or the leaf
tensor itself (gradients accumulate into its `.grad`). Backward formulas are
written with Tensor ops, so running them with grad mode on
(`create_graph=True`) records a graph of the backward pass: higher-order
gradients come for free.
"""
import threading
import traceback
import warnings

import numpy as np

Tensor = None  # set by minigrad.tensor (import cycle: tensors make nodes, nodes make tensors)


class _ThreadState(threading.local):
    def __init__(self):
        self.enabled = True
        self.anomaly = False


_state = _ThreadState()


def is_grad_enabled():
    return _state.enabled


class _GradModeContext:
    """Base of no_grad/enable_grad/set_grad_enabled: context manager and decorator."""

    _target = None

    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = self._target

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, fn):
        import functools
        target = self._target

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _state.enabled
            _state.enabled = target
            try:
                return fn(*args, **kwargs)
            finally:
                _state.enabled = prev
        return wrapper


class no_grad(_GradModeContext):
    """Disables graph recording (in this thread only). Context manager or decorator."""
    _target = False


class enable_grad(_GradModeContext):
    """Re-enables graph recording inside a no_grad region."""
    _target = True


class set_grad_enabled(_GradModeContext):
    def __init__(self, mode):
        self._target = bool(mode)
        self._prev = _state.enabled
        _state.enabled = self._target  # like PyTorch, takes effect when called

    def __enter__(self):
        pass


class detect_anomaly:
    """While active, nodes remember where they were created and backward checks
    every gradient for NaN/inf, naming the op that produced it."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = _state.anomaly
        _state.anomaly = self.check_nan

    def __exit__(self, *exc):
        _state.anomaly = self._prev
        return False


class set_detect_anomaly:
    """Switches anomaly detection on or off: as a call (takes effect at once) or
    as a context manager (restores the previous setting on exit), as in PyTorch."""

    def __init__(self, mode, check_nan=True):
        self._prev = _state.anomaly
        _state.anomaly = bool(mode) and bool(check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.anomaly = self._prev
        return False


def is_anomaly_enabled():
    return _state.anomaly


# ---------------------------------------------------------------------------
# graph nodes

class Node:
    """A recorded operation: its input edges plus whatever its backward needs."""

    freed = False
    n_outputs = 1
    creation_trace = None

    @property
    def name(self):
        return type(self).__name__

    @property
    def needs_input_grad(self):
        return tuple([e is not None for e in self.edges])

    def backward(self, *grads):
        raise NotImplementedError

    def release(self):
        """Drops saved values and edges once backward is done with them."""
        self.__dict__.clear()
        self.freed = True

    def __repr__(self):
        return f"<{self.name}Backward>"


def _edge(t):
    if not t.requires_grad:
        return None
    node = t._node
    return t if node is None else (node, t._out_idx)


def _device_mismatch(op_name, args):
    devices = [str(a._device) for a in args if isinstance(a, Tensor)]
    return RuntimeError(f"{op_name}: expected all tensors on the same device, got tensors on "
                        f"{' and '.join(dict.fromkeys(devices))}; move them with .to(device)")


def _scan_inputs(op_name, args):
    """The common device of the tensor arguments (an error if they differ) and
    whether any of them requires grad."""
    dev = None
    needs = False
    for a in args:
        if isinstance(a, Tensor):
            if dev is None:
                dev = a._device
            elif a._device is not dev:
                raise _device_mismatch(op_name, args)
            if a.requires_grad:
                needs = True
    return dev, needs


def _wrap_outputs(node, out, dev, record):
    wrap = Tensor._wrap
    if type(out) is not tuple:
        if isinstance(out, np.generic):  # numpy ufuncs turn 0-d results into scalars
            out = np.asarray(out)
        t = wrap(out, dev)
        if record:
            t._node = node
            t.requires_grad = True
        return t
    results = []
    node.n_outputs = len(out)
    node.output_meta = [(o.shape, o.dtype) for o in out]
    for i, o in enumerate(out):
        t = wrap(np.asarray(o) if isinstance(o, np.generic) else o, dev)
        if record and o.dtype.kind == "f":
            t._node = node
            t._out_idx = i
            t.requires_grad = True
        results.append(t)
    return tuple(results)


class Op(Node):
    """Base of the built-in ops. `forward(self, *args)` receives the Tensor and
    constant arguments and returns the output array(s); `backward(self, *grads)`
    receives output gradients as Tensors and returns one gradient (Tensor or
    None) per positional argument, computed with Tensor ops."""

    @classmethod
    def apply(cls, *args, **kwargs):
        dev, needs = _scan_inputs(cls.__name__, args)
        node = cls.__new__(cls)
        node.device = dev
        out = node.forward(*args, **kwargs)
        record = needs and _state.enabled
        if record:
            node.edges = tuple([_edge(a) if isinstance(a, Tensor) else None for a in args])
            if _state.anomaly:
                node.creation_trace = "".join(traceback.format_stack()[:-2])
        return _wrap_outputs(node, out, dev, record)


class FunctionNode(Node):
    """The ctx of a user-defined Function."""

    def __init__(self, fn_cls):
        self.fn_cls = fn_cls
        self._saved = ()
        self.materialize_grads = True

    @property
    def name(self):
        return self.fn_cls.__name__

    def save_for_backward(self, *tensors):
        self._saved = tensors

    @property
    def saved_tensors(self):
        if self.freed:
            raise RuntimeError(_SECOND_BACKWARD)
        return self._saved

    def mark_non_differentiable(self, *tensors):
        self._non_diff = {id(t) for t in tensors}

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)

    def backward(self, *grads):
        result = self.fn_cls.backward(self, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(self.edges):
            raise RuntimeError(f"function {self.name}.backward returned {len(result)} gradients, "
                               f"expected {len(self.edges)} (one per input of forward)")
        shapes = self.input_shapes
        for i, g in enumerate(result):
            if g is not None and self.edges[i] is not None:
                if not isinstance(g, Tensor):
                    raise TypeError(f"function {self.name}.backward returned a {type(g).__name__} "
                                    f"for input {i}; expected a Tensor or None")
                if g.shape != shapes[i]:
                    raise RuntimeError(f"function {self.name}.backward returned a gradient of shape "
                                       f"{tuple(g.shape)} for input {i} of shape {tuple(shapes[i])}")
        return result


class Function:
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grads)`,
    then call `MyFunction.apply(*args)`: PyTorch's extension point.
    forward runs without recording; backward receives one gradient per output
    and returns one per input of forward (None for non-tensors)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionNode(cls)
        _, needs = _scan_inputs(cls.__name__, args)
        prev = _state.enabled
        _state.enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            _state.enabled = prev
        record = needs and prev
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        for o in outs:
            if not isinstance(o, Tensor):
                raise TypeError(f"{cls.__name__}.forward must return Tensors, got {type(o).__name__}")
        if not record:
            return out
        ctx.edges = tuple([_edge(a) if isinstance(a, Tensor) else None for a in args])
        ctx.input_shapes = [a.shape if isinstance(a, Tensor) else None for a in args]
        ctx.n_outputs = len(outs)
        ctx.output_meta = [(o.shape, o._data.dtype) for o in outs]
        if _state.anomaly:
            ctx.creation_trace = "".join(traceback.format_stack()[:-1])
        non_diff = getattr(ctx, "_non_diff", ())
        results = []
        for i, o in enumerate(outs):
            if id(o) in non_diff or not o.is_floating_point():
                results.append(o)
                continue
            if o._node is not None or o.requires_grad:
                o = o.detach()  # an input returned as-is: give the output its own identity
            o._node = ctx
            o._out_idx = i
            o.requires_grad = True
            results.append(o)
        return results[0] if single else tuple(results)


# ---------------------------------------------------------------------------
# the backward engine

_SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time.")


def _topological_order(roots):
    """Nodes reachable from `roots`, each before the nodes of its inputs."""
    order, seen = [], set()
    stack = [(r, False) for r in roots]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        if node.freed:
            raise RuntimeError(_SECOND_BACKWARD)
        for e in node.edges:
            if type(e) is tuple and e[0] not in seen:
                stack.append((e[0], False))
    order.reverse()
    return order


def _buffer_root(arr):
    while arr.base is not None:
        arr = arr.base
    return id(arr)


def _leaf_grad(g, claimed):
    """A gradient safe to store in a leaf's .grad: writable and not sharing memory
    with another leaf's gradient (so in-place updates such as clipping never
    touch two leaves at once)."""
    data = g._data
    root = _buffer_root(data)
    if root in claimed or not getattr(data.flags, "writeable", True):  # CuPy arrays are always writable
        g = Tensor._wrap(data.copy(), g._device)
        root = id(g._data)
    claimed.add(root)
    return g


def _creation_text(node):
    return node.creation_trace or "(trace unavailable: the op was recorded outside detect_anomaly)\n"


def _check_finite(node, i, g):
    if g is not None and not bool(g.backend.xp.isfinite(g._data).all()):
        raise RuntimeError(f"anomaly detected: function '{node.name}Backward' returned non-finite "
                           f"(nan or inf) values in its gradient for input {i}. The op was created "
                           f"at:\n{_creation_text(node)}")


def _traced_backward(node, slots):
    """node.backward under anomaly mode: an error raised inside it also says where
    the op was created in the forward pass."""
    try:
        return node.backward(*slots)
    except Exception as e:
        if hasattr(e, "add_note"):
            e.add_note(f"(anomaly mode) the failing op '{node.name}Backward' was created at:\n"
                       f"{_creation_text(node).rstrip()}")
        raise


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """Propagates `root_grads` from `roots` through the graph.

    With `capture` (a dict mapping leaf ids or (node, index) pairs to None), the
    gradients reaching those places are stored there instead of accumulated
    into leaves (autograd.grad); without it, leaves accumulate into `.grad`.
    """
    grads = {}
    claimed = set()
    for g in root_grads:
        claimed.add(_buffer_root(g._data))
    accumulate = capture is None

    def deliver_leaf(leaf, g):
        if leaf._hooks:
            for hook in leaf._hooks:
                out = hook(g)
                if out is not None:
                    g = out
        if accumulate:
            if leaf._grad is None:
                leaf._grad = g if create_graph else _leaf_grad(g, claimed)
            else:
                leaf._grad = leaf._grad + g
        elif id(leaf) in capture:
            prev = capture[id(leaf)]
            capture[id(leaf)] = g if prev is None else prev + g

    root_nodes = []
    for t, g in zip(roots, root_grads):
        node = t._node
        if node is None:
            deliver_leaf(t, g)
            continue
        slots = grads.get(node)
        if slots is None:
            slots = grads[node] = [None] * node.n_outputs
            root_nodes.append(node)
        idx = t._out_idx
        slots[idx] = g if slots[idx] is None else slots[idx] + g

    order = _topological_order(root_nodes)
    prev_mode = _state.enabled
    _state.enabled = bool(create_graph)
    anomaly = _state.anomaly
    try:
        for node in order:
            slots = grads.pop(node, None)
            if slots is None:
                continue
            if node.freed:
                raise RuntimeError(_SECOND_BACKWARD)
            hooks = getattr(node, "output_hooks", None)
            if hooks:
                for idx, fns in hooks.items():
                    for fn in fns:
                        if slots[idx] is not None:
                            out = fn(slots[idx])
                            if out is not None:
                                slots[idx] = out
            if capture is not None:
                for idx in range(node.n_outputs):
                    key = (node, idx)
                    if key in capture:
                        capture[key] = slots[idx]
            if node.n_outputs > 1:
                slots = _materialize(node, slots)
            in_grads = node.backward(*slots) if not anomaly else _traced_backward(node, slots)
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
            for i, (edge, g) in enumerate(zip(node.edges, in_grads)):
                if edge is None or g is None:
                    continue
                if anomaly:
                    _check_finite(node, i, g)
                if type(edge) is tuple:
                    target, idx = edge
                    tslots = grads.get(target)
                    if tslots is None:
                        tslots = grads[target] = [None] * target.n_outputs
                    tslots[idx] = g if tslots[idx] is None else tslots[idx] + g
                else:
                    deliver_leaf(edge, g)
            if not retain_graph:
                node.release()
    finally:
        _state.enabled = prev_mode


def _materialize(node, slots):
    if all(s is not None for s in slots):
        return slots
    if isinstance(node, FunctionNode) and not node.materialize_grads:
        return slots
    xp = node_device_backend(node).xp
    return [s if s is not None else Tensor._wrap(xp.zeros(shape, dtype), node_device(node))
            for s, (shape, dtype) in zip(slots, node.output_meta)]


def node_device(node):
    dev = getattr(node, "device", None)
    if dev is None:
        for e in node.edges:
            if e is not None:
                return e._device if not isinstance(e, tuple) else node_device(e[0])
    return dev


def node_device_backend(node):
    return node_device(node).backend


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, returned (not accumulated).
    With create_graph=True the results carry a graph (higher-order gradients)."""
    single_input = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single_input else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    roots, root_grads = [], []
    for o, g in zip(outputs, grad_outputs):
        if not o.requires_grad:
            raise RuntimeError("grad: one of the outputs does not require grad and has no grad_fn")
        roots.append(o)
        root_grads.append(_initial_grad(o, g))
    keys = []
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs must be Tensors, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError("grad: one of the inputs does not require grad")
        keys.append(id(t) if t._node is None else (t._node, t._out_idx))
    capture = dict.fromkeys(keys)
    run_backward(roots, root_grads, retain_graph, create_graph, capture)
    result = []
    for i, (t, k) in enumerate(zip(inputs, keys)):
        g = capture[k]
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {tuple(t.shape)}) was not used in computing "
                               "the outputs; pass allow_unused=True to get None for it")
        result.append(g)
    return tuple(result)


def _initial_grad(t, g):
    if g is None:
        if t._data.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs; this "
                               f"output has shape {tuple(t.shape)}: pass gradient= (a tensor of "
                               "that shape) to backward()")
        # a fresh one (hooks may change it in place); xp.array, not xp.ones: a
        # C call instead of a Python helper, once per backward()
        one = t.backend.xp.array(1, dtype=t._data.dtype).reshape(t._data.shape)
        return Tensor._wrap(one, t._device)
    if not isinstance(g, Tensor):
        g = Tensor._wrap(t.backend.xp.asarray(g, dtype=t._data.dtype), t._device)
    if g.shape != t.shape:
        raise RuntimeError(f"gradient has shape {tuple(g.shape)} but the output has shape "
                           f"{tuple(t.shape)}; they must match")
    if g._device is not t._device:
        raise RuntimeError(f"gradient is on {g._device} but the output is on {t._device}")
    return g


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    roots, gs = [], []
    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn: nothing to differentiate (did you call .detach() or run "
                               "under no_grad()?)")
        roots.append(t)
        gs.append(_initial_grad(t, g))
    if retain_graph is None:
        retain_graph = create_graph
    if create_graph:
        warnings.warn(_CREATE_GRAPH_CYCLE, UserWarning, stacklevel=3)
    run_backward(roots, gs, retain_graph, create_graph)


# PyTorch's warning: a leaf's .grad then holds a graph that refers back to the leaf
_CREATE_GRAPH_CYCLE = (
    "Using backward() with create_graph=True will create a reference cycle between the parameter "
    "and its gradient which can cause a memory leak. We recommend using autograd.grad when "
    "creating the graph to avoid this. If you have to use this function, make sure to reset the "
    ".grad fields of your parameters to None after use to break the cycle and avoid the leak.")


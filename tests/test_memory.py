"""Memory stability: graphs and saved tensors are freed by reference counting
alone (no cycles, so `gc` is never needed), and long training runs reach a flat
resident-memory plateau after warm-up."""
import contextlib
import gc
import os
import weakref

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.autograd import Node
from minigrad.tensor import Tensor

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@contextlib.contextmanager
def gc_disabled():
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def live(kind):
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def _mlp():
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(64, 10))
    return model, (32, 64), optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def _cnn():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    return model, (16, 1, 8, 8), optim.Adam(model.parameters(), lr=1e-3)


WORKLOADS = {"mlp": _mlp, "cnn": _cnn}


def _training_step(kind, seed=0):
    """A workload's model plus one closure running a full training step."""
    mg.manual_seed(seed)
    model, shape, opt = WORKLOADS[kind]()
    r = np.random.default_rng(seed)
    x = mg.tensor(r.standard_normal(shape).astype(np.float32))
    y = mg.tensor(r.integers(0, 10, shape[0]))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return model, step


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_resident_memory_plateaus_over_3000_steps(kind):
    _, step = _training_step(kind)
    marks = {}
    with gc_disabled():  # everything must be freed by reference counting
        for i in range(1, 3001):
            step()
            if i in (500, 3000):
                marks[i] = (resident_bytes(), live(Tensor), live(Node))
    (rss_500, tensors_500, nodes_500), (rss_3000, tensors_3000, nodes_3000) = marks[500], marks[3000]
    assert (tensors_3000, nodes_3000) == (tensors_500, nodes_500)
    # a leak of one small (64 x 64) gradient per step would add 40 MB over 2,500 steps
    grown = rss_3000 - rss_500
    assert grown < 2 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB after warm-up"


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_training_step_leaves_the_live_tensor_count_unchanged(kind):
    model, step = _training_step(kind)
    with gc_disabled():
        step()
        step()  # optimizer state and running statistics exist from here on
        before = live(Tensor), live(Node)
        step()
        after = live(Tensor), live(Node)
    assert after == before


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_training_step_creates_no_reference_cycles(kind):
    _, step = _training_step(kind)
    step()
    with gc_disabled():
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to inspect it
        try:
            for _ in range(3):
                step()
            gc.collect()
            cyclic = [o for o in gc.garbage if isinstance(o, (Tensor, Node, np.ndarray))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert cyclic == []


def test_graph_is_freed_when_output_is_dropped_without_backward():
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    kept = []
    handle = model[0].register_forward_hook(lambda m, i, out: kept.append(weakref.ref(out)))
    with gc_disabled():
        out = model(mg.randn(4, 8))
        assert kept[0]() is not None  # held by the graph while the output lives
        del out
        assert kept[0]() is None
    handle.remove()


def test_saved_activations_are_freed_by_backward_while_loss_lives():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    kept = []
    handle = model[1].register_forward_hook(lambda m, i, out: kept.append(weakref.ref(out)))
    with gc_disabled():
        loss = model(mg.randn(4, 8)).sum()
        assert kept[0]() is not None
        loss.backward()
        assert kept[0]() is None  # released with the graph, though `loss` is still here
        assert loss.item() == loss.item()
    handle.remove()


def test_retain_graph_keeps_saved_values_until_the_graph_is_dropped():
    x = mg.randn(5, requires_grad=True)
    with gc_disabled():
        h = x.exp()
        ref = weakref.ref(h)
        loss = (h * h).sum()
        del h
        loss.backward(retain_graph=True)
        assert ref() is not None
        loss.backward()  # the second pass frees it
        assert ref() is None
        np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp(2 * x.detach().numpy()), rtol=1e-5)


def test_gradient_penalty_with_autograd_grad_leaves_no_cycles():
    w = mg.randn(6, 3, requires_grad=True)
    x = mg.randn(4, 6, requires_grad=True)

    def step():
        out = (x @ w).tanh().sum()
        (gx,) = mg.autograd.grad(out, x, create_graph=True)
        ((gx * gx).sum() + out).backward()
        w.grad = None
        x.grad = None

    step()
    with gc_disabled():
        before = live(Tensor), live(Node)
        step()
        assert (live(Tensor), live(Node)) == before
        assert gc.collect() == 0


def test_backward_with_create_graph_warns_about_the_cycle_it_makes():
    w = mg.randn(3, requires_grad=True)
    with pytest.warns(UserWarning, match="create_graph=True will create a reference cycle"):
        (w * w).sum().backward(create_graph=True)
    # the documented way out: drop the .grad that refers back to the parameter
    ref = weakref.ref(w.grad)
    with gc_disabled():
        w.grad = None
        assert ref() is None


def test_leaf_grad_of_backward_with_create_graph_cycle_is_collectable():
    w = mg.randn(3, requires_grad=True)
    with pytest.warns(UserWarning):
        (w * w).sum().backward(create_graph=True)
    ref = weakref.ref(w)
    del w
    gc.collect()
    assert ref() is None  # a cycle, but gc still reclaims it

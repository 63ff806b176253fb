"""ActivationStats (forward/gradient hooks) and the init study example."""
import importlib.util
import math
import pathlib

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn
from minigrad.utils import ActivationStats

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _model():
    mg.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def test_records_match_direct_computation():
    model = _model()
    stats = ActivationStats(model, types=(nn.ReLU, nn.Tanh), saturation=0.5)
    assert list(stats.layers) == ["1", "3"]
    x = mg.randn(32, 8)
    captured = {}
    for name in ("1", "3"):
        # a second hook that keeps the output and its gradient, to compare against
        model.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: captured.__setitem__(name, out) or out.retain_grad())
    F.cross_entropy(model(x), mg.randint(0, 3, (32,))).backward()
    for name in ("1", "3"):
        out = captured[name]
        y, g = out.detach().numpy().astype(np.float64), out.grad.numpy().astype(np.float64)
        rec = stats.latest(name)
        assert math.isclose(rec["mean"], y.mean(), rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(rec["std"], y.std(), rel_tol=1e-9)
        assert rec["zeros"] == (y == 0).mean()
        assert rec["saturated"] == (np.abs(y) >= 0.5).mean()
        assert math.isclose(rec["grad_norm"], np.sqrt((g * g).sum()), rel_tol=1e-9)
        assert math.isclose(rec["grad_std"], g.std(), rel_tol=1e-9)
    assert stats.latest("1")["zeros"] > 0.2  # relu kills about half


def test_history_reset_remove_and_no_grad():
    model = _model()
    with ActivationStats([model[1], model[3]]) as stats:
        for _ in range(3):
            model(mg.randn(4, 8))
        names = list(stats.layers)
        assert names == ["0:ReLU", "1:Tanh"]
        assert len(stats.history(names[0], "std")) == 3
        assert all(math.isnan(v) for v in stats.history(names[0], "grad_norm"))  # no backward yet
        with pytest.raises(ValueError, match="unknown field"):
            stats.history(names[0], "median")
        stats.reset()
        with pytest.raises(RuntimeError, match="has not run forward"):
            stats.latest(names[0])
    model(mg.randn(4, 8))
    assert stats.records[names[0]] == []  # hooks removed on exit
    assert not model[1]._forward_hooks


def test_watching_does_not_change_results_or_random_stream():
    model = _model()
    mg.manual_seed(9)
    plain = model(mg.randn(5, 8)).detach().numpy()
    after_plain = mg.randn(3).numpy()
    stats = ActivationStats(model)
    mg.manual_seed(9)
    watched = model(mg.randn(5, 8)).detach().numpy()
    np.testing.assert_array_equal(plain, watched)
    np.testing.assert_array_equal(after_plain, mg.randn(3).numpy())
    assert list(stats.layers) == ["0", "1", "2", "3", "4"]  # direct children by default


def test_table_and_plot(tmp_path, capsys):
    model = _model()
    stats = ActivationStats({"hidden": model[1], "unused": nn.ReLU()})
    model(mg.randn(6, 8)).sum().backward()
    text = stats.table()
    assert capsys.readouterr().out.strip() == text.strip()
    assert "hidden" in text and "(not run)" in text and "grad norm" in text
    pytest.importorskip("matplotlib")
    path = stats.plot(tmp_path / "acts.png")
    assert pathlib.Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_needs_layers():
    with pytest.raises(ValueError, match="no layers"):
        ActivationStats(nn.Sequential(nn.Linear(2, 2)), types=(nn.ReLU,))


def _load_init_study():
    spec = importlib.util.spec_from_file_location("init_study", ROOT / "examples" / "init_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_study_quick_reproduces_the_claim(tmp_path, capsys):
    study = _load_init_study()
    results = study.main(["--quick", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "relu: std of activations per layer" in out and "tanh: std of gradients" in out
    verdicts = {(act, scheme): row[2] for act, rows in results.items() for scheme, row in rows.items()}
    assert verdicts[("relu", "zeros")] == verdicts[("tanh", "zeros")] == "dead"
    assert verdicts[("relu", "N(0,1)*0.01")] == verdicts[("tanh", "N(0,1)*0.01")] == "vanishing"
    assert verdicts[("relu", "N(0,1)")] == "exploding"
    assert verdicts[("tanh", "N(0,1)")] == "saturated"
    assert verdicts[("relu", "xavier")] == "vanishing"
    assert verdicts[("relu", "kaiming")] == verdicts[("tanh", "xavier")] == "healthy"
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "init_study_relu.png").exists() and (tmp_path / "init_study_tanh.png").exists()

"""Every example runs here in a shortened form (a few batches), and the
checkpoint/resume path of the main example is exact."""
import importlib
import importlib.util
import os
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)


def example(name):
    return importlib.import_module(name)


def test_raw_ops_demo_learns():
    assert example("raw_ops_demo").main(["--steps", "150"]) > 0.8


def test_gradcheck_custom_op_example():
    assert example("gradcheck_custom_op").main() is True


def test_backend_switch_runs_on_cpu_and_says_when_no_gpu(capsys):
    import minigrad as mg
    out = example("backend_switch").main(["--steps", "8", "--batch-size", "16"])
    text = capsys.readouterr().out
    assert out["cpu_ms"] > 0
    if not mg.cuda.is_available():
        assert "no GPU" in text and out["cuda_ms"] is None


def test_train_mlp_quick_run(tmp_path):
    pytest.importorskip("sklearn")
    acc, model = example("train_mlp").main(["--epochs", "2", "--max-batches", "10", "--no-progress"])
    assert 0.5 < acc <= 1.0


def test_train_mlp_resume_gives_the_uninterrupted_weights(tmp_path):
    pytest.importorskip("sklearn")
    mlp = example("train_mlp")
    common = ["--epochs", "3", "--max-batches", "6", "--no-progress"]
    _, straight = mlp.main(common + ["--checkpoint", str(tmp_path / "a.safetensors")])
    ckpt = str(tmp_path / "b.safetensors")
    mlp.main(common + ["--checkpoint", ckpt, "--stop-after", "1"])
    _, resumed = mlp.main(common + ["--checkpoint", ckpt, "--resume"])
    a, b = straight.state_dict(), resumed.state_dict()
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)



def test_train_cnn_quick_run():
    pytest.importorskip("sklearn")
    acc, model = example("train_cnn").main(["--epochs", "1", "--max-batches", "8", "--no-progress"])
    assert 0.0 <= acc <= 1.0
    assert any(type(m).__name__ == "Conv2d" for m in model.modules())


def test_norm_study_quick(tmp_path):
    pytest.importorskip("sklearn")
    results = example("norm_study").main(["--quick", "--plot", str(tmp_path / "curves.png")])
    assert {key[0] for key in results} >= {"none", "batch", "layer", "group", "instance"}
    assert all(0.0 <= acc <= 1.0 for acc in results.values())
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "curves.png").stat().st_size > 0

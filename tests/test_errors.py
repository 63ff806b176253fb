"""Bad input gives a clear error naming the problem."""
import numpy as np
import pytest

import minigrad as mg


def test_matmul_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\)"):
        mg.randn(3, 4) @ mg.randn(5, 6)


def test_matmul_dtype_mismatch():
    with pytest.raises(TypeError, match="same dtype"):
        mg.randn(3, 4) @ mg.randn(4, 2, dtype=mg.float64)


def test_broadcast_failure_names_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        mg.ones(2, 3) + mg.ones(4)
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(2,\)"):
        mg.ones(2, 3) * mg.ones(2)


def test_mixing_devices_names_both():
    a = mg.ones(2)
    b = mg.ones(2, device="standin")
    assert b.device == "standin:0"
    with pytest.raises(RuntimeError, match=r"same device.*cpu and standin:0"):
        a + b
    with pytest.raises(RuntimeError, match=r"cpu and standin:0"):
        a @ b


def test_index_dtype_errors():
    t = mg.ones(4)
    with pytest.raises(IndexError, match="long .*or bool, got minigrad.float32"):
        t[mg.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"shape \(4,\)"):
        t[7]


def test_backward_twice_message():
    x = mg.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_reshape_error_names_sizes():
    with pytest.raises(RuntimeError, match=r"shape \[5, 5\] is invalid for input of size 12"):
        mg.ones(3, 4).reshape(5, 5)


def test_dim_out_of_range():
    with pytest.raises(IndexError, match="dim 3 is out of range for a tensor with 2 dimensions"):
        mg.ones(2, 2).sum(dim=3)


def test_cat_shape_mismatch():
    with pytest.raises(ValueError, match=r"cat: .*\(2, 3\) and \(2, 4\)"):
        mg.cat([mg.ones(2, 3), mg.ones(2, 4)], dim=0)


def test_cuda_absent_is_a_clear_error():
    if mg.cuda.is_available():
        pytest.skip("a GPU is present")
    assert mg.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*pip install minigrad\[gpu\]"):
        mg.ones(2).to("cuda")


def test_unknown_device_and_dtype():
    with pytest.raises(ValueError, match="unknown device type 'tpu'"):
        mg.device("tpu")
    with pytest.raises(TypeError, match="unsupported dtype"):
        mg.tensor([1.0]).to(np.complex64)


def test_bad_operand_type():
    with pytest.raises(TypeError, match="unsupported operand type.*dict"):
        mg.ones(2) + {}


@pytest.mark.parametrize("base", [[2, 3], []])
def test_integer_to_negative_power_is_refused_even_when_empty(base):
    # PyTorch refuses it for any size; numpy only notices when there is an element
    with pytest.raises(ValueError, match="integers to negative integer powers"):
        mg.tensor(np.array(base, dtype=np.int64)) ** -1
    if base:  # an exponent tensor is judged by its elements
        with pytest.raises(ValueError, match="integers to negative integer powers"):
            mg.tensor(np.array(base, dtype=np.int64)) ** mg.tensor(np.full(len(base), -2))
    assert (mg.tensor(np.array(base, dtype=np.int64)).float() ** -1).shape == (len(base),)

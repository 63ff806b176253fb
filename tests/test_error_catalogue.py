"""The error catalogue: each kind of bad input -- wrong rank, wrong shape, wrong
dtype, label out of range, mixed devices, nan hyper-parameters, empty batch,
non-tensor arguments -- given to the public functions and layers raises a
ValueError, TypeError, RuntimeError or IndexError whose message names the
argument, what was expected and what was given. The "standin" device of
conftest.py plays the second device."""
import inspect
import math
import re
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.data import DataLoader, TensorDataset
from minigrad.data.preprocessing import StandardScaler
from minigrad.nn import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module

NAN = float("nan")
OTHER = "standin"  # the second device


def _raises(fn, exc, *patterns):
    """fn() raises exactly `exc` (not a subclass from numpy) whose message
    matches every regex in `patterns`."""
    with pytest.raises(exc) as info:
        fn()
    assert type(info.value).__module__ == "builtins", f"{type(info.value)} escaped"
    msg = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, msg), f"{pattern!r} not found in the message: {msg}"
    return msg


def case(name, fn, exc, *patterns):
    return pytest.param(fn, exc, patterns, id=name)


def _params(*shapes):
    return [mg.zeros(*s, requires_grad=True) for s in shapes]


# ---------------------------------------------------------------- wrong rank

WRONG_RANK = [
    case("linear-0d-input", lambda: nn.Linear(3, 2)(mg.tensor(1.0)), ValueError,
         r"linear", r"in_features=3", r"shape \(\)"),
    case("linear-1d-weight", lambda: F.linear(mg.ones(2, 3), mg.ones(3)), ValueError,
         r"weight", r"2-D \(out_features, in_features\)", r"\(3,\)"),
    case("matmul-0d", lambda: mg.tensor(2.0) @ mg.ones(3), ValueError,
         r"matmul", r"at least 1 dimension", r"\(\) and \(3,\)"),
    case("cross-entropy-0d-input", lambda: F.cross_entropy(mg.tensor(1.0), mg.tensor(0)), ValueError,
         r"cross_entropy", r"class dimension", r"0-d"),
    case("t-of-3d", lambda: mg.ones(2, 2, 2).t(), ValueError, r"t\(\)", r"<= 2 dimensions", r"3"),
    case("fan-of-1d", lambda: init.xavier_uniform_(mg.empty(3)), ValueError,
         r"[Ff]an in and fan out", r"fewer than 2 dimensions", r"\(3,\)"),
    case("eye-of-3d", lambda: init.eye_(mg.empty(2, 2, 2)), ValueError,
         r"2 dimensions", r"\(2, 2, 2\)"),
    case("batchnorm1d-4d", lambda: nn.BatchNorm1d(3)(mg.randn(2, 3, 4, 4)), ValueError,
         r"2D or 3D", r"4D"),
    case("batchnorm2d-3d", lambda: nn.BatchNorm2d(3)(mg.randn(2, 3, 4)), ValueError,
         r"4D", r"3D"),
    case("groupnorm-1d", lambda: nn.GroupNorm(1, 3)(mg.randn(3)), ValueError,
         r"group_norm", r"at least 2 dimensions", r"\(3,\)"),
    case("conv2d-2d", lambda: nn.Conv2d(1, 2, 3)(mg.randn(8, 8)), ValueError,
         r"Conv2d", r"3-D .* or 4-D", r"\(8, 8\)"),
    case("maxpool2d-2d", lambda: nn.MaxPool2d(2)(mg.randn(8, 8)), ValueError,
         r"MaxPool2d", r"3-D .* or 4-D", r"\(8, 8\)"),
]

# ---------------------------------------------------------------- wrong shape

WRONG_SHAPE = [
    case("linear-in-features", lambda: nn.Linear(3, 2)(mg.randn(4, 5)), ValueError,
         r"linear", r"in_features=3", r"\(4, 5\)"),
    case("linear-bias", lambda: F.linear(mg.ones(2, 3), mg.ones(2, 3), mg.ones(3)), ValueError,
         r"bias", r"\(2,\)", r"\(3,\)"),
    case("matmul-inner", lambda: mg.randn(3, 4) @ mg.randn(5, 6), ValueError,
         r"matmul", r"\(3, 4\) and \(5, 6\)", r"4 != 5"),
    case("broadcast", lambda: mg.ones(2, 3) + mg.ones(4), ValueError,
         r"add", r"\(2, 3\) and \(4,\)", r"broadcast"),
    case("cat", lambda: mg.cat([mg.ones(2, 3), mg.ones(2, 4)]), ValueError,
         r"cat", r"same shape except in dimension 0", r"\(2, 3\) and \(2, 4\)"),
    case("stack", lambda: mg.stack([mg.ones(2), mg.ones(3)]), ValueError,
         r"stack", r"same shape", r"\(2,\) and \(3,\)"),
    case("reshape", lambda: mg.ones(3, 4).reshape(5, 5), RuntimeError,
         r"shape \[5, 5\]", r"size 12", r"\(3, 4\)"),
    case("expand", lambda: mg.ones(4, 3).expand(5, 3), RuntimeError,
         r"expand", r"size 5 must match the existing size 4", r"\(4, 3\)"),
    case("cross-entropy-target", lambda: F.cross_entropy(mg.randn(4, 3), mg.tensor([0, 1])), ValueError,
         r"cross_entropy", r"target of shape \(4,\)", r"got \(2,\)"),
    case("cross-entropy-weight", lambda: F.cross_entropy(mg.randn(2, 3), mg.tensor([0, 1]),
                                                         weight=mg.ones(4)), ValueError,
         r"weight", r"\(3,\)", r"\(4,\)"),
    case("bce-target", lambda: F.binary_cross_entropy(mg.rand(4), mg.rand(3)), ValueError,
         r"binary_cross_entropy", r"target size \(\(3,\)\)", r"input size \(\(4,\)\)"),
    case("bce-weight", lambda: F.binary_cross_entropy(mg.rand(4), mg.rand(4), weight=mg.rand(3)),
         ValueError, r"weight of shape \(3,\)", r"input's shape \(4,\)"),
    case("bce-logits-pos-weight", lambda: F.binary_cross_entropy_with_logits(
        mg.rand(4, 3), mg.rand(4, 3), pos_weight=mg.rand(2)), ValueError,
         r"pos_weight of shape \(2,\)", r"input's shape \(4, 3\)"),
    case("batchnorm-channels", lambda: nn.BatchNorm1d(3)(mg.randn(2, 4)), RuntimeError,
         r"BatchNorm1d", r"num_features=3", r"\(2, 4\)"),
    case("layernorm-trailing", lambda: nn.LayerNorm(3)(mg.randn(2, 4)), RuntimeError,
         r"normalized_shape=\[3\]", r"\[\*, 3\]", r"\[2, 4\]"),
    case("groupnorm-channels", lambda: nn.GroupNorm(1, 3)(mg.randn(2, 4)), RuntimeError,
         r"num_channels=3", r"\(2, 4\)"),
    case("conv2d-channels", lambda: nn.Conv2d(3, 4, 3)(mg.randn(1, 2, 8, 8)), ValueError,
         r"Conv2d", r"3 channels \(in_channels\)", r"2 channels"),
    case("conv2d-kernel-larger-than-input", lambda: nn.Conv2d(3, 4, 5)(mg.randn(1, 3, 3, 3)),
         ValueError, r"Conv2d", r"kernel size .*\(5 x 5\)", r"\(3 x 3\)"),
    case("load-state-dict", lambda: nn.Linear(3, 2).load_state_dict(
        {"weight": mg.randn(3, 3), "bias": mg.randn(2)}), RuntimeError,
         r"size mismatch for weight", r"\(3, 3\) from checkpoint", r"current model is \(2, 3\)"),
    case("backward-gradient", lambda: (mg.ones(3, requires_grad=True) * 2).backward(mg.ones(2)),
         RuntimeError, r"gradient has shape \(2,\)", r"output has shape \(3,\)"),
    case("grad-setter", lambda: setattr(mg.ones(3, requires_grad=True), "grad", mg.ones(2)),
         RuntimeError, r"grad has shape \(2,\)", r"tensor has shape \(3,\)"),
    case("add_-inplace", lambda: mg.ones(3).add_(mg.ones(2)), RuntimeError,
         r"add_", r"operand of shape \(2,\)", r"tensor's shape \(3,\)"),
    case("index-assignment", lambda: mg.ones(3).__setitem__(slice(None), mg.ones(2)), RuntimeError,
         r"index assignment", r"shape \(2,\)", r"\(3,\)"),
    case("tensor-dataset", lambda: TensorDataset(mg.randn(4), mg.randn(3)), ValueError,
         r"first dimensions are \[4, 3\]", r"same number of samples"),
    case("ragged-data", lambda: mg.tensor([[1, 2], [3]]), ValueError,
         r"tensor\(\)", r"rectangular"),
]

# ---------------------------------------------------------------- wrong dtype

WRONG_DTYPE = [
    case("linear-int-input", lambda: nn.Linear(3, 2)(mg.ones(4, 3, dtype=mg.int64)), TypeError,
         r"linear", r"floating point input", r"int64"),
    case("linear-float64-input", lambda: nn.Linear(3, 2)(mg.randn(4, 3, dtype=mg.float64)), TypeError,
         r"input is minigrad.float64 but weight is minigrad.float32"),
    case("cross-entropy-float-labels", lambda: F.cross_entropy(mg.randn(4, 3), mg.tensor([0.0, 1, 2, 1])),
         RuntimeError, r"cross_entropy", r"Long \(int64\)", r"float32"),
    case("cross-entropy-bool-labels", lambda: nn.CrossEntropyLoss()(
        mg.randn(2, 3), mg.tensor([True, False])), RuntimeError, r"Long \(int64\)", r"bool"),
    case("nll-float-labels", lambda: F.nll_loss(mg.randn(4, 3), mg.tensor([0.0, 1, 2, 1])),
         RuntimeError, r"nll_loss", r"Long \(int64\)", r"float32"),
    case("cross-entropy-int-logits", lambda: F.cross_entropy(mg.ones(2, 3, dtype=mg.int64),
                                                             mg.tensor([0, 1])), TypeError,
         r"cross_entropy", r"floating point input", r"int64"),
    case("bce-int-target", lambda: F.binary_cross_entropy(mg.rand(4), mg.ones(4, dtype=mg.int64)),
         TypeError, r"target is minigrad.int64 but input is minigrad.float32"),
    case("matmul-mixed", lambda: mg.randn(3, 4) @ mg.randn(4, 2, dtype=mg.float64), TypeError,
         r"matmul", r"same dtype", r"float32 and minigrad.float64"),
    case("mean-of-int", lambda: mg.ones(3, dtype=mg.int64).mean(), TypeError,
         r"mean", r"floating point", r"int64"),
    case("softmax-of-int", lambda: F.softmax(mg.ones(2, 3, dtype=mg.int64), 1), TypeError,
         r"softmax", r"floating point", r"int64"),
    case("relu-of-int", lambda: nn.ReLU()(mg.ones(3, dtype=mg.int64)), TypeError,
         r"relu", r"floating point", r"int64"),
    case("dropout-of-int", lambda: nn.Dropout()(mg.ones(3, dtype=mg.int64)), TypeError,
         r"dropout", r"floating point", r"int64"),
    case("batchnorm-of-int", lambda: nn.BatchNorm1d(3)(mg.ones(2, 3, dtype=mg.int64)),
         TypeError, r"batch_norm", r"floating point", r"int64"),
    case("conv2d-of-int", lambda: nn.Conv2d(1, 2, 3)(mg.ones(1, 1, 4, 4, dtype=mg.int64)),
         TypeError, r"Conv2d", r"floating point", r"int64"),
    case("int-requires-grad", lambda: mg.tensor([1, 2], requires_grad=True), RuntimeError,
         r"only floating point tensors can require gradients", r"int64"),
    case("float-index", lambda: mg.ones(4)[mg.tensor([0.0, 1.0])], IndexError,
         r"long \(int64\) or bool", r"float32"),
    case("where-condition", lambda: mg.where(mg.ones(2), mg.ones(2), mg.zeros(2)), TypeError,
         r"where", r"condition must be a bool tensor", r"float32"),
    case("module-to-int", lambda: nn.Linear(2, 2).to(mg.int64), TypeError,
         r"floating point dtypes", r"int64"),
    case("grad-dtype", lambda: setattr(mg.ones(3, requires_grad=True), "grad",
                                       mg.ones(3, dtype=mg.float64)), TypeError,
         r"assigned grad has dtype minigrad.float64", r"tensor has dtype minigrad.float32"),
    case("mul_-int-by-float", lambda: mg.ones(3, dtype=mg.int64).mul_(1.5), RuntimeError,
         r"mul_", r"can't be cast to the tensor's dtype minigrad.int64"),
    case("unsupported-dtype", lambda: mg.tensor([1.0]).to(np.complex64), TypeError,
         r"unsupported dtype", r"complex64", r"float32, float64, int64 or bool"),
    case("bool-subtraction", lambda: mg.ones(2, dtype=mg.bool) - mg.ones(2, dtype=mg.bool), TypeError,
         r"sub", r"minigrad.bool and minigrad.bool"),
    case("bool-negation", lambda: -mg.ones(2, dtype=mg.bool), TypeError, r"negation", r"bool"),
    case("string-data", lambda: mg.tensor(["a", "b"]), TypeError,
         r"tensor\(\)", r"element of type str", r"expected a number"),
    case("float-size", lambda: mg.zeros(2.5), TypeError,
         r"zeros\(\)", r"'size' must be a sequence of ints", r"2.5 of type float"),
]

# ---------------------------------------------------------------- label out of range

LABEL_OUT_OF_RANGE = [
    case("cross-entropy-too-large", lambda: F.cross_entropy(mg.randn(4, 3), mg.tensor([0, 1, 3, 1])),
         ValueError, r"cross_entropy", r"Target 3 is out of bounds", r"\[0, 2\]"),
    case("cross-entropy-negative", lambda: nn.CrossEntropyLoss()(mg.randn(2, 3), mg.tensor([0, -2])),
         ValueError, r"Target -2", r"\[0, 2\] or ignore_index=-100"),
    case("cross-entropy-spatial", lambda: F.cross_entropy(mg.randn(2, 3, 4), mg.full((2, 4), 5)),
         ValueError, r"Target 5", r"3 classes"),
    case("cross-entropy-other-ignore-index", lambda: F.cross_entropy(
        mg.randn(2, 3), mg.tensor([0, -100]), ignore_index=-1), ValueError,
         r"Target -100", r"ignore_index=-1"),
    case("nll-too-large", lambda: F.nll_loss(mg.randn(4, 3), mg.tensor([0, 1, 5, 1])), ValueError,
         r"nll_loss", r"Target 5", r"\[0, 2\]"),
    case("bce-probability", lambda: F.binary_cross_entropy(mg.tensor([-0.5, 0.5]), mg.rand(2)),
         ValueError, r"between 0 and 1", r"-0.5"),
    case("bce-nan-probability", lambda: F.binary_cross_entropy(mg.tensor([NAN, 0.5]), mg.rand(2)),
         ValueError, r"between 0 and 1", r"nan"),
    case("index", lambda: mg.ones(4, 3)[10], IndexError, r"index", r"10", r"\(4, 3\)"),
    case("dim", lambda: mg.ones(2, 2).sum(dim=3), IndexError,
         r"dim 3 is out of range", r"2 dimensions", r"\[-2, 1\]"),
    case("softmax-dim", lambda: nn.Softmax(dim=3)(mg.randn(2, 3)), IndexError,
         r"softmax", r"dim 3", r"\[-2, 1\]"),
    case("randint-bounds", lambda: mg.randint(5, 2, (3,)), ValueError,
         r"randint", r"low < high", r"low=5 and high=2"),
]

# ---------------------------------------------------------------- mixed devices

MIXED_DEVICES = [
    case("add", lambda: mg.ones(2) + mg.ones(2, device=OTHER), RuntimeError,
         r"same device", r"cpu and standin:0"),
    case("matmul", lambda: mg.ones(2, 2) @ mg.ones(2, 2, device=OTHER), RuntimeError,
         r"cpu and standin:0"),
    case("linear-layer", lambda: nn.Linear(3, 2)(mg.randn(2, 3, device=OTHER)), RuntimeError,
         r"Linear", r"standin:0 and cpu"),
    case("cross-entropy-target", lambda: F.cross_entropy(mg.randn(2, 3), mg.tensor([0, 1], device=OTHER)),
         RuntimeError, r"cross_entropy", r"input is on cpu but target is on standin:0"),
    case("mse-target", lambda: F.mse_loss(mg.randn(2, 3), mg.randn(2, 3, device=OTHER)), RuntimeError,
         r"mse_loss", r"input is on cpu but target is on standin:0"),
    case("bce-weight", lambda: F.binary_cross_entropy(mg.rand(2), mg.rand(2), weight=mg.rand(2, device=OTHER)),
         RuntimeError, r"input is on cpu but weight is on standin:0"),
    case("cat", lambda: mg.cat([mg.ones(2), mg.ones(2, device=OTHER)]), RuntimeError,
         r"cpu and standin:0"),
    case("where", lambda: mg.where(mg.ones(2) > 0, mg.ones(2), mg.zeros(2, device=OTHER)), RuntimeError,
         r"cpu and standin:0"),
    case("index", lambda: mg.ones(3)[mg.tensor([0], device=OTHER)], RuntimeError,
         r"index is on standin:0 but the tensor is on cpu"),
    case("comparison", lambda: mg.ones(2) < mg.ones(2, device=OTHER), RuntimeError,
         r"comparison", r"cpu and standin:0"),
    case("add_-inplace", lambda: mg.ones(2).add_(mg.ones(2, device=OTHER)), RuntimeError,
         r"expected a tensor on cpu, got standin:0"),
    case("backward-gradient", lambda: (mg.ones(2, requires_grad=True) * 2).backward(
        mg.ones(2, device=OTHER)), RuntimeError, r"gradient is on standin:0 but the output is on cpu"),
    case("grad-setter", lambda: setattr(mg.ones(2, requires_grad=True), "grad", mg.ones(2, device=OTHER)),
         RuntimeError, r"assigned grad is on standin:0 but the tensor is on cpu"),
    case("batchnorm", lambda: nn.BatchNorm1d(3)(mg.randn(2, 3, device=OTHER)), RuntimeError,
         r"batch_norm", r"cpu", r"standin:0"),
    case("conv2d", lambda: nn.Conv2d(1, 2, 3)(mg.randn(1, 1, 4, 4, device=OTHER)), RuntimeError,
         r"Conv2d", r"standin:0 and cpu"),
]

# ---------------------------------------------------------------- nan hyper-parameters

NAN_HYPERPARAMETERS = [
    case("sgd-lr", lambda: optim.SGD(_params((2,)), lr=NAN), ValueError, r"Invalid learning rate: nan"),
    case("sgd-momentum", lambda: optim.SGD(_params((2,)), lr=0.1, momentum=NAN), ValueError,
         r"Invalid momentum value: nan"),
    case("sgd-dampening", lambda: optim.SGD(_params((2,)), lr=0.1, momentum=0.9, dampening=NAN),
         ValueError, r"Invalid dampening value: nan"),
    case("sgd-weight-decay", lambda: optim.SGD(_params((2,)), lr=0.1, weight_decay=NAN), ValueError,
         r"Invalid weight_decay value: nan"),
    case("adam-eps", lambda: optim.Adam(_params((2,)), eps=NAN), ValueError, r"Invalid epsilon value: nan"),
    case("adam-beta", lambda: optim.Adam(_params((2,)), betas=(NAN, 0.999)), ValueError,
         r"Invalid beta parameter at index 0: nan"),
    case("adamw-weight-decay", lambda: optim.AdamW(_params((2,)), weight_decay=NAN), ValueError,
         r"Invalid weight_decay value: nan"),
    case("rmsprop-alpha", lambda: optim.RMSprop(_params((2,)), alpha=NAN), ValueError,
         r"Invalid alpha value: nan"),
    case("adagrad-lr-decay", lambda: optim.Adagrad(_params((2,)), lr_decay=NAN), ValueError,
         r"Invalid lr_decay value: nan"),
    case("param-group-lr", lambda: optim.SGD([{"params": _params((2,)), "lr": NAN}], lr=0.1),
         ValueError, r"Invalid learning rate: nan"),
    case("steplr-gamma", lambda: optim.lr_scheduler.StepLR(optim.SGD(_params((2,)), lr=0.1), 3, gamma=NAN),
         ValueError, r"StepLR: gamma", r"nan"),
    case("steplr-step-size", lambda: optim.lr_scheduler.StepLR(optim.SGD(_params((2,)), lr=0.1), 0),
         ValueError, r"StepLR: step_size must be a positive int", r"got 0"),
    case("exponentiallr-gamma", lambda: optim.lr_scheduler.ExponentialLR(
        optim.SGD(_params((2,)), lr=0.1), gamma=NAN), ValueError, r"ExponentialLR: gamma", r"nan"),
    case("cosine-eta-min", lambda: optim.lr_scheduler.CosineAnnealingLR(
        optim.SGD(_params((2,)), lr=0.1), T_max=5, eta_min=NAN), ValueError, r"eta_min", r"nan"),
    case("cosine-t-max", lambda: optim.lr_scheduler.CosineAnnealingLR(
        optim.SGD(_params((2,)), lr=0.1), T_max=0), ValueError, r"T_max must be positive", r"got 0"),
    case("linearlr-start", lambda: optim.lr_scheduler.LinearLR(
        optim.SGD(_params((2,)), lr=0.1), start_factor=NAN), ValueError, r"start_factor", r"nan"),
    case("onecycle-max-lr", lambda: optim.lr_scheduler.OneCycleLR(
        optim.SGD(_params((2,)), lr=0.1), max_lr=NAN, total_steps=10), ValueError, r"max_lr", r"nan"),
    case("dropout-p", lambda: nn.Dropout(NAN), ValueError, r"dropout probability", r"between 0 and 1",
         r"nan"),
    case("leaky-relu-slope", lambda: nn.LeakyReLU(NAN), ValueError, r"LeakyReLU", r"negative_slope", r"nan"),
    case("elu-alpha", lambda: nn.ELU(NAN), ValueError, r"ELU", r"alpha", r"nan"),
    case("softplus-beta", lambda: nn.Softplus(beta=NAN), ValueError, r"Softplus", r"beta", r"nan"),
    case("hardtanh-bound", lambda: nn.Hardtanh(NAN, 1.0), ValueError, r"hardtanh", r"min_val", r"nan"),
    case("functional-leaky-relu", lambda: F.leaky_relu(mg.randn(3), NAN), ValueError,
         r"leaky_relu", r"negative_slope", r"nan"),
    case("label-smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=NAN), ValueError,
         r"label_smoothing", r"between 0.0 and 1.0", r"nan"),
    case("init-uniform-bound", lambda: init.uniform_(mg.empty(3, 3), NAN, 1.0), ValueError,
         r"uniform_", r"\ba\b", r"nan"),
    case("init-normal-std", lambda: init.normal_(mg.empty(3, 3), 0.0, NAN), ValueError,
         r"normal_", r"std", r"nan"),
    case("init-xavier-gain", lambda: init.xavier_uniform_(mg.empty(3, 3), gain=NAN), ValueError,
         r"xavier_uniform_", r"gain", r"nan"),
    case("init-kaiming-a", lambda: init.kaiming_normal_(mg.empty(3, 3), a=NAN), ValueError,
         r"kaiming_normal_", r"\ba\b", r"nan"),
    case("init-orthogonal-gain", lambda: init.orthogonal_(mg.empty(3, 3), gain=NAN), ValueError,
         r"orthogonal_", r"gain", r"nan"),
    case("init-trunc-normal-std", lambda: init.trunc_normal_(mg.empty(3, 3), std=NAN), ValueError,
         r"trunc_normal_", r"std", r"nan"),
    case("arange-end", lambda: mg.arange(0, NAN), ValueError, r"arange", r"'end' must be finite", r"nan"),
    case("linspace-start", lambda: mg.linspace(NAN, 1, 5), ValueError,
         r"linspace", r"'start' must be finite", r"nan"),
]

# ---------------------------------------------------------------- empty inputs with no answer

EMPTY_BATCH = [
    case("amax", lambda: mg.randn(0, 3).amax(0), RuntimeError,
         r"amax", r"dimension of size 0", r"\(0, 3\)"),
    case("max-dim", lambda: mg.randn(0, 3).max(dim=0), IndexError, r"max", r"size 0", r"\(0, 3\)"),
    case("argmax", lambda: mg.randn(0, 3).argmax(), RuntimeError, r"argmax", r"size 0", r"\(0, 3\)"),
    case("cat-nothing", lambda: mg.cat([]), ValueError, r"cat", r"non-empty sequence"),
    case("stack-nothing", lambda: mg.stack([]), ValueError, r"stack", r"non-empty sequence"),
    case("optimizer-no-params", lambda: optim.SGD([], lr=0.1), ValueError, r"empty parameter list"),
    case("tensor-dataset-nothing", lambda: TensorDataset(), ValueError, r"at least one tensor"),
    case("scaler-no-samples", lambda: StandardScaler().fit(np.zeros((0, 3))), ValueError,
         r"StandardScaler.fit", r"0 samples", r"\(0, 3\)"),
    case("batchnorm-one-value", lambda: nn.BatchNorm1d(3)(mg.randn(1, 3)), ValueError,
         r"more than 1 value per channel", r"\(1, 3\)"),
    case("dataloader-batch-size", lambda: DataLoader(TensorDataset(mg.randn(4)), batch_size=0), ValueError,
         r"batch_size", r"positive integer", r"got 0"),
]

# ---------------------------------------------------------------- non-tensor arguments

NON_TENSOR = [
    case("linear-numpy", lambda: nn.Linear(3, 2)(np.ones((4, 3), np.float32)), TypeError,
         r"linear", r"input must be a Tensor", r"ndarray"),
    case("linear-none", lambda: F.linear(None, mg.ones(2, 3)), TypeError,
         r"linear", r"input must be a Tensor", r"NoneType"),
    case("cross-entropy-list-target", lambda: F.cross_entropy(mg.randn(4, 3), [0, 1, 2, 1]), TypeError,
         r"cross_entropy", r"Tensors", r"list"),
    case("mse-list-input", lambda: F.mse_loss([1.0], mg.ones(1)), TypeError,
         r"mse_loss", r"Tensors", r"list"),
    case("softmax-list", lambda: F.softmax([1.0, 2.0], 0), TypeError, r"softmax", r"Tensor", r"list"),
    case("relu-numpy", lambda: nn.ReLU()(np.ones(3)), TypeError, r"relu", r"Tensor", r"ndarray"),
    case("dropout-numpy", lambda: F.dropout(np.ones(3)), TypeError, r"dropout", r"Tensor", r"ndarray"),
    case("flatten-numpy", lambda: nn.Flatten()(np.ones((2, 3))), TypeError, r"Flatten", r"Tensor",
         r"ndarray"),
    case("cat-numpy", lambda: mg.cat([mg.ones(2), np.ones(2)]), TypeError,
         r"cat", r"sequence of Tensors", r"element 1 is ndarray"),
    case("init-numpy", lambda: init.xavier_uniform_(np.empty((3, 3))), TypeError,
         r"xavier_uniform_", r"Tensor", r"ndarray"),
    case("optimizer-ints", lambda: optim.SGD([1, 2], lr=0.1), TypeError,
         r"optimizer can only optimize Tensors", r"int"),
    case("optimizer-lr-string", lambda: optim.Adam(_params((2,)), lr="0.1"), TypeError,
         r"learning rate", r"real number", r"str"),
    case("from-numpy-list", lambda: mg.from_numpy([1, 2]), TypeError,
         r"from_numpy", r"numpy.ndarray", r"list"),
    case("tensor-none", lambda: mg.tensor(None), TypeError,
         r"tensor\(\)", r"NoneType", r"expected a number"),
    case("operand-dict", lambda: mg.ones(2) + {}, TypeError, r"unsupported operand type", r"dict"),
    case("grad-setter-numpy", lambda: setattr(mg.ones(2, requires_grad=True), "grad", np.ones(2)),
         TypeError, r"grad must be a Tensor or None", r"ndarray"),
    case("batchnorm-numpy", lambda: nn.BatchNorm1d(3)(np.ones((2, 3))), TypeError,
         r"batch_norm", r"Tensor", r"ndarray"),
    case("conv2d-numpy", lambda: nn.Conv2d(1, 2, 3)(np.ones((1, 1, 4, 4))), TypeError,
         r"Conv2d", r"Tensor", r"ndarray"),
    case("dim-float", lambda: F.softmax(mg.randn(2, 3), 1.0), TypeError,
         r"softmax", r"dim must be an int", r"float"),
    case("softmax-layer-dim", lambda: nn.Softmax(dim="1"), TypeError, r"Softmax", r"dim", r"str"),
    case("dropout-p-string", lambda: nn.Dropout("a"), ValueError, r"dropout probability",
         r"between 0 and 1", r"got a"),
    case("activation-parameter-string", lambda: nn.LeakyReLU("a"), TypeError,
         r"negative_slope must be a real number", r"str"),
    case("dataset-int", lambda: DataLoader(5), TypeError, r"DataLoader", r"int"),
    case("save-int", lambda: mg.save(5, "unused.safetensors"), TypeError, r"mg.save", r"int"),
    case("module-child-int", lambda: nn.Sequential(5), TypeError, r"int is not a Module"),
    case("parameter-numpy", lambda: nn.Parameter(np.ones(3)), TypeError, r"Parameter", r"ndarray"),
]

CATALOGUE = {
    "wrong rank": WRONG_RANK, "wrong shape": WRONG_SHAPE, "wrong dtype": WRONG_DTYPE,
    "label out of range": LABEL_OUT_OF_RANGE, "mixed devices": MIXED_DEVICES,
    "nan hyper-parameters": NAN_HYPERPARAMETERS, "empty batch": EMPTY_BATCH,
    "non-tensor arguments": NON_TENSOR,
}


@pytest.mark.parametrize("fn, exc, patterns", WRONG_RANK)
def test_wrong_rank(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", WRONG_SHAPE)
def test_wrong_shape(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", WRONG_DTYPE)
def test_wrong_dtype(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", LABEL_OUT_OF_RANGE)
def test_label_or_index_out_of_range(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", MIXED_DEVICES)
def test_mixed_devices(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", NAN_HYPERPARAMETERS)
def test_nan_hyperparameters(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", EMPTY_BATCH)
def test_empty_input_without_an_answer(fn, exc, patterns):
    _raises(fn, exc, *patterns)


@pytest.mark.parametrize("fn, exc, patterns", NON_TENSOR)
def test_non_tensor_arguments(fn, exc, patterns):
    _raises(fn, exc, *patterns)


def test_catalogue_errors_are_raised_where_the_mistake_is_made():
    """No catalogued error comes out of numpy: the innermost frame is minigrad's."""
    for kind, cases in CATALOGUE.items():
        for param in cases:
            fn, exc, _ = param.values
            with pytest.raises(exc) as info:
                fn()
            origin = info.traceback[-1].path
            assert "minigrad" in str(origin) and "numpy" not in str(origin), (kind, param.id, origin)


# ---------------------------------------------------------------- empty batches with an answer

def test_empty_batches_give_pytorchs_results():
    """An empty batch is not an error where PyTorch has an answer for it."""
    lin = nn.Linear(3, 2)
    assert lin(mg.randn(0, 3)).shape == (0, 2)
    ce = F.cross_entropy(mg.randn(0, 3), mg.zeros(0, dtype=mg.int64))
    assert math.isnan(ce.item())  # mean over no samples: 0 / 0
    assert F.cross_entropy(mg.randn(0, 3), mg.zeros(0, dtype=mg.int64), reduction="sum").item() == 0
    assert math.isnan(F.mse_loss(mg.randn(0, 3), mg.randn(0, 3)).item())
    assert mg.randn(0, 3).sum().item() == 0 and mg.randn(0, 3).amax(1).shape == (0,)
    assert list(DataLoader(TensorDataset(mg.randn(0, 3)), batch_size=2)) == []
    x = mg.randn(0, 3, requires_grad=True)
    lin(x).sum().backward()
    assert x.grad.shape == (0, 3) and lin.weight.grad.tolist() == [[0.0] * 3] * 2


# ---------------------------------------------------------------- every layer, generically

def _layer_inputs():
    """Each public layer: (a factory, a valid input shape). Losses take (input, target)."""
    return {
        "Linear": (lambda: nn.Linear(4, 3), (2, 4)),
        "Flatten": (lambda: nn.Flatten(), (2, 3, 2)),
        "Dropout": (lambda: nn.Dropout(0.5), (2, 4)),
        "ReLU": (nn.ReLU, (2, 4)), "ReLU6": (nn.ReLU6, (2, 4)), "SELU": (nn.SELU, (2, 4)),
        "SiLU": (nn.SiLU, (2, 4)), "Sigmoid": (nn.Sigmoid, (2, 4)), "Tanh": (nn.Tanh, (2, 4)),
        "GELU": (nn.GELU, (2, 4)), "LeakyReLU": (nn.LeakyReLU, (2, 4)), "ELU": (nn.ELU, (2, 4)),
        "Softplus": (nn.Softplus, (2, 4)), "Hardtanh": (nn.Hardtanh, (2, 4)),
        "Softmax": (lambda: nn.Softmax(1), (2, 4)), "LogSoftmax": (lambda: nn.LogSoftmax(1), (2, 4)),
        "BatchNorm1d": (lambda: nn.BatchNorm1d(4), (2, 4)),
        "BatchNorm2d": (lambda: nn.BatchNorm2d(4), (2, 4, 3, 3)),
        "BatchNorm3d": (lambda: nn.BatchNorm3d(4), (2, 4, 2, 2, 2)),
        "InstanceNorm1d": (lambda: nn.InstanceNorm1d(4), (2, 4, 3)),
        "InstanceNorm2d": (lambda: nn.InstanceNorm2d(4), (2, 4, 3, 3)),
        "InstanceNorm3d": (lambda: nn.InstanceNorm3d(4), (2, 4, 2, 2, 2)),
        "LayerNorm": (lambda: nn.LayerNorm(4), (2, 4)),
        "RMSNorm": (lambda: nn.RMSNorm(4), (2, 4)),
        "GroupNorm": (lambda: nn.GroupNorm(2, 4), (2, 4, 3)),
        "LocalResponseNorm": (lambda: nn.LocalResponseNorm(2), (2, 4, 3)),
        "SwitchableNorm2d": (lambda: nn.SwitchableNorm2d(4), (2, 4, 3, 3)),
        "BatchRenorm1d": (lambda: nn.BatchRenorm1d(4), (3, 4)),
        "BatchRenorm2d": (lambda: nn.BatchRenorm2d(4), (2, 4, 3, 3)),
        "Conv2d": (lambda: nn.Conv2d(4, 2, 3), (1, 4, 5, 5)),
        "MaxPool2d": (lambda: nn.MaxPool2d(2), (1, 4, 4, 4)),
        "AvgPool2d": (lambda: nn.AvgPool2d(2), (1, 4, 4, 4)),
        "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(2), (1, 4, 4, 4)),
        "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(2), (1, 4, 4, 4)),
    }


LOSSES = {
    "MSELoss": (nn.MSELoss, lambda: mg.rand(2, 3)),
    "L1Loss": (nn.L1Loss, lambda: mg.rand(2, 3)),
    "BCELoss": (nn.BCELoss, lambda: mg.rand(2, 3)),
    "BCEWithLogitsLoss": (nn.BCEWithLogitsLoss, lambda: mg.rand(2, 3)),
    "CrossEntropyLoss": (nn.CrossEntropyLoss, lambda: mg.tensor([0, 2])),
    "NLLLoss": (nn.NLLLoss, lambda: mg.tensor([0, 2])),
}
LAYERS = _layer_inputs()
# input-agnostic by design: they never look at the values or the dtype
PASS_THROUGH = {"Identity", "Sequential", "ModuleList", "ModuleDict"}
SHAPE_ONLY = {"Flatten"}  # works on any dtype, as in PyTorch


def _public_layer_classes():
    """The layers minigrad.nn exports."""
    return {name for name, obj in vars(nn).items()
            if inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module
            and not name.startswith("_")}


def test_every_public_layer_is_in_the_catalogue():
    missing = sorted(_public_layer_classes() - set(LAYERS) - set(LOSSES) - PASS_THROUGH)
    assert missing == [], f"add these layers to the error catalogue: {missing}"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_accepts_its_valid_input(name):
    make, shape = LAYERS[name]
    assert isinstance(make()(mg.randn(*shape)), mg.Tensor)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("kind", ["ndarray", "list", "None"])
def test_every_layer_rejects_a_non_tensor_input(name, kind):
    make, shape = LAYERS[name]
    bad = {"ndarray": np.ones(shape, np.float32), "list": np.ones(shape).tolist(), "None": None}[kind]
    _raises(lambda: make()(bad), TypeError, r"Tensor", type(bad).__name__)


# computes integer input in float32 (a correct result, where PyTorch refuses)
INT_PROMOTING = {"LocalResponseNorm"}


@pytest.mark.parametrize("name", sorted(set(LAYERS) - SHAPE_ONLY - INT_PROMOTING))
@pytest.mark.parametrize("dtype", [mg.int64, mg.bool])
def test_every_layer_rejects_an_integer_or_bool_input(name, dtype):
    make, shape = LAYERS[name]
    _raises(lambda: make()(mg.zeros(*shape, dtype=dtype)), TypeError,
            r"floating point", dtype.name)


@pytest.mark.parametrize("name", sorted(INT_PROMOTING))
def test_int_promoting_layers_compute_in_float32(name):
    make, shape = LAYERS[name]
    x = mg.randint(0, 5, shape)
    out = make()(x)
    assert out.dtype == mg.float32
    np.testing.assert_allclose(out.numpy(), make()(x.float()).numpy(), rtol=1e-6)


_WITH_STATE = sorted(n for n, (make, _) in LAYERS.items()
                     if list(make().parameters()) or [b for b in make().buffers() if b is not None])


@pytest.mark.parametrize("name", _WITH_STATE)
def test_every_layer_with_parameters_names_mixed_devices(name):
    make, shape = LAYERS[name]
    _raises(lambda: make()(mg.randn(*shape, device=OTHER)), RuntimeError, r"cpu", r"standin:0")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_rejects_non_tensors_and_mismatched_devices(name):
    make, target = LOSSES[name]
    x = mg.rand(2, 3)
    assert make()(x, target()).shape == ()
    _raises(lambda: make()(np.ones((2, 3), np.float32), target()), TypeError, r"Tensor", r"ndarray")
    _raises(lambda: make()(x, target().detach().numpy()), TypeError, r"Tensor", r"ndarray")
    _raises(lambda: make()(x, target().to(OTHER)), RuntimeError, r"cpu", r"standin:0")
    _raises(lambda: make(reduction="avg"), ValueError, r"reduction", r"'mean', 'sum', 'none'", r"avg")


# ---------------------------------------------------------------- normalization and clipping

@pytest.mark.parametrize("kwargs", [dict(eps=NAN), dict(momentum=NAN), dict(eps=-1.0)])
def test_batchnorm_nan_hyperparameters(kwargs):
    _raises(lambda: nn.BatchNorm1d(3, **kwargs), ValueError, r"BatchNorm1d", list(kwargs)[0])


def test_batchnorm_empty_training_batch_keeps_running_statistics():
    bn = nn.BatchNorm1d(3)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty slice anywhere
        bn(mg.randn(0, 3))
    assert bn.running_mean.tolist() == [0.0, 0.0, 0.0] and bn.running_var.tolist() == [1.0] * 3


def test_clip_grad_norm_non_tensor_parameters():
    _raises(lambda: nn.utils.clip_grad_norm_([1, 2], 1.0), TypeError, r"Tensor", r"int")


def test_layernorm_bad_normalized_shape():
    _raises(lambda: nn.LayerNorm("a"), TypeError, r"normalized_shape", r"str")

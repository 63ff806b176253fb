"""Convolution and pooling workloads, each with a PyTorch twin of the same
shapes. A step is one forward and one backward pass from a fixed output
gradient (gradients are reset each step; no optimizer update); `_fwd`
workloads run the forward alone under no_grad (inference)."""
import numpy as np

from harness import Workload


def _arrays(x_shape, w_shape=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32) if w_shape else None
    return x, w


def _lib(name):
    """(tensor factory, conv2d, pooling functions, no_grad) of one library."""
    if name == "minigrad":
        import minigrad as mg
        from minigrad.ops import conv, pool
        return mg.tensor, conv.conv2d, pool, mg.no_grad
    import torch
    import torch.nn.functional as F
    return torch.tensor, F.conv2d, F, torch.no_grad


def conv_step(lib, n, c, hw, o, k=3, stride=1, padding=1, input_grad=True, backward=True):
    """conv2d of an (n, c, hw, hw) input with o kernels of size k (and a bias)."""
    def setup():
        tensor, conv2d, _, no_grad = _lib(lib)
        x_np, w_np = _arrays((n, c, hw, hw), (o, c, k, k))
        x = tensor(x_np, requires_grad=input_grad)
        w = tensor(w_np, requires_grad=True)
        b = tensor(np.zeros(o, np.float32), requires_grad=True)
        if not backward:
            def forward():
                with no_grad():
                    conv2d(x, w, b, stride=stride, padding=padding)
            return forward
        out_hw = (hw + 2 * padding - k) // stride + 1
        dy = tensor(_arrays((n, o, out_hw, out_hw), seed=1)[0])

        def step():
            x.grad = w.grad = b.grad = None
            conv2d(x, w, b, stride=stride, padding=padding).backward(dy)
        return step
    return setup


def pool_step(lib, shape, fn_name, **kwargs):
    """fn_name of the pooling module/functional namespace on `shape`, forward + backward."""
    def setup():
        tensor, _, pool, _ = _lib(lib)
        fn = getattr(pool, fn_name)
        x = tensor(_arrays(shape)[0], requires_grad=True)
        out_shape = tuple(fn(x.detach(), **kwargs).shape)
        dy = tensor(_arrays(out_shape, seed=1)[0])

        def step():
            x.grad = None
            fn(x, **kwargs).backward(dy)
        return step
    return setup


def _conv(note, *args, **kwargs):
    return Workload(conv_step("minigrad", *args, **kwargs), conv_step("torch", *args, **kwargs), note)


def _pool(note, *args, **kwargs):
    return Workload(pool_step("minigrad", *args, **kwargs), pool_step("torch", *args, **kwargs), note)


WORKLOADS = {
    "conv_cnn1_fwd_bwd": _conv("64x1x28x28 -> 16, 3x3 pad 1, no input grad (cnn layer 1)",
                               64, 1, 28, 16, input_grad=False),
    "conv_cnn2_fwd_bwd": _conv("64x16x14x14 -> 32, 3x3 pad 1 (cnn layer 2)", 64, 16, 14, 32),
    "conv_cnn2_fwd": _conv("64x16x14x14 -> 32, 3x3 pad 1, inference", 64, 16, 14, 32, backward=False),
    "conv_64ch_32px_fwd_bwd": _conv("16x64x32x32 -> 64, 3x3 pad 1", 16, 64, 32, 64),
    "conv_stride2_fwd_bwd": _conv("32x32x32x32 -> 64, 3x3 stride 2 pad 1", 32, 32, 32, 64, stride=2),
    "conv_256ch_8px_fwd_bwd": _conv("32x128x8x8 -> 256, 3x3 pad 1 (small maps, many channels)",
                                    32, 128, 8, 256),
    "conv_1x1_fwd_bwd": _conv("32x64x16x16 -> 128, 1x1 (pointwise)", 32, 64, 16, 128, k=1, padding=0),
    "maxpool_cnn_fwd_bwd": _pool("64x16x28x28, 2x2 (cnn pooling)", (64, 16, 28, 28), "max_pool2d",
                                 kernel_size=2),
    "maxpool_3s2p1_fwd_bwd": _pool("32x64x32x32, 3x3 stride 2 pad 1", (32, 64, 32, 32), "max_pool2d",
                                   kernel_size=3, stride=2, padding=1),
    "avgpool_cnn_fwd_bwd": _pool("64x16x28x28, 2x2", (64, 16, 28, 28), "avg_pool2d", kernel_size=2),
    "adaptive_avgpool_global_fwd_bwd": _pool("32x256x8x8 -> 1x1", (32, 256, 8, 8), "adaptive_avg_pool2d",
                                             output_size=1),
}

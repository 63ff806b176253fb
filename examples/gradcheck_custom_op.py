"""Write a new op as an autograd.Function and check it with mg.gradcheck:
the workflow minigrad exists for.

The op is a "soft clip", y = c * tanh(x / c): close to the identity for small x,
smoothly saturating at +-c. We write forward and backward by hand, then let
finite differences (in float64) judge the backward, first and second order. A
deliberately wrong backward shows what a failing check reports.

    python examples/gradcheck_custom_op.py
"""
import minigrad as mg
from minigrad.autograd import Function
from minigrad.gradcheck import GradcheckError


class SoftClip(Function):
    @staticmethod
    def forward(ctx, x, c):
        ctx.c = c
        y = (x / c).tanh() * c
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        c = ctx.c
        # d/dx c*tanh(x/c) = 1 - tanh(x/c)^2 = 1 - (y/c)^2
        return grad * (1.0 - (y / c) ** 2), None


class SoftClipWrong(SoftClip):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y ** 2), None  # forgot the 1/c: right only when c == 1


def main():
    mg.manual_seed(0)
    x = mg.randn(4, 5, dtype=mg.float64, requires_grad=True) * 3.0
    x = x.detach().requires_grad_()
    c = 2.0

    ok = mg.gradcheck(lambda t: SoftClip.apply(t, c), (x,))
    print(f"gradcheck SoftClip (first derivatives): {'passed' if ok else 'FAILED'}")
    ok2 = mg.gradgradcheck(lambda t: SoftClip.apply(t, c), (x,))
    print(f"gradgradcheck SoftClip (second derivatives): {'passed' if ok2 else 'FAILED'}")

    try:
        mg.gradcheck(lambda t: SoftClipWrong.apply(t, c), (x,))
        print("gradcheck SoftClipWrong: passed (unexpected!)")
    except GradcheckError as err:
        print("gradcheck SoftClipWrong failed, as it should:")
        print("  " + str(err).replace("\n", "\n  "))

    try:
        mg.gradcheck(lambda t: SoftClip.apply(t, c), (x.float().detach().requires_grad_(),))
    except GradcheckError as err:
        print(f"float32 inputs are refused: {err}")
    return ok and ok2


if __name__ == "__main__":
    main()

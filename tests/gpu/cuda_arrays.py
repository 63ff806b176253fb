"""Shared by the fused-kernel GPU tests: the cuda backend, arrays to and from
it (None passes through), and the check that a kernel is the fused one."""
import minigrad as mg


def backend():
    return mg.device("cuda").backend


def dev(a):
    return None if a is None else backend().from_host(a)


def host(a):
    return None if a is None else backend().to_host(a)


def fused(name):
    """The cuda backend, after checking that `name` runs a fused kernel there."""
    be = backend()
    assert name in be.compiled, f"{name} is not the fused kernel"
    return be

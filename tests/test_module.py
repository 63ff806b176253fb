"""nn.Module, Parameter and the containers: registration, iteration order,
state_dict round trips and errors, device/dtype moves, hooks, repr."""
import collections

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(mg.ones(4))
        self.register_buffer("count", mg.zeros(1, dtype=mg.int64))
        self.register_buffer("scratch", mg.zeros(4), persistent=False)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2, bias=False)
        self.register_buffer("running", mg.zeros(2))

    def forward(self, x):
        return self.head(self.block(x))


# ------------------------------------------------------------------ registration

def test_named_parameters_in_registration_order_with_dotted_names():
    names = [n for n, _ in Net().named_parameters()]
    # each module's own parameters, then its children's (PyTorch's order)
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]


def test_buffers_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == ["running", "block.count", "block.scratch"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "head"]
    assert list(net.children()) == [net.block, net.head]
    assert len(list(net.modules())) == 5


def test_shared_parameter_is_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    b = nn.Linear(3, 3)
    b.weight = a.weight  # weight tying
    pair = nn.ModuleList([a, b])
    assert [n for n, _ in pair.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_registered_values_are_plain_attributes():
    net = Net()
    # registered values live in the instance dict: reading them needs no __getattr__
    assert net.__dict__["head"] is net._modules["head"]
    assert net.block.__dict__["scale"] is net.block._parameters["scale"]
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nope'"):
        net.nope  # noqa: B018


def test_assignment_rules():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.block.scale = mg.ones(4)
    with pytest.raises(TypeError, match="child module 'head'"):
        net.head = 3
    with pytest.raises(TypeError, match="buffer 'running'"):
        net.running = [1, 2]
    net.running = mg.ones(2)  # a tensor may replace a buffer
    assert net.state_dict()["running"].tolist() == [1.0, 1.0]
    net.block.scale = None
    assert "block.scale" not in dict(net.named_parameters())
    net.head = nn.Identity()
    assert "head.weight" not in net.state_dict()
    net.plain = 5
    assert net.plain == 5 and "plain" not in net._modules


def test_deleting_and_reassigning_kinds():
    net = Net()
    del net.head
    assert "head" not in dict(net.named_children())
    with pytest.raises(AttributeError):
        net.head  # noqa: B018
    net.head = nn.Parameter(mg.zeros(2))  # a name may change kind
    assert [n for n, _ in net.named_parameters()][0] == "head"


def test_registration_errors():
    class NoInit(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mg.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        NoInit()
    m = nn.Module()
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", mg.zeros(1))
    with pytest.raises(KeyError, match="empty"):
        m.register_parameter("", None)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", mg.zeros(1))
    m.other = 1
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("other", mg.zeros(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("forward", None)  # a method name
    with pytest.raises(NotImplementedError, match="forward"):
        m(1)


def test_parameter_shares_data_and_is_a_leaf():
    t = mg.randn(3, requires_grad=True)
    y = t * 2
    p = nn.Parameter(y)
    assert p.is_leaf and p.requires_grad and isinstance(p, mg.Tensor)
    assert p._data is y._data  # shares storage, no copy
    assert not nn.Parameter(mg.zeros(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(mg.zeros(2, dtype=mg.int64))
    assert nn.Parameter().shape == (0,)


# ------------------------------------------------------------------ modes & bulk

def test_train_eval_recurse():
    net = Net()
    assert net.training and net.block.act.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_apply_visits_children_first():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Block", "Linear", "Net"]


def test_zero_grad_and_requires_grad():
    net = Net()
    net(mg.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        assert p.grad is not None and not p.grad.numpy().any()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_identity_and_moves_grads():
    net = Net()
    net(mg.randn(2, 3)).sum().backward()
    params = list(net.parameters())
    held = {id(p) for p in params}  # e.g. an optimizer holding them
    assert net.double() is net
    assert {id(p) for p in net.parameters()} == held
    assert all(p.dtype == mg.float64 and p.grad.dtype == mg.float64 for p in params)
    assert net.running.dtype == mg.float64
    assert net.block.count.dtype == mg.int64  # integer buffers keep their dtype
    out = net(mg.randn(2, 3, dtype=mg.float64))
    assert out.dtype == mg.float64
    net.float()
    assert all(p.dtype == mg.float32 for p in params)
    with pytest.raises(TypeError, match="floating point"):
        net.to(mg.int64)


def test_to_device_keeps_identity():
    net = Net()
    net(mg.randn(2, 3)).sum().backward()
    before = [(p, p.detach().numpy().copy()) for p in net.parameters()]
    net.to("standin")
    for p, values in before:
        assert p.device == "standin" and p.grad.device == "standin"
        np.testing.assert_array_equal(np.asarray(p.detach()), values)
    assert net.running.device == "standin"
    out = net(mg.randn(2, 3, device="standin"))
    assert out.device == "standin"
    net.to("cpu", mg.float64)
    assert all(p.device == "cpu" and p.dtype == mg.float64 for p, _ in before)


def test_deepcopy_copies_tensors_and_keeps_sharing():
    import copy
    net = Net()
    net.tied = net.head  # the same module twice
    net(mg.randn(2, 3)).sum().backward()
    clone = copy.deepcopy(net)
    assert clone.tied is clone.head and clone.head is not net.head
    for (name, a), (_, b) in zip(net.state_dict(keep_vars=True).items(), clone.state_dict(keep_vars=True).items()):
        assert type(a) is type(b) and a is not b and a._data is not b._data, name
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert clone.head.weight.requires_grad and clone.head.weight.grad is not None
    with mg.no_grad():
        clone.head.weight.fill_(0.0)
    assert net.head.weight.detach().numpy().any()  # the original is untouched
    assert clone._forward_hooks is not net._forward_hooks


# ------------------------------------------------------------------ state_dict

def test_state_dict_order_contents_and_sharing():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, collections.OrderedDict)
    assert list(sd) == ["running", "block.scale", "block.count", "block.fc.weight", "block.fc.bias",
                        "head.weight"]
    assert "block.scratch" not in sd  # non-persistent buffer
    assert not sd["head.weight"].requires_grad  # detached ...
    assert sd["head.weight"]._data is net.head.weight._data  # ... but sharing storage
    kept = net.state_dict(keep_vars=True)
    assert kept["head.weight"] is net.head.weight


def test_iteration_and_state_dict_order_match_pytorch():
    torch = pytest.importorskip("torch")

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)
            self.scale = torch.nn.Parameter(torch.ones(4))
            self.register_buffer("count", torch.zeros(1, dtype=torch.int64))
            self.register_buffer("scratch", torch.zeros(4), persistent=False)
            self.act = torch.nn.ReLU()

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = TorchBlock()
            self.head = torch.nn.Linear(4, 2, bias=False)
            self.register_buffer("running", torch.zeros(2))

    ours, theirs = Net(), TorchNet()
    for method in ("named_parameters", "named_buffers", "named_modules", "named_children"):
        assert [n for n, _ in getattr(ours, method)()] == [n for n, _ in getattr(theirs, method)()], method
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_state_dict_keys_match_pytorch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.2), nn.Linear(4, 2),
                         nn.CrossEntropyLoss(weight=mg.ones(2)))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                 torch.nn.Linear(4, 2), torch.nn.CrossEntropyLoss(weight=torch.ones(2)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def test_load_pytorch_weights_gives_pytorch_outputs():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    ours = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(mg.tensor(x)).detach().numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_round_trip_is_exact():
    mg.manual_seed(0)
    src, dst = Net(), Net()
    src.running.fill_(3.0)
    src.block.count.fill_(7)
    result = dst.load_state_dict(src.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
        assert a._data is not b._data  # copied, not shared
    params = list(dst.parameters())
    dst.load_state_dict(Net().state_dict())
    assert list(dst.parameters()) == params  # loaded in place


def test_load_state_dict_reports_every_problem_at_once():
    net = Net()
    sd = net.state_dict()
    del sd["block.scale"], sd["head.weight"]
    sd["extra.one"] = mg.zeros(1)
    sd["block.fc.weight"] = mg.zeros(5, 3)
    sd["running"] = mg.zeros(3)
    before = net.block.fc.bias.detach().numpy().copy()
    sd["block.fc.bias"] = mg.full((4,), 9.0)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    for part in ('Missing key(s) in state_dict: "block.scale", "head.weight".',
                 'Unexpected key(s) in state_dict: "extra.one".',
                 "size mismatch for block.fc.weight: copying a param with shape (5, 3) from checkpoint, "
                 "the shape in current model is (4, 3).",
                 "size mismatch for running: copying a param with shape (3,)"):
        assert part in msg
    np.testing.assert_array_equal(net.block.fc.bias.detach().numpy(), before)  # nothing copied


def test_load_state_dict_non_strict():
    net = Net()
    sd = net.state_dict()
    del sd["head.weight"]
    sd["bogus"] = mg.zeros(1)
    sd["block.scale"] = mg.full((4,), 2.0)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["bogus"]
    assert net.block.scale.tolist() == [2.0] * 4
    sd["block.scale"] = mg.zeros(2)
    with pytest.raises(RuntimeError, match="size mismatch for block.scale"):
        net.load_state_dict(sd, strict=False)  # shape errors are errors even when not strict
    with pytest.raises(RuntimeError, match='expected a Tensor or array'):
        net.load_state_dict({**net.state_dict(), "running": "text"})
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([1, 2])


def test_load_state_dict_across_devices_and_dtypes():
    net = Net()
    other = Net().double().to("standin")
    net.load_state_dict(other.state_dict())
    assert net.head.weight.dtype == mg.float32 and net.head.weight.device == "cpu"
    np.testing.assert_allclose(net.head.weight.detach().numpy(),
                               np.asarray(other.head.weight.detach()), rtol=1e-6)


# ------------------------------------------------------------------ hooks

def test_forward_hooks_modify_and_remove():
    lin = nn.Linear(2, 2)
    x = mg.randn(3, 2)
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = lin(x)
    np.testing.assert_allclose(out.detach().numpy(), lin.bias.detach().numpy() + 1 + 0 * x.numpy(), rtol=1e-6)
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    post.remove()  # removing twice is harmless
    np.testing.assert_allclose(lin(x).detach().numpy(), x.numpy() @ lin.weight.detach().numpy().T
                               + lin.bias.detach().numpy(), rtol=1e-5)


def test_hook_order_prepend_kwargs_and_context_manager():
    m = nn.Identity()
    order = []
    m.register_forward_hook(lambda *a: order.append("a"))
    m.register_forward_hook(lambda *a: order.append("b"), prepend=True)
    with m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] + 1,), kwargs), with_kwargs=True):
        assert m(mg.tensor(1.0)).item() == 2.0
    assert order == ["b", "a"]
    assert m(mg.tensor(1.0)).item() == 1.0
    seen = []
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs), with_kwargs=True)
    m(mg.tensor(1.0))
    assert seen == [{}]


# ------------------------------------------------------------------ containers

def test_sequential_indexing_and_mutation():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]  # noqa: B018
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    del seq[1]
    assert len(seq) == 2
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]  # renumbered, as PyTorch
    named = nn.Sequential(collections.OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["enc.weight", "enc.bias"]
    x = mg.randn(4, 2)
    np.testing.assert_allclose(named(x).detach().numpy(), np.maximum(named.enc(x).detach().numpy(), 0))


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    ml.append(nn.ReLU())
    ml.insert(0, nn.Tanh())
    assert len(ml) == 5 and isinstance(ml[0], nn.Tanh) and isinstance(ml[-1], nn.ReLU)
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    ml += [nn.Sigmoid()]
    assert len(ml) == 5 and len(ml[1:3]) == 2
    assert len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.ReLU()})
    assert list(md) == ["a", "b"] and "a" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]


def test_identity_and_flatten():
    x = mg.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused=True)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_repr_nested():
    text = repr(Net())
    assert text == ("Net(\n"
                    "  (block): Block(\n"
                    "    (fc): Linear(in_features=3, out_features=4, bias=True)\n"
                    "    (act): ReLU()\n"
                    "  )\n"
                    "  (head): Linear(in_features=4, out_features=2, bias=False)\n"
                    ")")


def test_gradcheck_module_through_containers():
    mg.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = mg.randn(2, 3, dtype=mg.float64, requires_grad=True)
    assert mg.gradcheck_module(model, x)

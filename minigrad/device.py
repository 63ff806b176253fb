"""Device objects (`mg.device('cpu')`, `mg.device('cuda:0')`) and the registry
that maps a device type to its backend."""


class device:
    """Where a tensor lives. Compares equal to its string form ('cpu', 'cuda', 'cuda:0')."""

    __slots__ = ("type", "index", "_backend")
    _interned = {}

    def __new__(cls, spec="cpu", index=None):
        if isinstance(spec, device):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string like 'cpu' or 'cuda:0' or a minigrad.device, "
                            f"got {type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"invalid device string {spec!r}: the index after ':' must be an integer")
            index = int(idx)
        if kind not in _BACKEND_FACTORIES:
            known = ", ".join(sorted(_BACKEND_FACTORIES))
            raise ValueError(f"unknown device type {kind!r} in {spec!r}; expected one of: {known}")
        if kind != "cpu" and index is None:
            index = 0
        key = (kind, index)
        found = cls._interned.get(key)
        if found is None:
            found = object.__new__(cls)
            found.type = kind
            found.index = index
            found._backend = None
            cls._interned[key] = found
        return found

    @property
    def backend(self):
        be = self._backend
        if be is None:
            be = self._backend = _BACKEND_FACTORIES[self.type](self)
        return be

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (ValueError, TypeError):
                return False
        if isinstance(other, device):
            return self.type == other.type and (
                self.index == other.index or self.index is None or other.index is None
                or {self.index, other.index} == {0})
        return NotImplemented

    def __hash__(self):
        return hash(self.type)

    def __reduce__(self):
        return (device, (str(self),))


def _cpu_backend(dev):
    from .backend.cpu import backend
    return backend


def _cuda_backend(dev):
    from . import cuda
    return cuda.backend_for(dev)


_BACKEND_FACTORIES = {"cpu": _cpu_backend, "cuda": _cuda_backend}


def register_device_type(kind, factory):
    """Adds a device type whose backend is made by `factory(device)`.
    Used for the CUDA backend and for test stand-in devices."""
    _BACKEND_FACTORIES[kind] = factory


CPU = device("cpu")
_default = [CPU]


def set_default_device(dev):
    _default[0] = device(dev)


def get_default_device():
    return _default[0]

"""`@lightclass`: a dataclass for what is made a few times per run (options, specs, the model's facts),
built without generating code.

`@dataclass(frozen=True)` writes and compiles six methods per class (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`), and a plain classify defines some 35 such classes before its first
image: a visible share of its start-up (docs/performance.md; scripts/startup_profile.py). A lightclass is a
real dataclass (`fields`, `replace`, `asdict` work) whose methods are the generic ones below: much cheaper to
define, a little slower to instantiate, which is why what is made for every frame (Frame, Prediction,
Result...) stays a plain dataclass.
"""

from __future__ import annotations

import dataclasses

_MISSING = dataclasses.MISSING


def lightclass(cls=None, /, *, frozen: bool = True):
    """`@lightclass` (frozen, hashable) or `@lightclass(frozen=False)`: what `@dataclass(frozen=...)` gives,
    fields with defaults, default factories and `__post_init__` included."""

    def wrap(cls):
        return _build(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _build(cls, frozen: bool):
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cls)  # ClassVar and InitVar pseudo-fields are not among them
    pseudo = [f for f in cls.__dataclass_fields__.values() if f not in fields]
    if any(not f.init for f in fields) or any("InitVar" in str(f.type) for f in pseudo):
        raise TypeError(f"{cls.__name__}: a lightclass takes plain fields only (no init=False, no InitVar)")
    names = tuple(f.name for f in fields)
    shown = tuple(f.name for f in fields if f.repr)
    defaults = tuple((f.default, f.default_factory) for f in fields)
    post_init = getattr(cls, "__post_init__", None)
    title = cls.__name__

    def __init__(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{title}() takes {len(names)} positional arguments but {len(args)} were given")
        put = object.__setattr__
        for name, value in zip(names, args, strict=False):  # fewer args than fields: the rest by name
            put(self, name, value)
        for index in range(len(args), len(names)):
            name = names[index]
            if name in kwargs:
                put(self, name, kwargs.pop(name))
                continue
            default, factory = defaults[index]
            if default is not _MISSING:
                put(self, name, default)
            elif factory is not _MISSING:
                put(self, name, factory())
            else:
                raise TypeError(f"{title}() missing required argument: '{name}'")
        if kwargs:
            extra = next(iter(kwargs))
            problem = "got multiple values for" if extra in names else "got an unexpected keyword"
            raise TypeError(f"{title}() {problem} argument '{extra}'")
        if post_init is not None:
            post_init(self)

    cls.__init__ = __init__
    _compare(cls, names, shown)
    if frozen:
        _freeze(cls, names)
    else:
        cls.__hash__ = None  # mutable and compared by value: unhashable, as a dataclass
    return cls


def _compare(cls, names: tuple, shown: tuple) -> None:
    """A dataclass's __repr__ and __eq__, generic."""

    def __repr__(self):
        inside = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({inside})"

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in names)

    cls.__repr__ = __repr__
    cls.__eq__ = __eq__


def _freeze(cls, names: tuple) -> None:
    """A frozen dataclass's __hash__, __setattr__ and __delattr__, generic."""

    def __hash__(self):
        return hash(tuple(getattr(self, name) for name in names))

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field '{name}'")

    def __delattr__(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot delete field '{name}'")

    cls.__hash__ = __hash__
    cls.__setattr__ = __setattr__
    cls.__delattr__ = __delattr__

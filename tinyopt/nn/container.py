"""Containers: Sequential and ModuleList."""
from __future__ import annotations

from collections import OrderedDict

from tinyopt.nn.module import Module, ShapeError


class Sequential(Module):
    """Apply the given modules in order. Accepts modules or one OrderedDict of name → module."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential takes Modules, argument {i} is a {type(m).__name__}")
                self.add_module(str(i), m)

    def forward(self, x):
        for name, layer in self._modules.items():
            try:
                x = layer(x)
            except ShapeError as e:
                raise ShapeError(f"layer ({name}) of Sequential: {e}") from None
        return x

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module):
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

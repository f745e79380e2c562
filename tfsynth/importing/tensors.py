"""Moving an original checkpoint's tensors into tfsynth's Keras layers, each exactly once.

An importer names, for every weight of every layer, the original tensor it comes from and how its
layout changes (PyTorch's OIHW convolution kernels become Keras' HWIO). :class:`Tensors` hands
each tensor out once, checks its shape against the layer's weight before anything is set, and at
the end refuses a checkpoint that held tensors nobody asked for: a mis-mapped or foreign
checkpoint fails with one line naming the tensor, never as a model that silently computes
something else.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np


class ImportFailure(ValueError):
    """The checkpoint cannot become this model; the message names the file and the tensor."""


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch ``Conv2d`` [out, in, kh, kw] -> Keras ``Conv2D`` [kh, kw, in, out]."""
    return np.transpose(weight, (2, 3, 1, 0))


def conv_transpose_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch ``ConvTranspose2d`` [in, out, kh, kw] -> Keras ``Conv2DTranspose`` [kh, kw, out, in].

    Both compute the adjoint of a correlation with the same kernel, so no spatial flip is needed.
    """
    return np.transpose(weight, (2, 3, 1, 0))


def identity(weight: np.ndarray) -> np.ndarray:
    return weight


class Tensors:
    """An original checkpoint's tensors by name, handed out once each.

    Args:
      arrays: name -> array, as read from the file.
      source: the file (or files), for messages.
      ignored: names that are read and dropped on purpose (optimizer slots, PyTorch's
        ``num_batches_tracked``, stale running statistics), as a predicate.
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: str,
                 ignored: Callable[[str], bool] = lambda name: False):
        self.arrays = dict(arrays)
        self.source = source
        self.ignored = ignored
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def names(self, pattern: str = "") -> list[str]:
        """The tensor names that match the regular expression ``pattern`` (in the file's order)."""
        return [name for name in self.arrays if re.search(pattern, name)]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.peek(name).shape)

    def peek(self, name: str) -> np.ndarray:
        """The tensor, without marking it used (for reading the architecture off shapes)."""
        if name not in self.arrays:
            raise ImportFailure(f"{self.source}: tensor {name!r} is missing; is this checkpoint "
                                "the architecture the flags describe?")
        return self.arrays[name]

    def take(self, name: str) -> np.ndarray:
        array = self.peek(name)
        self.used.add(name)
        return array

    def assign(self, layer, names: Iterable[str | None], transforms: Iterable[Callable] | None = None) -> None:
        """Sets ``layer``'s weights, in Keras' order, from the tensors ``names`` (None: keep the
        weight's value), each passed through its transform (default: as stored)."""
        names = list(names)
        transforms = list(transforms) if transforms is not None else [identity] * len(names)
        current = layer.get_weights()
        if len(current) != len(names):
            raise ImportFailure(f"{self.source}: layer {layer.name} has {len(current)} weights, the mapping "
                                f"gives {len(names)} ({', '.join(str(n) for n in names)})")
        values = []
        for name, transform, weight in zip(names, transforms, current):
            if name is None:
                values.append(weight)
                continue
            value = np.asarray(transform(self.take(name)), dtype=weight.dtype)
            if value.shape != weight.shape:
                raise ImportFailure(f"{self.source}: tensor {name!r} has shape {tuple(self.arrays[name].shape)}, "
                                    f"layer {layer.name} expects {weight.shape} (after layout conversion); "
                                    "is this checkpoint the architecture the flags describe?")
            values.append(value)
        layer.set_weights(values)

    def check_all_used(self) -> None:
        """Refuses tensors that no layer took (another architecture, or another family)."""
        left = [name for name in self.arrays if name not in self.used and not self.ignored(name)]
        if left:
            shown = ", ".join(f"{name} {tuple(self.arrays[name].shape)}" for name in left[:4])
            more = f" and {len(left) - 4} more" if len(left) > 4 else ""
            raise ImportFailure(f"{self.source}: {len(left)} tensor(s) have no place in the model: {shown}{more}; "
                                "is this checkpoint the architecture the flags describe?")

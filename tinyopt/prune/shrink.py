"""`shrink(model, example_input)`: turn structurally pruned channels and neurons into a physically
smaller model, the step torch.nn.utils.prune leaves out (pytorch/pytorch #36214, #58846).

A Conv2d output channel (Linear neuron) c whose weights are all zero (masked, or zero after
`prune.remove`) still outputs a constant: its bias b_c. shrink

1. traces the model with `example_input` (forward hooks record which layer feeds which; the
   forward must be a chain of modules, as Sequential and LeNet-5 are; a reshape between two
   modules counts as a Flatten), like a one-path version of Torch-Pruning's DepGraph;
2. removes channel c from its producer (weight row, bias entry), from everything between the
   producer and the next Linear/Conv2d (BatchNorm entries and running statistics; activations,
   pooling and dropout act per channel), and the matching input channel of that next layer (for a
   Linear after Flatten, the H·W columns of channel c);
3. folds channel c's constant into the next layer's bias (fold_bias=True): with a_c the value the
   constant b_c becomes after the layers in between (BatchNorm in eval mode, activation, pooling),

       Linear:  b'_o = b_o + Σ_{c removed} Σ_j W_{o,(c,j)} · a_{c,j}
       Conv2d:  b'_o = b_o + Σ_{c removed} Σ_{kh,kw} W_{o,c,kh,kw} · a_c

   so the smaller model computes what the masked model computes (in eval mode). After a Conv2d
   with zero padding the fold is exact only away from the borders (there the padded zeros, not a_c,
   meet the kernel); if that matters, prune the bias with its channel (`prune_bias_with_channels`)
   and use `fold_bias=False` (the removed channels then contribute nothing at all, which equals
   the masked model when the layers in between map 0 to 0).

The original model is left unchanged; the result has no pruning hooks (masks made permanent).
Grouped convolutions, layers called twice and non-chain graphs (residual additions) are refused
with a ValueError naming the layer.
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.autograd import no_grad
from tinyopt.nn.activation import ELU, GELU, Hardtanh, LeakyReLU, ReLU, ReLU6, Sigmoid, SiLU, Softplus, Tanh
from tinyopt.nn.batchnorm import _BatchNorm
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.dropout import Dropout
from tinyopt.nn.linear import Flatten, Identity, Linear
from tinyopt.nn.parameter import Parameter
from tinyopt.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from tinyopt.nn.utils import prune as torch_prune
from tinyopt.tensor import Tensor

_PER_CHANNEL = (ReLU, ReLU6, LeakyReLU, ELU, GELU, SiLU, Sigmoid, Tanh, Softplus, Hardtanh, Dropout, Identity,
                MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)
_PRODUCERS = (Linear, Conv2d)


def make_permanent(model):
    """prune.remove every pruned tensor of `model` (in place); returns the model."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks):
            if isinstance(hook, torch_prune.BasePruningMethod):
                torch_prune.remove(module, hook._tensor_name)
    return model


class _Node:
    def __init__(self, module, x, out):
        self.module, self.in_shape, self.out_shape = module, tuple(x.shape), tuple(out.shape)
        self.in_id, self.out_id, self.in_data, self.out_data = id(x), id(out), x.data, out.data
        self.reshape_before = False  # the input is the previous output reshaped (an implicit Flatten)


def trace_chain(model, example_input):
    """The leaf modules in call order, checked to form a chain (each one's input is the previous
    one's output, or that output reshaped to (N, -1))."""
    leaves = [m for m in model.modules() if not m._modules]
    nodes, handles = [], []
    for m in leaves:
        handles.append(m.register_forward_hook(
            lambda mod, args, out: nodes.append(_Node(mod, args[0], out))))
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    seen = set()
    for i, node in enumerate(nodes):
        if id(node.module) in seen:
            raise ValueError(f"shrink: {type(node.module).__name__} is called twice in one forward; shrink handles "
                             "chains where each layer runs once")
        seen.add(id(node.module))
        if i == 0:
            continue
        prev = nodes[i - 1]
        if node.in_id != prev.out_id:
            # a reshape (a view of the previous output) is an implicit Flatten; any other op in between is not followed
            if node.in_shape[0] == prev.out_shape[0] and len(node.in_shape) == 2 and len(prev.out_shape) > 2 and \
                    int(np.prod(prev.out_shape[1:])) == node.in_shape[1] and np.shares_memory(node.in_data, prev.out_data):
                node.reshape_before = True
            elif not (node.in_shape == prev.out_shape and np.shares_memory(node.in_data, prev.out_data)):
                raise ValueError(f"shrink: the input of {type(node.module).__name__} {node.in_shape} is not the output "
                                 f"of the previous layer {type(prev.module).__name__} {prev.out_shape}: the model is "
                                 "not a chain of layers (residual connections are not supported)")
    for node in nodes:
        node.in_data = node.out_data = None  # only the shapes are needed from here on
    return nodes, out


def dead_channels(module) -> np.ndarray:
    """Boolean per output channel/neuron: all its (effective) weights are zero."""
    w = np.asarray(module.weight.data)
    return ~np.any(w.reshape(w.shape[0], -1) != 0, axis=1)


def _set_param(module, name, array):
    old = getattr(module, name)
    p = Parameter(np.ascontiguousarray(array).astype(old.data.dtype if old is not None else array.dtype))
    p.requires_grad = True if old is None else old.requires_grad
    setattr(module, name, p)


def _constant_field(nodes, i, j, bias):
    """Run a map that is b_c on every channel c (the producer's dead output) through nodes i+1..j−1
    (eval mode): the input the next producer (node j) sees from the dead channels."""
    shape = (1,) + nodes[i].out_shape[1:]
    field = np.broadcast_to(bias.reshape((1, -1) + (1,) * (len(shape) - 2)), shape).astype(np.float64)
    x = Tensor(field)
    with no_grad():
        for k in range(i + 1, j):
            if nodes[k].reshape_before:
                x = x.reshape((1, -1))
            x = nodes[k].module(x)
        if nodes[j].reshape_before:
            x = x.reshape((1, -1))
    return np.asarray(x.data, dtype=np.float64)[0]


def shrink(model, example_input, fold_bias: bool = True):
    """A new, smaller model without the structurally pruned output channels/neurons of `model`
    (see the module docstring). `example_input`: one batch the model accepts (its values do not
    matter, only the shapes it produces)."""
    new = make_permanent(copy.deepcopy(model))
    nodes, _ = trace_chain(new, example_input)
    producers = [i for i, n in enumerate(nodes) if isinstance(n.module, _PRODUCERS)]
    was_training = new.training
    new.eval()
    for i in producers:
        p = nodes[i].module
        if isinstance(p, Conv2d) and p.groups != 1:
            continue
        dead = dead_channels(p)
        if not dead.any():
            continue
        # find the next producer; everything in between must act channel by channel
        j, ok, flat_from = i + 1, True, None
        while j < len(nodes) and not isinstance(nodes[j].module, _PRODUCERS):
            mod = nodes[j].module
            if isinstance(mod, Flatten) or nodes[j].reshape_before:
                flat_from = nodes[j - 1].out_shape if flat_from is None else flat_from
            if not isinstance(mod, _PER_CHANNEL + (_BatchNorm, Flatten)):
                ok = False
                break
            j += 1
        if not ok or j == len(nodes):
            continue  # the output feeds something we cannot follow (or is the model's output): keep it
        if nodes[j].reshape_before:
            flat_from = nodes[j - 1].out_shape if flat_from is None else flat_from
        q = nodes[j].module
        if isinstance(q, Conv2d) and q.groups != 1:
            continue
        if dead.all():
            dead[0] = False  # keep one channel: a layer of width 0 is not a layer
        keep = ~dead
        bias = np.zeros(dead.size) if p.bias is None else np.asarray(p.bias.data, dtype=np.float64)
        field = _constant_field(nodes, i, j, bias) if fold_bias else None
        # the input units of q that belong to each producer channel
        if isinstance(q, Linear) and flat_from is not None:
            per = int(np.prod(flat_from[2:])) if len(flat_from) > 2 else 1
            unit_keep = np.repeat(keep, per)
        else:
            unit_keep = keep
        wq = np.asarray(q.weight.data, dtype=np.float64)
        if fold_bias:
            if isinstance(q, Linear):
                delta = wq[:, ~unit_keep] @ field.reshape(-1)[~unit_keep]
            else:  # Conv2d: the interior value of each dead channel's field
                flat = field.reshape(field.shape[0], -1)
                centre = flat[:, flat.shape[1] // 2]
                delta = np.einsum("ochw,c->o", wq[:, ~unit_keep], centre[~unit_keep])
            if np.any(delta != 0):
                if q.bias is None:
                    q.bias = Parameter(delta.astype(q.weight.data.dtype))
                else:
                    _set_param(q, "bias", np.asarray(q.bias.data, dtype=np.float64) + delta)
        # slice the producer's outputs
        _set_param(p, "weight", np.asarray(p.weight.data)[keep])
        if p.bias is not None:
            _set_param(p, "bias", np.asarray(p.bias.data)[keep])
        if isinstance(p, Linear):
            p.out_features = int(keep.sum())
        else:
            p.out_channels = int(keep.sum())
        # the per-channel layers in between
        for k in range(i + 1, j):
            mod = nodes[k].module
            if isinstance(mod, _BatchNorm):
                for name in ("weight", "bias"):
                    if getattr(mod, name, None) is not None:
                        _set_param(mod, name, np.asarray(getattr(mod, name).data)[keep])
                for name in ("running_mean", "running_var"):
                    if getattr(mod, name, None) is not None:
                        setattr(mod, name, np.ascontiguousarray(getattr(mod, name).data[keep]))
                mod.num_features = int(keep.sum())
        # and the consumer's inputs
        _set_param(q, "weight", np.asarray(q.weight.data)[:, unit_keep])
        if isinstance(q, Linear):
            q.in_features = int(unit_keep.sum())
        else:
            q.in_channels = int(unit_keep.sum())
    new.train(was_training)
    return new


def prune_bias_with_channels(module):
    """Mask the bias entries of the output channels whose weights are all zero (custom_from_mask on
    "bias"), so a removed channel outputs exactly 0: with activations that map 0 to 0 and no BatchNorm
    in between, `shrink(..., fold_bias=False)` then equals the masked model everywhere, borders of a
    zero-padded convolution included. Returns the module."""
    if getattr(module, "bias", None) is None:
        return module
    keep = (~dead_channels(module)).astype(np.asarray(module.bias.data).dtype)
    return torch_prune.custom_from_mask(module, "bias", keep)


def count_parameters(model) -> int:
    """Σ sizes of all parameters (for a pruned model: of <name>_orig, the dense storage)."""
    return sum(p.data.size for p in model.parameters())

"""Reverse-mode automatic differentiation: `Function` (the op extension point), the recorded graph,
grad mode, gradcheck."""
from tinyopt.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from tinyopt.autograd.graph import Node, RemovableHandle, VersionCounter, unbroadcast
from tinyopt.autograd.function import Context, Function
# gradcheck builds Tensors, so it comes after the machinery tinyopt.tensor builds on.
from tinyopt.autograd.gradcheck import GradcheckError, gradcheck

__all__ = [
    "Context", "Function", "GradcheckError", "Node", "RemovableHandle", "VersionCounter", "enable_grad",
    "gradcheck", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled", "unbroadcast",
]

"""Reverse-mode automatic differentiation: `Function` (the op extension point), grad mode, gradcheck."""
from tinyopt.autograd.function import Context, Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from tinyopt.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["Context", "Function", "GradcheckError", "enable_grad", "gradcheck", "is_grad_enabled", "no_grad", "unbroadcast"]

"""A corpus of everyday PyTorch idioms, each written once and run on both `torch` and `tinyopt`.

Every idiom is a function `idiom(T)` where `T` is a namespace with `torch` (the top-level module:
`tinyopt` or `torch`), `nn`, `F`, `optim`, `data` (utils.data) and `arr(shape, seed)` (the same
float32 NumPy data on both sides). It returns what a user would look at: tensors, tuples of them,
numbers, shapes. `tests/test_torch_idioms.py` compares the two results value by value and dtype by
dtype. An idiom marked `random` draws random numbers: the two libraries have different generators,
so only shapes and dtypes are compared (and, on tinyopt, that the same seed gives the same numbers).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

IDIOMS: dict = {}
RANDOM: set = set()


def idiom(fn=None, *, random=False):
    def register(f):
        IDIOMS[f.__name__] = f
        if random:
            RANDOM.add(f.__name__)
        return f
    return register(fn) if fn is not None else register


# ----------------------------------------------------------------------------- creation


@idiom
def tensor_from_float_list(T):
    return T.torch.tensor([[1.0, 2.0], [3.0, 4.0]])


@idiom
def tensor_from_int_list(T):
    return T.torch.tensor([1, 2, 3])


@idiom
def tensor_from_bool_list(T):
    return T.torch.tensor([True, False])


@idiom
def tensor_with_dtype(T):
    return T.torch.tensor([1, 2], dtype=T.torch.float64)


@idiom
def tensor_from_float64_numpy(T):
    return T.torch.tensor(np.array([0.5, 1.5]))


@idiom
def zeros_varargs(T):
    return T.torch.zeros(2, 3)


@idiom
def ones_tuple(T):
    return T.torch.ones((2, 3))


@idiom
def full_float(T):
    return T.torch.full((2, 2), 7.0)


@idiom
def full_int(T):
    return T.torch.full((2,), 3)


@idiom
def eye(T):
    return T.torch.eye(3)


@idiom
def arange_int(T):
    return T.torch.arange(5)


@idiom
def arange_float(T):
    return T.torch.arange(0, 1, 0.25)


@idiom
def linspace(T):
    return T.torch.linspace(0, 1, 5)


@idiom
def zeros_like_ones_like_full_like(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return T.torch.zeros_like(x), T.torch.ones_like(x), T.torch.full_like(x, 2.5)


@idiom
def from_numpy_shares_memory(T):
    a = np.arange(4.0)
    t = T.torch.from_numpy(a)
    a[0] = 10.0
    return t


@idiom
def as_tensor_of_array(T):
    return T.torch.as_tensor(T.arr((2, 2)))


@idiom(random=True)
def randn_shape(T):
    return T.torch.randn(2, 3)


@idiom(random=True)
def rand_shape(T):
    return T.torch.rand(4)


@idiom(random=True)
def randint_shape(T):
    return T.torch.randint(0, 10, (3,))


@idiom(random=True)
def randperm(T):
    return T.torch.randperm(5)


@idiom
def manual_seed_reproduces(T):
    T.torch.manual_seed(0)
    a = T.torch.randn(3)
    T.torch.manual_seed(0)
    return T.torch.equal(a, T.torch.randn(3))


@idiom
def generator_reproduces(T):
    a = T.torch.randn(3, generator=T.torch.Generator().manual_seed(1))
    return T.torch.equal(a, T.torch.randn(3, generator=T.torch.Generator().manual_seed(1)))


@idiom
def randperm_is_a_permutation(T):
    return T.torch.sort(T.torch.randperm(6)).values


# ----------------------------------------------------------------------------- dtypes and devices


@idiom
def dtype_conversions(T):
    x = T.torch.tensor(T.arr((3,)) * 3)
    return x.float(), x.double(), x.long(), x.int(), x.bool()


@idiom
def half_conversion(T):
    return T.torch.tensor([1.0, 2.5, 65504.0]).half()


@idiom
def to_dtype(T):
    return T.torch.tensor([1, 2]).to(T.torch.float32)


@idiom
def dtype_equality(T):
    return T.torch.tensor([1.0]).dtype == T.torch.float32, T.torch.tensor([1]).dtype == T.torch.int64


@idiom
def device_boilerplate(T):
    device = T.torch.device("cuda" if T.torch.cuda.is_available() else "cpu")
    x = T.torch.tensor([1.0, 2.0]).to(device)
    model = T.nn.Linear(2, 1).to(device)
    return x, str(device), next(model.parameters()).dtype == T.torch.float32


@idiom
def cpu_and_numpy(T):
    return T.torch.tensor([1.0, 2.0]).cpu().numpy()


@idiom
def item_and_tolist(T):
    x = T.torch.tensor([[1.5, 2.0]])
    return x[0, 0].item(), x.tolist()


@idiom
def format_loss(T):
    loss = T.torch.tensor(0.123456)
    return f"{loss:.4f}", f"{loss.item():.2f}"


# ----------------------------------------------------------------------------- shape


@idiom
def view_and_reshape(T):
    x = T.torch.tensor(T.arr((2, 3, 4)))
    return x.view(-1), x.view(2, -1), x.reshape(6, 4), x.reshape((4, 6))


@idiom
def permute(T):
    return T.torch.tensor(T.arr((2, 3, 4))).permute(2, 0, 1)


@idiom
def transpose_swaps_two_dims(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.transpose(0, 1), T.torch.tensor(T.arr((2, 3, 4))).transpose(1, 2)


@idiom
def t_and_T(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.t(), x.T


@idiom
def squeeze_unsqueeze(T):
    x = T.torch.tensor(T.arr((1, 3, 1)))
    return x.squeeze(), x.squeeze(0), x.squeeze(1), x.unsqueeze(0).shape, x.unsqueeze(-1).shape


@idiom
def flatten(T):
    x = T.torch.tensor(T.arr((2, 3, 4)))
    return x.flatten(), x.flatten(1), x.flatten(start_dim=0, end_dim=1)


@idiom
def expand_and_repeat(T):
    x = T.torch.tensor([[1.0], [2.0]])
    return x.expand(2, 3), x.expand(-1, 4), x.repeat(2, 3)


@idiom
def cat_and_stack(T):
    a, b = T.torch.tensor(T.arr((2, 3))), T.torch.tensor(T.arr((2, 3), seed=1))
    return T.torch.cat([a, b], dim=1), T.torch.cat((a, b)), T.torch.stack([a, b]), T.torch.stack([a, b], dim=2)


@idiom
def split_and_chunk(T):
    x = T.torch.arange(10)
    return x.split(3), x.chunk(2), T.torch.split(x, [4, 6])


@idiom
def size_shape_dim_numel(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.size(), x.size(1), x.size(-1), x.shape[0], x.dim(), x.numel(), len(x), x.ndim


@idiom
def flip(T):
    return T.torch.tensor(T.arr((2, 3))).flip(1)


@idiom
def contiguous_after_transpose(T):
    return T.torch.tensor(T.arr((2, 3))).t().contiguous().view(-1)


# ----------------------------------------------------------------------------- indexing


@idiom
def basic_indexing(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x[0], x[:, 1], x[1:, ::2], x[..., -1], x[None].shape, x[-1, -1]


@idiom
def advanced_indexing(T):
    x = T.torch.tensor(T.arr((4, 3)))
    return x[[0, 2]], x[T.torch.tensor([3, 1])], x[x > 0], x[T.torch.tensor([0, 1]), T.torch.tensor([2, 0])]


@idiom
def setitem(T):
    x = T.torch.zeros(3, 3)
    x[0] = 5.0
    x[:, 1] = T.torch.tensor([1.0, 2.0, 3.0])
    x[x > 4] = -1.0
    return x


@idiom
def gather(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x.gather(1, T.torch.tensor([[0], [2], [3]]))


# ----------------------------------------------------------------------------- reductions


@idiom
def sums(T):
    x = T.torch.tensor(T.arr((2, 3, 4)))
    return x.sum(), x.sum(0), x.sum(dim=1, keepdim=True), x.sum((0, 2)), T.torch.sum(x, dim=-1)


@idiom
def means(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.mean(), x.mean(1), x.mean(dim=0, keepdim=True)


@idiom
def max_forms(T):
    x = T.torch.tensor(T.arr((3, 4)))
    values, indices = x.max(1)
    return x.max(), values, indices, x.max(dim=0, keepdim=True), x.max(dim=1)[1]


@idiom
def torch_max_of_outputs_data(T):
    outputs = T.torch.tensor(T.arr((5, 10)))
    _, predicted = T.torch.max(outputs.data, 1)
    labels = T.torch.tensor([1, 2, 3, 4, 5])
    return predicted, (predicted == labels).sum().item()


@idiom
def min_forms(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x.min(), x.min(0), T.torch.min(x, dim=1).values


@idiom
def argmax_argmin(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x.argmax(), x.argmax(1), x.argmax(dim=0, keepdim=True), x.argmin(1)


@idiom
def amax_amin(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x.amax(1), x.amin(dim=(0, 1))


@idiom
def var_std(T):
    x = T.torch.tensor(T.arr((3, 5)))
    return x.var(), x.var(0), x.var(1, unbiased=False), x.std(), x.std(dim=1, keepdim=True), x.var(correction=0)


@idiom
def prod_cumsum(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.prod(), x.prod(1), x.cumsum(0), T.torch.cumsum(x, dim=1)


@idiom
def norms(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return x.norm(), x.norm(dim=1), x.norm(p=1), T.torch.norm(x, dim=0)


@idiom
def logsumexp(T):
    return T.torch.tensor(T.arr((3, 4))).logsumexp(dim=1)


@idiom
def all_any(T):
    x = T.torch.tensor(T.arr((3, 4)))
    return (x > -5).all(), (x > 1).any(), (x > 0).all(dim=1)


@idiom
def topk_and_sort(T):
    x = T.torch.tensor(T.arr((2, 5)))
    return x.topk(2), x.sort(descending=True), x.argsort(dim=1)


# ----------------------------------------------------------------------------- elementwise


@idiom
def arithmetic(T):
    x = T.torch.tensor(T.arr((2, 3)))
    y = T.torch.tensor(T.arr((2, 3), seed=1))
    return x + 1, 2 * x, x / 2, x ** 2, -x, x - y, x * y, x / (y.abs() + 1), x @ y.t(), x.add(y, alpha=2)


@idiom
def unary(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.abs(), x.exp(), x.abs().log(), x.abs().sqrt(), x.sigmoid(), x.tanh(), x.relu(), x.sin(), x.sign()


@idiom
def rounding(T):
    x = T.torch.tensor(T.arr((2, 3)) * 3)
    return x.round(), x.floor(), x.ceil(), x.trunc(), x // 2


@idiom
def clamps(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return x.clamp(min=0), x.clamp(-0.5, 0.5), T.torch.clamp(x, max=0.1), x.clip(0, 1)


@idiom
def where_and_maximum(T):
    x = T.torch.tensor(T.arr((2, 3)))
    return T.torch.where(x > 0, x, T.torch.zeros_like(x)), T.torch.where(x > 0, x, 0.0), T.torch.maximum(x, -x)


@idiom
def comparisons(T):
    x = T.torch.tensor(T.arr((4,)))
    return x > 0, x <= 0.5, x == x, (x > 0) & (x < 1), ~(x > 0), T.torch.isfinite(x / 0.0)


@idiom
def matmul_forms(T):
    a, b = T.torch.tensor(T.arr((2, 3))), T.torch.tensor(T.arr((3, 4)))
    v = T.torch.tensor(T.arr((3,)))
    batch = T.torch.tensor(T.arr((5, 2, 3)))
    return T.torch.matmul(a, b), a.mm(b), a @ v, T.torch.bmm(batch, batch.transpose(1, 2)), v.dot(v)


@idiom
def allclose_and_equal(T):
    x = T.torch.tensor([1.0, 2.0])
    return T.torch.allclose(x, x + 1e-9), x.equal(x), T.torch.equal(x, x + 1)


# ----------------------------------------------------------------------------- in place


@idiom
def inplace_arithmetic(T):
    x = T.torch.tensor([1.0, 2.0, 3.0])
    x += 1
    x.mul_(2)
    x.sub_(1)
    x /= 2
    x.add_(T.torch.ones(3), alpha=3)
    return x


@idiom
def inplace_fill_zero_copy(T):
    x = T.torch.ones(2, 2)
    y = T.torch.tensor(T.arr((2, 2)))
    a = x.clone().zero_()
    b = x.clone().fill_(3.0)
    c = x.clone().copy_(y)
    d = y.clone().clamp_(min=0)
    return a, b, c, d


@idiom
def inplace_is_seen_by_views(T):
    x = T.torch.zeros(2, 3)
    v = x.view(-1)
    row = x[0]
    x.add_(1)
    row[1] = 7.0
    return v, x


@idiom
def manual_sgd_update_under_no_grad(T):
    w = T.torch.tensor(T.arr((3,)), requires_grad=True)
    loss = (w ** 2).sum()
    loss.backward()
    with T.torch.no_grad():
        w -= 0.1 * w.grad
    return w.detach(), w.requires_grad, w.is_leaf


@idiom
def inplace_on_leaf_requiring_grad_raises(T):
    w = T.torch.ones(3, requires_grad=True)
    try:
        w.add_(1)
    except RuntimeError:
        return "raised"
    return "no error"


@idiom
def inplace_on_saved_value_raises_in_backward(T):
    x = T.torch.tensor(T.arr((3,)), requires_grad=True)
    y = x.exp()
    y.add_(1)
    try:
        y.sum().backward()
    except RuntimeError:
        return "raised"
    return "no error"


@idiom
def inplace_in_graph_gives_right_gradient(T):
    x = T.torch.tensor(T.arr((3,)), requires_grad=True)
    y = x * 2
    y += 1
    y *= 3
    (y * y).sum().backward()
    return x.grad


# ----------------------------------------------------------------------------- autograd


@idiom
def backward_and_grad(T):
    x = T.torch.tensor(T.arr((3,)), requires_grad=True)
    y = (x ** 2 * 3).sum()
    y.backward()
    return y, x.grad, x.is_leaf, y.requires_grad


@idiom
def gradients_accumulate(T):
    x = T.torch.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    return x.grad


@idiom
def grad_zero_and_norm(T):
    x = T.torch.tensor([3.0, 4.0], requires_grad=True)
    (x * x).sum().backward()
    n = x.grad.norm()
    x.grad.zero_()
    return n, x.grad


@idiom
def grad_is_none_before_backward(T):
    x = T.torch.tensor([1.0], requires_grad=True)
    return x.grad is None


@idiom
def retain_grad(T):
    x = T.torch.tensor(T.arr((3,)), requires_grad=True)
    h = x * 2
    h.retain_grad()
    (h ** 2).sum().backward()
    return h.grad, x.grad


@idiom
def detach_and_no_grad(T):
    x = T.torch.tensor([1.0, 2.0], requires_grad=True)
    with T.torch.no_grad():
        y = x * 2
    return y.requires_grad, x.detach().requires_grad, (x * 2).detach().requires_grad


@idiom
def requires_grad_inplace(T):
    x = T.torch.tensor([1.0, 2.0]).requires_grad_()
    (x * x).sum().backward()
    return x.grad


@idiom
def backward_with_gradient(T):
    x = T.torch.tensor(T.arr((2, 3)), requires_grad=True)
    y = x * 3
    y.backward(T.torch.ones_like(y))
    return x.grad


@idiom
def grad_fn_present(T):
    x = T.torch.tensor([1.0], requires_grad=True)
    return (x * 2).grad_fn is not None, x.grad_fn is None


@idiom
def register_hook_scales_gradient(T):
    x = T.torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    return x.grad


@idiom
def no_grad_decorator(T):
    @T.torch.no_grad()
    def f(x):
        return x * 2

    return f(T.torch.ones(2, requires_grad=True)).requires_grad


@idiom
def set_grad_enabled(T):
    x = T.torch.ones(2, requires_grad=True)
    with T.torch.set_grad_enabled(False):
        y = x * 2
    return y.requires_grad


@idiom
def backward_on_non_scalar_raises(T):
    x = T.torch.ones(2, 2, requires_grad=True)
    try:
        (x * 2).backward()
    except RuntimeError:
        return "raised"
    return "no error"


@idiom
def softmax_gradient(T):
    x = T.torch.tensor(T.arr((2, 4)), requires_grad=True)
    w = T.torch.tensor(T.arr((2, 4), seed=3))
    (T.F.softmax(x, dim=1) * w).sum().backward()
    return x.grad


@idiom
def max_dim_gradient_goes_to_index(T):
    x = T.torch.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    return x.grad


# ----------------------------------------------------------------------------- nn layers


def _copy_params(T, module, seed=0):
    """Give a module deterministic weights (the same on both sides)."""
    with T.torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.copy_(T.torch.tensor(T.arr(tuple(p.shape), seed=seed + i)))
    return module


@idiom
def linear_layer(T):
    layer = _copy_params(T, T.nn.Linear(4, 3))
    return layer(T.torch.tensor(T.arr((2, 4)))), layer.weight.shape, layer.bias.shape


@idiom
def conv_pool_layers(T):
    conv = _copy_params(T, T.nn.Conv2d(2, 3, 3, padding=1))
    x = T.torch.tensor(T.arr((1, 2, 6, 6)))
    y = conv(x)
    return y, T.nn.MaxPool2d(2)(y), T.nn.AvgPool2d(2, 2)(y), T.nn.AdaptiveAvgPool2d((1, 1))(y)


@idiom
def conv_same_padding(T):
    conv = _copy_params(T, T.nn.Conv2d(1, 2, 3, padding="same"))
    return conv(T.torch.tensor(T.arr((1, 1, 5, 5)))).shape


@idiom
def batchnorm_train_and_eval(T):
    bn = T.nn.BatchNorm1d(3)
    x = T.torch.tensor(T.arr((4, 3)))
    y_train = bn(x)
    bn.eval()
    return y_train, bn(x), bn.running_mean, bn.running_var


@idiom
def layernorm(T):
    ln = T.nn.LayerNorm(4)
    return ln(T.torch.tensor(T.arr((2, 4)))), T.F.layer_norm(T.torch.tensor(T.arr((2, 3, 4))), (3, 4))


@idiom
def dropout_eval_is_identity(T):
    d = T.nn.Dropout(0.5)
    d.eval()
    x = T.torch.tensor(T.arr((3, 3)))
    return d(x), T.F.dropout(x, 0.5, training=False)


@idiom
def activations(T):
    x = T.torch.tensor(T.arr((2, 5)))
    return (T.nn.ReLU()(x), T.nn.ReLU(inplace=True)(x.clone()), T.nn.GELU()(x), T.nn.GELU(approximate="tanh")(x),
            T.nn.SiLU()(x), T.nn.LeakyReLU(0.1)(x), T.nn.Sigmoid()(x), T.nn.Tanh()(x), T.nn.ELU()(x),
            T.nn.Softplus()(x), T.nn.Softmax(dim=1)(x), T.nn.LogSoftmax(dim=1)(x))


@idiom
def sequential_mlp(T):
    model = _copy_params(T, T.nn.Sequential(T.nn.Flatten(), T.nn.Linear(12, 8), T.nn.ReLU(), T.nn.Linear(8, 2)))
    return model(T.torch.tensor(T.arr((2, 3, 4)))), len(model), type(model[1]).__name__


@idiom
def flatten_unflatten(T):
    x = T.torch.tensor(T.arr((2, 3, 4)))
    return T.nn.Flatten()(x).shape, T.nn.Unflatten(1, (2, 6))(T.nn.Flatten()(x)).shape, T.nn.Flatten(0)(x).shape


@idiom
def module_list_and_dict(T):
    layers = T.nn.ModuleList([T.nn.Linear(2, 2) for _ in range(3)])
    heads = T.nn.ModuleDict({"a": T.nn.Linear(2, 1), "b": T.nn.Identity()})
    return len(layers), sorted(heads.keys()), "a" in heads, len(list(layers.parameters()))


@idiom
def custom_module(T):
    class Net(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = T.nn.Linear(4, 5)
            self.fc2 = T.nn.Linear(5, 2)

        def forward(self, x):
            return self.fc2(T.F.relu(self.fc1(x)))

    net = _copy_params(T, Net())
    names = [n for n, _ in net.named_parameters()]
    return net(T.torch.tensor(T.arr((3, 4)))), names, sum(p.numel() for p in net.parameters())


@idiom
def state_dict_keys_and_round_trip(T):
    a = _copy_params(T, T.nn.Sequential(T.nn.Linear(3, 2), T.nn.BatchNorm1d(2)))
    b = T.nn.Sequential(T.nn.Linear(3, 2), T.nn.BatchNorm1d(2))
    result = b.load_state_dict(a.state_dict())
    return list(a.state_dict().keys()), result.missing_keys, result.unexpected_keys, b[0].weight


@idiom
def load_state_dict_non_strict(T):
    model = T.nn.Linear(2, 2)
    result = model.load_state_dict({"weight": T.torch.zeros(2, 2)}, strict=False)
    return result.missing_keys, result.unexpected_keys, model.weight


@idiom
def train_eval_flags(T):
    model = T.nn.Sequential(T.nn.Linear(2, 2), T.nn.Dropout())
    model.eval()
    flags = [m.training for m in model.modules()]
    model.train()
    return flags, [m.training for m in model.modules()]


@idiom
def freeze_with_requires_grad(T):
    model = T.nn.Sequential(T.nn.Linear(2, 2), T.nn.Linear(2, 1))
    model[0].requires_grad_(False)
    return [p.requires_grad for p in model.parameters()]


@idiom
def register_buffer_tensor(T):
    class WithBuffer(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", T.torch.tensor([2.0, 3.0]))

        def forward(self, x):
            return x * self.scale

    m = WithBuffer()
    return m(T.torch.ones(2)), list(m.state_dict().keys())


@idiom
def apply_init(T):
    def init(m):
        if isinstance(m, T.nn.Linear):
            T.nn.init.constant_(m.weight, 0.5)
            T.nn.init.zeros_(m.bias)

    model = T.nn.Sequential(T.nn.Linear(2, 2), T.nn.ReLU(), T.nn.Linear(2, 1))
    model.apply(init)
    return model(T.torch.ones(1, 2))


@idiom
def module_half_and_double(T):
    model = T.nn.Linear(2, 2)
    return model.half().weight.dtype, model.double().weight.dtype, model.float().weight.dtype


@idiom
def forward_hook(T):
    model = _copy_params(T, T.nn.Linear(2, 2))
    seen = []
    handle = model.register_forward_hook(lambda m, inp, out: seen.append(tuple(out.shape)))
    model(T.torch.ones(3, 2))
    handle.remove()
    model(T.torch.ones(1, 2))
    return seen


@idiom
def children_and_modules(T):
    model = T.nn.Sequential(T.nn.Linear(2, 2), T.nn.Sequential(T.nn.ReLU(), T.nn.Linear(2, 1)))
    return len(list(model.children())), len(list(model.modules())), [n for n, _ in model.named_modules()]


# ----------------------------------------------------------------------------- functional and losses


@idiom
def functional_activations(T):
    x = T.torch.tensor(T.arr((2, 4)))
    return T.F.relu(x), T.F.softmax(x, dim=1), T.F.log_softmax(x, dim=-1), T.F.gelu(x), T.F.silu(x), T.F.leaky_relu(x, 0.2)


@idiom
def cross_entropy_forms(T):
    z = T.torch.tensor(T.arr((4, 3)))
    y = T.torch.tensor([0, 2, 1, 2])
    w = T.torch.tensor([1.0, 2.0, 0.5])
    return (T.F.cross_entropy(z, y), T.F.cross_entropy(z, y, reduction="sum"), T.F.cross_entropy(z, y, reduction="none"),
            T.F.cross_entropy(z, y, weight=w), T.F.cross_entropy(z, T.torch.tensor([0, -100, 1, 2]), ignore_index=-100),
            T.F.cross_entropy(z, y, label_smoothing=0.1), T.F.cross_entropy(z, y, weight=w, label_smoothing=0.2),
            T.nn.CrossEntropyLoss()(z, y))


@idiom
def cross_entropy_spatial(T):
    z = T.torch.tensor(T.arr((2, 3, 4, 4)))
    y = T.torch.tensor((np.arange(32).reshape(2, 4, 4) % 3).astype(np.int64))
    return T.F.cross_entropy(z, y), T.F.cross_entropy(z, y, reduction="none").shape


@idiom
def cross_entropy_probabilities(T):
    z = T.torch.tensor(T.arr((3, 4)))
    p = T.torch.softmax(T.torch.tensor(T.arr((3, 4), seed=5)), dim=1)
    return T.F.cross_entropy(z, p)


@idiom
def nll_and_regression_losses(T):
    z = T.torch.tensor(T.arr((4, 3)))
    y = T.torch.tensor([0, 2, 1, 2])
    a, b = T.torch.tensor(T.arr((5,))), T.torch.tensor(T.arr((5,), seed=1))
    return (T.F.nll_loss(T.F.log_softmax(z, dim=1), y), T.nn.NLLLoss(weight=T.torch.tensor([1.0, 2.0, 3.0]))(z, y),
            T.F.mse_loss(a, b), T.F.l1_loss(a, b), T.F.smooth_l1_loss(a, b), T.nn.MSELoss(reduction="sum")(a, b))


@idiom
def binary_losses(T):
    logits = T.torch.tensor(T.arr((6,)))
    target = T.torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    return (T.F.binary_cross_entropy_with_logits(logits, target), T.nn.BCEWithLogitsLoss(pos_weight=T.torch.tensor(2.0))(logits, target),
            T.F.binary_cross_entropy(T.torch.sigmoid(logits), target), T.nn.BCELoss()(T.torch.sigmoid(logits), target))


@idiom
def one_hot_and_pad(T):
    x = T.torch.tensor(T.arr((1, 1, 2, 3)))
    return (T.F.one_hot(T.torch.tensor([0, 2, 1])), T.F.one_hot(T.torch.tensor([1]), num_classes=4), T.F.pad(x, (1, 1)),
            T.F.pad(x, (1, 2, 0, 1), value=9.0), T.F.pad(x, (1, 1, 1, 1), mode="reflect"), T.F.pad(x, (2, 0), mode="replicate"))


@idiom
def interpolate(T):
    x = T.torch.tensor(T.arr((1, 2, 3, 4)))
    return (T.F.interpolate(x, scale_factor=2, mode="nearest"), T.F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False),
            T.F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=True), T.F.interpolate(x, size=(2, 2)))


@idiom
def functional_layers(T):
    x = T.torch.tensor(T.arr((1, 2, 6, 6)))
    w = T.torch.tensor(T.arr((3, 2, 3, 3)))
    return (T.F.conv2d(x, w, padding=1), T.F.conv2d(x, w, stride=2), T.F.max_pool2d(x, 2), T.F.avg_pool2d(x, 3, 1),
            T.F.adaptive_avg_pool2d(x, 4), T.F.linear(T.torch.tensor(T.arr((2, 3))), T.torch.tensor(T.arr((4, 3)))))


@idiom
def normalize_and_cosine(T):
    a, b = T.torch.tensor(T.arr((3, 4))), T.torch.tensor(T.arr((3, 4), seed=1))
    return T.F.normalize(a, dim=1), T.F.cosine_similarity(a, b)


@idiom
def loss_gradient_matches(T):
    z = T.torch.tensor(T.arr((4, 3)), requires_grad=True)
    T.F.cross_entropy(z, T.torch.tensor([0, 2, 1, 2]), weight=T.torch.tensor([1.0, 2.0, 0.5])).backward()
    return z.grad


# ----------------------------------------------------------------------------- optim


def _quadratic_steps(T, make, steps=3):
    w = T.torch.tensor(T.arr((4,)), requires_grad=True)
    opt = make([w])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((w - 1.0) ** 2).sum()
        loss.backward()
        opt.step()
    return w.detach()


@idiom
def sgd_and_momentum(T):
    return (_quadratic_steps(T, lambda p: T.optim.SGD(p, lr=0.1)),
            _quadratic_steps(T, lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
            _quadratic_steps(T, lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2)))


@idiom
def adam_family(T):
    return (_quadratic_steps(T, lambda p: T.optim.Adam(p, lr=0.1)),
            _quadratic_steps(T, lambda p: T.optim.AdamW(p, lr=0.1, weight_decay=0.1)),
            _quadratic_steps(T, lambda p: T.optim.Adam(p, lr=0.1, amsgrad=True)),
            _quadratic_steps(T, lambda p: T.optim.RMSprop(p, lr=0.01)),
            _quadratic_steps(T, lambda p: T.optim.Adagrad(p, lr=0.1)))


@idiom
def optimizer_zero_grad_sets_none(T):
    w = T.torch.ones(2, requires_grad=True)
    opt = T.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad()
    return w.grad is None


@idiom
def change_lr_in_param_groups(T):
    w = T.torch.ones(2, requires_grad=True)
    opt = T.optim.SGD([w], lr=0.1)
    for g in opt.param_groups:
        g["lr"] = 0.5
    (w * w).sum().backward()
    opt.step()
    return w.detach(), opt.param_groups[0]["lr"]


@idiom
def parameter_groups(T):
    model = _copy_params(T, T.nn.Sequential(T.nn.Linear(2, 2), T.nn.Linear(2, 1)))
    opt = T.optim.SGD([{"params": model[0].parameters(), "lr": 0.01}, {"params": model[1].parameters()}], lr=0.1)
    model(T.torch.ones(3, 2)).sum().backward()
    opt.step()
    return model[0].weight.detach(), model[1].weight.detach(), [g["lr"] for g in opt.param_groups]


@idiom
def schedulers(T):
    w = T.torch.ones(1, requires_grad=True)
    opt = T.optim.SGD([w], lr=1.0)
    step = T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        opt.step()
        step.step()
        lrs.append(step.get_last_lr()[0])
    opt2 = T.optim.SGD([T.torch.ones(1, requires_grad=True)], lr=1.0)
    cos = T.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=4)
    lrs2 = []
    for _ in range(4):
        opt2.step()
        cos.step()
        lrs2.append(opt2.param_groups[0]["lr"])
    return lrs, lrs2


@idiom
def optimizer_state_dict_keys(T):
    w = T.torch.ones(2, requires_grad=True)
    opt = T.optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    return sorted(sd.keys()), sorted(sd["state"][0].keys()), sd["param_groups"][0]["params"]


@idiom
def clip_grad_norm(T):
    model = _copy_params(T, T.nn.Linear(3, 2))
    model(T.torch.ones(4, 3)).pow(2).sum().backward()
    total = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    return total, model.weight.grad


@idiom
def training_loop(T):
    model = _copy_params(T, T.nn.Sequential(T.nn.Linear(4, 8), T.nn.ReLU(), T.nn.Linear(8, 3)))
    opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = T.nn.CrossEntropyLoss()
    x, y = T.torch.tensor(T.arr((16, 4))), T.torch.tensor(np.arange(16) % 3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------- data


@idiom
def tensor_dataset_and_loader(T):
    x, y = T.torch.tensor(T.arr((10, 2))), T.torch.arange(10)
    ds = T.data.TensorDataset(x, y)
    loader = T.data.DataLoader(ds, batch_size=4)
    batches = list(loader)
    return len(ds), ds[3], len(loader), batches[0], batches[-1][1], len(T.data.DataLoader(ds, batch_size=4, drop_last=True))


@idiom
def loader_over_a_list_of_pairs(T):
    samples = [(T.arr((2,), seed=i), i) for i in range(5)]
    xb, yb = next(iter(T.data.DataLoader(samples, batch_size=3)))
    return xb, yb


@idiom
def random_split_and_subset(T):
    ds = T.data.TensorDataset(T.torch.arange(10))
    a, b = T.data.random_split(ds, [7, 3])
    sub = T.data.Subset(ds, [1, 3, 5])
    return len(a), len(b), len(sub), sub[1]


@idiom
def random_split_is_a_partition(T):
    ds = T.data.TensorDataset(T.torch.arange(10))
    parts = T.data.random_split(ds, [0.5, 0.3, 0.2], generator=T.torch.Generator().manual_seed(0))
    return [len(p) for p in parts], sorted(int(p[i][0]) for p in parts for i in range(len(p)))


@idiom
def custom_dataset(T):
    class Squares(T.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return np.array([float(i)], dtype=np.float32), i * i

    loader = T.data.DataLoader(Squares(), batch_size=4)
    return [b for b in loader]


@idiom
def shuffled_loader_covers_everything(T):
    ds = T.data.TensorDataset(T.torch.arange(10))
    loader = T.data.DataLoader(ds, batch_size=3, shuffle=True, generator=T.torch.Generator().manual_seed(0))
    seen = T.torch.cat([b[0] for b in loader])
    return T.torch.sort(seen).values


# ----------------------------------------------------------------------------- save and load


@idiom
def save_and_load_state_dict(T):
    model = _copy_params(T, T.nn.Linear(3, 2))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.pt")
        T.torch.save(model.state_dict(), path)
        other = T.nn.Linear(3, 2)
        other.load_state_dict(T.torch.load(path, map_location="cpu", weights_only=True))
    return other.weight, other.bias

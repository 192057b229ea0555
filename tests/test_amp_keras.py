"""keras.mixed_precision: policies, autocast inside a mixed model, LossScaleOptimizer (Keras 3's dynamic scaling)."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras
from tinyopt.keras import layers
from tinyopt.keras.mixed_precision import LossScaleOptimizer, Policy


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 20)).astype(np.float32)
    return x, (x[:, :4].sum(1) > 0).astype(np.int64)


def _fit(policy, optimizer=None, epochs=5):
    keras.mixed_precision.set_global_policy(policy)
    to.manual_seed(0)
    model = keras.Sequential([layers.Dense(32, activation="relu", input_shape=(20,)), layers.Dense(2)])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = _data()
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, rng=0)
    return model, history


def test_policies():
    p = Policy("mixed_float16")
    assert (p.compute_dtype, p.variable_dtype) == ("float16", "float32") and p.is_mixed
    assert Policy("mixed_bfloat16").compute_dtype == "bfloat16" and not Policy("float32").is_mixed
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    assert keras.mixed_precision.global_policy() == Policy("mixed_bfloat16") == keras.mixed_precision.dtype_policy()
    with pytest.raises(ValueError, match="mixed precision policy"):
        keras.mixed_precision.set_global_policy("float8")
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"    # a bad name changed nothing


@pytest.mark.parametrize("policy, low", [("mixed_float16", to.float16), ("mixed_bfloat16", to.bfloat16)])
def test_mixed_model_computes_in_16_bits_and_trains_like_float32(policy, low):
    _, ref = _fit("float32")
    model, history = _fit(policy)
    seen = []
    model.layers[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    out = model.predict(_data()[0][:4])
    assert seen == [low] and out.dtype == np.float32
    assert all(p.dtype == to.float32 for p in model.parameters())             # float32 variables
    assert abs(history.history["accuracy"][-1] - ref.history["accuracy"][-1]) < 0.02
    assert abs(history.history["loss"][-1] - ref.history["loss"][-1]) < 0.02
    assert isinstance(model.optimizer, LossScaleOptimizer) == (policy == "mixed_float16")   # Keras' compile


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the overflow is the point of this test
def test_loss_scale_optimizer_backs_off_on_overflow():
    opt = LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0 ** 40, dynamic_growth_steps=3)
    assert opt.dynamic_scale == 2.0 ** 40 and opt.learning_rate == 0.1
    model, history = _fit("mixed_float16", optimizer=opt, epochs=2)
    assert model.optimizer is opt                                            # not wrapped twice
    skipped = [h for h in opt.scaler.history if h["skipped"]]
    assert len(skipped) >= 10 and opt.dynamic_scale < 2.0 ** 30              # 2^40 · g overflows float16
    assert all(np.all(np.isfinite(p.data)) for p in model.parameters())
    assert np.all(np.isfinite(history.history["loss"]))                      # skipped steps left no NaN behind
    with pytest.raises(ValueError, match="another LossScaleOptimizer"):
        LossScaleOptimizer(opt)

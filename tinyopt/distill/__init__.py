"""Knowledge distillation: a student trained on a teacher's softened outputs (Hinton et al. 2015)
and on its intermediate features (FitNets, Romero et al. 2015).

    distiller = distill.Distiller(teacher, student, T=4.0, alpha=0.9)
    opt = optim.Adam(distiller.parameters(), lr=1e-3)     # the student's (and regressors') parameters
    distiller.fit(x_train, y_train, opt, epochs=5, rng=0)  # or, per batch: loss = distiller.loss(x, y)

The loss is `tinyopt.nn.functional.kd_loss`; its docstring derives the T² factor. The Keras-style
`tinyopt.keras.Distiller` (compile/fit like the Keras example) is built on the same loss terms.
"""
from tinyopt.distill.distiller import Distiller
from tinyopt.distill.hints import FeatureHint

__all__ = ["Distiller", "FeatureHint"]

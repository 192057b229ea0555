"""Model zoo for the tutorials: small CNNs for 28×28 grey images (Fashion-MNIST)."""
from tinyopt.models.cnn import KerasCNN, LeNet5
from tinyopt.models.fast_cnn import CNN92

__all__ = ["KerasCNN", "LeNet5", "CNN92"]

"""torch.utils.data's pieces: datasets, samplers, `DataLoader`, `default_collate`, `random_split`."""
from tinyopt.utils.data.dataloader import DataLoader, default_collate
from tinyopt.utils.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from tinyopt.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "RandomSampler", "Sampler", "SequentialSampler",
    "Subset", "SubsetRandomSampler", "TensorDataset", "default_collate", "random_split",
]
from tinyopt.utils.data.distributed import DistributedSampler  # noqa: E402

__all__ += ["DistributedSampler"]

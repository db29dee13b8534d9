"""Datasets: the registry, on-disk loaders, generated sets, and device-side augmentation."""
from .base import DatasetError, DatasetIndex, DatasetInfo, DatasetSummary, LoadedDataset
from .registry import describe_dataset, index_dataset, list_datasets, load_dataset

__all__ = ["DatasetError", "DatasetIndex", "DatasetInfo", "DatasetSummary", "LoadedDataset",
           "describe_dataset", "index_dataset", "list_datasets", "load_dataset"]

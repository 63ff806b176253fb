"""Data: map-style datasets, the DataLoader, real data sets and feature scalers."""
from . import datasets
from .dataset import Dataset, Subset, TensorDataset, random_split
from .loader import DataLoader, default_collate, default_convert
from .preprocessing import MinMaxScaler, NotFittedError, RobustScaler, StandardScaler

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate",
           "default_convert", "datasets", "StandardScaler", "MinMaxScaler", "RobustScaler",
           "NotFittedError"]

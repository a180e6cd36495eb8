"""Reading a checkpoint from elsewhere as data: every field checked before it is read in full.

No HDF5 link is followed (soft or external), no dataset with external or virtual storage is
read, and no dataset is read before its dtype, shape and stored size are checked, so a small
file cannot make a reader allocate gigabytes.
"""
from __future__ import annotations

import math

import numpy as np

MAX_ATTR_BYTES = 1 << 20        # the config attribute is a few KB
MAX_PARAMS = 1 << 31
MAX_OB_DIM = 1 << 24


class BadField(Exception):
    """A field of the file is unusable; the message names it."""


def _hard_link(group, name: str) -> None:
    import h5py
    link = group.get(name, getlink=True)
    where = f"{group.name.strip('/')}/{name}".lstrip("/")
    if link is None:
        raise BadField(f"not a complete mpi_es checkpoint (missing {where})")
    if not isinstance(link, h5py.HardLink):
        raise BadField(f"/{where} is a {type(link).__name__}: links are not followed")


def dataset(f, path: str, *, dtype, ndim: int, max_elements: int, shape=None) -> np.ndarray:
    """The dataset at path (a chain of hard links), checked, then read."""
    import h5py
    group = f
    parts = path.split("/")
    for part in parts[:-1]:
        _hard_link(group, part)
        group = group[part]
        if not isinstance(group, h5py.Group):
            raise BadField(f"/{path}: {part} is not a group")
    _hard_link(group, parts[-1])
    ds = group[parts[-1]]
    if not isinstance(ds, h5py.Dataset):
        raise BadField(f"/{path} is not a dataset")
    if ds.external or ds.is_virtual:
        raise BadField(f"/{path} keeps its data outside the file; refused")
    if ds.dtype != np.dtype(dtype):
        raise BadField(f"/{path} has dtype {ds.dtype}, expected {np.dtype(dtype)}")
    if ds.ndim != ndim or (shape is not None and ds.shape != shape):
        raise BadField(f"/{path} has shape {ds.shape}, expected "
                       f"{shape if shape is not None else f'{ndim} dimension(s)'}")
    if ds.size > max_elements:
        raise BadField(f"/{path} declares {ds.size} elements, more than {max_elements}")
    stored = ds.id.get_storage_size()
    if ds.size and stored < ds.size * ds.dtype.itemsize:
        raise BadField(f"/{path} declares {ds.size * ds.dtype.itemsize} bytes but the file "
                       f"stores {stored}")
    value = ds[()]
    if not np.all(np.isfinite(value)):
        raise BadField(f"/{path} holds NaN or inf")
    return np.asarray(value)


def attribute(obj, name: str, kind: type, *, minimum=None):
    """An attribute of an int, float or str kind, size-checked before it is read."""
    if name not in obj.attrs:
        raise BadField(f"missing attribute {name}")
    if obj.attrs.get_id(name).get_storage_size() > MAX_ATTR_BYTES:
        raise BadField(f"attribute {name} is larger than {MAX_ATTR_BYTES} bytes")
    value = obj.attrs[name]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    if kind is str:
        if not isinstance(value, str):
            raise BadField(f"attribute {name} must be text, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadField(f"attribute {name} must be a number, got {value!r:.40}")
    if not math.isfinite(value):
        raise BadField(f"attribute {name} is {value}")
    if kind is int:
        if value != int(value):
            raise BadField(f"attribute {name} must be a whole number, got {value}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise BadField(f"attribute {name} must be >= {minimum}, got {value}")
    return kind(value)

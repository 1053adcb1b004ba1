"""Rasters saved as JSON: xarray's ``to_dict()`` plus ``dtype``/``shape`` attributes.

That is what openeo-python-driver's ``save_result("JSON")`` of a raster cube writes (the openeo
client's ``XarrayIO.to_json_file``: datetimes as ``str()`` text, NaN as a bare ``NaN`` token) and
what the local backend writes (ISO datetimes, NaN as ``null``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ...results import AssetSpec
from ._common import asset_error, load_json, reason

_BAND_DIMS = ("bands", "band")


def read_raster_json(data: bytes, spec: AssetSpec) -> xr.Dataset:
    """Read a raster saved as JSON: xarray's ``to_dict()`` plus ``dtype``/``shape`` attributes.

    Parameters
    ----------
    data
        The asset's bytes.
    spec
        The asset; ``spec.bands`` names the variables when the band coordinate is missing.

    Returns
    -------
    xarray.Dataset
        One variable per band (a ``bands``/``band`` dimension is split), in the recorded dtype
        (float when ints have nulls); datetime coordinates as UTC-naive ``datetime64[ns]``.
        ``spec.nodata``, when set, is masked to NaN.
    """
    doc = load_json(data, spec)
    if not is_raster_json(doc):
        raise asset_error(spec, "is not an xarray JSON raster (an object with 'dims', 'data' and 'coords')")
    try:
        if "data_vars" in doc:
            dataset = xr.Dataset.from_dict(_normalised_dataset_dict(doc))
        else:
            dataset = _bands_to_variables(xr.DataArray.from_dict(_normalised_variable(doc, is_array=True)), spec)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise asset_error(spec, f"is not a consistent xarray JSON raster: {reason(exc)}") from None
    if spec.nodata is not None and not np.isnan(spec.nodata):
        for name, variable in dataset.data_vars.items():
            if variable.dtype.kind in "iuf":
                dataset[name] = variable.where(variable != spec.nodata)
    return dataset


def is_raster_json(doc: Any) -> bool:
    """Whether a parsed JSON document is an xarray ``to_dict()`` raster (not a time series)."""
    if not isinstance(doc, Mapping):
        return False
    if "data_vars" in doc and isinstance(doc.get("data_vars"), Mapping):
        return True
    return isinstance(doc.get("dims"), list | Mapping) and "data" in doc


def _normalised_variable(doc: Mapping[str, Any], *, is_array: bool = False) -> dict[str, Any]:
    """A ``to_dict()`` variable with its data as a typed array and the dtype/shape attributes consumed."""
    attrs = dict(doc.get("attrs") or {})
    dtype = attrs.pop("dtype", None)
    shape = attrs.pop("shape", None)
    out = dict(doc, attrs=attrs, data=_typed(doc["data"], dtype, doc.get("dims")))
    if shape is not None and list(out["data"].shape) != list(shape):
        raise ValueError(f"data of shape {list(out['data'].shape)} but attrs.shape says {list(shape)}")
    if is_array and isinstance(doc.get("coords"), Mapping):
        out["coords"] = {name: _normalised_variable(coord) for name, coord in doc["coords"].items()}
    return out


def _normalised_dataset_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
    return dict(
        doc,
        coords={name: _normalised_variable(v) for name, v in (doc.get("coords") or {}).items()},
        data_vars={name: _normalised_variable(v) for name, v in doc["data_vars"].items()},
    )


def _typed(data: Any, dtype: Any, dims: Any) -> np.ndarray:
    kind = np.dtype(dtype).kind if isinstance(dtype, str) and _valid_dtype(dtype) else None
    if kind == "M" or (kind is None and dims in (["t"], ["time"]) and _all_strings(data)):
        flat = np.asarray(data, dtype=object).ravel().tolist()
        times = pd.to_datetime(pd.Index(flat), utc=True, format="ISO8601").tz_convert(None)
        return np.asarray(times.astype("datetime64[ns]")).reshape(np.shape(data))
    if kind in ("i", "u", "f", "b"):
        try:
            return np.asarray(data, dtype=dtype)
        except (TypeError, ValueError):  # nulls (NaN/nodata written as null) in an int array
            return np.asarray(data, dtype="float64")
    if kind in ("U", "S", "O"):
        return np.asarray(data, dtype=str if kind != "O" else object)
    array = np.asarray(data)
    return array.astype("float64") if array.dtype == object and _all_numbers(array) else array


def _bands_to_variables(array: xr.DataArray, spec: AssetSpec) -> xr.Dataset:
    band_dim = next((d for d in _BAND_DIMS if d in array.dims), None)
    if band_dim is None:
        name = array.name if array.name is not None else (spec.bands[0] if len(spec.bands) == 1 else "var")
        return array.to_dataset(name=name)
    if band_dim in array.coords:
        names = [str(v) for v in array[band_dim].values]
    else:
        n = array.sizes[band_dim]
        names = list(spec.bands) if len(spec.bands) == n else [f"band_{i}" for i in range(n)]
    array = array.assign_coords({band_dim: names})
    dataset = array.to_dataset(dim=band_dim)
    dataset.attrs.update(array.attrs)
    return dataset


def _valid_dtype(text: str) -> bool:
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True


def _all_strings(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(v, str) for v in data)


def _all_numbers(array: np.ndarray) -> bool:
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in array.ravel())

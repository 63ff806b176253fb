"""Feature scalers with scikit-learn's semantics: `StandardScaler` (z-score),
`MinMaxScaler` (to a feature range) and `RobustScaler` (median and IQR).

Each takes 2-D `(n_samples, n_features)` data, either numpy arrays (or nested
lists) or Tensors, and returns the same kind: numpy in, numpy out; Tensor in,
Tensor out on the same device. Statistics are computed once at `fit` on the
host, ignoring NaNs as scikit-learn does, and kept under scikit-learn's
attribute names (`mean_`, `scale_`, ...). `transform` keeps a float32/float64
input's dtype; integer input becomes float64 (numpy) or float32 (Tensor).
Features that are constant (zero variance, range or IQR) get a scale of 1, so
they map to 0 (or to the range's minimum) instead of dividing by zero.
Scaling is data preparation: it records no autograd graph.
"""
from statistics import NormalDist

import numpy as np

from ..tensor import Tensor


class NotFittedError(ValueError, AttributeError):
    """A scaler was used before `fit` (the same bases as scikit-learn's)."""


def _replace_zero_scales(scale, constant=None):
    """Scale 1 for (near-)constant features, as scikit-learn's _handle_zeros_in_scale."""
    if constant is None:
        constant = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant] = 1.0
    return scale


def _check_2d(shape, owner):
    if len(shape) != 2:
        raise ValueError(f"{owner}: expected 2D data of shape (n_samples, n_features), got a "
                         f"{len(shape)}D array of shape {tuple(shape)}; reshape with "
                         "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample")


def _host_data(X, owner):
    """X as a 2-D float numpy array on the host (for fitting), and whether it holds NaNs."""
    if isinstance(X, Tensor):
        arr = X.backend.to_host(X._data)
    else:
        arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: expected numeric data, got dtype {arr.dtype}")
    _check_2d(arr.shape, owner)
    if arr.shape[0] == 0:
        raise ValueError(f"{owner}: found an array with 0 samples (shape {arr.shape}); "
                         "at least 1 is required to fit")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    has_nan = False
    if not np.isfinite(arr).all():
        if np.isinf(arr).any():
            raise ValueError(f"{owner}: input contains infinity; scalers accept finite values and NaN "
                             "(which is ignored when fitting)")
        has_nan = True
    return arr, has_nan


def _valid_counts(X):
    return X.shape[0] - np.isnan(X).sum(axis=0)


class _Scaler:
    """fit / transform / fit_transform / inverse_transform over numpy or Tensors.
    Subclasses implement `_fit(X, has_nan)` on a host float array (NaN-ignoring
    reductions are several times slower: they run only when X holds NaNs), and
    `_transform(X, cast)` / `_inverse(X, cast)` in place on a fresh float array,
    where `cast(p)` turns a fitted host array into the data's array module and dtype."""

    _params = ()

    def fit(self, X, y=None):
        """Computes the per-feature statistics of X; returns self."""
        name = type(self).__name__
        arr, has_nan = _host_data(X, f"{name}.fit")
        self._fit(arr, has_nan)
        self.n_samples_seen_ = _valid_counts(arr) if has_nan else arr.shape[0]
        self.n_features_in_ = arr.shape[1]
        return self

    def transform(self, X):
        return self._apply(X, self._transform, "transform")

    def inverse_transform(self, X):
        return self._apply(X, self._inverse, "inverse_transform")

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def _apply(self, X, fn, method):
        name = type(self).__name__
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"This {name} instance is not fitted yet. Call 'fit' with "
                                 f"appropriate arguments before using {method}.")
        if isinstance(X, Tensor):
            arr, xp = X._data, X.backend.xp
            dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        else:
            arr, xp = np.asarray(X), np
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{name}.{method}: expected numeric data, got dtype {arr.dtype}")
            dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
        _check_2d(arr.shape, f"{name}.{method}")
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"{name}.{method}: X has {arr.shape[1]} features, but {name} is "
                             f"expecting {self.n_features_in_} features as input")
        out = fn(arr.astype(dtype, copy=True), lambda p: xp.asarray(p.astype(dtype, copy=False)))
        return Tensor._wrap(out, X._device) if isinstance(X, Tensor) else out

    def __repr__(self):
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._params)
        return f"{type(self).__name__}({args})"


class StandardScaler(_Scaler):
    """z = (x - mean) / std per feature (population std, ddof=0).

    Attributes after fit: mean_, var_, scale_ (float64; None where switched off),
    n_features_in_, n_samples_seen_."""

    _params = ("with_mean", "with_std")

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    def _fit(self, X, has_nan):
        self.mean_ = self.var_ = self.scale_ = None
        if not (self.with_mean or self.with_std):
            return
        mean, var = (np.nanmean, np.nanvar) if has_nan else (np.mean, np.var)
        self.mean_ = mean(X, axis=0, dtype=np.float64)
        if self.with_std:
            self.var_ = var(X, axis=0, dtype=np.float64)
            n = _valid_counts(X) if has_nan else X.shape[0]
            # Constant within the rounding error of a float64 two-pass variance (Chan et al.),
            # the test scikit-learn applies.
            eps = np.finfo(np.float64).eps
            constant = self.var_ <= n * eps * self.var_ + (n * self.mean_ * eps) ** 2
            self.scale_ = _replace_zero_scales(np.sqrt(self.var_), constant)

    def _transform(self, X, cast):
        if self.with_mean:
            X -= cast(self.mean_)
        if self.with_std:
            X /= cast(self.scale_)
        return X

    def _inverse(self, X, cast):
        if self.with_std:
            X *= cast(self.scale_)
        if self.with_mean:
            X += cast(self.mean_)
        return X


class MinMaxScaler(_Scaler):
    """x * scale_ + min_, mapping each feature's [min, max] seen at fit onto
    feature_range; clip=True clamps transformed values into the range.

    Attributes after fit: data_min_, data_max_, data_range_, scale_, min_ (in the
    fitted data's float dtype, as scikit-learn), n_features_in_, n_samples_seen_."""

    _params = ("feature_range", "clip")

    def __init__(self, feature_range=(0, 1), clip=False):
        try:
            low, high = feature_range
        except (TypeError, ValueError):
            raise TypeError(f"MinMaxScaler: feature_range must be a pair (min, max), got "
                            f"{feature_range!r}") from None
        if not low < high:
            raise ValueError(f"MinMaxScaler: minimum of desired feature range must be smaller than "
                             f"maximum. Got {tuple(feature_range)}.")
        self.feature_range = feature_range
        self.clip = clip

    def _fit(self, X, has_nan):
        low, high = (X.dtype.type(v) for v in self.feature_range)
        self.data_min_ = np.nanmin(X, axis=0)
        self.data_max_ = np.nanmax(X, axis=0)
        self.data_range_ = self.data_max_ - self.data_min_
        self.scale_ = (high - low) / _replace_zero_scales(self.data_range_.copy())
        self.min_ = low - self.data_min_ * self.scale_

    def _transform(self, X, cast):
        X *= cast(self.scale_)
        X += cast(self.min_)
        if self.clip:
            X.clip(*self.feature_range, out=X)
        return X

    def _inverse(self, X, cast):
        X -= cast(self.min_)
        X /= cast(self.scale_)
        return X


class RobustScaler(_Scaler):
    """(x - median) / (q_max - q_min) per feature, with the quantiles of
    quantile_range (default the interquartile range); unit_variance=True divides
    the scale further so a normal feature ends up with variance 1.

    Attributes after fit: center_, scale_ (None where switched off),
    n_features_in_, n_samples_seen_."""

    _params = ("with_centering", "with_scaling", "quantile_range", "unit_variance")

    def __init__(self, with_centering=True, with_scaling=True, quantile_range=(25.0, 75.0),
                 unit_variance=False):
        try:
            q_min, q_max = quantile_range
        except (TypeError, ValueError):
            raise TypeError(f"RobustScaler: quantile_range must be a pair (q_min, q_max), got "
                            f"{quantile_range!r}") from None
        if not 0 <= q_min <= q_max <= 100:
            raise ValueError(f"RobustScaler: invalid quantile range {tuple(quantile_range)}: "
                             "expected 0 <= q_min <= q_max <= 100")
        if unit_variance and not 0 < q_min < q_max < 100:
            raise ValueError(f"RobustScaler: unit_variance=True needs 0 < q_min < q_max < 100 (the "
                             f"normal quantiles of 0 and 100 are infinite), got {tuple(quantile_range)}")
        self.with_centering = with_centering
        self.with_scaling = with_scaling
        self.quantile_range = quantile_range
        self.unit_variance = unit_variance

    def _fit(self, X, has_nan):
        median, percentile = (np.nanmedian, np.nanpercentile) if has_nan else (np.median, np.percentile)
        self.center_ = median(X, axis=0) if self.with_centering else None
        self.scale_ = None
        if self.with_scaling:
            q = percentile(X, np.asarray(self.quantile_range, dtype=np.float64), axis=0)
            self.scale_ = _replace_zero_scales(q[1] - q[0])
            if self.unit_variance:
                q_min, q_max = self.quantile_range
                normal = NormalDist()
                self.scale_ = self.scale_ / (normal.inv_cdf(q_max / 100) - normal.inv_cdf(q_min / 100))

    def _transform(self, X, cast):
        if self.with_centering:
            X -= cast(self.center_)
        if self.with_scaling:
            X /= cast(self.scale_)
        return X

    def _inverse(self, X, cast):
        if self.with_scaling:
            X *= cast(self.scale_)
        if self.with_centering:
            X += cast(self.center_)
        return X

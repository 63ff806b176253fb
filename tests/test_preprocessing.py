"""StandardScaler, MinMaxScaler, RobustScaler: closed-form properties, agreement
with scikit-learn on random data with constant columns (fitted attributes,
transform, inverse), numpy-in/numpy-out and Tensor-in/Tensor-out, errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.data import MinMaxScaler, NotFittedError, RobustScaler, StandardScaler


def data(dtype=np.float64, n=40, seed=0):
    """Random features plus the hard cases: two constant columns, a column with a
    zero IQR that is not constant, and a nearly constant large-offset column."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)) * [1.0, 10.0, 1.0, 1.0, 1.0, 1.0] + [0, 5, 0, 0, 0, 0]
    X[:, 2] = 3.0
    X[:, 3] = 0.0
    X[:, 4] = 1.0
    X[: n // 8, 4] = rng.standard_normal(n // 8) * 5  # zero IQR, nonzero spread
    X[:, 5] = 1e6 + rng.integers(0, 2, n)
    return X.astype(dtype)


SCALERS = {
    "standard": [dict(), dict(with_mean=False), dict(with_std=False), dict(with_mean=False, with_std=False)],
    "minmax": [dict(), dict(feature_range=(-1, 2)), dict(feature_range=(0.2, 0.8), clip=True)],
    "robust": [dict(), dict(with_centering=False), dict(with_scaling=False), dict(quantile_range=(10.0, 90.0)),
               dict(unit_variance=True)],
}
OURS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
ATTRIBUTES = {"standard": ["mean_", "var_", "scale_"],
              "minmax": ["data_min_", "data_max_", "data_range_", "scale_", "min_"],
              "robust": ["center_", "scale_"]}
CASES = [(kind, kw) for kind, kws in SCALERS.items() for kw in kws]


def sklearn_scaler(kind, kw):
    pre = pytest.importorskip("sklearn.preprocessing")
    cls = {"standard": pre.StandardScaler, "minmax": pre.MinMaxScaler, "robust": pre.RobustScaler}[kind]
    return cls(**kw)


# -- closed forms, without scikit-learn --------------------------------------------

def test_standard_scaler_gives_zero_mean_unit_std_and_zero_for_constant_columns():
    X = data()
    Z = StandardScaler().fit_transform(X)
    varying = [0, 1, 4, 5]
    np.testing.assert_allclose(Z[:, varying].mean(axis=0), 0, atol=1e-9)  # column 5 sits at 1e6
    np.testing.assert_allclose(Z[:, varying].std(axis=0), 1, rtol=1e-12)
    np.testing.assert_array_equal(Z[:, [2, 3]], 0)
    s = StandardScaler().fit(X)
    np.testing.assert_array_equal(s.scale_[[2, 3]], 1.0)
    np.testing.assert_allclose(s.scale_[[0, 1]], X[:, [0, 1]].std(axis=0), rtol=1e-12)


def test_minmax_scaler_maps_the_fitted_range_onto_feature_range():
    X = data()
    Z = MinMaxScaler(feature_range=(-1, 3)).fit_transform(X)
    varying = [0, 1, 4, 5]
    np.testing.assert_allclose(Z[:, varying].min(axis=0), -1, atol=1e-12)
    np.testing.assert_allclose(Z[:, varying].max(axis=0), 3, atol=1e-9)
    np.testing.assert_array_equal(Z[:, [2, 3]], -1)  # constant: scale 1, mapped to the range's minimum
    clipped = MinMaxScaler(clip=True).fit(X[:10]).transform(X)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_robust_scaler_centers_on_the_median_and_divides_by_the_iqr():
    X = data()
    s = RobustScaler().fit(X)
    q25, q50, q75 = np.percentile(X, [25, 50, 75], axis=0)
    np.testing.assert_allclose(s.center_, q50)
    iqr = q75 - q25
    np.testing.assert_allclose(s.scale_, np.where(iqr == 0, 1.0, iqr))
    assert s.scale_[4] == 1.0  # zero IQR although the column is not constant


@pytest.mark.parametrize("kind, kw", [c for c in CASES if not c[1].get("clip")])  # clipping loses data
def test_inverse_transform_undoes_transform(kind, kw):
    X = data()
    s = OURS[kind](**kw).fit(X)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X, rtol=1e-9, atol=1e-9)


# -- against scikit-learn ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, kw", CASES)
def test_matches_scikit_learn(kind, kw, dtype):
    X, X_new = data(dtype), data(dtype, n=15, seed=1)
    ref = sklearn_scaler(kind, kw).fit(X)
    ours = OURS[kind](**kw).fit(X)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for attr in ATTRIBUTES[kind]:
        theirs = getattr(ref, attr)
        if theirs is None:
            assert getattr(ours, attr) is None, attr
        else:
            np.testing.assert_allclose(getattr(ours, attr), theirs, err_msg=attr, **tol)
    assert ours.n_features_in_ == ref.n_features_in_ == 6
    for fn in ("transform", "inverse_transform"):
        got, want = getattr(ours, fn)(X_new), getattr(ref, fn)(X_new)
        assert got.dtype == want.dtype == dtype
        # big columns: compare relative to the magnitude the values come from
        np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * (1 + np.abs(X_new).max()))
    np.testing.assert_allclose(OURS[kind](**kw).fit_transform(X), ref.transform(X), rtol=tol["rtol"],
                               atol=tol["atol"] * 1e6)


@pytest.mark.parametrize("kind", ["standard", "minmax", "robust"])
def test_nans_are_ignored_when_fitting_and_kept_when_transforming_like_scikit_learn(kind):
    X = data()
    X[[1, 5, 9], 0] = np.nan
    X[3, 4] = np.nan
    ref = sklearn_scaler(kind, {}).fit(X)
    ours = OURS[kind]().fit(X)
    want, got = ref.transform(X), ours.transform(X)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-8)
    if kind == "standard":
        np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)


def test_integer_input_becomes_float64_like_scikit_learn():
    X = np.random.default_rng(0).integers(0, 10, size=(20, 3))
    ref = sklearn_scaler("standard", {}).fit(X)
    got = StandardScaler().fit(X).transform(X)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref.transform(X))


# -- tensors -----------------------------------------------------------------------

@pytest.mark.parametrize("device", ["standin", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("kind", ["standard", "minmax", "robust"])
@pytest.mark.parametrize("dtype", [mg.float32, mg.float64])
def test_tensors_in_tensors_out_same_values_dtype_and_device(kind, dtype, device):
    X = data()
    expected = OURS[kind]().fit(X.astype(dtype.np)).transform(X.astype(dtype.np))
    t = mg.tensor(X, dtype=dtype)
    for dev in ("cpu", device):
        s = OURS[kind]().fit(t.to(dev))
        out = s.transform(t.to(dev))
        assert isinstance(out, mg.Tensor) and out.dtype == dtype and out.device == dev
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
        back = s.inverse_transform(out)
        assert isinstance(back, mg.Tensor) and back.device == dev
        np.testing.assert_allclose(np.asarray(back), X, rtol=1e-5, atol=1e-5 * np.abs(X).max())
    # fitted on numpy, applied to a tensor (and back): the same numbers
    s = OURS[kind]().fit(X)
    np.testing.assert_allclose(s.transform(t).numpy(), s.transform(X.astype(dtype.np)), rtol=1e-6)


def test_integer_tensor_becomes_float32_and_grad_tensors_are_scaled_as_data():
    t = mg.tensor([[1, 2], [3, 6]])
    out = StandardScaler().fit_transform(t)
    assert out.dtype == mg.float32
    np.testing.assert_allclose(out.numpy(), [[-1, -1], [1, 1]])
    w = mg.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)
    z = MinMaxScaler().fit_transform(w)
    assert not z.requires_grad
    np.testing.assert_allclose(z.numpy(), [[0, 0], [1, 1]])


# -- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler, RobustScaler])
def test_errors_are_clear(cls):
    X = data()
    with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted yet"):
        cls().transform(X)
    with pytest.raises(ValueError):  # NotFittedError is a ValueError, as in scikit-learn
        cls().inverse_transform(X)
    s = cls().fit(X)
    with pytest.raises(ValueError, match=f"X has 3 features, but {cls.__name__} is expecting 6 features"):
        s.transform(X[:, :3])
    with pytest.raises(ValueError, match="X has 3 features"):
        s.inverse_transform(mg.tensor(X[:, :3]))
    with pytest.raises(ValueError, match=r"expected 2D data.*got a 1D array of shape \(40,\).*reshape"):
        cls().fit(X[:, 0])
    with pytest.raises(ValueError, match="expected 2D data"):
        s.transform(mg.tensor(X[None]))
    with pytest.raises(ValueError, match="0 samples"):
        cls().fit(X[:0])
    with pytest.raises(ValueError, match="infinity"):
        cls().fit(np.array([[1.0], [np.inf]]))
    with pytest.raises(TypeError, match="numeric"):
        cls().fit(np.array([["a"], ["b"]]))


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match=r"Got \(1, 0\)"):
        MinMaxScaler(feature_range=(1, 0))
    with pytest.raises(TypeError, match="feature_range must be a pair"):
        MinMaxScaler(feature_range=1)
    with pytest.raises(ValueError, match=r"invalid quantile range \(80, 20\)"):
        RobustScaler(quantile_range=(80, 20))
    with pytest.raises(ValueError, match="unit_variance"):
        RobustScaler(quantile_range=(0, 75), unit_variance=True)
    assert repr(MinMaxScaler((-1, 1))) == "MinMaxScaler(feature_range=(-1, 1), clip=False)"

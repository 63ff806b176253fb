"""Reference kernels for convolution (im2col/col2im) and 2-d pooling.

Every function takes the array module `xp` (numpy or cupy) first. Images are
(N, C, H, W); output sizes `oh`, `ow` are computed by the caller (PyTorch's
formulas, ceil_mode included) and passed in. Work is vectorised over the whole
batch; Python loops run only over the kh*kw kernel offsets.

Shared conventions:
- `kh, kw` kernel size, `sh, sw` stride, `ph, pw` padding, `dh, dw` dilation.
- A window of output row `oy` covers padded rows oy*sh + i*dh, i < kh; in image
  coordinates that is oy*sh - ph + i*dh.
- Windows may reach past the padded edge when ceil_mode enlarged oh/ow; those
  positions count as padding.
"""

__all__ = [
    "im2col", "col2im", "panel_matmul", "conv_forward", "conv_input_grad", "conv_bias_grad",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]


# ---------------------------------------------------------------- helpers

def panel_matmul(xp, a, b, n, length, b_per_sample, out_per_sample, bias=None):
    """a (M, K) @ B, plus bias (M,) per row when given. B is b (K, n*length),
    or b (n, K, length) when b_per_sample (sample-major columns, as dy). The
    result is (M, n*length), or (n, M, length) when out_per_sample (as y)."""
    m, k = a.shape
    if b_per_sample and not out_per_sample:
        b = b.transpose(1, 0, 2).reshape(k, n * length)
    y = xp.matmul(a, b)  # (n, M, L) when b is per sample, else (M, n*L)
    if bias is not None:
        y += bias.reshape(m, 1)
    if out_per_sample and y.ndim == 2:
        return xp.ascontiguousarray(y.reshape(m, n, length).transpose(1, 0, 2))
    return y


def _span(n_out, k, s, d):
    """Padded length that windows of `n_out` outputs touch (0 when empty)."""
    return (n_out - 1) * s + (k - 1) * d + 1 if n_out > 0 else 0


def _offset_slice(start, step, count):
    """Slice picking `count` elements start, start+step, ... (count >= 1)."""
    return slice(start, start + step * (count - 1) + 1, step)


def _padded(xp, x, ph, pw, rows, cols, fill):
    """Copy of x (N, C, H, W) inside a (N, C, rows, cols) frame of `fill`,
    the image placed at offset (ph, pw). rows >= H + ph, cols >= W + pw."""
    n, c, h, w = x.shape
    out = xp.full((n, c, rows, cols), fill, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _frame(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Size of the padded frame that holds the image and every window."""
    rows = max(h + 2 * ph, _span(oh, kh, sh, dh))
    cols = max(w + 2 * pw, _span(ow, kw, sw, dw))
    return rows, cols


def _offsets(kh, kw, sh, sw, dh, dw, oh, ow):
    """Yield (i, j, row_slice, col_slice): for each kernel offset, the slices of
    the padded frame that the (oh, ow) windows read at that offset."""
    for i in range(kh):
        rs = _offset_slice(i * dh, sh, oh)
        for j in range(kw):
            yield i, j, rs, _offset_slice(j * dw, sw, ow)


def _is_float(dtype):
    return dtype.kind == "f"


def _lowest(xp, dtype):
    """Value below every element: -inf for floats, the minimum for integers."""
    return -xp.inf if _is_float(dtype) else xp.iinfo(dtype).min


def _float_dtype(xp, dtype):
    """dtype in which averages are computed: the input's if it is floating."""
    return dtype if _is_float(dtype) else xp.dtype(xp.float64)


# ---------------------------------------------------------------- im2col

def im2col(xp, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
    """Unfold sliding windows: x (N, C, H, W) -> cols (N, C*kh*kw, oh*ow).

    Row c*kh*kw + i*kw + j, column oy*ow + ox holds the zero-padded pixel
    (oy*sh - ph + i*dh, ox*sw - pw + j*dw) of channel c.
    With `merged`, the batch joins the columns: cols (C*kh*kw, N*oh*ow),
    column n*oh*ow + oy*ow + ox, so that a convolution is one matrix product.
    """
    n, c, h, w = x.shape
    shape = (c, kh, kw, n, oh, ow) if merged else (n, c, kh, kw, oh, ow)
    cols = xp.zeros(shape, dtype=x.dtype)
    if cols.size:
        fh, fw = _frame(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        xpad = _padded(xp, x, ph, pw, fh, fw, 0)
        # the (N, C, kh, kw, oh, ow) view of either layout
        view = cols.transpose(3, 0, 1, 2, 4, 5) if merged else cols
        for i, j, rs, cs in _offsets(kh, kw, sh, sw, dh, dw, oh, ow):
            view[:, :, i, j] = xpad[:, :, rs, cs]
    if merged:
        return cols.reshape(c * kh * kw, n * oh * ow)
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(xp, cols, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=False):
    """Adjoint of im2col: cols (N, C*kh*kw, oh*ow) -> dx (N, C, H, W); with
    `merged`, cols is (C*kh*kw, N*oh*ow) as im2col(..., merged=True) makes it.

    Every column entry is added to the pixel it was read from; padding
    positions are dropped. Overlapping windows accumulate.
    """
    rows, length = (cols.shape[0], cols.shape[1]) if merged else (cols.shape[1], cols.shape[2])
    c = rows // (kh * kw)
    if merged:
        n = length // (oh * ow) if oh * ow else 0
    else:
        n = cols.shape[0]
    fh, fw = _frame(H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    dpad = xp.zeros((n, c, fh, fw), dtype=cols.dtype)
    if oh > 0 and ow > 0:
        if merged:
            c6 = cols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
        else:
            c6 = cols.reshape(n, c, kh, kw, oh, ow)
        # Within one offset the strided slice has no repeated positions, so
        # a plain += on the view is an exact scatter.
        for i, j, rs, cs in _offsets(kh, kw, sh, sw, dh, dw, oh, ow):
            dpad[:, :, rs, cs] += c6[:, :, i, j]
    return xp.ascontiguousarray(dpad[:, :, ph:ph + H, pw:pw + W])


def conv_forward(xp, w, x, bias, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """A convolution's output y (N, O, oh*ow) (+ bias (O,) when given): w (O,
    C*kh*kw) times the columns of each sample of x (N, C, H, W)."""
    cols = im2col(xp, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, merged=True)
    return panel_matmul(xp, w, cols, x.shape[0], oh * ow, False, True, bias)


def input_columns(xp, a, dy):
    """a @ dy[s] for every sample s, merged: (M, N*L) for a (M, O) and
    dy (N, O, L); one long product, which splits well over BLAS threads."""
    n, o, length = dy.shape
    return xp.matmul(a, xp.ascontiguousarray(dy.transpose(1, 0, 2)).reshape(o, n * length))


def conv_input_grad(xp, a, dy, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """A convolution's input gradient dx (N, C, H, W): col2im of a @ dy[s]
    for every sample s, where a (C*kh*kw, O) is the transposed weight and
    dy (N, O, oh*ow) the output gradient."""
    return col2im(xp, input_columns(xp, a, dy), H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                  merged=True)


def conv_bias_grad(xp, dy):
    """A convolution's bias gradient: dy (N, O, L) summed over samples and
    positions -> (O,), in dy's dtype."""
    return dy.sum(axis=(0, 2))


# ---------------------------------------------------------------- max pooling

def _first_valid(xp, start, step):
    """For an array of window starts: the first window position
    start + k*step (k >= 0) that is not in the leading padding."""
    behind = xp.maximum(-start, 0)
    return start + ((behind + step - 1) // step) * step


def max_pool2d_forward(xp, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Max pooling: x (N, C, H, W) -> (y, indices), both (N, C, oh, ow).

    Padding acts as -inf. indices (int64) hold the flat position h*W + w of
    the maximum inside its (H, W) plane. Ties keep the first maximum in
    row-major window order; NaN propagates (as in PyTorch, a NaN replaces
    the running maximum). A window that holds no image element (dilation
    can skip a thin image) gives -inf and an index outside the plane.
    """
    n, c, h, w = x.shape
    fh, fw = _frame(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    xpad = _padded(xp, x, ph, pw, fh, fw, _lowest(xp, x.dtype))
    hstart = xp.arange(oh, dtype=xp.int64) * sh - ph
    wstart = xp.arange(ow, dtype=xp.int64) * sw - pw
    # Until something beats -inf the index points at the window's first
    # position past the leading padding, as PyTorch does.
    best_idx = (_first_valid(xp, hstart, dh)[:, None] * w
                + _first_valid(xp, wstart, dw)[None, :])
    y = xp.full((n, c, oh, ow), _lowest(xp, x.dtype), dtype=x.dtype)
    idx = xp.broadcast_to(best_idx, (n, c, oh, ow)).copy()
    if y.size == 0:
        return y, idx
    for i, j, rs, cs in _offsets(kh, kw, sh, sw, dh, dw, oh, ow):
        v = xpad[:, :, rs, cs]
        take = v > y
        if _is_float(x.dtype):
            take |= xp.isnan(v)
        flat = (hstart + i * dh)[:, None] * w + (wstart + j * dw)[None, :]
        y = xp.where(take, v, y)
        idx = xp.where(take, flat, idx)
    return y, idx


def max_pool2d_backward(xp, dy, indices, H, W, window=None):
    """Route dy (N, C, oh, ow) to the argmax positions: -> dx (N, C, H, W).

    `indices` are those of max_pool2d_forward. Positions chosen by several
    windows receive the sum of their gradients. Indices outside the plane
    (a window that holds no image element, possible with dilation; its
    output is the constant -inf) pass no gradient.
    `window`, when given, is the pooling geometry (kh, kw, sh, sw, ph, pw,
    dh, dw, oh, ow) of the forward that made `indices`, which a kernel may
    use to gather instead of scatter; the result does not depend on it.
    """
    n, c = dy.shape[:2]
    indices = indices.astype(xp.int64, copy=False)
    inside = (indices >= 0) & (indices < H * W)
    planes = xp.arange(n * c, dtype=xp.int64).reshape(n, c, 1, 1) * (H * W)
    target = xp.where(inside, indices + planes, 0).ravel()
    weights = xp.where(inside, dy, 0).ravel()
    # bincount sums duplicate targets (in float64) without a Python loop.
    dx = xp.bincount(target, weights=weights, minlength=n * c * H * W)
    return dx.astype(dy.dtype, copy=False).reshape(n, c, H, W)


# ---------------------------------------------------------------- avg pooling

def pool_bounds(xp, n_out, size, k, s, p, count_include_pad):
    """Windows of 1-d average pooling along one axis, PyTorch's convention.

    Returns (start, end, count) int64 arrays of length n_out: the window
    clipped to the image is [start, end); `count` is this axis' factor of
    the divisor (the padded extent when count_include_pad, else end - start).
    """
    lo = xp.arange(n_out, dtype=xp.int64) * s - p
    hi = xp.minimum(lo + k, size + p)
    start, end = xp.maximum(lo, 0), xp.minimum(hi, size)
    count = hi - lo if count_include_pad else end - start
    return start, end, count


def _avg_divisor(xp, dtype, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """(oh, ow) divisors of average pooling (they factor over the two axes)."""
    rcount = pool_bounds(xp, oh, H, kh, sh, ph, count_include_pad)[2]
    ccount = pool_bounds(xp, ow, W, kw, sw, pw, count_include_pad)[2]
    return (rcount[:, None] * ccount[None, :]).astype(_float_dtype(xp, dtype))


def avg_pool2d_forward(xp, x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """Average pooling: x (N, C, H, W) -> y (N, C, oh, ow).

    Padding is zero. Divisor as in PyTorch: the window extent clipped to the
    padded image when count_include_pad, else the in-image element count.
    """
    n, c, h, w = x.shape
    fh, fw = _frame(h, w, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow)
    xpad = _padded(xp, x, ph, pw, fh, fw, 0)
    total = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    if total.size:
        for _, _, rs, cs in _offsets(kh, kw, sh, sw, 1, 1, oh, ow):
            total += xpad[:, :, rs, cs]
    div = _avg_divisor(xp, x.dtype, h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad)
    return total / div


def avg_pool2d_backward(xp, dy, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """Gradient of avg_pool2d_forward: dy (N, C, oh, ow) -> dx (N, C, H, W)."""
    n, c = dy.shape[:2]
    div = _avg_divisor(xp, dy.dtype, H, W, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad)
    g = dy / div
    fh, fw = _frame(H, W, kh, kw, sh, sw, ph, pw, 1, 1, oh, ow)
    dpad = xp.zeros((n, c, fh, fw), dtype=g.dtype)
    if g.size:
        for _, _, rs, cs in _offsets(kh, kw, sh, sw, 1, 1, oh, ow):
            dpad[:, :, rs, cs] += g
    return xp.ascontiguousarray(dpad[:, :, ph:ph + H, pw:pw + W])


# ---------------------------------------------------------------- adaptive avg

def adaptive_bounds(xp, n_out, size):
    """PyTorch's adaptive windows along one axis: int64 (start, end) arrays,
    start = floor(i*size/n_out), end = ceil((i+1)*size/n_out)."""
    i = xp.arange(n_out, dtype=xp.int64)
    return (i * size) // n_out, ((i + 1) * size + n_out - 1) // n_out


def _adaptive_matrix(xp, n_out, size, dtype):
    """(n_out, size) matrix averaging each adaptive window: row i holds
    1/len on the window of output i, zero elsewhere."""
    start, end = adaptive_bounds(xp, n_out, size)
    pos = xp.arange(size, dtype=xp.int64)[None, :]
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return inside.astype(dtype) / (end - start).astype(dtype)[:, None]


def adaptive_avg_pool2d_forward(xp, x, oh, ow):
    """Adaptive average pooling: x (N, C, H, W) -> y (N, C, oh, ow).

    The windows factor over the axes, so y = A_h @ x @ A_w^T with the
    averaging matrices of _adaptive_matrix.
    """
    dtype = _float_dtype(xp, x.dtype)
    ah = _adaptive_matrix(xp, oh, x.shape[2], dtype)
    aw = _adaptive_matrix(xp, ow, x.shape[3], dtype)
    return xp.matmul(xp.matmul(ah, x.astype(dtype, copy=False)), aw.T)


def adaptive_avg_pool2d_backward(xp, dy, H, W):
    """Gradient of adaptive_avg_pool2d_forward: dy (N, C, oh, ow) -> dx (N, C, H, W)."""
    dtype = _float_dtype(xp, dy.dtype)
    ah = _adaptive_matrix(xp, dy.shape[2], H, dtype)
    aw = _adaptive_matrix(xp, dy.shape[3], W, dtype)
    return xp.ascontiguousarray(xp.matmul(xp.matmul(ah.T, dy.astype(dtype, copy=False)), aw))

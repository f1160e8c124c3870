"""Compiled loops of the feature families (Numba): one pass over a lesion's voxels where NumPy needs one call per
direction or offset, each with a fixed cost that dominates on lesion-sized arrays.

Functions are compiled on first use and cached on disk (Numba's ``cache=True``: ``NUMBA_CACHE_DIR``, else the
package's ``__pycache__``, else the user's cache directory). Where none of these is writable they are compiled
once per process instead (about 1 s each time).

The texture loops read grey levels from the flat, zero-padded array of :class:`sonimage.features.texture.Levels`:
a neighbour of a ROI voxel at a flat step within the margin is always inside the array, and 0 outside the ROI.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np


def jit(fn: Callable | None = None, **options) -> Callable:
    """``numba.njit`` (with ``options``) with an on-disk cache, without it where no cache location is writable."""
    if fn is None:
        return lambda f: jit(f, **options)
    try:
        return numba.njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, **options)(fn)


@jit
def pair_counts(flat: np.ndarray, voxels: np.ndarray, rank: np.ndarray, steps: np.ndarray, n_present: int
                ) -> np.ndarray:
    """One-way co-occurrence counts (k × P × P, float): per flat step, pairs (voxel, voxel + step) of ROI voxels,
    rows and columns the ranks of their grey levels."""
    out = np.zeros((steps.size, n_present, n_present))
    for v in voxels:
        row = rank[flat[v]]
        for d in range(steps.size):
            neighbour = flat[v + steps[d]]
            if neighbour > 0:
                out[d, row, rank[neighbour]] += 1.0
    return out


@jit
def run_counts(flat: np.ndarray, voxels: np.ndarray, rank: np.ndarray, steps: np.ndarray, n_present: int,
               longest: int) -> np.ndarray:
    """Run-length counts (k × P × ``longest``, float): per positive flat step, the runs of equal grey level among
    ``voxels`` (ascending; with each voxel, the ones a step back of its level), by level rank and length − 1.

    Voxels are visited in ascending order, so the voxel a step back already holds the length of the run so far;
    a run is counted at its last voxel (the voxel a step ahead holds another level), without branches to
    mispredict."""
    out = np.zeros((steps.size, n_present, longest))
    length = np.empty(flat.size, dtype=np.int32)  # read only where the voxel a step back holds the same level
    for d in range(steps.size):
        step = steps[d]
        for v in voxels:
            level = flat[v]
            run = (flat[v - step] == level) * length[v - step] + 1
            length[v] = run
            out[d, rank[level], run - 1] += flat[v + step] != level
    return out


@jit
def neighbour_sums(flat: np.ndarray, voxels: np.ndarray, steps: np.ndarray, alpha: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel over its neighbours at ``steps``: how many lie in the ROI, the sum of their grey levels, and
    1 + how many of them differ from the voxel's level by at most ``alpha`` (NGLDM's dependence count)."""
    n = voxels.size
    count = np.zeros(n, dtype=np.int64)
    total = np.zeros(n)
    dependence = np.ones(n, dtype=np.int64)
    for i in range(n):
        v = voxels[i]
        level = flat[v]
        inside, dependent, levels = 0, 1, 0
        for step in steps:
            neighbour = flat[v + step]
            if neighbour > 0:
                inside += 1
                levels += neighbour
                if abs(neighbour - level) <= alpha:
                    dependent += 1
        count[i], total[i], dependence[i] = inside, levels, dependent
    return count, total, dependence


@jit
def cube_configurations(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes configurations of the 2 × 2 × 2 cubes of the boolean ``mask`` padded by one 0 voxel on every
    side: per configuration (256; bit ``4 dz + 2 dy + dx`` is corner (dz, dy, dx)) the number of cubes with a
    surface (neither all 0 nor all 1) and the sum of their corner indices (z, y, x) in the padded grid."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2, mask.shape[2] + 2), dtype=np.int64)
    padded[1:-1, 1:-1, 1:-1] = mask
    counts = np.zeros(256, dtype=np.int64)
    corners = np.zeros((256, 3))
    nz, ny, nx = padded.shape
    for z in range(nz - 1):
        for y in range(ny - 1):
            for x in range(nx - 1):
                config = 0
                for k in range(8):
                    config |= padded[z + (k >> 2), y + ((k >> 1) & 1), x + (k & 1)] << k
                if 0 < config < 255:
                    counts[config] += 1
                    corners[config, 0] += z
                    corners[config, 1] += y
                    corners[config, 2] += x
    return counts, corners


@jit
def _strict_minima(ends: np.ndarray, keep: np.ndarray, axis: int) -> None:
    """Clear ``keep`` where an entry of ``ends`` (2 × A × B) is not strictly below every entry before it or every
    entry after it along ``axis`` (1 or 2)."""
    sides, na, nb = ends.shape
    n, lines = (na, nb) if axis == 1 else (nb, na)
    below_before = np.empty(n, dtype=np.bool_)
    for s in range(sides):
        for line in range(lines):
            low = np.inf
            for t in range(n):
                e = ends[s, t, line] if axis == 1 else ends[s, line, t]
                below_before[t] = e < low
                low = min(low, e)
            low = np.inf
            for t in range(n - 1, -1, -1):
                e = ends[s, t, line] if axis == 1 else ends[s, line, t]
                if not (below_before[t] or e < low):
                    if axis == 1:
                        keep[s, t, line] = False
                    else:
                        keep[s, line, t] = False
                low = min(low, e)


@jit
def hull_candidates(mask: np.ndarray) -> np.ndarray:
    """Points (voxel units, z y x) whose convex hull is that of the mask's marching-cubes mesh: per axis, half a
    voxel beyond both ends of every line of ROI voxels along it, where that end is strictly extreme in its plane
    along both other axes (see :func:`sonimage.features.morphology.convex_hull_measures`)."""
    shape = mask.shape
    chunks = []
    for axis in range(3):
        a_axis, b_axis = (1, 2) if axis == 0 else ((0, 2) if axis == 1 else (0, 1))
        ends = np.full((2, shape[a_axis], shape[b_axis]), np.inf)
        for z in range(shape[0]):
            for y in range(shape[1]):
                for x in range(shape[2]):
                    if mask[z, y, x]:
                        p = (z, y, x)
                        a, b, c = p[a_axis], p[b_axis], p[axis]
                        ends[0, a, b] = min(ends[0, a, b], c)
                        ends[1, a, b] = min(ends[1, a, b], -c)
        keep = np.isfinite(ends)
        _strict_minima(ends, keep, 1)
        _strict_minima(ends, keep, 2)
        points = np.empty((int(keep.sum()), 3))
        k = 0
        for s in range(2):
            for a in range(ends.shape[1]):
                for b in range(ends.shape[2]):
                    if keep[s, a, b]:
                        points[k, a_axis], points[k, b_axis] = a, b
                        points[k, axis] = abs(ends[s, a, b]) + (-0.5 if s == 0 else 0.5)
                        k += 1
        chunks.append(points)
    out = np.empty((chunks[0].shape[0] + chunks[1].shape[0] + chunks[2].shape[0], 3))
    k = 0
    for chunk in chunks:
        out[k:k + chunk.shape[0]] = chunk
        k += chunk.shape[0]
    return out


@jit
def voxel_moments(shape_mask: np.ndarray, mask: np.ndarray, image: np.ndarray, spacing: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Of the voxel centres (mm, from index 0) in ``shape_mask``: their mean and covariance (normalised by n − 1,
    as ``np.cov``); of the intensities of ``image`` inside ``mask``: the intensity-weighted mean centre (NaN when
    they sum to 0) and their sum (same-shaped 3D arrays)."""
    nz, ny, nx = shape_mask.shape
    n, centre = 0, np.zeros(3)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if shape_mask[z, y, x]:
                    n += 1
                    centre[0] += z * spacing[0]
                    centre[1] += y * spacing[1]
                    centre[2] += x * spacing[2]
    centre /= n
    cov = np.zeros((3, 3))
    d = np.empty(3)
    weighted, total = np.zeros(3), 0.0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if shape_mask[z, y, x]:
                    d[0], d[1], d[2] = z * spacing[0] - centre[0], y * spacing[1] - centre[1], x * spacing[2] - centre[2]
                    for i in range(3):
                        for j in range(i, 3):
                            cov[i, j] += d[i] * d[j]
                if mask[z, y, x]:
                    v = np.float64(image[z, y, x])
                    total += v
                    weighted[0] += z * spacing[0] * v
                    weighted[1] += y * spacing[1] * v
                    weighted[2] += x * spacing[2] * v
    for i in range(3):
        for j in range(i, 3):
            cov[i, j] /= max(n - 1, 1)
            cov[j, i] = cov[i, j]
    weighted = weighted / total if total != 0 else np.full(3, np.nan)
    return centre, cov, weighted, total


@jit
def _percentile(s: np.ndarray, q: float) -> float:
    """NumPy's default ("linear") percentile ``q`` of the sorted sample ``s``, with its interpolation rule."""
    virtual = (s.size - 1) * (q / 100.0)
    if virtual >= s.size - 1:
        return s[-1]
    below = int(np.floor(virtual))
    a, b = s[below], s[below + 1]
    gamma = virtual - below
    return b - (b - a) * (1.0 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


@jit
def sample_summary(s: np.ndarray) -> np.ndarray:
    """Of the sorted sample ``s`` (float, not empty; NumPy sorts faster than Numba): mean, the sums of the 2nd,
    3rd and 4th powers of the deviations from it, the 10th, 25th, 50th, 75th and 90th percentiles (NumPy's
    linear rule), minimum, maximum, the mean absolute deviations from the mean and from the median, the robust
    one (voxels within [p10, p90], about their own mean; NaN when none) and the sum of squares."""
    n = s.size
    mean = s.sum() / n
    m2 = m3 = m4 = mad = energy = 0.0
    for v in s:
        d = v - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        mad += abs(d)
        energy += v * v
    p10, p25, p50, p75, p90 = (_percentile(s, 10.0), _percentile(s, 25.0), _percentile(s, 50.0),
                               _percentile(s, 75.0), _percentile(s, 90.0))
    lo, hi = np.searchsorted(s, p10, "left"), np.searchsorted(s, p90, "right")
    rmad = np.nan
    if hi > lo:
        robust_mean = s[lo:hi].sum() / (hi - lo)
        rmad = 0.0
        for v in s[lo:hi]:
            rmad += abs(v - robust_mean)
        rmad /= hi - lo
    medad = 0.0
    for v in s:
        medad += abs(v - p50)
    return np.array([mean, m2, m3, m4, p10, p25, p50, p75, p90, s[0], s[-1], mad / n, rmad, medad / n, energy])


@jit
def mask_box(mask: np.ndarray) -> np.ndarray:
    """Voxel count and bounding box of the 3D boolean ``mask``: (n, z0, z1, y0, y1, x0, x1), ends exclusive
    (all 0 for an empty mask). Each row is counted by a branch-free sum; only rows holding voxels are searched for
    their first and last one."""
    out = np.zeros(7, dtype=np.int64)
    nz, ny, nx = mask.shape
    lo = np.array([nz, ny, nx])
    hi = np.full(3, -1)
    for z in range(nz):
        for y in range(ny):
            row = mask[z, y]
            count = 0
            for x in range(nx):
                count += row[x]
            if count:
                out[0] += count
                first, last = 0, nx - 1
                while not row[first]:
                    first += 1
                while not row[last]:
                    last -= 1
                lo[0], hi[0] = min(lo[0], z), max(hi[0], z)
                lo[1], hi[1] = min(lo[1], y), max(hi[1], y)
                lo[2], hi[2] = min(lo[2], first), max(hi[2], last)
    if out[0]:
        for axis in range(3):
            out[1 + 2 * axis], out[2 + 2 * axis] = lo[axis], hi[axis] + 1
    return out


@jit
def binned_levels(image: np.ndarray, mask: np.ndarray, lower: float, width: float, margin: int
                  ) -> tuple[np.ndarray, int, int, int]:
    """Fixed-bin-size grey levels ``floor((x - lower) / width) + 1`` of the voxels inside ``mask`` (3D, the shape
    of ``image``) in an int64 array padded by ``margin`` zero voxels per side (0 outside the mask), with the lowest
    and highest level and the number of non-finite intensities inside the mask (their levels are undefined)."""
    nz, ny, nx = mask.shape
    out = np.zeros((nz + 2 * margin, ny + 2 * margin, nx + 2 * margin), dtype=np.int64)
    lowest, highest, bad = np.iinfo(np.int64).max, np.iinfo(np.int64).min, 0
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    value = np.float64(image[z, y, x])
                    if not np.isfinite(value):
                        bad += 1
                        continue
                    level = np.int64(np.floor((value - lower) / width) + 1.0)
                    out[z + margin, y + margin, x + margin] = level
                    lowest, highest = min(lowest, level), max(highest, level)
    return out, lowest, highest, bad


@jit
def count_nonfinite(image: np.ndarray, mask: np.ndarray) -> int:
    """Voxels inside ``mask`` whose intensity in ``image`` (same shape, 3D) is NaN or infinite."""
    bad = 0
    nz, ny, nx = mask.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x] and not np.isfinite(image[z, y, x]):
                    bad += 1
    return bad


def bounding_box(mask: np.ndarray, margin: tuple[int, int, int] = (0, 0, 0), box: np.ndarray | None = None
                 ) -> tuple[slice, ...] | None:
    """Slices of the 3D ``mask``'s bounding box widened by ``margin`` voxels per axis (clipped to the array),
    None for an empty mask; ``box``: the mask's :func:`mask_box` when known."""
    count, *bounds = mask_box(mask) if box is None else box
    if count == 0:
        return None
    return tuple(slice(max(int(bounds[2 * a]) - m, 0), min(int(bounds[2 * a + 1]) + m, n))
                 for a, (m, n) in enumerate(zip(margin, mask.shape)))


@jit
def _entropy(p: np.ndarray) -> float:
    """Shannon entropy (bits) of the probabilities ``p``; zeros add nothing."""
    h = 0.0
    for v in p:
        if v > 0:
            h -= v * np.log2(v)
    return h


@jit(error_model="numpy")
def glcm_values(counts: np.ndarray, grey: np.ndarray, ng: float) -> tuple[np.ndarray, np.ndarray]:
    """The 25 IBSI GLCM features (in the order of :data:`sonimage.features.glcm.TABLE`) of each one-way
    co-occurrence matrix of ``counts`` (k × P × P), symmetrised here; rows and columns are the integer grey
    levels ``grey``; ``ng`` the number of grey levels of the discretisation. Also which matrices are empty
    (their row is NaN). Undefined ratios are NaN or infinite, as in NumPy."""
    k, n = counts.shape[0], grey.size
    g = grey.astype(np.float64)
    low, high = grey.min(), grey.max()
    out = np.full((k, 25), np.nan)
    empty = np.zeros(k, dtype=np.bool_)
    p = np.empty((n, n))
    px = np.empty(n)
    p_diff = np.empty(high - low + 1)
    p_sum = np.empty(2 * high + 1)
    for m in range(k):
        c = counts[m]
        total = 2.0 * c.sum()
        if total == 0:
            empty[m] = True
            continue
        p_diff[:] = 0.0
        p_sum[:] = 0.0
        peak = energy = autocorrelation = 0.0
        for i in range(n):
            row = 0.0
            for j in range(n):
                v = (c[i, j] + c[j, i]) / total
                p[i, j] = v
                row += v
                peak = max(peak, v)
                energy += v * v
                autocorrelation += g[i] * g[j] * v
                p_diff[abs(grey[i] - grey[j])] += v
                p_sum[grey[i] + grey[j]] += v
            px[i] = row
        mu = 0.0
        for i in range(n):
            mu += px[i] * g[i]
        variance = 0.0
        for i in range(n):
            variance += (g[i] - mu) ** 2 * px[i]
        hxy, hx = _entropy(p.ravel()), _entropy(px)
        mu_diff = contrast = inverse = inverse_norm = moment = moment_norm = inverse_variance = 0.0
        for d in range(p_diff.size):
            q = p_diff[d]
            mu_diff += d * q
            contrast += d * d * q
            inverse += q / (1.0 + d)
            inverse_norm += q / (1.0 + d / ng)
            moment += q / (1.0 + d * d)
            moment_norm += q / (1.0 + d * d / ng**2)
            if d > 0:
                inverse_variance += q / (d * d)
        var_diff = 0.0
        for d in range(p_diff.size):
            var_diff += (d - mu_diff) ** 2 * p_diff[d]
        mu_sum = 0.0
        for t in range(p_sum.size):
            mu_sum += t * p_sum[t]
        var_sum = tendency = shade = prominence = 0.0
        for t in range(p_sum.size):
            q = p_sum[t]
            var_sum += (t - mu_sum) ** 2 * q
            cluster = t - 2 * mu
            tendency += cluster**2 * q
            shade += cluster**3 * q
            prominence += cluster**4 * q
        out[m, 0], out[m, 1], out[m, 2], out[m, 3] = peak, mu, variance, hxy
        out[m, 4], out[m, 5], out[m, 6] = mu_diff, var_diff, _entropy(p_diff)
        out[m, 7], out[m, 8], out[m, 9] = mu_sum, var_sum, _entropy(p_sum)
        out[m, 10], out[m, 11], out[m, 12] = energy, contrast, mu_diff
        out[m, 13], out[m, 14], out[m, 15], out[m, 16] = inverse, inverse_norm, moment, moment_norm
        out[m, 17] = inverse_variance
        out[m, 18] = (autocorrelation - mu**2) / variance
        out[m, 19], out[m, 20], out[m, 21], out[m, 22] = autocorrelation, tendency, shade, prominence
        out[m, 23] = (hxy - 2 * hx) / hx
        out[m, 24] = np.sqrt(1 - np.exp(-2 * (2 * hx - hxy))) if 2 * hx >= hxy else np.nan
    return out, empty


@jit(error_model="numpy")
def _marginal(sums: np.ndarray, values: np.ndarray, total: float) -> tuple[float, float, float, float]:
    """Of a marginal of an emphasis matrix (``sums`` at positive ``values``, over ``total``): the mean of 1/v²,
    the mean of v², the uniformity (sum of squared probabilities) and the variance of v."""
    inverse = square = uniformity = mean = 0.0
    for t in range(sums.size):
        q = sums[t] / total
        v2 = values[t] ** 2
        inverse += q / v2
        square += q * v2
        uniformity += q * q
        mean += q * values[t]
    variance = 0.0
    for t in range(sums.size):
        variance += (values[t] - mean) ** 2 * sums[t] / total
    return inverse, square, uniformity, variance


@jit(error_model="numpy")
def emphasis_values(stack: np.ndarray, grey: np.ndarray, columns: np.ndarray, n_voxels: np.ndarray) -> np.ndarray:
    """The 17 values GLRLM, GLSZM, GLDZM and NGLDM share (in the order of
    :data:`sonimage.features.texture.EMPHASIS_KINDS`) of each counts matrix of ``stack`` (k × rows × columns):
    rows are grey levels ``grey``, columns the positive values ``columns`` (run length, zone size, distance or
    dependence count), ``n_voxels`` the voxel count of each matrix. An empty matrix gives NaN."""
    k, nr, nc = stack.shape
    i2, j2 = grey**2, columns**2
    out = np.empty((k, 17))
    rows, cols = np.empty(nr), np.empty(nc)
    for m in range(k):
        a = stack[m]
        rows[:] = 0.0
        cols[:] = 0.0
        for r in range(nr):
            for c in range(nc):
                rows[r] += a[r, c]
                cols[c] += a[r, c]
        total = rows.sum()
        small_low = small_high = large_low = large_high = entropy = energy = 0.0
        for r in range(nr):
            for c in range(nc):
                p = a[r, c] / total
                if p > 0:
                    small_low += p / (i2[r] * j2[c])
                    small_high += p * i2[r] / j2[c]
                    large_low += p * j2[c] / i2[r]
                    large_high += p * i2[r] * j2[c]
                    entropy -= p * np.log2(p)
                    energy += p * p
        small, large, column_uniformity, column_variance = _marginal(cols, columns, total)
        low, high, level_uniformity, level_variance = _marginal(rows, grey, total)
        values = (small, large, low, high, small_low, small_high, large_low, large_high,
                  level_uniformity * total, level_uniformity, column_uniformity * total, column_uniformity,
                  total / n_voxels[m], level_variance, column_variance, entropy, energy)
        for t in range(17):
            out[m, t] = values[t]
        if total == 0:
            out[m] = np.nan
    return out


@jit
def dense_unique(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The distinct values of the integers ``x`` (1-D, not empty), ascending, and the position of each entry among
    them, by counting (``np.unique(x, return_inverse=True)`` without sorting); False (and empty arrays) where a
    value is negative or above 4 × the size + 1024, for which counting does not pay."""
    top = x[0]
    for v in x:
        if v < 0 or v > 4 * x.size + 1024:
            return np.empty(0, dtype=x.dtype), np.empty(0, dtype=np.int64), False
        top = max(top, v)
    position = np.zeros(top + 1, dtype=np.int64)
    for v in x:
        position[v] = 1
    n = 0
    for v in range(top + 1):
        if position[v]:
            position[v] = n
            n += 1
        else:
            position[v] = -1
    present = np.empty(n, dtype=x.dtype)
    for v in range(top + 1):
        if position[v] >= 0:
            present[position[v]] = v
    inverse = np.empty(x.size, dtype=np.int64)
    for i in range(x.size):
        inverse[i] = position[x[i]]
    return present, inverse, True


@jit
def _root(parent: np.ndarray, v: int) -> int:
    """Root of ``v`` in the union-find forest ``parent``, halving the path on the way."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@jit
def zones(flat: np.ndarray, voxels: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, int]:
    """Zones of the ROI voxels ``voxels`` (ascending): groups of equal grey level joined through neighbours at
    ``steps`` and their negatives (``steps`` positive), by union-find over each voxel's neighbours a step back
    (Tarjan 1975, J ACM 22:215). The zone (0..n-1, numbered in the order of each zone's first voxel) of each
    voxel, and n."""
    parent = np.empty(flat.size, dtype=np.int64)  # read only at ROI voxels, each set before
    for v in voxels:
        parent[v] = v
        level = flat[v]
        for step in steps:
            w = v - step
            if flat[w] == level:
                a, b = _root(parent, v), _root(parent, w)
                if a != b:  # the smaller index becomes the root
                    parent[max(a, b)] = min(a, b)
    label = np.empty(flat.size, dtype=np.int64)
    out = np.empty(voxels.size, dtype=np.int64)
    n = 0
    for i in range(voxels.size):
        root = _root(parent, voxels[i])
        if root == voxels[i]:
            label[root] = n
            n += 1
        out[i] = label[root]
    return out, n


@jit
def spectral_pair_sums(spectra: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """Parseval sums over the grid, in double precision, of ``weights`` times M·conj(M), A·conj(A) and
    Re(M·conj(B)) for the spectra M, A, B = ``spectra[0]``, ``[1]``, ``[2]`` (same shape as ``weights``)."""
    m, a, b = spectra[0].ravel(), spectra[1].ravel(), spectra[2].ravel()
    w = weights.ravel()
    mm = aa = mb = 0.0
    for i in range(w.size):
        wi = np.float64(w[i])
        mr, mi = np.float64(m[i].real), np.float64(m[i].imag)
        ar, ai = np.float64(a[i].real), np.float64(a[i].imag)
        mm += wi * (mr * mr + mi * mi)
        aa += wi * (ar * ar + ai * ai)
        mb += wi * (mr * np.float64(b[i].real) + mi * np.float64(b[i].imag))
    return mm, aa, mb


@jit
def _side(points: np.ndarray, normal: np.ndarray, offset: np.ndarray, face: int, q: int) -> float:
    """Signed distance (times |normal|) of point ``q`` above plane ``face``: exact on integer coordinates."""
    return (normal[face, 0] * points[q, 0] + normal[face, 1] * points[q, 1] + normal[face, 2] * points[q, 2]
            - offset[face])


@jit
def _set_plane(points: np.ndarray, vertices: np.ndarray, normal: np.ndarray, offset: np.ndarray, face: int) -> None:
    """The plane of triangle ``face``: normal (b − a) × (c − a) (outward for counter-clockwise vertices seen from
    outside) and offset normal · a."""
    a, b, c = vertices[face, 0], vertices[face, 1], vertices[face, 2]
    u0, u1, u2 = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
    w0, w1, w2 = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
    normal[face, 0], normal[face, 1], normal[face, 2] = u1 * w2 - u2 * w1, u2 * w0 - u0 * w2, u0 * w1 - u1 * w0
    offset[face] = normal[face, 0] * points[a, 0] + normal[face, 1] * points[a, 1] + normal[face, 2] * points[a, 2]


@jit
def _initial_simplex(points: np.ndarray) -> np.ndarray:
    """Four points of ``points`` spanning a tetrahedron (empty when all are coplanar): the lowest along the first
    axis, the farthest from it, the farthest from their line and the farthest from their plane."""
    m = points.shape[0]
    i0 = 0
    for q in range(m):
        if points[q, 0] < points[i0, 0]:
            i0 = q
    i1, best = -1, 0.0
    for q in range(m):
        d = (points[q, 0] - points[i0, 0]) ** 2 + (points[q, 1] - points[i0, 1]) ** 2 + (points[q, 2] - points[i0, 2]) ** 2
        if d > best:
            i1, best = q, d
    if i1 < 0:
        return np.empty(0, dtype=np.int64)
    u = points[i1] - points[i0]
    i2, best = -1, 0.0
    for q in range(m):
        w = points[q] - points[i0]
        c0, c1, c2 = u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]
        d = c0 * c0 + c1 * c1 + c2 * c2
        if d > best:
            i2, best = q, d
    if i2 < 0:
        return np.empty(0, dtype=np.int64)
    w = points[i2] - points[i0]
    n0, n1, n2 = u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]
    i3, best = -1, 0.0
    for q in range(m):
        d = abs(n0 * (points[q, 0] - points[i0, 0]) + n1 * (points[q, 1] - points[i0, 1])
                + n2 * (points[q, 2] - points[i0, 2]))
        if d > best:
            i3, best = q, d
    if i3 < 0:
        return np.empty(0, dtype=np.int64)
    return np.array([i0, i1, i2, i3])


@jit
def lattice_hull(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convex hull of ``points`` (m × 3, float64 holding integers of magnitude below 2^15, so that every
    orientation test is exact) by Quickhull (Barber, Dobkin & Huhdanpaa 1996, ACM TOMS 22:469) in exact
    arithmetic: the triangles (k × 3 point indices, counter-clockwise seen from outside; coplanar faces stay
    triangulated) and whether each point is a vertex of one. No triangles when the points are coplanar.

    A point joins the hull only when strictly above a face, so every triangle has a positive area. Every extreme
    point is a vertex; so may be a point that was extreme when it joined and ends on a face or an edge."""
    m = points.shape[0]
    is_vertex = np.zeros(m, dtype=np.bool_)
    simplex = _initial_simplex(points)
    if simplex.size == 0:
        return np.empty((0, 3), dtype=np.int64), is_vertex
    cap = 2 * m + 8  # live faces of a hull of at most m vertices: at most 2m − 4; dead slots are reused
    vertices = np.empty((cap, 3), dtype=np.int64)
    neighbour = np.empty((cap, 3), dtype=np.int64)  # across edge k: (vertices[k], vertices[(k + 1) % 3])
    normal = np.empty((cap, 3))
    offset = np.empty(cap)
    alive = np.zeros(cap, dtype=np.bool_)
    head = np.full(cap, -1, dtype=np.int64)  # outside set of each face: a linked list of points
    following = np.full(m, -1, dtype=np.int64)
    visible_stamp = np.full(cap, -1, dtype=np.int64)
    hidden_stamp = np.full(cap, -1, dtype=np.int64)
    free = np.arange(cap - 1, -1, -1).astype(np.int64)  # a stack of unused slots
    n_free = cap
    by_start = np.full(m, -1, dtype=np.int64)
    by_end = np.full(m, -1, dtype=np.int64)
    pending = np.empty(4 * cap, dtype=np.int64)  # faces that may hold outside points
    n_pending = 0
    i0, i1, i2, i3 = simplex[0], simplex[1], simplex[2], simplex[3]
    tetra = np.array([[i0, i1, i2], [i0, i3, i1], [i1, i3, i2], [i2, i3, i0]])
    opposite = np.array([i3, i2, i0, i1])
    for f in range(4):
        n_free -= 1
        s = free[n_free]
        vertices[s, 0], vertices[s, 1], vertices[s, 2] = tetra[f, 0], tetra[f, 1], tetra[f, 2]
        _set_plane(points, vertices, normal, offset, s)
        if _side(points, normal, offset, s, opposite[f]) > 0:  # flip to face outward
            vertices[s, 1], vertices[s, 2] = tetra[f, 2], tetra[f, 1]
            _set_plane(points, vertices, normal, offset, s)
        alive[s] = True
    for f in range(4):
        for k in range(3):
            a, b = vertices[f, k], vertices[f, (k + 1) % 3]
            for g in range(4):
                for j in range(3):
                    if vertices[g, j] == b and vertices[g, (j + 1) % 3] == a:
                        neighbour[f, k] = g
    for q in range(m):
        if q == i0 or q == i1 or q == i2 or q == i3:
            continue
        for f in range(4):
            if _side(points, normal, offset, f, q) > 0:
                following[q], head[f] = head[f], q
                break
    for f in range(4):
        if head[f] >= 0:
            pending[n_pending] = f
            n_pending += 1
    visible = np.empty(cap, dtype=np.int64)
    horizon = np.empty((cap, 3), dtype=np.int64)  # (u, v, face beyond) per horizon edge
    created = np.empty(cap, dtype=np.int64)
    outside = np.empty(m, dtype=np.int64)
    stamp = 0
    while n_pending:
        n_pending -= 1
        f = pending[n_pending]
        if not alive[f] or head[f] < 0:
            continue
        apex, far, q = -1, 0.0, head[f]  # the outside point farthest from the face
        while q >= 0:
            d = _side(points, normal, offset, f, q)
            if d > far:
                apex, far = q, d
            q = following[q]
        stamp += 1
        visible[0], n_visible, n_horizon = f, 1, 0
        visible_stamp[f] = stamp
        t = 0
        while t < n_visible:  # the faces the apex sees, from f across edges; the horizon around them
            g = visible[t]
            t += 1
            for k in range(3):
                h = neighbour[g, k]
                if visible_stamp[h] == stamp:
                    continue
                if hidden_stamp[h] != stamp and _side(points, normal, offset, h, apex) > 0:
                    visible_stamp[h] = stamp
                    visible[n_visible] = h
                    n_visible += 1
                    continue
                hidden_stamp[h] = stamp
                horizon[n_horizon, 0], horizon[n_horizon, 1] = vertices[g, k], vertices[g, (k + 1) % 3]
                horizon[n_horizon, 2] = h
                n_horizon += 1
        n_outside = 0
        for t in range(n_visible):
            g = visible[t]
            q = head[g]
            while q >= 0:
                if q != apex:
                    outside[n_outside] = q
                    n_outside += 1
                q = following[q]
            head[g] = -1
            alive[g] = False
            free[n_free] = g
            n_free += 1
        for t in range(n_horizon):
            u, v, h = horizon[t, 0], horizon[t, 1], horizon[t, 2]
            n_free -= 1
            s = free[n_free]
            vertices[s, 0], vertices[s, 1], vertices[s, 2] = u, v, apex
            _set_plane(points, vertices, normal, offset, s)
            alive[s] = True
            neighbour[s, 0] = h
            for j in range(3):
                if vertices[h, j] == v and vertices[h, (j + 1) % 3] == u:
                    neighbour[h, j] = s
            by_start[u], by_end[v] = s, s
            created[t] = s
        for t in range(n_horizon):
            s = created[t]
            neighbour[s, 1] = by_start[vertices[s, 1]]  # edge (v, apex): the new face starting at v
            neighbour[s, 2] = by_end[vertices[s, 0]]  # edge (apex, u): the new face ending at u
        for t in range(n_outside):
            q = outside[t]
            for j in range(n_horizon):
                s = created[j]
                if _side(points, normal, offset, s, q) > 0:
                    following[q], head[s] = head[s], q
                    break
        if n_pending + n_horizon > pending.size:  # drop faces that died or have no outside points
            live = 0
            for t in range(n_pending):
                if alive[pending[t]] and head[pending[t]] >= 0:
                    pending[live] = pending[t]
                    live += 1
            n_pending = live
        for t in range(n_horizon):
            s = created[t]
            if head[s] >= 0:
                pending[n_pending] = s
                n_pending += 1
    n_faces = 0
    for f in range(cap):
        n_faces += alive[f]
    out = np.empty((n_faces, 3), dtype=np.int64)
    k = 0
    for f in range(cap):
        if alive[f]:
            for j in range(3):
                out[k, j] = vertices[f, j]
                is_vertex[vertices[f, j]] = True
            k += 1
    return out, is_vertex


@jit
def hull_measures(points: np.ndarray, triangles: np.ndarray, is_vertex: np.ndarray, scale: np.ndarray
                  ) -> tuple[float, float, float]:
    """Volume, surface area and largest vertex-to-vertex distance of the hull :func:`lattice_hull` found, with
    every point coordinate multiplied by ``scale`` (per axis)."""
    sz, sy, sx = scale[0], scale[1], scale[2]
    r = triangles[0, 0]
    volume = area = 0.0
    for f in range(triangles.shape[0]):
        a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
        u0, u1, u2 = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
        w0, w1, w2 = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
        n0, n1, n2 = u1 * w2 - u2 * w1, u2 * w0 - u0 * w2, u0 * w1 - u1 * w0
        volume += (n0 * (points[a, 0] - points[r, 0]) + n1 * (points[a, 1] - points[r, 1])
                   + n2 * (points[a, 2] - points[r, 2]))
        # the cross product of the scaled edges is (sy sx n0, sz sx n1, sz sy n2)
        area += np.sqrt((sy * sx * n0) ** 2 + (sz * sx * n1) ** 2 + (sz * sy * n2) ** 2)
    chosen = np.flatnonzero(is_vertex)
    at = np.empty((chosen.size, 3))
    for i in range(chosen.size):
        for k in range(3):
            at[i, k] = points[chosen[i], k] * scale[k]
    widest = 0.0
    for i in range(chosen.size):
        for j in range(i + 1, chosen.size):
            d = (at[i, 0] - at[j, 0]) ** 2 + (at[i, 1] - at[j, 1]) ** 2 + (at[i, 2] - at[j, 2]) ** 2
            widest = max(widest, d)
    return abs(volume) / 6.0 * sz * sy * sx, area / 2.0, np.sqrt(widest)

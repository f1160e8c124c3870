"""What every IBSI-2 filter shares: boundary conditions, separable convolution, rotations and pooling.

Arrays are numpy-ordered (z, y, x); a 2D filter works in the axial plane, slice by slice (axes 1, 2). Letters
and orders given per axis in IBSI 2 (Laws kernels, wavelet sets, Riesz orders) are in x, y, z order.
Reference: Depeursinge, Andrearczyk, Whybra et al., "Standardised convolutional filtering for radiomics",
IBSI 2 reference manual, arXiv:2006.05470, sections 2.2 (boundary conditions) and 2.3 (rotation invariance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

# IBSI 2 boundary condition -> scipy.ndimage mode / numpy.pad mode. IBSI's "mirror" is the symmetric extension
# that repeats the edge voxel (d c b a | a b c d), scipy's "reflect" and numpy's "symmetric".
NDIMAGE_MODES = {"zero": "constant", "nearest": "nearest", "periodic": "wrap", "mirror": "reflect"}
PAD_MODES = {"zero": "constant", "nearest": "edge", "periodic": "wrap", "mirror": "symmetric"}
POOLING = {"max": np.maximum, "min": np.minimum, "average": np.add, "mean": np.add, "sum": np.add}
DIMS = ("3D", "2D")
WHOLE = 1 << 30  # a reach that takes in the whole image


def check(boundary: str, dims: str) -> None:
    """Raise ValueError for an unknown boundary condition or dimensionality."""
    if boundary not in NDIMAGE_MODES:
        raise ValueError(f"unknown boundary condition {boundary!r}; choose from {', '.join(NDIMAGE_MODES)}")
    if dims not in DIMS:
        raise ValueError(f"dims must be '3D' or '2D', got {dims!r}")


def filter_axes(dims: str) -> tuple[int, ...]:
    """The numpy axes a filter of ``dims`` works along, in x, y(, z) order."""
    return (2, 1) if dims == "2D" else (2, 1, 0)


def pad(image: np.ndarray, width: Sequence[int], boundary: str) -> np.ndarray:
    """``image`` extended by ``width[i]`` voxels on both sides of axis i by the boundary condition."""
    return np.pad(image, [(w, w) for w in width], mode=PAD_MODES[boundary])


def unpad(image: np.ndarray, width: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`pad`."""
    return image[tuple(slice(w, image.shape[i] - w) for i, w in enumerate(width))]


def separable(image: np.ndarray, kernels: dict[int, np.ndarray], boundary: str) -> np.ndarray:
    """Convolution with a separable kernel: the 1-D ``kernels[axis]`` along each axis in turn.

    A kernel of even length N is centred on element N // 2 (scipy's convention)."""
    out = np.asarray(image, dtype=np.float64)
    for axis, k in kernels.items():
        out = ndimage.convolve1d(out, np.asarray(k, dtype=np.float64), axis=axis, mode=NDIMAGE_MODES[boundary],
                                 cval=0.0)
    return out


def _rot3d() -> list[list[tuple[tuple[int, int], int]]]:
    """The 24 right-angle rotations of a volume, each as a sequence of ``np.rot90`` (axes, k) steps: the six
    directions axis 0 can take, times four turns about it."""
    faces = [[], [((0, 2), 1)], [((0, 2), 2)], [((0, 2), 3)], [((0, 1), 1)], [((0, 1), 3)]]
    return [face + [((1, 2), k)] for face in faces for k in range(4)]


ROTATIONS = {"3D": _rot3d(), "2D": [[((1, 2), k)] for k in range(4)]}


def _turn(image: np.ndarray, steps: list[tuple[tuple[int, int], int]], inverse: bool) -> np.ndarray:
    for axes, k in (reversed(steps) if inverse else steps):
        image = np.rot90(image, -k if inverse else k, axes)
    return image


def rotation_pooled(image: np.ndarray, response: Callable[[np.ndarray], np.ndarray], dims: str,
                    pooling: str) -> np.ndarray:
    """Rotation-invariant response: ``response`` of the image under each right-angle rotation IBSI 2 defines
    (24 in 3D, 4 in-plane in 2D), rotated back and pooled voxel-wise (max, min, average or sum).

    Turning the image and filtering it is the same as filtering with the turned kernel about the same voxel."""
    if pooling not in POOLING:
        raise ValueError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING)}")
    out = None
    steps = ROTATIONS[dims]
    for s in steps:
        r = np.ascontiguousarray(_turn(response(np.ascontiguousarray(_turn(image, s, False))), s, True))
        out = r if out is None else POOLING[pooling](out, r)
    return out / len(steps) if pooling in ("average", "mean") else out


def energy(response: np.ndarray, distance: int, dims: str, boundary: str) -> np.ndarray:
    """Local energy: the mean absolute response over a (2 * distance + 1)-voxel cube (square in 2D)."""
    size = [2 * distance + 1] * 3
    if dims == "2D":
        size[0] = 1
    return ndimage.uniform_filter(np.abs(response), size=size, mode=NDIMAGE_MODES[boundary])


def frequency_grid(shape: Sequence[int], axes: Sequence[int]) -> list[np.ndarray]:
    """Angular frequencies for ``axes`` of an array of ``shape`` (broadcastable, in ``axes`` order), in FFT order.

    Sampled as IBSI 2's reference implementation does: N points spread evenly over [-pi, pi] from the array's
    centre (N - 1) / 2, which reproduces its Simoncelli and Riesz response maps (the DFT's own grid, k 2 pi / N,
    is off by up to 8 % of the map's range at level 3)."""
    grids = []
    for a in axes:
        n = shape[a]
        c = (n - 1) / 2 if n > 1 else 1.0
        view = [1] * len(shape)
        view[a] = n
        grids.append((np.pi * np.fft.ifftshift((np.arange(n) - c) / c)).reshape(view))
    return grids


def fourier_filter(image: np.ndarray, transfer: Callable[[list[np.ndarray]], np.ndarray], dims: str,
                   boundary: str, margin: int) -> np.ndarray:
    """Real part of the inverse FFT of ``transfer(frequencies) * FFT(image)`` along the filter's axes.

    The FFT is periodic; any other boundary condition pads the image by ``margin`` voxels first."""
    axes = filter_axes(dims)
    width = [margin if a in axes and boundary != "periodic" else 0 for a in range(3)]
    padded = pad(np.asarray(image, dtype=np.float64), width, boundary)
    spectrum = np.fft.fftn(padded, axes=axes)
    out = np.fft.ifftn(spectrum * transfer(frequency_grid(padded.shape, axes)), axes=axes).real
    return unpad(out, width)

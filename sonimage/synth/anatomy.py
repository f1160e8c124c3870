"""A deterministic whole-body phantom scaled by height and weight, and lesion placement inside it.

Coordinates are DICOM patient coordinates (LPS, mm): x towards the patient's left, y posterior, z superior.
The *body frame* puts the vertex at z = 0 (the body extends to negative z) and the body axis at x = y = 0;
a scan sees the body shifted by the patient's position on the table (see :class:`Grid`). Shapes are
analytic, so the phantom and the lesion centres do not depend on the grid they are sampled on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from enum import IntEnum

import numpy as np

from sonimage.features.kernels import jit


class Tissue(IntEnum):
    """Label values of the phantom."""

    AIR = 0
    FAT = 1
    SOFT = 2
    BRAIN = 3
    LUNG = 4
    HEART = 5
    LIVER = 6
    GALLBLADDER = 7
    BOWEL = 8
    BLADDER = 9
    BONE = 10
    KIDNEY = 11
    SPLEEN = 12


# CT numbers (HU) by tissue label.
HU = np.array([-1000, -100, 40, 35, -800, 45, 55, 10, 20, 5, 700, 35, 45], dtype=np.float32)

# Lesion organs of the tables and the tissue each must sit in.
ORGAN_TISSUE = {"bone": Tissue.BONE, "lung": Tissue.LUNG, "liver": Tissue.LIVER}

REFERENCE_HEIGHT_CM = 165.0
REFERENCE_WEIGHT_KG = 65.0


@dataclass(frozen=True)
class Grid:
    """An axial image grid in patient coordinates: voxel-centre coordinates per axis (z descending, head first)."""

    xs: np.ndarray
    ys: np.ndarray
    zs: np.ndarray

    @classmethod
    def centred(cls, matrix: int, pixel_mm: float, zs: np.ndarray) -> Grid:
        """A square in-plane grid centred on the scanner axis, with the given slice positions."""
        half = (matrix - 1) / 2 * pixel_mm
        axis = np.linspace(-half, half, matrix)
        return cls(axis, axis.copy(), np.asarray(zs, dtype=float))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) array shape."""
        return len(self.zs), len(self.ys), len(self.xs)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(sz, sy, sx) in mm."""
        return (abs(float(self.zs[1] - self.zs[0])) if len(self.zs) > 1 else 1.0,
                float(self.ys[1] - self.ys[0]), float(self.xs[1] - self.xs[0]))

    def shifted(self, offset: np.ndarray) -> Grid:
        """The same grid in coordinates that are ``offset`` behind (patient → body frame: subtract the shift)."""
        return Grid(self.xs - offset[0], self.ys - offset[1], self.zs - offset[2])


class Shape:
    """An analytic region: a boolean mask on broadcast coordinate arrays and an axis-aligned bounding box."""

    lo: np.ndarray
    hi: np.ndarray

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Ellipsoid(Shape):
    """Axis-aligned ellipsoid."""

    c: tuple[float, float, float]
    r: tuple[float, float, float]

    @cached_property
    def lo(self) -> np.ndarray:  # type: ignore[override]
        return np.subtract(self.c, self.r)

    @cached_property
    def hi(self) -> np.ndarray:  # type: ignore[override]
        return np.add(self.c, self.r)

    def norm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Squared normalised radius (1 on the surface)."""
        dx, dy, dz = (x - self.c[0]) / self.r[0], (y - self.c[1]) / self.r[1], (z - self.c[2]) / self.r[2]
        return dx * dx + dy * dy + dz * dz

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.norm(x, y, z) <= 1.0


@dataclass(frozen=True)
class Cylinder(Shape):
    """Elliptic cylinder along z between z0 < z1."""

    cx: float
    cy: float
    a: float
    b: float
    z0: float
    z1: float

    @cached_property
    def lo(self) -> np.ndarray:  # type: ignore[override]
        return np.array([self.cx - self.a, self.cy - self.b, self.z0])

    @cached_property
    def hi(self) -> np.ndarray:  # type: ignore[override]
        return np.array([self.cx + self.a, self.cy + self.b, self.z1])

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inplane = ((x - self.cx) / self.a) ** 2 + ((y - self.cy) / self.b) ** 2 <= 1.0
        return inplane & (z >= self.z0) & (z <= self.z1)


@dataclass(frozen=True)
class Shell(Shape):
    """``outer`` minus ``inner``, optionally kept only where ``keep`` holds (ribs, pelvic ring)."""

    outer: Shape
    inner: Shape
    keep: str = ""

    @cached_property
    def lo(self) -> np.ndarray:  # type: ignore[override]
        return self.outer.lo

    @cached_property
    def hi(self) -> np.ndarray:  # type: ignore[override]
        return self.outer.hi

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        m = self.outer.mask(x, y, z) & ~self.inner.mask(x, y, z)
        if self.keep == "ribs":  # ~12 mm ribs every 25 mm, not at the front
            m &= (np.cos(2 * np.pi * z / 25.0) > 0.0) & (y > -60.0)
        elif self.keep == "pelvis":  # iliac wings and sacrum, open at the front
            m &= (np.abs(x) > 35.0) | (y > 30.0)
        return m


@dataclass(frozen=True)
class Body:
    """The phantom of one patient: shapes painted in order (later shapes overwrite earlier ones)."""

    height_cm: float
    weight_kg: float
    shapes: tuple[tuple[Shape, Tissue], ...]
    node_stations: tuple[tuple[float, float, float], ...]

    @property
    def length_mm(self) -> float:
        """Vertex to mid-thigh: the axial extent of a whole-body PET."""
        return 0.63 * self.height_cm * 10.0

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding boxes of the shapes, in painting order: lows and highs (n_shapes, 3)."""
        return np.array([s.lo for s, _ in self.shapes]), np.array([s.hi for s, _ in self.shapes])

    @cached_property
    def shape_table(self) -> tuple[np.ndarray, ...]:
        """The shapes as arrays for :func:`_labels_kernel`, in painting order: per shape the kinds of its two
        primitives (ellipsoid 0, cylinder 1, none -1: the second is a shell's inner shape), their parameters
        (centre and radii; or cx, cy, a, b, z0, z1), the shell's ``keep`` rule (none 0, ribs 1, pelvis 2), its box
        (lows, highs) and its tissue."""
        n = len(self.shapes)
        kinds, params, keep = np.full((n, 2), -1, np.int64), np.zeros((n, 2, 6)), np.zeros(n, np.int64)
        for i, (shape, _) in enumerate(self.shapes):
            parts = [shape.outer, shape.inner] if isinstance(shape, Shell) else [shape]
            keep[i] = {"": 0, "ribs": 1, "pelvis": 2}[shape.keep] if isinstance(shape, Shell) else 0
            for j, part in enumerate(parts):
                if isinstance(part, Ellipsoid):
                    kinds[i, j], params[i, j] = 0, (*part.c, *part.r)
                elif isinstance(part, Cylinder):
                    kinds[i, j], params[i, j] = 1, (part.cx, part.cy, part.a, part.b, part.z0, part.z1)
                else:
                    raise TypeError(f"no kernel for shape {type(part).__name__}")
        tissues = np.array([int(t) for _, t in self.shapes], np.uint8)
        return (kinds, params, keep, *self.bounds, tissues)


def make_body(height_cm: float, weight_kg: float) -> Body:
    """Phantom scaled to the patient: z with height, torso width with weight, organs with the smaller of both."""
    sz = height_cm / REFERENCE_HEIGHT_CM
    sxy = float(np.sqrt((weight_kg / REFERENCE_WEIGHT_KG) / sz))
    so = min(sz, sxy)  # internal organs
    bmi = weight_kg / (height_cm / 100.0) ** 2
    fat = 8.0 + 25.0 * max(0.0, bmi - 20.0) / 15.0

    def e(c: tuple[float, float, float], r: tuple[float, float, float]) -> Ellipsoid:
        return Ellipsoid((c[0] * so, c[1] * so, c[2] * sz), (r[0] * so, r[1] * so, r[2] * sz))

    ta, tb = 160.0 * sxy, 105.0 * sxy
    z_sh, z_crotch, z_end = -250.0 * sz, -840.0 * sz, -1150.0 * sz
    thorax_in = Cylinder(0, 0, ta - fat, tb - fat, -560 * sz, -270 * sz)
    shapes: list[tuple[Shape, Tissue]] = [
        (Cylinder(0, 0, ta, tb, z_crotch, z_sh), Tissue.FAT),
        (Cylinder(0, 0, ta - fat, tb - fat, z_crotch + fat, z_sh - fat), Tissue.SOFT),
        (Cylinder(0, 5 * so, 55 * so, 55 * so, z_sh - 10, -180 * sz), Tissue.SOFT),  # neck
        (e((0, 0, -105), (72, 92, 105)), Tissue.BONE),  # skull
        (e((0, 0, -105), (65, 85, 98)), Tissue.SOFT),
        (e((0, 5, -95), (60, 78, 72)), Tissue.BRAIN),
    ]
    for side in (-1, 1):
        shapes += [
            (Cylinder(side * 85 * so, 0, 75 * sxy, 75 * sxy, z_end, z_crotch + 40 * sz), Tissue.FAT),
            (Cylinder(side * 85 * so, 0, 75 * sxy - fat, 75 * sxy - fat, z_end, z_crotch + 40 * sz), Tissue.SOFT),
            (e((side * 70, 5, -400), (50, 72, 135)), Tissue.LUNG),
        ]
    shapes += [
        (Shell(Cylinder(0, 0, 0.95 * (ta - fat), 0.95 * (tb - fat), thorax_in.z0, thorax_in.z1),
               Cylinder(0, 0, 0.95 * (ta - fat) - 8, 0.95 * (tb - fat) - 8, thorax_in.z0 - 1, thorax_in.z1 + 1),
               "ribs"), Tissue.BONE),
        (e((25, -35, -465), (55, 50, 60)), Tissue.HEART),
        (e((-65, -5, -600), (95, 75, 80)), Tissue.LIVER),
        (e((85, 40, -590), (35, 45, 55)), Tissue.SPLEEN),
        (e((-60, -55, -655), (15, 18, 32)), Tissue.GALLBLADDER),
        (e((-70, 45, -700), (28, 25, 55)), Tissue.KIDNEY),
        (e((70, 45, -700), (28, 25, 55)), Tissue.KIDNEY),
        (e((0, -30, -770), (110, 55, 85)), Tissue.BOWEL),
        (e((0, -25, -845), (40, 35, 35)), Tissue.BLADDER),
        (Cylinder(0, 55 * so, 18 * so, 18 * so, -800 * sz, -190 * sz), Tissue.BONE),  # spine
        (Cylinder(0, -88 * so, 15 * so, 6 * so, -480 * sz, -300 * sz), Tissue.BONE),  # sternum
        (Shell(e((0, 20, -760), (130, 80, 70)), e((0, 20, -760), (118, 68, 60)), "pelvis"), Tissue.BONE),
    ]
    for side in (-1, 1):
        shapes += [
            (e((side * 90, 0, -810), (24, 24, 24)), Tissue.BONE),  # femoral head
            (Cylinder(side * 85 * so, 0, 14 * so, 14 * so, z_end, -810 * sz), Tissue.BONE),
        ]
    stations = [(0, -20, -400), (0, 25, -700)]  # mediastinal, para-aortic
    for side in (-1, 1):
        stations += [(side * 115, 0, -320), (side * 45, -20, -265), (side * 35, 10, -430),
                     (side * 30, -80, -420), (side * 55, 20, -790), (side * 75, -50, -845)]
    nodes = tuple((x * so, y * so, z * sz) for x, y, z in stations)
    return Body(height_cm, weight_kg, tuple(shapes), nodes)


def index_range(coords: np.ndarray, lo: float, hi: float) -> slice:
    """The contiguous index range of the (monotonic) ``coords`` within [lo, hi]."""
    idx = np.nonzero((coords >= lo) & (coords <= hi))[0]
    return slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0)


def paint(labels: np.ndarray, grid: Grid, shape: Shape, value: int) -> None:
    """Set ``labels`` (z, y, x) to ``value`` inside ``shape``, evaluating only its bounding box."""
    sx = index_range(grid.xs, shape.lo[0], shape.hi[0])
    sy = index_range(grid.ys, shape.lo[1], shape.hi[1])
    sz = index_range(grid.zs, shape.lo[2], shape.hi[2])
    x = grid.xs[sx][None, None, :]
    y = grid.ys[sy][None, :, None]
    z = grid.zs[sz][:, None, None]
    if x.size and y.size and z.size:  # copyto with where: ~2x faster than a boolean-mask assignment
        np.copyto(labels[sz, sy, sx], value, where=shape.mask(x, y, z))


def label_map(body: Body, grid: Grid) -> np.ndarray:
    """Tissue labels (uint8, z, y, x) of ``body`` sampled at the voxel centres of ``grid`` (body frame)."""
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for shape, tissue in body.shapes:
        paint(labels, grid, shape, int(tissue))
    return labels


def labels_at(body: Body, x: np.ndarray, y: np.ndarray, z: np.ndarray, group: int = 0) -> np.ndarray:
    """Tissue label (uint8) at body-frame points given as coordinate arrays of one shape (float64): the last shape
    (in painting order) whose bounding box and mask hold the point, as :func:`label_map` paints it. Compiled
    (:func:`_labels_kernel`): the points are taken in groups of ``group`` consecutive points (of the flattened
    arrays; 0: all in one), and a group's points try only the shapes whose box meets the group's span, last first
    (pass nearby points together, e.g. the sub-voxel points of one voxel)."""
    axes = [np.ascontiguousarray(np.ravel(a), dtype=np.float64) for a in (x, y, z)]
    return _labels_kernel(*axes, group or axes[0].size, *body.shape_table).reshape(np.shape(x))


@jit(inline="always")
def _inside(kind: int, p: np.ndarray, i: int, j: int, x: float, y: float, z: float) -> bool:
    """Whether (x, y, z) lies in primitive j of shape i (``kind``, parameters ``p[i, j]``): the same float64
    operations, in the same order, as :meth:`Ellipsoid.mask` and :meth:`Cylinder.mask`."""
    if kind == 0:
        dx, dy, dz = (x - p[i, j, 0]) / p[i, j, 3], (y - p[i, j, 1]) / p[i, j, 4], (z - p[i, j, 2]) / p[i, j, 5]
        return dx * dx + dy * dy + dz * dz <= 1.0
    u, v = (x - p[i, j, 0]) / p[i, j, 2], (y - p[i, j, 1]) / p[i, j, 3]
    return u * u + v * v <= 1.0 and z >= p[i, j, 4] and z <= p[i, j, 5]


@jit
def _labels_kernel(x: np.ndarray, y: np.ndarray, z: np.ndarray, group: int, kinds: np.ndarray, params: np.ndarray,
                   keep: np.ndarray, lows: np.ndarray, highs: np.ndarray, tissues: np.ndarray) -> np.ndarray:
    """:func:`labels_at` on flat float64 coordinates (:attr:`Body.shape_table`), by groups of ``group`` points."""
    out = np.zeros(x.size, np.uint8)
    candidates = np.empty(tissues.size, np.int64)
    for start in range(0, x.size, max(group, 1)):
        stop = min(start + group, x.size)
        x0, x1 = x[start:stop].min(), x[start:stop].max()
        y0, y1 = y[start:stop].min(), y[start:stop].max()
        z0, z1 = z[start:stop].min(), z[start:stop].max()
        n = 0
        for s in range(tissues.size - 1, -1, -1):
            if (lows[s, 0] <= x1 and highs[s, 0] >= x0 and lows[s, 1] <= y1 and highs[s, 1] >= y0
                    and lows[s, 2] <= z1 and highs[s, 2] >= z0):
                candidates[n] = s
                n += 1
        for i in range(start, stop):
            px, py, pz = x[i], y[i], z[i]
            for c in range(n):
                s = candidates[c]
                if (px < lows[s, 0] or px > highs[s, 0] or py < lows[s, 1] or py > highs[s, 1]
                        or pz < lows[s, 2] or pz > highs[s, 2]):
                    continue
                if not _inside(kinds[s, 0], params, s, 0, px, py, pz):
                    continue
                if kinds[s, 1] >= 0 and _inside(kinds[s, 1], params, s, 1, px, py, pz):
                    continue
                if keep[s] == 1 and not (np.cos(2 * np.pi * pz / 25.0) > 0.0 and py > -60.0):
                    continue
                if keep[s] == 2 and not (abs(px) > 35.0 or py > 30.0):
                    continue
                out[i] = tissues[s]
                break
    return out


def tissue_at(body: Body, points: np.ndarray) -> np.ndarray:
    """Tissue label at each body-frame point (N, 3)."""
    p = np.atleast_2d(points)
    return labels_at(body, p[:, 0], p[:, 1], p[:, 2])


# Unit directions on which a lesion's surface is probed when it must stay inside its organ.
_PROBES = np.vstack([np.eye(3), -np.eye(3), np.array([[1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]) / np.sqrt(3)])


def _candidate(body: Body, organ: str, radius: float, rng: np.random.Generator) -> np.ndarray:
    if organ == "lymph_node":
        station = np.array(body.node_stations[rng.integers(len(body.node_stations))])
        return station + rng.normal(0.0, 6.0, 3)
    lo = np.min([s.lo for s, t in body.shapes if t == ORGAN_TISSUE[organ]], axis=0)
    hi = np.max([s.hi for s, t in body.shapes if t == ORGAN_TISSUE[organ]], axis=0)
    return rng.uniform(lo, hi)


def _fits(body: Body, organ: str, centre: np.ndarray, radius: float) -> bool:
    if organ == "lymph_node":
        t = tissue_at(body, centre[None, :] + _PROBES * radius)
        return bool(np.all((t == Tissue.SOFT) | (t == Tissue.FAT)))
    want = ORGAN_TISSUE[organ]
    if tissue_at(body, centre)[0] != want:
        return False
    if organ == "bone":  # bone metastases may extend beyond the cortex, but not into air or lung
        t = tissue_at(body, centre[None, :] + _PROBES * radius)
        return bool(np.all((t != Tissue.AIR) & (t != Tissue.LUNG)))
    return bool(np.all(tissue_at(body, centre[None, :] + _PROBES * (radius + 3.0)) == want))


def place_lesions(body: Body, organs: list[str], diameters_mm: list[float], rng: np.random.Generator,
                  max_tries: int = 4000) -> np.ndarray:
    """Body-frame centres (N, 3) for lesions of the given organs and sizes, inside their organ, not overlapping."""
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for organ, diameter in zip(organs, diameters_mm):
        if organ not in ORGAN_TISSUE and organ != "lymph_node":
            raise ValueError(f"unknown lesion organ {organ!r} (expected bone, lymph_node, lung or liver)")
        r = diameter / 2.0
        for attempt in range(max_tries):
            c = _candidate(body, organ, r, rng)
            shrink = 1.0 if attempt < max_tries // 2 else 0.5  # crowded organs: accept a tighter fit late
            if c[2] - r < -body.length_mm:  # beyond the scanned field (mid-thigh)
                continue
            clear = all(np.linalg.norm(c - o) > (r + ro) * shrink + 2.0 for o, ro in zip(centres, radii))
            if clear and _fits(body, organ, c, r * shrink):
                break
        else:
            raise ValueError(f"no room for a {diameter:.1f} mm {organ} lesion in the phantom "
                             f"({body.height_cm:.0f} cm, {body.weight_kg:.0f} kg)")
        centres.append(c)
        radii.append(r)
    return np.array(centres).reshape(-1, 3)

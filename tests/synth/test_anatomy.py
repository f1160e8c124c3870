"""The compiled point labelling (``labels_at``) is the phantom as ``label_map`` paints it, exactly; so are the
lattice labels read without painting (``LabelLattice.nearest_labels``)."""

from __future__ import annotations

import numpy as np
import pytest

from sonimage.synth.anatomy import Grid, label_map, labels_at, make_body
from sonimage.synth.render import LabelLattice


@pytest.mark.parametrize("height, weight", [(150.0, 48.0), (178.0, 105.0)])
def test_labels_at_points_equal_the_painted_labels(height: float, weight: float) -> None:
    """At the nodes of a grid over the whole body (ribs, pelvis and every organ crossed), and at random points
    near tissue boundaries, the label of the last shape holding the point (each shape's own mask, in numpy)."""
    body = make_body(height, weight)
    grid = Grid(np.linspace(-230.0, 230.0, 93), np.linspace(-160.0, 160.0, 65), np.linspace(10.0, -1150.0, 233))
    zz, yy, xx = np.meshgrid(grid.zs, grid.ys, grid.xs, indexing="ij")
    painted = label_map(body, grid)
    assert len(np.unique(painted)) == 13
    np.testing.assert_array_equal(labels_at(body, xx, yy, zz), painted)

    rng = np.random.default_rng(7)
    points = rng.uniform([-200.0, -150.0, -1100.0], [200.0, 150.0, 0.0], (20_000, 3))
    points = np.concatenate([points, points + rng.normal(0.0, 0.5, points.shape)])
    x, y, z = points.T
    expected = np.zeros(len(points), np.uint8)
    for shape, tissue in body.shapes:  # painting order: a later shape overwrites
        inside = ((x >= shape.lo[0]) & (x <= shape.hi[0]) & (y >= shape.lo[1]) & (y <= shape.hi[1])
                  & (z >= shape.lo[2]) & (z <= shape.hi[2]))
        inside[inside] = shape.mask(x[inside], y[inside], z[inside])
        expected[inside] = int(tissue)
    np.testing.assert_array_equal(labels_at(body, x, y, z), expected)
    assert labels_at(body, x[:0], y[:0], z[:0]).shape == (0,)


def test_nearest_node_labels_without_painting_equal_the_painted_lattices() -> None:
    """The second day's voxel centres read their nearest lattice node: labelled where it is (labels_at), the same
    labels as read from the painted lattice."""
    body = make_body(165.0, 70.0)
    step = np.array([2.7, 2.7, -2.0])
    origin = np.array([-3.1, 1.2, 20.0])
    rng = np.random.default_rng(3)
    for centre in ([0.0, 0.0, -400.0], [-60.0, 0.0, -600.0], [80.0, 30.0, -790.0]):
        points = np.asarray(centre) + rng.uniform(-60.0, 60.0, (4, 9, 11, 3))
        x, y, z = (points[..., a] for a in range(3))
        lo, hi = points.reshape(-1, 3).min(axis=0) - 3.0, points.reshape(-1, 3).max(axis=0) + 3.0
        lattice = LabelLattice.covering(body, origin, step, lo, hi)
        np.testing.assert_array_equal(LabelLattice.nearest_labels(body, origin, step, lo, hi, x, y, z),
                                      lattice.read(*lattice.nodes(x, y, z)))

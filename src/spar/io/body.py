"""Approximate 3-D body coordinates of the RealWorld-HAR sensor positions, in meters.

The dataset gives no coordinates, so spar assigns each position a point on a
standing adult of height 1.75 m. Heights come from the segment proportions of
body height H that Drillis and Contini (1966) published, as biomechanics texts
tabulate them. The joint heights are shoulder 0.818 H, elbow 0.630 H, wrist 0.485 H, hip 0.530 H,
knee 0.285 H, ankle 0.039 H, chin 0.870 H, top of the head 1.000 H, shoulder
width 0.259 H. A sensor on a segment sits at the segment's midpoint, on the
body's surface. Limb sensors are placed on the right side (the dataset does
not record the side).

Axes: ``right`` (lateral, toward the body's right), ``forward`` (anterior) and
``up``, with the origin on the floor between the feet. SPAR normalises
positions per sample and rotates them about the vertical axis, so only the
layout's shape matters, not the origin or the facing direction.
"""

from __future__ import annotations

import numpy as np

BODY_HEIGHT_M = 1.75
AXIS_NAMES = ("right", "forward", "up")

# position -> (right, forward, up) in meters
_HALF_SHOULDER = 0.259 * BODY_HEIGHT_M / 2
BODY_POSITIONS_M = {
    "chest": (0.0, 0.12, 0.5 * (0.818 + 0.720) * BODY_HEIGHT_M),  # sternum, below the shoulder line
    "forearm": (_HALF_SHOULDER + 0.03, 0.04, 0.5 * (0.630 + 0.485) * BODY_HEIGHT_M),  # elbow-wrist midpoint
    "head": (0.08, 0.0, 0.5 * (0.870 + 1.000) * BODY_HEIGHT_M),  # side of the head, chin-crown midpoint
    "shin": (0.10, 0.05, 0.5 * (0.285 + 0.039) * BODY_HEIGHT_M),  # knee-ankle midpoint
    "thigh": (0.10, 0.08, 0.5 * (0.530 + 0.285) * BODY_HEIGHT_M),  # hip-knee midpoint
    "upperarm": (_HALF_SHOULDER + 0.04, 0.0, 0.5 * (0.818 + 0.630) * BODY_HEIGHT_M),  # shoulder-elbow midpoint
    "waist": (0.10, 0.10, 0.580 * BODY_HEIGHT_M),  # belt line above the hip joint
}


def body_positions(positions) -> np.ndarray:
    """Return the coordinates of the named positions, shape (len(positions), 3), in meters."""
    unknown = [p for p in positions if p not in BODY_POSITIONS_M]
    if unknown:
        raise ValueError(f"no body coordinates for positions {unknown}; known: {sorted(BODY_POSITIONS_M)}")
    return np.array([BODY_POSITIONS_M[p] for p in positions], dtype=np.float64)

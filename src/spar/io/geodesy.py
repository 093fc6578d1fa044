"""WGS84 geodetic coordinates to a local East-North-Up (ENU) tangent plane.

The conversion goes geodetic -> Earth-centred Cartesian -> topocentric with PROJ
(``+proj=cart`` then ``+proj=topocentric``), so it is exact on the ellipsoid and
not a flat-Earth approximation.
"""

from __future__ import annotations

import numpy as np
from pyproj import Transformer


class EnuFrame:
    """A local ENU frame whose origin is a point on (or above) the WGS84 ellipsoid.

    Args:
        lat0_deg: origin latitude, degrees north.
        lon0_deg: origin longitude, degrees east.
        h0_m: origin height above the ellipsoid, meters.
    """

    def __init__(self, lat0_deg: float, lon0_deg: float, h0_m: float = 0.0):
        for name, value, bound in (("latitude", lat0_deg, 90.0), ("longitude", lon0_deg, 180.0)):
            if not np.isfinite(value) or abs(value) > bound:
                raise ValueError(f"ENU origin {name} {value!r} is outside [-{bound}, {bound}] degrees")
        self.lat0_deg = float(lat0_deg)
        self.lon0_deg = float(lon0_deg)
        self.h0_m = float(h0_m)
        pipeline = (
            "+proj=pipeline +step +proj=cart +ellps=WGS84 "
            f"+step +proj=topocentric +ellps=WGS84 +lat_0={self.lat0_deg!r} "
            f"+lon_0={self.lon0_deg!r} +h_0={self.h0_m!r}"
        )
        self._transformer = Transformer.from_pipeline(pipeline)

    @classmethod
    def centered_on(cls, lat_deg, lon_deg, h_m=None) -> "EnuFrame":
        """Build a frame whose origin is the mean of the given points (heights default to 0 m)."""
        lat = np.asarray(lat_deg, dtype=float)
        lon = np.asarray(lon_deg, dtype=float)
        h0 = 0.0 if h_m is None else float(np.nanmean(h_m))
        return cls(float(np.nanmean(lat)), float(np.nanmean(lon)), h0)

    def to_enu(self, lat_deg, lon_deg, h_m=None) -> np.ndarray:
        """Convert geodetic points to ENU meters.

        Args:
            lat_deg, lon_deg: arrays of the same shape, degrees.
            h_m: heights above the ellipsoid in meters, or None for 0 m.

        Returns:
            Array of shape ``lat_deg.shape + (3,)``: east, north, up in meters.
        """
        lat = np.asarray(lat_deg, dtype=float)
        lon = np.asarray(lon_deg, dtype=float)
        h = np.zeros_like(lat) if h_m is None else np.broadcast_to(np.asarray(h_m, dtype=float), lat.shape)
        east, north, up = self._transformer.transform(lon, lat, h)
        return np.stack([np.asarray(east), np.asarray(north), np.asarray(up)], axis=-1)

    def to_geodetic(self, east_m, north_m, up_m=None) -> np.ndarray:
        """Convert ENU meters back to (latitude, longitude, height) in degrees and meters."""
        east = np.asarray(east_m, dtype=float)
        north = np.asarray(north_m, dtype=float)
        up = np.zeros_like(east) if up_m is None else np.broadcast_to(np.asarray(up_m, dtype=float), east.shape)
        lon, lat, h = self._transformer.transform(east, north, up, direction="INVERSE")
        return np.stack([np.asarray(lat), np.asarray(lon), np.asarray(h)], axis=-1)

    def as_dict(self) -> dict:
        """Return the origin as plain numbers, for store attributes and reports."""
        return {"lat0_deg": self.lat0_deg, "lon0_deg": self.lon0_deg, "h0_m": self.h0_m}

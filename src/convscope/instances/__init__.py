"""Framework-free instance post-processing: star-convex geometry and polygon NMS (numpy + scipy, no torch)."""

from convscope.instances.nms import (
    StarPolygons,
    candidates,
    instances_from_prediction,
    non_maximum_suppression,
    polygon_nms,
    polygons_to_label,
)
from convscope.instances.star import (
    StarConvexityWarning,
    StarFidelity,
    edt_prob,
    fidelity,
    polygons_from_dist,
    ray_angles,
    star_dist,
    star_dist_at,
)

__all__ = [
    "StarConvexityWarning",
    "StarFidelity",
    "StarPolygons",
    "candidates",
    "edt_prob",
    "fidelity",
    "instances_from_prediction",
    "non_maximum_suppression",
    "polygon_nms",
    "polygons_from_dist",
    "polygons_to_label",
    "ray_angles",
    "star_dist",
    "star_dist_at",
]

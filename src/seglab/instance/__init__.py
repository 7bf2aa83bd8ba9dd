"""Bottom-up instance segmentation: pixels first, objects by marker-controlled watershed.

- :func:`classical_instances` — Otsu threshold + distance-transform watershed, no learning;
- :func:`boundary_instances` / :func:`distance_instances` — from a semantic model's 3-class
  (background / interior / boundary) probabilities, or foreground + distance maps;
- :func:`boundary_candidates` — overlapping candidates at several interior thresholds, for COCO AP;
- :func:`boundary_targets` — the 3-class training targets of an instance label map.

Each ``*_instances`` function returns a :class:`seglab.structures.Instances`; the ``*_labels`` variants
return the label map (0 background, 1..N) they are built from.
"""
from .classical import classical_instances, classical_labels, distance_watershed_labels, foreground_mask
from .convert import drop_small_objects, labels_to_instances, relabel_sequential
from .from_semantic import (boundary_candidates, boundary_instances, boundary_labels, distance_instances,
                            distance_labels)
from .targets import BOUNDARY_CLASSES, boundary_targets

__all__ = ["classical_instances", "classical_labels", "distance_watershed_labels", "foreground_mask",
           "drop_small_objects", "labels_to_instances", "relabel_sequential", "boundary_candidates", "boundary_instances", "boundary_labels",
           "distance_instances", "distance_labels", "BOUNDARY_CLASSES", "boundary_targets"]

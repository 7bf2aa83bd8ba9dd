"""The BSDS500 benchmark (Arbelaez, Maire, Fowlkes, Malik, PAMI 2011), reimplemented to reproduce the
official MATLAB benchmark's numbers: region benchmarks (segmentation covering, probabilistic Rand index,
variation of information) and the boundary benchmark (precision / recall / F with a one-to-one pixel
correspondence), each summarised as ODS, OIS, Best and AP.

>>> from seglab import bsds
>>> results, summary = bsds.evaluate_folder("ucm2/test", "groundTruth/test", workers=2)  # doctest: +SKIP
>>> summary["region"]["covering"]["ods"]  # doctest: +SKIP
"""
from .boundary import GroundTruthBoundary, boundary_counts, correspond_pixels, seg2bdry, thin
from .evaluate import (ImageResult, collect, collect_boundary, collect_region, evaluate_folder, evaluate_image,
                       map_images)
from .inputs import (GroundTruth, Prediction, bsds_root, from_hierarchy, from_segmentations, read_ground_truth,
                     read_prediction, read_soft_boundary, split_ids, thresholds)
from .region import (RegionGroundTruth, contingency, covering, probabilistic_rand_index, rand_index,
                     score_ucm, ucm_segmentation, variation_of_information)

__all__ = [
    "GroundTruthBoundary", "boundary_counts", "correspond_pixels", "seg2bdry", "thin",
    "ImageResult", "collect", "collect_boundary", "collect_region", "evaluate_folder", "evaluate_image",
    "map_images", "GroundTruth", "Prediction", "bsds_root", "from_hierarchy", "from_segmentations",
    "read_ground_truth", "read_prediction", "read_soft_boundary", "split_ids", "thresholds",
    "RegionGroundTruth", "contingency", "covering", "probabilistic_rand_index", "rand_index", "score_ucm",
    "ucm_segmentation", "variation_of_information",
]

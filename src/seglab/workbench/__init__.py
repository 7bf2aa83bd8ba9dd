"""The workbench's library: a project folder of images and annotations as plain files, saved atomically
and safely between processes, exported to COCO / VOC / YOLO-seg, and the annotate -> train -> predict
rounds. The web server (``seglab serve``) sits on top of it.

Modules: :mod:`.project` (the ``Project`` API: classes, images, load / save with revisions, recovery),
:mod:`.store` (lock, durable writes, logs), :mod:`.objects` (checking and storing objects),
:mod:`.rle` (COCO RLE), :mod:`.classes`, :mod:`.coco` (the live COCO JSON), :mod:`.polygons`
(masks <-> YOLO-seg polygons with holes), :mod:`.exports`, :mod:`.rounds` (training and pre-labelling).
"""
from .project import ConflictError, Project, ProjectError, UnknownImageError

__all__ = ["Project", "ProjectError", "ConflictError", "UnknownImageError"]

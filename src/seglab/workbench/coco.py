"""The project's COCO instances JSON (Lin et al., ECCV 2014), assembled from per-image pieces.

Each labelled image contributes one ``images`` entry and its ``annotations`` (masks as compressed RLE,
``iscrowd`` 0). Ids are stable: the image's ``coco_id`` is given once, at its first save, and kept in its
sidecar; an annotation's id is ``coco_id * 65536 + object id``. Each piece is serialised once per revision
(:func:`fragment`) and the file is a join of the cached pieces (:func:`document_text`), so rewriting it
after a save costs little more than writing the bytes. Extra keys, which COCO readers ignore:
``images[].seglab_state`` / ``seglab_revision``, ``annotations[].seglab_source`` and ``score`` (model
objects), ``categories[].color`` / ``isthing``.
"""
from __future__ import annotations

import json

ID_STRIDE = 65536


def categories(classes: list[dict]) -> list[dict]:
    """COCO categories of the project's classes."""
    return [{"id": c["id"], "name": c["name"], "supercategory": c["kind"], "isthing": int(c["kind"] == "thing"),
             "color": c["color"]} for c in classes]


def image_entry(meta: dict) -> dict:
    """The ``images`` entry of an image's sidecar."""
    return {"id": meta["coco_id"], "file_name": meta["file"], "width": meta["width"], "height": meta["height"],
            "seglab_state": meta["state"], "seglab_revision": meta["revision"]}


def annotations(meta: dict) -> list[dict]:
    """The ``annotations`` of an image's sidecar, in drawing order."""
    out = []
    for r in meta["objects"]:
        a = {"id": meta["coco_id"] * ID_STRIDE + r["id"], "image_id": meta["coco_id"], "category_id": r["class_id"],
             "segmentation": {"size": [meta["height"], meta["width"]], "counts": r["counts"]},
             "area": r["area"], "bbox": r["bbox"], "iscrowd": 0, "seglab_source": r["source"]}
        if r["score"] is not None:
            a["score"] = r["score"]
        out.append(a)
    return out


def fragment(meta: dict) -> tuple[str, str]:
    """``(image entry, annotations)`` of one image as JSON text (annotations without the brackets)."""
    dumps = lambda x: json.dumps(x, separators=(",", ":"))  # noqa: E731
    return dumps(image_entry(meta)), ",".join(dumps(a) for a in annotations(meta))


def document_text(fragments: list[tuple[str, str]], classes: list[dict]) -> str:
    """The whole COCO JSON text from the images' fragments (in image order) and the classes."""
    info = json.dumps({"description": "seglab workbench project", "version": "1.0"})
    anns = ",".join(a for _, a in fragments if a)
    return (f'{{"info":{info},"licenses":[],"images":[{",".join(i for i, _ in fragments)}],'
            f'"annotations":[{anns}],"categories":{json.dumps(categories(classes), separators=(",", ":"))}}}')


def is_in_step(doc, metas: dict[str, dict], classes: list[dict]) -> bool:
    """Whether a parsed COCO document lists exactly the sidecars' images at their revisions, the classes'
    categories, and one annotation per object (a cheap check, not a comparison of every mask)."""
    try:
        have = {(im["file_name"], im["id"], im["seglab_revision"]) for im in doc["images"]}
        want = {(m["file"], m["coco_id"], m["revision"]) for m in metas.values()}
        n_anns = sum(len(m["objects"]) for m in metas.values())
        return (have == want and len(doc["images"]) == len(metas) and len(doc["annotations"]) == n_anns
                and doc["categories"] == categories(classes))
    except (KeyError, TypeError):
        return False

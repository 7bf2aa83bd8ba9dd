"""Prediction over large image collections and huge images.

- :mod:`.inputs`: the image files of a run (files, folders, ``@list.txt``) and their shards.
- :mod:`.worker`: one image in, its outputs written (the model loaded once per worker); the same code runs
  in the plain loop, in a local process pool (:mod:`.local`) and in Ray actors (:mod:`.ray_engine`).
- :mod:`.run`: the driver: skip finished images, run an engine, compare outputs with inputs, report
  the images that failed (``failed.json``).
- :mod:`.huge`: an image of any size predicted tile by tile with a halo, written as a tiled TIFF, in
  memory bounded by the tile.
"""

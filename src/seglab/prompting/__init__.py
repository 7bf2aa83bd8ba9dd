"""One prompt API for every interactive method: :class:`seglab.structures.Prompts` (points with labels, a
box, scribbles, an initial mask) accepted by SAM and by the classical interactive methods through
``seglab.segment(image, method, prompts=...)``.

* :mod:`.spec`: what a method declares (native and converted kinds) and the conversion to its parameters;
* :mod:`.convert`: the conversions between kinds (points -> seed discs, scribbles -> points, ...);
* :mod:`.classical`: the specs of graph cut, GrabCut, random walker, seeded watershed, region growing and
  Chan-Vese; :mod:`.sam`: SAM as the registered method ``"sam"``;
* :mod:`.text`: prompts from command-line strings and files.
"""

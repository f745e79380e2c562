"""The tfsynth studio: paint a street scene, pick each object's style, compare the models live.

``python -m tfsynth.studio --saved_model=crn:S1,pix2pix:S2,pix2pixhd:S3`` serves a page (on
127.0.0.1 unless ``--host`` says otherwise) where a user paints label regions and instances in
the exports' label space, renders every loaded label -> image export side by side, and cycles
the style of one pix2pixHD instance through its class's clusters.

The page speaks TF Serving's REST API for everything a model computes, so the same page works
against a real ``tensorflow_model_server`` serving the same exports (``--serving_url``; the
studio then forwards those calls):

* ``GET /v1/models/<name>``, ``GET /v1/models/<name>/metadata``,
  ``POST /v1/models/<name>:predict`` (``{"signature_name", "instances" | "inputs"}`` with
  ``{"b64": ...}`` for bytes; ``{"predictions" | "outputs"}`` or ``{"error"}`` back).

What TF Serving cannot know lives under ``/studio/v1/`` (studio-only, read from each export's
``tfsynth_export.json`` and from tfsynth's scene sources):

* ``GET /studio/v1/config``: the label space (names, colours, which classes have instances),
  the canvas size, and per model the signature to call, its inputs by kind, outputs, size and
  ``style_clusters``;
* ``GET /studio/v1/scenes/synthetic/<index>``, ``GET /studio/v1/scenes/examples/<index>``,
  ``POST /studio/v1/scenes/upload``: label and instance maps to start from;
* ``POST /studio/v1/png``: a label (8-bit) or instance (16-bit) map as a PNG download.

Nothing here names a model family: what the page sends to a model follows the kinds of the
inputs its export declares (``label``, ``instance``, ``seed``, ``cluster_map``).
"""

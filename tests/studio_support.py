"""Tiny exports for the studio's tests: the smoke configurations of the label -> image families,
exported untrained (pix2pixHD after its K-means, so it offers styles per class)."""

import os

from family_support import first_batch, tiny_family

#: The families the studio compares, in the order the page shows them.
FAMILIES = ("crn", "pix2pix", "pix2pixhd")


def build_tiny_exports(root) -> dict[str, str]:
    """{name: export dir} of each family's smoke model under ``root`` (needs $TFSYNTH_CACHE)."""
    import keras

    from tfsynth import export

    exports = {}
    for name in FAMILIES:
        keras.utils.set_random_seed(0)
        # Every instance counts for the K-means: the smoke scenes' cars are a few pixels.
        model, data_dir, _ = tiny_family(name, "cluster_min_area=0.0" if name == "pix2pixhd" else "")
        batches = [first_batch(model, data_dir, batch_size=8, training=False)]
        model.finish_training(lambda split: batches)
        exports[name] = export.export_model(model, os.path.join(str(root), name, "1"), model_name=name)
    return exports


def saved_model_flag(exports: dict[str, str]) -> str:
    return ",".join(f"{name}:{path}" for name, path in exports.items())

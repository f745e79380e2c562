"""Datasets: TFRecord schema, label spaces, sources, synthetic scenes, pipelines."""

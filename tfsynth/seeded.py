"""Random numbers as pure functions of per-example seeds (stateless philox).

A GAN step draws latents, noise maps, augmentations and margins. Drawing each example's numbers
from its own seed pair ``[2]`` (int64) rather than from a stateful generator makes them

* the same on one device and on several: an example's seed depends on its place in the global
  batch, not on which replica holds it;
* the same after a resume: seeds derive from the checkpointed step counter;
* the same on every machine for serving: a user's seed ``s`` always names one latent.

Every function here maps ``seeds`` [N, 2] to N independent draws (``tf.map_fn`` over the
examples: stateless ops take one seed at a time).
"""

from __future__ import annotations

import tensorflow as tf

ALG = "philox"


def _per_example(seeds, draw, dtype=tf.float32):
    return tf.map_fn(draw, tf.cast(seeds, tf.int64), fn_output_signature=dtype)


def fold(seeds, salt: int):
    """Seeds for another purpose: each pair folded with ``salt`` ([N, 2] -> [N, 2])."""
    return _per_example(
        seeds, lambda seed: tf.cast(tf.random.experimental.stateless_fold_in(seed, salt, alg=ALG), tf.int64), tf.int64)


def uniform(seeds, shape, minval: float = 0.0, maxval: float = 1.0):
    """U(minval, maxval) of ``shape`` per example: [N, *shape] float32."""
    return _per_example(seeds, lambda seed: tf.random.stateless_uniform(shape, seed, minval, maxval, alg=ALG))


def normal(seeds, shape):
    """N(0, 1) of ``shape`` per example: [N, *shape] float32."""
    return _per_example(seeds, lambda seed: tf.random.stateless_normal(shape, seed, alg=ALG))


def seed_pairs(seeds):
    """User seeds (int64 [N]) -> seed pairs [N, 2]: ``[s, 0]``."""
    seeds = tf.cast(seeds, tf.int64)
    return tf.stack([seeds, tf.zeros_like(seeds)], axis=1)


def latents_from_seeds(seeds, size: int):
    """The latent vector each seed names: N(0, I) of ``size`` drawn from ``[seed, 0]`` with philox
    (int64 [N] -> float32 [N, size]). Exports of unconditional models draw their ``seed`` inputs'
    latents with it, and ``tfsynth.infer`` interpolates between seeds through it, so a seed is
    the file-free form of a ``latent`` input everywhere."""
    return normal(seed_pairs(seeds), [size])

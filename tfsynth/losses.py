"""Loss functions: pure, unscaled, each naming its paper and formula.

Functions return per-example values (shape [B]) or means; scaling for distribution happens in
``tfsynth.gradients.scale_for_replicas`` and nowhere else.
"""

from __future__ import annotations

import tensorflow as tf


def masked_feature_error(real, fakes, mask):
    """Per-class masked L1 feature error of CRN (Chen & Koltun 2017, Sec. 3.3 and 3.4).

    ``E[b, k, c] = 1/(h w) * sum_p mask[b, p, c] * mean_channels |fakes[b, k, p] - real[b, p]|``,
    normalised by all h*w pixels, not by the class area, as the original code did.

    Args:
      real: features of the real image, [B, h, w, d].
      fakes: features of the K generated images, [B, K, h, w, d].
      mask: label map at the features' resolution, [B, h, w, C].

    Returns:
      [B, K, C] errors.
    """
    difference = tf.reduce_mean(tf.abs(fakes - real[:, None]), axis=-1)  # [B, K, h, w]
    pixels = tf.cast(tf.shape(mask)[1] * tf.shape(mask)[2], difference.dtype)
    return tf.einsum("bkhw,bhwc->bkc", difference, tf.cast(mask, difference.dtype)) / pixels


def diversity_loss(content, min_weight: float = 0.999, mean_weight: float = 0.001):
    """CRN's diversity loss over K outputs (Chen & Koltun 2017, Eq. 4; code weights).

    ``L[b] = min_weight * sum_c min_k content[b, k, c] + mean_weight * sum_c mean_k content[b, k, c]``.
    Each class is charged only to the output that renders it best, so the K outputs are free to
    differ elsewhere; the small mean term keeps every output trained.

    Args:
      content: [B, K, C] per-output, per-class content losses.

    Returns:
      [B] losses.
    """
    best = tf.reduce_sum(tf.reduce_min(content, axis=1), axis=-1)
    average = tf.reduce_sum(tf.reduce_mean(content, axis=1), axis=-1)
    return min_weight * best + mean_weight * average


def feature_l1(real, fakes):
    """Plain mean |fakes - real| per example: CRN's "simple" loss term for 512p/1024p.

    Args:
      real: [B, h, w, d]; fakes: [B, K, h, w, d].

    Returns:
      [B] mean absolute errors over K, h, w and d.
    """
    return tf.reduce_mean(tf.abs(fakes - real[:, None]), axis=[1, 2, 3, 4])


# ------------------------------------------------------------------------------ adversarial

GAN_MODES = ("vanilla", "lsgan", "hinge")


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown gan_mode {mode!r}; valid: {', '.join(GAN_MODES)}")


def gan_discriminator_loss(real_logits, fake_logits, mode: str = "vanilla"):
    """Discriminator loss terms (real, fake), each a mean over every patch logit.

    vanilla (Goodfellow et al. 2014; pix2pix): binary cross-entropy on logits, real -> 1,
    fake -> 0. lsgan (Mao et al. 2017; CycleGAN): squared error to 1 and 0. hinge (Lim & Ye
    2017; SPADE): mean relu(1 - real) and mean relu(1 + fake). Families weight the two terms
    (pix2pix and CycleGAN halve their sum).
    """
    _check_mode(mode)
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if mode == "vanilla":
        real = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real_logits), real_logits)
        fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    elif mode == "lsgan":
        real = tf.square(real_logits - 1.0)
        fake = tf.square(fake_logits)
    else:
        real = tf.nn.relu(1.0 - real_logits)
        fake = tf.nn.relu(1.0 + fake_logits)
    return tf.reduce_mean(real), tf.reduce_mean(fake)


def gan_generator_loss(fake_logits, mode: str = "vanilla"):
    """Generator adversarial loss, a mean over patch logits.

    vanilla: the non-saturating BCE(D(G(x)), 1); lsgan: (D(G(x)) - 1)^2; hinge: -D(G(x)).
    """
    _check_mode(mode)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if mode == "vanilla":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits))
    if mode == "lsgan":
        return tf.reduce_mean(tf.square(fake_logits - 1.0))
    return -tf.reduce_mean(fake_logits)


def margin_hinge_discriminator_loss(real_logits, fake_logits, real_margin, fake_margin):
    """FastGAN's hinge loss for D with a random margin (Liu et al. 2021; code ``train_d``).

    ``real = mean relu(m_r - D(x))`` and ``fake = mean relu(m_f + D(G(z)))``, the means over every
    logit, where the reference draws each logit's margin m uniformly in [0.8, 1.0] (the paper
    writes a margin of 1). The margins come in as arguments (shaped like the logits), so the
    caller owns the randomness.

    Returns:
      (real, fake) scalar terms.
    """
    real = tf.nn.relu(tf.cast(real_margin, tf.float32) - tf.cast(real_logits, tf.float32))
    fake = tf.nn.relu(tf.cast(fake_margin, tf.float32) + tf.cast(fake_logits, tf.float32))
    return tf.reduce_mean(real), tf.reduce_mean(fake)


def lpips_distance(features_a, features_b, channel_weights=None):
    """The LPIPS distance of Zhang et al. (2018, Eq. 1) between two batches of images, given
    their features at L layers.

    ``d(x, y) = sum_l 1/(H_l W_l) sum_{h,w} sum_c w_{l,c} (a_{l,hwc} - b_{l,hwc})^2``, where
    ``a = f / (||f||_c + 1e-10)`` is each feature vector unit-normalised over its channels.
    ``channel_weights`` are LPIPS v0.1's learned linear layers (one [C_l] array per layer);
    None gives every channel weight 1.

    Args:
      features_a, features_b: per layer, [B, H_l, W_l, C_l].
      channel_weights: per layer, [C_l] non-negative weights, or None.

    Returns:
      [B] distances.
    """
    def unit(features):
        features = tf.cast(features, tf.float32)
        return features / (tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True)) + 1e-10)

    terms = []
    for index, (a, b) in enumerate(zip(features_a, features_b)):
        squared = tf.square(unit(a) - unit(b))
        if channel_weights is not None:
            squared = squared * tf.cast(channel_weights[index], tf.float32)
        terms.append(tf.reduce_mean(tf.reduce_sum(squared, axis=-1), axis=[1, 2]))
    return tf.add_n(terms)


def l1(a, b):
    """mean |a - b| over every element (pix2pix's L1 term, CycleGAN's cycle and identity terms)."""
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


# ------------------------------------------------------------------------------ pix2pixHD

def feature_matching(fake_features, real_features, num_layers: int = 3):
    """pix2pixHD's GAN feature-matching loss (Wang et al. 2018, Eq. 4; code weights).

    ``L_FM = sum_s sum_j (1 / S) (4 / (num_layers + 1)) mean |D_s,j(fake) - D_s,j(real)|`` over the
    S discriminator scales and each scale's intermediate features j (every output but the final
    logits). The real features are constants: the discriminator is not trained by this term.

    Args:
      fake_features, real_features: per scale, the list of a discriminator's outputs.
      num_layers: strided layers of each discriminator (3), which sets the per-layer weight.

    Returns:
      The unweighted loss (the paper multiplies it by lambda = 10).
    """
    scales = len(fake_features)
    weight = (1.0 / scales) * (4.0 / (num_layers + 1))
    terms = [tf.reduce_mean(tf.abs(tf.cast(fake, tf.float32) - tf.stop_gradient(tf.cast(real, tf.float32))))
             for fake_scale, real_scale in zip(fake_features, real_features)
             for fake, real in zip(fake_scale[:-1], real_scale[:-1])]
    return weight * tf.add_n(terms)


def weighted_feature_l1(fake_features, real_features, weights):
    """``sum_i w_i mean |F_i(fake) - F_i(real)|``: pix2pixHD's VGG loss with w = (1/32, 1/16,
    1/8, 1/4, 1) on relu1_1 .. relu5_1 (the paper multiplies it by lambda = 10). The real
    features are constants."""
    return tf.add_n([w * tf.reduce_mean(tf.abs(tf.cast(fake, tf.float32) - tf.stop_gradient(tf.cast(real, tf.float32))))
                     for w, fake, real in zip(weights, fake_features, real_features)])


def multiscale_gan_losses(real_outputs, fake_outputs, mode: str = "lsgan"):
    """(real, fake) discriminator terms summed over scales, each judged on its final logits."""
    terms = [gan_discriminator_loss(real[-1], fake[-1], mode) for real, fake in zip(real_outputs, fake_outputs)]
    return tf.add_n([t[0] for t in terms]), tf.add_n([t[1] for t in terms])


def multiscale_gan_generator_loss(fake_outputs, mode: str = "lsgan"):
    """The generator's adversarial term summed over discriminator scales (final logits)."""
    return tf.add_n([gan_generator_loss(fake[-1], mode) for fake in fake_outputs])


# ------------------------------------------------------------------------------ Johnson et al. 2016

def gram_matrix(features):
    """Normalised Gram matrices of Johnson et al. (2016, Eq. 3): ``G[b] = F_b F_b^T / (C H W)``
    with ``F_b`` the [C, H W] reshaping of image b's features; dividing by C H W keeps layers of
    different sizes comparable.

    Args:
      features: [B, H, W, C].

    Returns:
      [B, C, C] float32.
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    size = tf.cast(shape[1] * shape[2] * shape[3], tf.float32)
    return tf.einsum("bhwc,bhwd->bcd", features, features) / size


def style_loss(output_features, style_grams):
    """Style reconstruction loss (Johnson et al. 2016, Eq. 4): ``sum_j mean_{b,c,c'} (G_j(y_b) -
    G_j(y_s))^2`` over the style layers j, the squared Frobenius distance of Grams as a mean over
    the batch and both channel axes (the reference code's MSE).

    Args:
      output_features: per style layer, the output's features [B, H, W, C].
      style_grams: per style layer, the style image's Gram [C, C] (or [B, C, C]).

    Returns:
      scalar.
    """
    return tf.add_n([tf.reduce_mean(tf.square(gram_matrix(features) - tf.cast(target, tf.float32)))
                     for features, target in zip(output_features, style_grams)])


def feature_reconstruction_loss(output_features, target_features):
    """Feature (content) reconstruction loss (Johnson et al. 2016, Eq. 2): ``||phi_j(y) -
    phi_j(y_c)||^2 / (C H W)``, a mean over every element; the target features are constants."""
    return tf.reduce_mean(tf.square(tf.cast(output_features, tf.float32)
                                    - tf.stop_gradient(tf.cast(target_features, tf.float32))))


def total_variation(images):
    """Squared total variation (Johnson et al. 2016, Sec. 3.3; Mahendran & Vedaldi 2015):
    ``sum_{i,j,c} (y[i+1,j,c] - y[i,j,c])^2 + (y[i,j+1,c] - y[i,j,c])^2`` per image, averaged
    over the batch. A sum, not a mean, per image, as the reference code's TV strength (1e-6 on
    0..255 images) expects.

    Returns:
      scalar.
    """
    images = tf.cast(images, tf.float32)
    down = tf.reduce_sum(tf.square(images[:, 1:] - images[:, :-1]), axis=[1, 2, 3])
    right = tf.reduce_sum(tf.square(images[:, :, 1:] - images[:, :, :-1]), axis=[1, 2, 3])
    return tf.reduce_mean(down + right)

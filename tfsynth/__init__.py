"""tfsynth: classic image-synthesis models in TensorFlow 2 / Keras 3."""

import os
import sys

__version__ = "0.1.0"

# Every model here is TensorFlow code (tf.function steps, tf.distribute, SavedModels): Keras must
# run on TensorFlow whatever KERAS_BACKEND a user's environment names for other work. Keras reads
# the variable once, when it is first imported, so this holds unless Keras came first.
if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "tensorflow"
elif sys.modules["keras"].backend.backend() != "tensorflow":
    raise ImportError(f"tfsynth needs Keras on TensorFlow, but Keras was imported first with the "
                      f"{sys.modules['keras'].backend.backend()!r} backend; import tfsynth before keras, "
                      "or set KERAS_BACKEND=tensorflow")

"""Reading the original codebases' checkpoints into tfsynth runs."""

"""Small pretrained weight files that tfsynth ships as package data (see README.md here)."""

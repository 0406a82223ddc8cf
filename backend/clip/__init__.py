"""Clips to animation: video reading and writing, one-face tracking, the clip fit, blinks and jaw read from the
pixels, and a rendered test clip with known curves."""

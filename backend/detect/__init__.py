"""Faces in photos: detection and 68 landmarks (dlib, FAN), and crops aligned to them."""

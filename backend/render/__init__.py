"""Rendering in PyTorch: the camera convention, the differentiable rasterizer, SH shading, the face and head
renderers, and the overlay picture."""

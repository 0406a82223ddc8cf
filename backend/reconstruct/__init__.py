"""Photos to FaceResults: test-time fitting, texture unwrapping, the pipeline and batches into an output folder."""

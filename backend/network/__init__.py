"""MLANet, the attention CNN that predicts FaceParams from a face crop: config and variants, blocks, the model, the
parameter decoding, checkpoints and complexity."""

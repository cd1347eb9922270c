"""Training: the contrastive loss, negative sources and the loop behind ``BiEncoder.fit``."""

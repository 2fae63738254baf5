"""Item pipelines: validation, specs from images, embeddings and the product index."""

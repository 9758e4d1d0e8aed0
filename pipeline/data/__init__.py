"""Dataset layout, validation, the built-in sample dataset and the preprocess stage."""

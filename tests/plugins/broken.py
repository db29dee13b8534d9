"""A plugin whose import fails, as a typo in a user's module would."""
raise RuntimeError("scalegate2 needs a CUDA build of torch")

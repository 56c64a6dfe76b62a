"""The fashion catalogue: the H&M dataset's schema, its streaming loaders and a synthetic stand-in."""

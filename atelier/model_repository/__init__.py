"""The runtime Triton model repository: numbered, recorded versions of each model, published and rolled back live."""

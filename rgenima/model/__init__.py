"""R-GenIMA model components (RiT, backbone, projector) and baselines."""

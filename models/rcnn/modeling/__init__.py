"""modeling: backbones, RPN, ROI heads and the detector."""

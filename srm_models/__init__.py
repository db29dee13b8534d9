"""Channel-recalibration modules (SRM, SE, GE, CBAM) and ResNet backbones. Pure PyTorch."""
__version__ = "0.1.0"

"""edgenet: quantized MobileNet classifiers on small boards, with per-frame latency."""

__version__ = "0.1.0"

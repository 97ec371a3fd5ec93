"""edgenet: quantized MobileNets on small boards (CPU/XNNPACK or a Coral Edge TPU), with per-frame latency.

The library in two lines (the same records as the command line):

    import edgenet
    model = edgenet.open_model("v2")          # a zoo name or a .tflite path; threads=, delegate=, ...
    record = model.process("cat.jpg")         # or a HxWx3 uint8 BGR numpy frame
"""

__version__ = "0.1.0"
__all__ = ["open_model", "ModelRequest", "__version__"]


def __getattr__(name: str):
    # lazy: `import edgenet` (and the command line's start-up) must not pay for numpy and the runtime
    if name in ("open_model", "ModelRequest"):
        from edgenet import model

        return getattr(model, name)
    raise AttributeError(f"module 'edgenet' has no attribute {name!r}")

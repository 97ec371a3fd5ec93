"""`edgenet models info`: what a model is, from the catalog, its file and the interpreter."""

from __future__ import annotations


def describe_model(name: str | None, threads: int | None = None) -> dict:
    from edgenet import zoo
    from edgenet.choices import Delegate
    from edgenet.delegates import build_engine
    from edgenet.placement import Placement
    from edgenet.tensors import inspect_model_file

    resolved = zoo.resolve(name)
    info: dict = resolved.spec.to_dict(present=True) if resolved.spec else {"name": resolved.name}
    info["path"] = str(resolved.path)
    file_info = inspect_model_file(resolved.path)
    info["bytes"] = file_info.size
    placement = Placement(kind=Delegate.xnnpack.value, fallback=True)
    engine = build_engine(resolved.path, placement, threads=threads or 1, file_info=file_info)
    spec = engine.input
    info.update(
        {
            "backend": f"{engine.backend.name} {engine.backend.version}",
            "delegate": engine.placement.kind,
            "partitions": engine.partitions,
            "input_tensor": {
                "shape": [1, spec.height, spec.width, spec.channels],
                "dtype": spec.dtype,
                "scale": spec.scale,
                "zero_point": spec.zero_point,
                "value_range": list(spec.value_range),
                "range_from": spec.range_source,
            },
            "ops": engine.op_counts(),
        }
    )
    if engine.placement.reason:
        info["delegate_reason"] = engine.placement.reason
    if file_info.detection:
        info["task"] = "detect"
        info["output_tensors"] = {o.name or str(o.position): list(o.shape) for o in engine.outputs}
    else:
        from edgenet.tasks.classification import output_spec

        out = output_spec(engine)
        info["output_tensor"] = {
            "classes": out.classes,
            "dtype": out.dtype,
            "scale": out.scale,
            "zero_point": out.zero_point,
            "scores": "probabilities" if out.probabilities else "logits (softmax applied)",
        }
    return info

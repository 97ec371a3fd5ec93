"""`edgenet models info` and `models list`: what a model is, from the catalog, its file and the interpreter;
where each zoo model is to be had without the network."""

from __future__ import annotations


def where(spec) -> tuple[str | None, object | None]:
    """(place, local build) of a zoo model: "cache" (the catalog's file), "local build" (built here, in the
    cache), "mirror" (a mirror folder holds it) or None. Sizes decide, and bytes only when a local build and
    the catalog's file have the same size: cheap enough for a list."""
    from edgenet import local_builds, zoo

    artifact = spec.artifact
    if zoo.is_present(artifact):
        build, path = zoo.local_build(artifact), zoo.cache_path(artifact)
        if build is None or path.stat().st_size != build.size:
            return "cache", None
        same_size = artifact.size == build.size  # then only the bytes tell a local build from the catalog's
        if same_size and local_builds.sha256_of(path) != build.sha256:
            return "cache", None
        return "local build", build
    return ("mirror" if zoo.in_mirror_folder(artifact) else None), None


def how_to_get(spec) -> str:
    if spec.recipe:
        return f"edgenet models build {spec.name}"
    return f"edgenet models pull {spec.name}"


def model_rows() -> list[dict]:
    """One record per zoo model: the catalog entry (as built, for a local build), `present` (in the cache,
    as before), `where` ("cache", "local build", "mirror" or None), the size in bytes where known (catalog,
    local build or cached file), `size_hint` (MB, for the few published files known only by a git hash) and
    `get`, the command that gets it."""
    from edgenet import local_builds, zoo

    rows = []
    for spec in zoo.catalog().values():
        place, build = where(spec)
        row = local_builds.as_built(spec, build).to_dict(
            present=place in ("cache", "local build"),
            edgetpu_present=zoo.is_present(spec.edgetpu) if spec.edgetpu else None,
        )
        row["where"] = place
        if row["size"] is None and place == "cache":
            row["size"] = zoo.cache_path(spec.artifact).stat().st_size
        row["size_hint"] = spec.size_hint
        row["get"] = how_to_get(spec)
        rows.append(row)
    return rows


def catalog_entry(spec) -> dict:
    """What the catalog says of a zoo model whose file is not here, and how to get it."""
    info = spec.to_dict(present=False)
    info["where"] = None
    info["size_hint"] = spec.size_hint
    info["get"] = how_to_get(spec)
    return info


def describe_model(name: str | None, threads: int | None = None) -> dict:
    """A zoo model that is not here (neither cached nor in a mirror folder) is described from the catalog,
    with `present: false` and the command that gets it: nothing is downloaded to describe it."""
    from edgenet import zoo

    spec = zoo.catalog().get(name or zoo.default_model())
    if spec is not None and where(spec)[0] is None:
        return catalog_entry(spec)
    resolved = zoo.resolve(name)
    info: dict = resolved.spec.to_dict(present=True) if resolved.spec else {"name": resolved.name}
    info["path"] = str(resolved.path)
    return _describe_file(info, resolved.path, threads)


def _describe_file(info: dict, path, threads: int | None) -> dict:
    from edgenet.choices import Delegate
    from edgenet.delegates import build_engine
    from edgenet.placement import Placement
    from edgenet.tensors import inspect_model_file

    file_info = inspect_model_file(path)
    info["bytes"] = file_info.size
    placement = Placement(kind=Delegate.xnnpack.value, fallback=True)
    engine = build_engine(path, placement, threads=threads or 1, file_info=file_info)
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

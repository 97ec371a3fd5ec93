"""Tasks: what turns a frame into the model's input tensor and the model's outputs into record fields.

A task has four methods, each run by the loop (edgenet.run.loop) in its own place:
- `prepare(image) -> (tensor, context)` in the capture thread: decode is done, this resizes and converts; the
  context keeps what postprocessing needs (e.g. the original frame size). Raises InputError for a bad frame.
- `infer(tensor, context) -> (outputs, stages)` in the main thread: every invoke of the frame; `stages` are
  extra timed stages in ms (e.g. crop classification), beside `inference`, which the loop times.
- `finish(outputs, context) -> dict` in the writer thread: the record's task fields (`top_k`, `detections`).
- `change_key(fields)`: what "the result changed" means for this task (MQTT --mqtt-on-change, --save change).
and `warm_up_tensor()`, an input to warm the interpreter with. A new task plugs in here and touches no loop.
"""

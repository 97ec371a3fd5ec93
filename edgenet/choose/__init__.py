"""`edgenet choose`: the most accurate zoo model that keeps up on this board.

Every real (pretrained) zoo model of a task is measured end to end on this machine (decode, preprocess,
invoke, postprocess: edgenet.bench's e2e mode) and the figures are cached per board and runtime; accuracy
comes from the published figures (edgenet/data/published.json) or from the user's own labelled photos
(`--eval DIR`).
The accuracy-latency frontier (Pareto) is drawn and the most accurate model within the budget is named.

- `frontier`: pure functions over measurements (the frontier, the choice within a budget).
- `cache`: the per-board measurement cache under EDGENET_HOME.
- `measure`: candidates, the e2e measurement of one model, accuracy (published or evaluated).
- `chart`: the terminal chart (80 columns) and the optional picture (`edgenet[plot]`).
- `report`: the table and the JSON document.
- `run`: a choose run from a `ChoosePlan`, with the one stop mechanism.
"""

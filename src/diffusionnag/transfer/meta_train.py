"""Meta-training: fit a :class:`MetaPredictor` over the tasks of a meta-dataset, save, load.

Each step draws ``tasks_per_step`` tasks; for each, a task encoding (a support set of 0 to
``max_support`` evaluated cells, or ``per_class`` images of every class) and a batch of query
cells perturbed by the score model's SDE at random times. The loss is the squared error of the
task-standardised accuracy. Support and query cells are drawn half from the task's best cells
and half uniformly (``top_fraction``), since transfer only ever evaluates what ranks on top.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffusionnag.device import resolve_device, single_thread
from diffusionnag.diffusion.sde import SDE, sde_from_dict, sde_to_dict
from diffusionnag.io import atomic_write, check_weights_fit, load_tensors, read_json
from diffusionnag.metrics import rank_correlations
from diffusionnag.predictors.meta import MetaPredictor, MetaPredictorConfig, TrainedMetaPredictor
from diffusionnag.predictors.task_encoders import KnownTask, TaskData, TaskEncoder
from diffusionnag.progress import iterate
from diffusionnag.spaces import SearchSpace, get_space
from diffusionnag.transfer.metadata import MetaDataset, MetaTask

CONFIG_FILE = "meta_predictor.json"
WEIGHTS_FILE = "meta_predictor.pt"


class _PreparedTask:
    """A task's encoded cells, standardised targets and its top cells, on the training device."""

    def __init__(self, task: MetaTask, space: SearchSpace, config: MetaPredictorConfig, device):
        values = np.maximum(task.values, np.quantile(task.values, config.floor_quantile))
        scale = values.std() or 1.0
        self.task = task
        self.x0 = space.encode(task.archs).to(device)  # [n, N, V]
        self.raw = torch.tensor(task.values, dtype=torch.float32, device=device)
        self.z = torch.tensor((values - values.mean()) / scale, dtype=torch.float32, device=device)
        top = max(2, round(config.top_fraction * len(values)))
        self.top = np.argsort(-task.values, kind="stable")[:top]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` indices: about half from the top cells, the rest uniform."""
        from_top = rng.binomial(n, 0.5)
        top = rng.choice(self.top, from_top)
        uniform = rng.integers(len(self.z), size=n - from_top)
        return np.concatenate([top, uniform])


def task_encoding(
    task: _PreparedTask,
    encoder: TaskEncoder,
    config: MetaPredictorConfig,
    rng: np.random.Generator,
    support_size: int | None = None,
) -> TaskData:
    """One random encoding of ``task`` for ``encoder``: a support set of ``support_size``
    evaluated cells (random up to ``max_support`` if ``None``) is drawn only if it reads one."""
    known = KnownTask(f"task {task.task.name!r}", task.task.images)
    if "support" in encoder.needs:
        size = int(rng.integers(config.max_support + 1)) if support_size is None else support_size
        index = task.draw(size, rng) if size else np.zeros(0, dtype=np.int64)
        known = replace(known, support_cells=task.x0[index], support_values=task.raw[index])
    return encoder.task_data(known, rng)


def train_meta_predictor(
    space: SearchSpace,
    sde: SDE,
    dataset: MetaDataset,
    config: MetaPredictorConfig | None = None,
    *,
    device: str = "auto",
    progress: bool = False,
) -> TrainedMetaPredictor:
    """Meta-train on every task of ``dataset`` (all of them: hold tasks out with ``split``)."""
    config = config or MetaPredictorConfig()
    if dataset.space != space.name:
        raise ValueError(f"meta-dataset is for space {dataset.space!r}, not {space.name!r}")
    dev = resolve_device(device)
    tasks = [_PreparedTask(task, space, config, dev) for task in dataset.tasks]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = MetaPredictor(space, config, pretrained=True).to(dev)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(dev).manual_seed(config.seed)
    with single_thread():
        for _ in iterate(range(config.steps), "meta-train", enabled=progress, unit="step"):
            chosen = [tasks[i] for i in rng.integers(len(tasks), size=config.tasks_per_step)]
            loss = _step_loss(network, sde, chosen, config, rng, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    network.eval()
    meta = {"tasks": dataset.task_names, "source": dataset.source}
    return TrainedMetaPredictor(space, sde, network, config, meta)


def _step_loss(
    network: MetaPredictor,
    sde: SDE,
    tasks: list[_PreparedTask],
    config: MetaPredictorConfig,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> Tensor:
    """Mean squared error over ``tasks``' query cells, all tasks in one forward pass."""
    encodings = [task_encoding(t, network.task_encoder, config, rng) for t in tasks]
    embeddings = network.encode_tasks(encodings)  # [T, D]
    queries = [t.draw(config.queries_per_task, rng) for t in tasks]
    x0 = torch.cat([t.x0[q] for t, q in zip(tasks, queries, strict=True)])  # [T * Q, N, V]
    target = torch.cat([t.z[q] for t, q in zip(tasks, queries, strict=True)])
    dev = x0.device
    n = len(x0)
    t = torch.rand(n, generator=generator, device=dev) * (1 - sde.t_min) + sde.t_min
    clean = torch.rand(n, generator=generator, device=dev) < config.clean_fraction
    t = torch.where(clean, torch.full_like(t, sde.t_min), t)
    noisy = sde.perturb(x0, t, torch.randn(x0.shape, generator=generator, device=dev))
    condition = embeddings.repeat_interleave(config.queries_per_task, dim=0)  # [T * Q, D]
    return (network(noisy, sde.std(t), condition) - target).pow(2).mean()


def evaluate_on_tasks(
    predictor: TrainedMetaPredictor,
    dataset: MetaDataset,
    *,
    support_sizes: tuple[int, ...] = (0, 10),
    max_cells: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Kendall/Spearman of clean predictions per task (held-out tasks, typically), for each
    support size where the encoder reads a support set, else for one encoding (labelled by the
    encoder's name)."""
    rng = np.random.default_rng(seed)
    device = predictor.network.head[0].weight.device
    report: dict[str, dict[str, dict[str, float]]] = {}
    encoder = predictor.network.task_encoder
    reads_support = "support" in encoder.needs
    for task in dataset.tasks:
        prepared = _PreparedTask(task, predictor.space, predictor.config, device)
        cells = rng.permutation(len(task.archs))[:max_cells]
        report[task.name] = {}
        for size in support_sizes if reads_support else (0,):
            encoding = task_encoding(prepared, encoder, predictor.config, rng, support_size=size)
            predicted = predictor.conditioned([encoding]).predict([task.archs[i] for i in cells])
            label = f"support {size}" if reads_support else predictor.config.encoder
            report[task.name][label] = rank_correlations(predicted, task.values[cells])
    return report


def save_meta_predictor(predictor: TrainedMetaPredictor, folder: Path | str) -> None:
    folder = Path(folder)
    header = {
        "space": predictor.space.name,
        "sde": sde_to_dict(predictor.sde),
        "config": asdict(predictor.config),
        "meta": predictor.meta,
    }
    text = json.dumps(header, indent=2) + "\n"
    atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    state = predictor.network.state_dict()
    atomic_write(folder / WEIGHTS_FILE, lambda p: torch.save(state, p))


def load_meta_predictor(folder: Path | str, device: str = "auto") -> TrainedMetaPredictor:
    """A saved meta-predictor; every problem is a ``ValueError`` naming the file."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{folder} is not a meta-predictor folder: {CONFIG_FILE} is missing")
    header = _read_header(path)
    try:
        space = get_space(header["space"])
        sde = sde_from_dict(header["sde"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    config = MetaPredictorConfig.from_dict(header["config"], str(path))
    check_weights_fit(
        lambda: MetaPredictor(space, config), folder / WEIGHTS_FILE, _sizes_of(config)
    )
    network = MetaPredictor(space, config)
    state = load_tensors(folder / WEIGHTS_FILE)
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(
            f"weights in {folder / WEIGHTS_FILE} do not fit its config: {error}"
        ) from None
    network.to(resolve_device(device)).eval()
    return TrainedMetaPredictor(space, sde, network, config, dict(header["meta"]))


def _sizes_of(config: MetaPredictorConfig) -> str:
    return f"config.hidden={config.hidden}, layers={config.layers}, task_dim={config.task_dim}"


def _read_header(path: Path) -> dict[str, Any]:
    header = read_json(path, "meta-predictor config")
    required = ("space", "sde", "config", "meta")
    if not isinstance(header, dict) or any(k not in header for k in required):
        raise ValueError(f"{path} is corrupt: it needs the fields {', '.join(required)}")
    meta = header["meta"]
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is corrupt: field 'meta' must be an object")
    tasks = meta.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(task, str) for task in tasks):
        raise ValueError(f"{path}: field 'meta.tasks' must be a list of task names, got {tasks!r}")
    if not isinstance(meta.get("source", ""), str):
        raise ValueError(f"{path}: field 'meta.source' must be a string")
    return header

"""The trainer: an image folder and a model name or checkpoint in, a run directory with checkpoints worth
exporting out.

The recipe follows MobileViT's: AdamW (no weight decay on norms and biases), linear warm-up from a tenth of the
learning rate then a cosine decay to a tenth, label smoothing 0.1, an exponential moving average of the weights
(evaluated and saved: it is what gets exported), random resized crops and flips for training and the model's own
preprocessing contract for evaluation. A task may bring its own recipe (detection: mmdetection's YOLOv3 one, SGD
with gradient clipping); options the user gives always win. The same command runs alone or under torchrun
(DistributedDataParallel: rank 0 alone writes, metrics are summed over ranks); `--batch` is the global batch, split
across processes.

A run directory holds `best.safetensors` and `last.safetensors` (self-describing checkpoints, EMA weights),
`resume.pt` (everything needed to continue: weights, EMA, optimizer, schedule, history, config),
`metrics.csv` / `metrics.json` (one row per epoch) and `curves.png`. Every file is written atomically, so
Ctrl-C never leaves a broken one.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..checkpoint import atomic_path, load_model, save_checkpoint
from ..errors import CheckpointError, DataError, OptionError, XFormerError
from ..models import create_model, get_model_entry, list_models
from ..models.registry import ModelConfig
from .distributed import DistributedContext, setup_distributed
from .interrupt import check as check_interrupt
from .interrupt import deferred_interrupt
from .report import SCORE_NAMES
from .tasks import Task, get_task

__all__ = ["TrainConfig", "TrainResult", "train"]

RESUME_NAME = "resume.pt"
# Settings that change where or how fast a run goes, not what it computes: free to differ on --resume.
RUNTIME_SETTINGS = ("data", "out", "workers", "threads", "device", "strict")


@dataclass
class TrainConfig:
    """Every `xformer train` option; a resumed run must repeat the ones that change what is computed."""

    source: str  # registered model name (from scratch) or checkpoint (fine-tune)
    data: str  # data set root with train/ and val/ splits (class folders, images/masks pairs, COCO format)
    epochs: int = 30
    batch: int = 64  # global batch: split evenly across torchrun processes
    optimizer: str = "adamw"  # adamw or sgd
    lr: float = 2e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.01
    clip_grad: float | None = None  # largest gradient norm (None: no clipping)
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.1
    ema_decay: float = 0.9995
    imgsz: int | str | None = None  # 256 or "HxW"; default: the model's (or checkpoint's) input size
    crop_scale: float = 0.08  # classification: smallest crop area fraction of the random resized crop
    hflip: float = 0.5
    scale_min: float = 0.5  # segmentation, detection: range of the random rescale before the crop
    scale_max: float = 2.0
    translate: float = 0.1  # detection: largest random shift, as a fraction of the input size
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU), off, bf16, fp16
    seed: int = 0
    new_head: bool = False  # fine-tune: a fresh classifier even when the class count matches
    model: str | None = None  # architecture of a plain state_dict
    out: str | None = None  # run directory (default runs/train/ARCH, numbered when taken)
    workers: int | None = None  # data loader processes per rank (default: up to 4, sharing the cores)
    threads: int | None = None  # torch CPU threads per rank (default: half the cores per rank)
    device: str = "auto"
    strict: bool = False  # an unreadable image is an error instead of being skipped

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    fitness: str  # the metric that picked the best checkpoint (top1, miou)
    best_fitness: float
    best_epoch: int
    history: list[dict]
    seconds: float


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_size(size: int | str) -> tuple[int, int]:
    """(height, width) of --imgsz 256 or 256x512; both multiples of 32."""
    try:
        height, width = (int(size), int(size)) if isinstance(size, int) or "x" not in str(size) else \
            (int(v) for v in str(size).lower().split("x"))
    except ValueError as err:
        raise OptionError(f"--imgsz {size!r} is not a size; give 256 or HxW such as 256x512") from err
    for side in (height, width):
        if side <= 0 or side % 32:
            raise OptionError(f"--imgsz {size} is not a multiple of 32 (the network's stride); "
                              f"try {max(32, round(side / 32) * 32)}")
    return height, width


def _run_dir(config: TrainConfig, arch: str) -> Path:
    if config.out:
        out = Path(config.out)
        if out.exists() and any(out.iterdir()):
            raise OptionError(f"{out} already holds files; pick a new --out, or continue that run with "
                               f"--resume {out}")
        return out
    base = Path("runs/train") / arch
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{arch}{n}")
    return candidate


def _source_task(source: str, model: str | None, state: dict | None) -> str:
    """The task of what is trained: the resumed run's, the registered model's, or the checkpoint's."""
    if state is not None:
        return ModelConfig.from_dict(state["model_config"]).task
    if source in list_models():
        return get_model_entry(source).task
    if not Path(source).is_file():
        raise CheckpointError(f"{source!r} is neither a model name nor a checkpoint file; models: "
                              f"{', '.join(list_models())}")
    return load_model(source, model)[0].model_config.task


def _build_model(config: TrainConfig, classes: list[str], console: Console | None) -> nn.Module:
    """From scratch for a model name; for a checkpoint, its weights with a new classifier when the data's classes
    differ in number (or with --new-head). Same number of classes under other names is refused."""
    if config.source in list_models():
        entry = get_model_entry(config.source)
        spec = entry.preprocess.with_input_size(_check_size(config.imgsz)) if config.imgsz else entry.preprocess
        return create_model(config.source, num_classes=len(classes), labels=classes, preprocess=spec,
                            seed=config.seed)
    if not Path(config.source).is_file():
        raise CheckpointError(f"{config.source!r} is neither a model name nor a checkpoint file; models: "
                           f"{', '.join(list_models())}")
    base, _ = load_model(config.source, config.model)
    old = base.model_config
    spec = old.preprocess.with_input_size(_check_size(config.imgsz)) if config.imgsz else old.preprocess
    if list(old.labels) == list(classes) and not config.new_head:
        base.model_config = ModelConfig(old.arch, old.num_classes, old.options, list(classes), spec, old.task)
        return base
    if len(old.labels) == len(classes) and not config.new_head:
        raise DataError(f"{config.source} was trained on classes {', '.join(old.labels[:6])}... but the data's "
                        f"class folders are {', '.join(classes[:6])}...; rename the folders to the checkpoint's "
                        "labels, or pass --new-head to train a fresh classifier")
    model = create_model(old.arch, num_classes=len(classes), labels=classes, preprocess=spec, seed=config.seed,
                         **old.options)
    target = model.state_dict()
    kept = {k: v for k, v in base.state_dict().items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(kept, strict=False)
    fresh = sorted(set(target) - set(kept))
    if console is not None:
        console.print(f"[yellow]new classifier head:[/] {config.source} has {len(old.labels)} classes, the data "
                      f"{len(classes)}; re-initialised {', '.join(fresh)}", highlight=False)
    return model


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    raise OptionError(f"unknown --optimizer {config.optimizer!r}; use adamw or sgd")


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _schedule(total_steps: int, warmup_steps: int, start: float = 0.1, final: float = 0.1):
    """Multiplier of the base learning rate at a step: linear warm-up from `start`, cosine down to `final`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return start + (1 - start) * step / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _ema(model: nn.Module, decay: float) -> AveragedModel:
    """Weight EMA whose decay ramps up over the first few thousand steps (as YOLOv5/Ultralytics do), so short
    runs and fine-tunes are not dominated by the initial weights."""

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        d = decay * (1 - math.exp(-float(updates) / 2000))
        return averaged * d + current * (1 - d)

    return AveragedModel(model, avg_fn=average, use_buffers=True)


def _autocast(amp: str, device: torch.device):
    """The autocast context and whether a gradient scaler is needed (fp16 only)."""
    if amp == "auto":
        if device.type != "cuda":
            return nullcontext(), False
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "off":
        return nullcontext(), False
    if amp not in ("bf16", "fp16"):
        raise OptionError(f"unknown --amp {amp!r}; use auto, off, bf16 or fp16")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype), amp == "fp16"


def _evaluate(model: nn.Module, task: Task, dataset, ctx: DistributedContext, batch: int, workers: int) -> dict:
    """Metrics of `model` on the val split; each rank takes every world_size-th image and the sums are reduced."""
    shard = torch.utils.data.Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
    loader = torch.utils.data.DataLoader(shard, batch_size=batch, num_workers=workers, collate_fn=task.collate)
    metrics = task.metrics(model.model_config)
    model.eval()
    with torch.inference_mode():
        for images, targets in loader:
            metrics.update(model(images.to(ctx.device)), targets)
    metrics.all_reduce()
    return metrics.summary(model.model_config.labels)


def _load_resume(path: str, given: dict) -> tuple[Path, dict]:
    """The run directory and saved state of a run to continue; options given now must match the saved ones."""
    run_dir = Path(path)
    if run_dir.is_file():
        run_dir = run_dir.parent
    state_path = run_dir / RESUME_NAME
    if not state_path.is_file():
        raise CheckpointError(f"--resume {path}: no {RESUME_NAME} there; give the run directory of an earlier "
                              "`xformer train`")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file, whatever torch raises
        raise CheckpointError(f"{state_path} cannot be read ({err}); start a new run") from err
    saved = state["config"]
    differ = [f"{k}: run has {saved.get(k)!r}, given {v!r}" for k, v in given.items()
              if k not in RUNTIME_SETTINGS and v is not None and saved.get(k) != v]
    if differ:
        raise OptionError(f"--resume {run_dir}: options differ from the run's ({'; '.join(differ)}); drop them to "
                           "continue the run as it was, or start a new run")
    return run_dir, state


def train(given: dict, resume: str | None = None, console: Console | None = None) -> TrainResult:
    """Train with the options in `given` (TrainConfig fields; None means the default, or the resumed run's value).

    Returns on every rank; only the primary writes files and prints.
    """
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise OptionError(f"unknown training option(s): {', '.join(unknown)}")
    state = None
    if resume:
        run_dir, state = _load_resume(resume, given)
        values = {**state["config"], **{k: v for k, v in given.items() if k in RUNTIME_SETTINGS and v is not None}}
    else:
        values = {k: v for k, v in given.items() if v is not None}
        if "source" not in values or "data" not in values:
            raise OptionError("give a model name or checkpoint and --data DIR (or --resume RUN_DIR)")
        values = {**get_task(_source_task(values["source"], values.get("model"), None)).defaults, **values}
    config = TrainConfig(**values)
    ctx = setup_distributed(config.device)
    try:
        with deferred_interrupt():
            return _train(config, ctx, state, run_dir if resume else None, console if ctx.is_primary else None)
    finally:
        ctx.close()


def _train(config: TrainConfig, ctx: DistributedContext, state: dict | None, run_dir: Path | None,
           console: Console | None) -> TrainResult:
    start_time = time.perf_counter()
    say = console.print if console is not None else (lambda *a, **k: None)
    if config.batch % ctx.world_size:
        raise OptionError(f"--batch {config.batch} does not split evenly over {ctx.world_size} processes")
    if not 0 < config.crop_scale <= 1 or not 0 <= config.hflip <= 1 or config.epochs < 1 or config.batch < 1:
        raise OptionError("--crop-scale must be in (0, 1], --hflip in [0, 1], --epochs and --batch >= 1")
    cores = _usable_cores()
    torch.set_num_threads(config.threads or max(1, cores // ctx.world_size // 2))
    workers = config.workers if config.workers is not None else min(4, max(1, cores // ctx.world_size))
    torch.manual_seed(config.seed + ctx.rank)  # augmentation differs per rank; weights are broadcast by DDP

    task = get_task(_source_task(config.source, config.model, state))
    train_set = task.train_data(config.data, config.strict)
    classes = train_set.classes
    if state is not None:
        model = create_model(**_model_kwargs(state["model_config"]), seed=config.seed)
        if list(model.model_config.labels) != classes:
            raise DataError(f"--resume: the data's classes ({', '.join(classes[:6])}...) differ from the run's "
                            f"({', '.join(model.model_config.labels[:6])}...)")
    else:
        model = _build_model(config, classes, console)
    spec = model.model_config.preprocess
    train_set.transform = task.train_transform(spec, config)
    val_set = task.val_data(config.data, spec, classes, config.strict)
    skipped = train_set.skipped + val_set.skipped
    if skipped:
        say(f"[yellow]skipped {len(skipped)} unreadable image(s)[/] (first: {skipped[0][0]}: {skipped[0][1]}); "
            "--strict makes this an error", highlight=False)
    for note in filter(None, (getattr(train_set, "note", None), getattr(val_set, "note", None))):
        say(f"[yellow]note:[/] {note}", highlight=False)

    per_rank = config.batch // ctx.world_size
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank,
                                                  shuffle=True, seed=config.seed,
                                                  drop_last=len(train_set) >= config.batch)
    loader = torch.utils.data.DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=workers,
                                         collate_fn=task.train_collate, drop_last=len(train_set) >= config.batch,
                                         persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(config.seed + ctx.rank))
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise DataError(f"{config.data} holds {len(train_set)} training images, fewer than one batch per process; "
                        "lower --batch")

    model.to(ctx.device)
    ema = _ema(model, config.ema_decay)
    optimizer = _optimizer(model, config)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps // 2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, warmup_steps))
    autocast, needs_scaler = _autocast(config.amp, ctx.device)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=needs_scaler)
    history, best_fitness, best_epoch, first_epoch = [], -1.0, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, first_epoch = list(state["history"]), int(state["epoch"])
        best_fitness, best_epoch = float(state["best_fitness"]), int(state["best_epoch"])
        say(f"resuming {run_dir} at epoch {first_epoch + 1}/{config.epochs}" if first_epoch < config.epochs
            else f"{run_dir} finished all {config.epochs} epochs already", highlight=False)
    run_dir = run_dir or _run_dir(config, model.model_config.arch)
    # A few convolution weights get gradients in another memory layout than DDP's buckets; DDP copies them,
    # which is correct, and would warn about it from every process.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ddp = nn.parallel.DistributedDataParallel(model) if ctx.is_distributed else model
    criterion = task.criterion(config, model.model_config).to(ctx.device)
    if console is not None and state is None:
        say(f"training {model.model_config.arch} on {len(train_set)} images in {len(classes)} classes "
            f"({len(val_set)} val), {config.epochs} epochs x {steps_per_epoch} steps of {config.batch} images"
            f"{f' over {ctx.world_size} processes' if ctx.is_distributed else ''}, "
            f"{spec.input_size[0]}x{spec.input_size[1]}, {ctx.device}; run directory {run_dir}", highlight=False)

    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=console is None) as progress:
        bar = progress.add_task("train", total=(config.epochs - first_epoch) * steps_per_epoch,
                                 epoch=f"{first_epoch + 1}/{config.epochs}", loss=float("nan"), lr=config.lr)
        for epoch in range(first_epoch, config.epochs):
            epoch_start = time.perf_counter()
            sampler.set_epoch(epoch)
            ddp.train()
            loss_sum, seen = 0.0, 0
            for step, (images, labels) in enumerate(loader):
                images, labels = images.to(ctx.device), labels.to(ctx.device)
                with autocast:
                    loss = criterion(ddp(images), labels)
                if not torch.isfinite(loss):
                    raise XFormerError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                       f"lower --lr (now {config.lr:g}) or use --amp off")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.clip_grad:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                ema.update_parameters(model)
                loss_sum += loss.item() * (1 if task.loss_reduction == "sum" else len(images))
                seen += len(images)
                progress.update(bar, advance=1, epoch=f"{epoch + 1}/{config.epochs}", loss=loss_sum / seen,
                                lr=scheduler.get_last_lr()[0])
                check_interrupt()
            loss_sum, seen = ctx.all_reduce_sum([loss_sum, float(seen)])
            metrics = _evaluate(ema.module, task, val_set, ctx, batch=max(per_rank, 32), workers=0)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "val_loss": metrics["loss"],
                   **{key: metrics[key] for key in task.columns}, "lr": scheduler.get_last_lr()[0],
                   "seconds": time.perf_counter() - epoch_start}
            history.append(row)
            improved = row[task.fitness] > best_fitness
            if improved:
                best_fitness, best_epoch = row[task.fitness], epoch + 1
            if ctx.is_primary:
                _save(run_dir, config, model, ema, optimizer, scheduler, scaler, history, best_fitness, best_epoch,
                      improved, metrics)
                scores = ", ".join(f"{SCORE_NAMES.get(key, key)} {row[key]:.2%}" for key in task.columns)
                say(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f}, val loss "
                    f"{row['val_loss']:.4f}, {scores}, "
                    f"{row['seconds']:.0f} s{'  (best)' if improved else ''}", highlight=False)
            check_interrupt()
    ctx.barrier()
    seconds = time.perf_counter() - start_time
    say(f"best {SCORE_NAMES.get(task.fitness, task.fitness)} {best_fitness:.2%} at epoch {best_epoch}; "
        f"{seconds:.0f} s. Files in {run_dir}: best.safetensors, "
        "last.safetensors, metrics.csv, metrics.json, curves.png", highlight=False)
    say(f"next: xformer val {run_dir / 'best.safetensors'} --data {config.data}    "
        f"xformer export {run_dir / 'best.safetensors'} --formats onnx,tflite", highlight=False)
    return TrainResult(run_dir, run_dir / "best.safetensors", run_dir / "last.safetensors", task.fitness,
                       best_fitness, best_epoch, history, seconds)


def _model_kwargs(model_config: dict) -> dict:
    config = ModelConfig.from_dict(model_config)
    return {"name": config.arch, "num_classes": config.num_classes, "labels": config.labels,
            "preprocess": config.preprocess, **config.options}


def _save(run_dir: Path, config: TrainConfig, model: nn.Module, ema: AveragedModel, optimizer, scheduler, scaler,
          history: list[dict], best_fitness: float, best_epoch: int, improved: bool, metrics: dict) -> None:
    """Checkpoints, resume state, metrics and curves after an epoch: each file written atomically."""
    from .report import write_curves, write_metrics

    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ema.module, run_dir / "last.safetensors")
    if improved:
        save_checkpoint(ema.module, run_dir / "best.safetensors")
        with atomic_path(run_dir / "best_per_class.json") as tmp:
            tmp.write_text(json.dumps(metrics["per_class"], indent=2))
    state = {"config": config.to_dict(), "model_config": model.model_config.to_dict(), "epoch": len(history),
             "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "history": history,
             "best_fitness": best_fitness, "best_epoch": best_epoch}
    with atomic_path(run_dir / RESUME_NAME) as tmp:
        torch.save(state, tmp)
    write_metrics(history, run_dir)
    write_curves(history, run_dir / "curves.png")

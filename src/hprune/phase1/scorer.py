"""Phase 1: R fine-tunes of E epochs on the full training set, recorded, then H and the other scores.

`HScorer` is the one stateful object of the workflow. With an output folder, each run's dynamics and
a resume checkpoint are saved atomically at every epoch end: repeating the command skips finished
runs and continues an interrupted one from its last completed epoch, with identical results.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from ..artifacts import MANIFEST_FILE, check_outputs, data_info, earlier_scoring, is_finished, write_scoring
from ..config import TRAIN_OPTIONS, ScoreConfig, tokenized_cache_dir
from ..data import LabelledData
from ..engine.distributed import barrier, current_world, device_for, init_from_env, lost_a_rank
from ..dynamics.store import discard_run, epochs_saved, run_problem
from ..engine.loop import default_device, micro_batches_per_epoch, torch_settings
from ..engine.progress import progress_bar
from ..engine.models import check_model, load_model, recorded_name, train_config_for
from ..errors import HpruneError, Interrupted
from ..io import ensure_writable, remove_stale_temps, write_json
from ..subsets import subset_family
from ..tasks import as_task_data, task_of
from .run import RunInputs, score_run

log = logging.getLogger(__name__)  # what it is doing while it loads; the CLI shows it as plain lines

EXECUTORS = ("local", "ray")


class HScorer:
    """Score a labelled dataset, scikit-learn style: `__init__` only stores its keyword parameters; `fit(data,
    eval_data=None)` loads and checks the data, trains the R runs and sets `scoring_` (an artifacts.Scoring),
    `scores_`, `subsets_`, `dynamics_`, `learning_report_`, `warnings_`, `manifest_` and `config_` (the
    resolved ScoreConfig); `get_support(name)` is then a subset's boolean mask over the rows.

    `data`: a path, a `save_to_disk` folder, a hub name, a pandas DataFrame, a `datasets.Dataset` or a list of
    dicts (columns detected as for files, or named by `text_column`, `text_pair_column`, `label_column`), or
    data already loaded (hprune.load_data / load_task_data). The training options (hprune.config.TrainConfig's
    fields: `epochs`, `lr`, `batch_size`, ...) left None take hprune's defaults for the model, the data's size
    and the task kind, as `hprune score` does, so the same data gives the same scores from either.

    `executor="local"` trains the R runs one after another in this process, or `jobs` of them at once in
    worker processes of this machine (several runs of a small model share one GPU); `"ray"` dispatches them
    as Ray tasks (`cpus_per_run`/`gpus_per_run` each) on a local Ray, or on the cluster at
    `ray_address`, with the same results for the same seeds. Started by `torchrun`/`accelerate
    launch`, every run trains with DDP over the launched processes and rank 0 writes the files.
    """

    def __init__(self, model: str = ScoreConfig.model, runs: int = ScoreConfig.runs, epochs: int | None = None, *,
                 out_dir: str | Path | None = None, seed: int = ScoreConfig.seed, score_epochs: int | None = None, lr: float | None = None,
                 batch_size: int | None = None, grad_accum: int | None = None, warmup_ratio: float | None = None,
                 weight_decay: float | None = None, max_length: int | None = None, bf16: bool | None = None,
                 length_grouped: bool | None = None, class_weight: str | None = None, paper_settings: bool = False,
                 task_type: str | None = None, text_column: str | None = None, text_pair_column: str | None = None,
                 label_column: str | None = None, threads: int | None = None, progress: bool = True, executor: str = "local",
                 jobs: int = 1, ray_address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None):
        self.model = model
        self.runs = runs
        self.epochs = epochs
        self.out_dir = out_dir
        self.seed = seed
        self.score_epochs = score_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.max_length = max_length
        self.bf16 = bf16
        self.length_grouped = length_grouped
        self.class_weight = class_weight
        self.paper_settings = paper_settings
        self.task_type = task_type
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        self.label_column = label_column
        self.threads = threads
        self.progress = progress
        self.executor = executor
        self.jobs = jobs
        self.ray_address = ray_address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run

    def fit(self, data, eval_data=None) -> "HScorer":
        columns = {"text_column": self.text_column, "pair_column": self.text_pair_column, "label_column": self.label_column}
        train = as_task_data(data, task_type=self.task_type, **columns)
        eval_data = as_task_data(eval_data, like=train, **columns) if eval_data is not None else None
        options = {name: getattr(self, name) for name in TRAIN_OPTIONS}
        cfg = self.config_ = ScoreConfig(self.model, self.runs, self.seed, train_config_for(
            self.model, n_examples=len(train), task_type=task_of(train).name, paper_settings=self.paper_settings, **options),
            score_epochs=self.score_epochs)
        if self.executor not in EXECUTORS:
            raise HpruneError(f"unknown executor {self.executor!r}; choose one of: {', '.join(EXECUTORS)}")
        if self.executor != "ray" and (self.ray_address or self.cpus_per_run or self.gpus_per_run):
            raise HpruneError("--ray-address, --cpus-per-run and --gpus-per-run go with --executor ray")
        if self.jobs < 1:
            raise HpruneError(f"--jobs must be at least 1 (got {self.jobs})")
        if self.jobs > 1 and (self.executor == "ray" or current_world().distributed):
            raise HpruneError("--jobs runs whole runs in worker processes of this machine; leave it out with --executor ray, "
                              "torchrun or accelerate launch")
        if cfg.runs < 1 or cfg.train.epochs < 1:
            raise HpruneError(f"--runs and --epochs must be at least 1 (got {cfg.runs} and {cfg.train.epochs})")
        if cfg.score_epochs is not None and not 1 <= cfg.score_epochs <= cfg.train.epochs:
            raise HpruneError(f"--score-epochs {cfg.score_epochs} must be between 1 and --epochs ({cfg.train.epochs}); "
                              "it scores a prefix of the --epochs schedule")
        subset_family(cfg.runs)  # refuses R = 1 now rather than after every run has trained
        check_model(cfg.model, max_length=cfg.train.max_length)  # everything cheap is checked before --out is touched
        if self.executor == "ray":
            from .executors import import_ray

            import_ray()  # a missing Ray fails here, before --out is touched
            if current_world().distributed:
                raise HpruneError("--executor ray dispatches whole runs; start it once, not under torchrun or accelerate launch")
        self.world_, created = init_from_env()
        try:
            with torch_settings(self.threads):
                return self._fit_locked(train, eval_data)
        except RuntimeError as e:
            if lost_a_rank(e):
                raise Interrupted() from None  # its runs resume from their last epoch, like this rank's
            raise
        finally:
            if created:
                torch.distributed.destroy_process_group()

    def get_support(self, name: str | None = None, **budget):
        """True for the rows of the fitted data that subset `name` keeps (a name from `subsets_`, or a removed-H code;
        default the winning ticket), or a budget: `fraction=` or `size=`, with `method=` (Scoring.ids)."""
        return self.scoring_.mask(name, **budget)

    def _fit_locked(self, train: LabelledData, eval_data: LabelledData | None) -> "HScorer":
        out = Path(self.out_dir) if self.out_dir is not None else None
        if out is None:
            return self._fit(train, eval_data, None)
        if not self.world_.is_main:  # rank 0 holds the lock and prepares the folder for all ranks
            return self._fit(train, eval_data, out)
        ensure_writable(out)
        try:
            with FileLock(out / ".lock", timeout=0):
                remove_stale_temps(out)  # left by a process killed mid-write
                try:
                    return self._fit(train, eval_data, out)
                finally:
                    remove_stale_temps(out)  # and by a worker stopped mid-write (a Ray worker, say)
        except Timeout:
            raise HpruneError(f"another hprune score is running on {out}; wait for it or use another --out") from None

    def _discard_bad_runs(self, out: Path, recorded: dict) -> None:
        """Self-healing: a run whose files are unreadable or fail their recorded checksum is trained again
        (deterministic, so the scores come out as an intact run's), and the user is told."""
        for r in range(self.config_.runs):
            problem = run_problem(out, r, recorded)
            if problem:
                log.warning(f"{problem}; training run {r + 1} again")
                discard_run(out, r)

    def _fit(self, train: LabelledData, eval_data: LabelledData | None, out: Path | None) -> "HScorer":
        cfg, world = self.config_, self.world_
        started = time.perf_counter()
        # The number of processes changes the effective batch size, hence the scores: part of the identity.
        config = {**cfg.to_dict(), "model": recorded_name(cfg.model), "processes": world.size}
        identity = {"config": config, "fingerprint": train.fingerprint, "eval_fingerprint": eval_data.fingerprint if eval_data else None}
        earlier = earlier_scoring(out, identity) if out is not None else None
        finished = earlier if earlier is not None and is_finished(earlier, out) else None
        if out is not None and world.is_main:
            if finished is not None:
                check_outputs(finished, out)  # changed scores are refused, never silently replaced
            self._discard_bad_runs(out, (earlier or {}).get("files", {}))
            if finished is None:  # a finished folder stays usable while the command is repeated
                write_json(out / MANIFEST_FILE, {**identity, "status": "running", **data_info(train)})
        barrier(world)
        task = task_of(train)
        log.info(f"loading model {cfg.model} and tokenizing {len(train)} training"
                 + (f" and {len(eval_data)} evaluation examples" if eval_data else " examples"))
        tokenizer, _ = load_model(cfg.model, train.label_names, task.name)  # fails fast on a bad model
        encoded = task.encode(tokenizer, train, cfg.train.max_length, cache_dir=tokenized_cache_dir())
        eval_encoded = task.encode(tokenizer, eval_data, cfg.train.max_length, cache_dir=tokenized_cache_dir()) if eval_data else None
        inputs = RunInputs(
            config=cfg, label_names=train.label_names, labels=encoded.targets, features=encoded.features,
            eval_labels=eval_encoded.targets if eval_data else None, eval_features=eval_encoded.features if eval_data else None,
            progress=self.progress, world=world, task_type=task.name, n_examples=len(train),
            example_index=encoded.example_index if encoded.grouped else None, relevant=encoded.relevant,
            eval_data=eval_data if eval_encoded is not None and eval_encoded.grouped else None,
            eval_encoded=eval_encoded if eval_encoded is not None and eval_encoded.grouped else None,
        )
        if self.executor == "ray":
            from .executors import run_on_ray

            results = run_on_ray(inputs, out, address=self.ray_address, cpus_per_run=self.cpus_per_run or self.threads, gpus_per_run=self.gpus_per_run,
                                 progress=self.progress)
        elif self.jobs > 1:
            from .executors import run_in_processes

            results = run_in_processes(inputs, out, jobs=self.jobs, threads=self.threads, progress=self.progress)
        else:
            steps = micro_batches_per_epoch(len(encoded.features), cfg.train.batch_size, world.size)
            saved = sum(epochs_saved(out, r) for r in range(cfg.runs))  # a resume does not train these again
            with progress_bar(desc="scoring", total=cfg.runs * cfg.scored_epochs() * steps, initial=saved * steps, unit="step", leave=True,
                              disable=not self.progress or not world.is_main) as job:
                results = [score_run(inputs, r, out, job=job) for r in range(cfg.runs)]
        runs, run_info = [d for d, _ in results], [i for _, i in results]
        device = device_for(world) if world.distributed else default_device()
        scoring = write_scoring(
            out if world.is_main else None, runs, run_info, labels=train.labels, label_names=train.label_names, config=config,
            example_ids=train.example_ids, baseline=task.baseline(train),
            manifest={**identity, **data_info(train), "eval_source": eval_data.source if eval_data else None, "device": str(device),
                      # a repeat of a finished scoring trains nothing: it keeps the time of the one that did
                      "executor": self.executor, **({"jobs": self.jobs} if self.jobs > 1 else {}),
                      "seconds": (finished or {}).get("seconds", round(time.perf_counter() - started, 1))},
        )
        self.scoring_ = scoring
        self.dynamics_, self.scores_, self.subsets_ = scoring.dynamics, scoring.scores, scoring.subsets
        self.learning_report_, self.warnings_, self.manifest_ = scoring.learning_report, scoring.warnings, scoring.manifest
        return self

"""Where a profile's grid runs: here, one step after another, or as tasks on a Ray cluster.

A profile's *plan* is every experiment its notebooks show (``grid_cnn``, ``grid_vit`` and
``ablations`` sections) plus the synthetic sets those experiments calibrate with, computed in one
place (:func:`pending_plan`: what is left of it under a results folder). The two executors run the
same plan, every experiment through :func:`mixq_core.experiment.run`, with the same retry
(:func:`attempt`) and the same failure report (:class:`ExecutionReport`). Three stages follow from it:

1. **synthesis**: each missing set, split into ``shards`` tasks (``synthesize --shard i/n``),
   then one task per set that writes its manifest (and applies GenQ's filter) once all
   shards are done;
2. **experiments**: one task per grid point (:func:`mixq_core.experiment.run`), started by
   Ray only when the set it needs is ready (task dependencies, no polling);
3. **notebooks**: each notebook executed by papermill; it finds every record in place.

The ``local`` executor needs nothing more than the package: it runs the experiments one
after another in this process (each set is made by the first experiment that needs it), and
``mixq reproduce`` then executes the notebooks here. The ``ray`` executor (``pip install
"mixq-core[ray]"``) submits the three stages as tasks: one GPU per task when the profile
says ``gpu: true``, else ``cpus_per_task`` CPUs (each task then uses that many threads,
so tasks never oversubscribe a node and a record is the same as the local one). A task
that fails is retried once, then reported by name; the others run on. Workers write into
the same ``results/`` folder (a shared filesystem on a multi-node cluster); the records
are also returned to the driver, which writes any it does not find, so nothing is lost
where workers do not share the driver's disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import MANIFEST_NAME
from .errors import ConfigError, MixQError, unknown_name
from .experiment import (
    SYNTHETIC_SOURCES,
    ExperimentConfig,
    ablation_configs,
    grid_pipeline,
    grid_section_configs,
    pending_configs,
    run,
    synthetic_set,
    synthetic_set_folder,
)
from .profiles import PROFILES_ENV, load_profile, profile_dirs
from .progress import progress
from .results import RESULTS_DIR, record_path, write_record
from .sources import get_source

EXECUTORS = ("local", "ray")
STAGES = ("synthesis", "experiments", "notebooks")
ATTEMPTS = 2  # a task that fails is tried once more, then reported by name; the others run on


def profile_plan(profile_name: str) -> list[ExperimentConfig]:
    """Every experiment of the profile's grid sections and ablations, each once, in a fixed order."""
    profile = load_profile(profile_name)
    configs = grid_section_configs(profile_name)
    if profile.get("ablations"):
        configs += [c for group in ablation_configs(profile_name).values() for c in group]
    return list(dict.fromkeys(c.resolved() for c in configs))  # resolved: guidance=None is the profile's 3.0


@dataclass
class Plan:
    """The work of a profile under a results folder: its experiments and the synthetic sets they calibrate
    with, each set by its folder with the first experiment that needs it (which says how to make it)."""

    experiments: list[ExperimentConfig]
    sets: dict[Path, ExperimentConfig]


def pending_plan(profile_name: str, results_dir: str | os.PathLike = RESULTS_DIR) -> Plan:
    """What is left of the profile's plan (:func:`profile_plan`): experiments without a record, and the sets
    they need that are not complete yet. Both executors run this."""
    experiments = pending_configs(profile_plan(profile_name), results_dir)
    sets: dict[Path, ExperimentConfig] = {}
    for config in experiments:
        if config.data in SYNTHETIC_SOURCES:
            folder = synthetic_set_folder(config, results_dir)
            if not (folder / MANIFEST_NAME).exists():
                sets.setdefault(folder, config)
    return Plan(experiments, sets)


def attempt(function: Callable, *args):
    """``function(*args)``, tried :data:`ATTEMPTS` times in all before its error is let through: the one retry
    rule of both executors (a lost worker, a transient failure of the disk or the GPU)."""
    for left in range(ATTEMPTS - 1, -1, -1):
        try:
            return function(*args)
        except Exception:
            if not left:
                raise


def experiment_label(config: ExperimentConfig) -> str:
    """A short readable name of a grid point, used in progress and failure reports."""
    c = config.resolved()
    extras = "".join([f" k={c.k}" if get_source(c.data).mixes_classes and c.k != 2 else "",
                      f" {c.partners}" if c.partners != "random" else "",
                      f" g={c.guidance}" if c.data in SYNTHETIC_SOURCES else ""])
    return f"{c.model} W{c.w_bits}A{c.a_bits} {c.data}{extras} n={c.n_calib} iters={c.iters} seed={c.seed}"


@dataclass
class Failure:
    """A task that failed after its retry (or whose input failed)."""

    stage: str
    name: str
    error: str


@dataclass
class ExecutionReport:
    """What an executor did: task counts per stage, failures by name, wall time."""

    executor: str
    done: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"executor": self.executor, "done": self.done, "seconds": round(self.seconds, 1),
                "failures": [vars(f) for f in self.failures]}


class ExecutionError(MixQError):
    """Some tasks failed after their retry; the message names each one with its error."""


# ----------------------------------------------------------------------------- tasks (run in Ray workers)


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def synthesis_task(config: dict, shard: tuple[int, int], results_dir: str, threads: int | None) -> dict:
    """Stage 1: one shard of one synthetic set."""
    _set_threads(threads)
    return synthetic_set(ExperimentConfig.from_dict(config), results_dir, shard=shard)


def finish_set_task(config: dict, results_dir: str, threads: int | None, *shards: dict) -> dict:
    """Stage 1, last step: with every shard done, write the set's manifest (a no-op if one did)."""
    _set_threads(threads)
    summary = synthetic_set(ExperimentConfig.from_dict(config), results_dir)
    if not summary.get("complete"):
        raise MixQError(f"set {summary.get('out')} is still incomplete after all {len(shards)} shards ran")
    return summary


def experiment_task(config: dict, results_dir: str, threads: int | None, *ready_sets: dict) -> dict:
    """Stage 2: one grid point, through :func:`mixq_core.experiment.run`."""
    _set_threads(threads)
    return run(ExperimentConfig.from_dict(config), results_dir=results_dir)


def notebook_task(run_page: Callable, page, profile: str, root: str, *experiments: dict) -> None:
    """Stage 3: one page of the book, ``run_page(page, parameters)`` (its notebook through papermill, see
    :func:`mixq_core.reproduce.execute_page`), which returns None or the error text."""
    os.chdir(root)
    error = run_page(page, {"profile": profile})
    if error is not None:
        raise MixQError(f"notebook {page.name}: {error}")


# ----------------------------------------------------------------------------- the Ray executor


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is optional: pip install 'mixq-core[ray]'") from None
    return ray


def run_on_ray(profile_name: str, notebooks: list | None = None, results_dir: str | os.PathLike = RESULTS_DIR,
               address: str | None = None, shards: int = 2, cpus_per_task: int | None = None,
               run_page: Callable | None = None, root: str | os.PathLike = ".") -> ExecutionReport:
    """Run the profile's plan (and ``notebooks``, the book's pages, each given to ``run_page``) as Ray tasks;
    return what happened.

    Args:
        address: a running cluster (``ray start --head`` prints it; ``"auto"`` finds a local
            one); ``None`` starts a private instance on this machine.
        shards: tasks per synthetic set.
        cpus_per_task: CPUs (and torch threads) per task on CPU profiles; default: the
            driver's torch thread count.
        run_page: runs one of ``notebooks`` with its parameters, returning None or the error text
            (:func:`mixq_core.reproduce.execute_page`).
        root: the repository folder notebooks run in (``notebooks/``, ``book/``).
    """
    if notebooks and run_page is None:
        raise ConfigError("notebooks as Ray tasks need run_page, the function that executes one")
    ray = _import_ray()
    profile = load_profile(profile_name)
    results_dir = str(Path(results_dir).resolve())
    threads = cpus_per_task or torch.get_num_threads()
    env = {k: v for k, v in os.environ.items() if k.startswith(("MIXQ_", "HF_"))}
    env["MIXQ_RESULTS"] = results_dir
    env[PROFILES_ENV] = os.pathsep.join(str(Path(d).resolve()) for d in profile_dirs()[1:])  # user profiles
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    resources = {"num_gpus": 1, "num_cpus": 1} if profile.get("gpu") else {"num_cpus": threads}
    # A task that raises is retried in its worker (see attempt); Ray starts it again once on a worker it lost.
    # The environment (results folder, offline hub, quiet bars) goes with each task.
    task = {"max_retries": 1, "retry_exceptions": False, "runtime_env": {"env_vars": env}, **resources}
    tracker = _Tracker(ray)
    start = time.time()
    plan = pending_plan(profile_name, results_dir)
    set_refs: dict[Path, object] = {}
    for folder, config in plan.sets.items():
        as_dict = config.resolved().to_dict()
        parts = [tracker.submit("synthesis", f"synthesize {folder.name} {i}/{shards}", synthesis_task, task,
                                as_dict, (i, shards), results_dir, threads)
                 for i in range(shards)]
        set_refs[folder] = tracker.submit("synthesis", f"finish {folder.name}", finish_set_task, task,
                                          as_dict, results_dir, threads, *parts)
    experiment_refs = []
    for config in plan.experiments:
        needs = [set_refs[f] for f in [synthetic_set_folder(config, results_dir)]
                 if config.data in SYNTHETIC_SOURCES and f in set_refs]
        experiment_refs.append(tracker.submit("experiments", experiment_label(config), experiment_task, task,
                                              config.resolved().to_dict(), results_dir, threads, *needs))
    for page in notebooks or []:
        tracker.submit("notebooks", page.name, notebook_task, task, run_page, page, profile_name,
                       str(Path(root).resolve()), *experiment_refs)
    results = tracker.wait_all()
    for stage, value in results:  # records back to the driver, for workers without a shared disk
        if stage == "experiments" and isinstance(value, dict) and "config" in value:
            if not record_path(value["kind"], value["config"], results_dir).exists():
                write_record(value, results_dir)
    report = ExecutionReport("ray", done=tracker.done_counts(), failures=tracker.failures,
                             seconds=time.time() - start)
    return report


def _started_then(function: Callable, started, index: int, *args):
    """Run ``function(*args)`` in a worker (see :func:`attempt`) after telling the driver's ``started`` actor so."""
    started.mark.remote(index)
    return attempt(function, *args)


class _StartedTasks:
    """A Ray actor holding which tasks have started, so the driver can tell running from queued."""

    def __init__(self):
        self.indices: set[int] = set()

    def mark(self, index: int) -> None:
        self.indices.add(index)

    def get(self) -> set[int]:
        return self.indices


class _Tracker:
    """Submitted tasks by stage and name; waits for all, showing done / running / queued / failed per stage."""

    def __init__(self, ray):
        self.ray = ray
        self.tasks: dict[object, tuple[str, str]] = {}
        self.index: dict[object, int] = {}
        self.failures: list[Failure] = []
        self.finished: dict[object, object] = {}  # by task reference: two tasks may share a name
        self.started = ray.remote(num_cpus=0)(_StartedTasks).remote()
        self.started_indices: set[int] = set()

    def submit(self, stage: str, name: str, function: Callable, options: dict, *args):
        """Submit ``function(*args)`` as a task named ``name`` with Ray ``options``."""
        ref = self.ray.remote(_started_then).options(**options, name=name).remote(
            function, self.started, len(self.tasks), *args)
        self.index[ref] = len(self.tasks)
        self.tasks[ref] = (stage, name)
        return ref

    def done_counts(self) -> dict[str, int]:
        return {stage: sum(1 for ref in self.finished if self.tasks[ref][0] == stage) - self._failed(stage)
                for stage in STAGES}

    def _failed(self, stage: str) -> int:
        return sum(1 for f in self.failures if f.stage == stage)

    def _status(self, pending: list) -> str:
        parts = []
        for stage in STAGES:
            total = sum(1 for s, _ in self.tasks.values() if s == stage)
            if not total:
                continue
            failed = self._failed(stage)
            done = sum(1 for ref in self.finished if self.tasks[ref][0] == stage) - failed
            waiting = [ref for ref in pending if self.tasks[ref][0] == stage]
            running = sum(1 for ref in waiting if self.index[ref] in self.started_indices)
            queued = len(waiting) - running
            parts.append(f"{stage} {done}/{total} done, {running} running, {queued} queued, {failed} failed")
        return " | ".join(parts)

    def wait_all(self) -> list[tuple[str, object]]:
        """Wait for every task; return ``(stage, result)`` pairs (``None`` for a failed task)."""
        pending = list(self.tasks)
        bar = progress(total=len(pending), desc="ray")
        try:
            while pending:
                ready, pending = self.ray.wait(pending, num_returns=1, timeout=2.0)
                self.started_indices = self.ray.get(self.started.get.remote())
                for ref in ready:
                    stage, name = self.tasks[ref]
                    try:
                        self.finished[ref] = self.ray.get(ref)
                    except Exception as exc:  # the task's own error after its retry, or its input's
                        self.finished[ref] = None
                        self.failures.append(Failure(stage, name, _short_error(exc)))
                # Every poll, since tasks start between completions; the count moves with the new status.
                bar.set_postfix_str(self._status(pending), refresh=not ready)
                if ready:
                    bar.update(len(ready))
        finally:
            bar.close()
        return [(self.tasks[ref][0], value) for ref, value in self.finished.items()]


def _short_error(exc: Exception) -> str:
    """The innermost error line of a Ray task failure (Ray wraps it in its own traceback)."""
    cause = getattr(exc, "cause", None) or exc
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def run_locally(profile_name: str, results_dir: str | os.PathLike = RESULTS_DIR) -> ExecutionReport:
    """The profile's plan in this process, one experiment after another (each set made by the first experiment
    that needs it); an experiment that fails is retried once (:func:`attempt`), then reported by name, and the
    others still run."""
    start = time.time()
    plan = pending_plan(profile_name, results_dir)
    pipe = grid_pipeline(plan.experiments)
    failures = []
    for config in progress(plan.experiments, desc="experiments"):
        try:
            attempt(run, config, False, results_dir, pipe)
        except Exception as exc:  # reported by name, as the Ray executor does; the grid goes on
            failures.append(Failure("experiments", experiment_label(config), _short_error(exc)))
    done = {"synthesis": 0, "experiments": len(plan.experiments) - len(failures), "notebooks": 0}
    return ExecutionReport("local", done=done, failures=failures, seconds=time.time() - start)


def run_plan(profile_name: str, executor: str = "local", results_dir: str | os.PathLike = RESULTS_DIR,
             notebooks: list | None = None, **ray_options) -> ExecutionReport:
    """Run the profile's plan with ``executor`` (``local`` or ``ray``). ``notebooks`` (the book's pages: see
    :func:`mixq_core.reproduce.list_pages`) run as Ray tasks after the experiments, each through
    ``ray_options["run_page"]`` (the local executor leaves them to :func:`mixq_core.reproduce.reproduce`)."""
    if executor not in EXECUTORS:
        raise unknown_name("executor", executor, EXECUTORS)
    if executor == "local":
        if ray_options:
            raise ConfigError(f"options {sorted(ray_options)} apply to --executor ray only")
        return run_locally(profile_name, results_dir)
    return run_on_ray(profile_name, notebooks=notebooks, results_dir=results_dir, **ray_options)

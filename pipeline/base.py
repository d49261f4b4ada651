"""What every task with an output shares: its key in the store, the parameters it records, and
its progress in the scheduler's UI and on a terminal."""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
from collections.abc import Iterator

import luigi
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.config import configured_store
from pipeline.groups import Params
from pipeline.targets import directory_target, file_target
from storage import Store

logger = logging.getLogger("luigi-interface")


@contextlib.contextmanager
def terminal_bar(**options) -> Iterator[tqdm]:
    """A tqdm progress bar (rate and time left) on stderr while the block runs, with luigi's log
    lines printed above it; when stderr is not a terminal the bar is disabled, so that log files
    and cron's output carry no bars."""
    on_terminal = sys.stderr.isatty()
    with (
        tqdm(file=sys.stderr, disable=not on_terminal, dynamic_ncols=True, **options) as bar,
        logging_redirect_tqdm(loggers=[logger]) if on_terminal else contextlib.nullcontext(),
    ):
        yield bar


def cpu_seconds() -> float:
    """CPU time of this process's threads and of the children it has waited for (a driver, and
    a Spark driver's JVM with its executors in local mode), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_started_cpu: dict[str, float] = {}


@luigi.Task.event_handler(luigi.Event.START)
def _note_cpu(task: luigi.Task) -> None:
    _started_cpu[task.task_id] = cpu_seconds()


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _log_processing_time(task: luigi.Task, seconds: float) -> None:
    """The task's wall time and its CPU time over it: how many cores it kept busy (a task that
    runs on a remote Spark cluster counts only what ran here)."""
    cpu = cpu_seconds() - _started_cpu.pop(task.task_id, cpu_seconds())
    logger.info("%s finished in %.1f s, CPU %.1f s (%.2f cores busy)", task, seconds, cpu, cpu / max(seconds, 1e-9))


class StoreTask(Params):
    """A task whose output is one file, or one directory (`is_directory`), at `key` in the
    store."""

    is_directory = False

    @property
    def store(self) -> Store:
        # Read anew each time: luigi shares task instances by their parameters, not by the
        # configuration they were made under.
        return configured_store()

    @property
    def key(self) -> str:
        raise NotImplementedError

    def output(self):
        return (directory_target if self.is_directory else file_target)(self.store, self.key)

    def shaping_params(self) -> dict:
        """The parameters that shape this task's result, as its outputs record them."""
        unused = self.unused_params()
        return {
            name: getattr(self, name) for name, param in self.get_params() if param.significant and name not in unused
        }

    def show_progress(self, percent: int | None, message: str) -> None:
        """Progress and status in the scheduler's UI; the worker installs these callbacks only
        while the task runs under it."""
        if self.set_status_message is not None:
            self.set_status_message(message)
        if percent is not None and self.set_progress_percentage is not None:
            self.set_progress_percentage(percent)

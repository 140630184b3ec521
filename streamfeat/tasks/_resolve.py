"""Resolving a task's ``run = "module:callable"`` to the function it names.

Every path that loads task code goes through :func:`resolve_tasks` (the replay with
``--run-tasks``, the agent's start and its live switch, ``streamfeat tasks check``), so a
missing module or function is refused at load, naming the tasks file, the key
``tasks.NAME.run`` and the reason.

**Where modules are found.** The tasks file's own folder comes first: with the file
``/srv/app/tasks.toml`` and ``run = "rerank:score"``, ``/srv/app/rerank.py`` (or the package
``/srv/app/rerank/``) is imported even if ``rerank`` is also installed elsewhere, and the
folder is on ``sys.path`` while it is imported, so it may import its siblings at its top.
Anything not in that folder is imported as usual (installed packages, ``PYTHONPATH``). A tasks
file that is not a file on disk (TOML text, one pushed by the endpoint, one restored from the
store) has no folder of its own: the agent then looks in the folder of the tasks file it was
started with.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamfeat.errors import TaskLoadError

if TYPE_CHECKING:
    from streamfeat.tasks._file import TasksConfig

__all__ = ["resolve_run", "resolve_tasks", "tasks_folder"]


def tasks_folder(source: str | None) -> Path | None:
    """Return the folder of the tasks file ``source`` names, or None if it is not a file."""
    if not source or source.startswith("<"):
        return None
    path = Path(source)
    return path.resolve().parent if path.is_file() else None


def resolve_run(
    task: str, run: str, *, folder: Path | None = None, source: str | None = None
) -> Callable[..., Any]:
    """Import ``run`` (``"package.module:callable"``, the callable may be dotted).

    Args:
        task: the task's name (for the key of an error).
        run: the target.
        folder: looked in first for the module (see the module docstring).
        source: the tasks file, named in errors.

    Raises:
        TaskLoadError: the module or the attribute is missing, importing it failed, or the
            object is not callable.
    """
    module_name, _, attr = run.partition(":")
    key = f"tasks.{task}.run"

    def fail(reason: str) -> TaskLoadError:
        return TaskLoadError(f"task {task!r}: {reason}", file=source, key=key)

    try:
        module = _import(module_name, folder)
    except ModuleNotFoundError as exc:
        where = f" (looked in {folder} first, then sys.path)" if folder is not None else ""
        raise fail(f"can't import {module_name!r}: no module named {exc.name!r}{where}") from exc
    except Exception as exc:  # any import-time failure of user code refuses the task
        raise fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise fail(f"module {module_name!r} has no {attr!r}") from exc
    if not callable(obj):
        raise fail(f"{run!r} is not callable")
    return obj  # type: ignore[no-any-return]


def resolve_tasks(
    config: TasksConfig, *, folder: Path | None = None
) -> dict[str, Callable[..., Any]]:
    """Resolve every task of ``config`` (tasks-file order); see :func:`resolve_run`.

    Args:
        config: the tasks file.
        folder: where to look first when ``config`` is not a file on disk (a stored or pushed
            tasks file): the agent passes the folder of its own tasks file.

    Raises:
        TaskLoadError: for the first task that does not resolve.
    """
    folder = tasks_folder(config.source) or folder
    return {
        name: resolve_run(name, tc.run, folder=folder, source=config.source)
        for name, tc in config.tasks.items()
    }


def _import(module_name: str, folder: Path | None) -> Any:
    top = module_name.partition(".")[0]
    if folder is None or importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is None:
        return importlib.import_module(module_name)
    loaded = sys.modules.get(top)
    if loaded is not None and not _inside(loaded, folder):
        # the name is taken by a module imported from elsewhere (another folder, the standard
        # library): reusing it would run other code than the file next to the tasks file
        msg = (
            f"{folder / top} shadows the module {top!r} already imported from "
            f"{_origin(loaded)}; rename it"
        )
        raise ImportError(msg)
    sys.path.insert(0, str(folder))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(module_name)
    finally:
        with contextlib.suppress(ValueError):  # the module removed it itself
            sys.path.remove(str(folder))


def _origin(module: Any) -> str | None:
    origin = getattr(module, "__file__", None)
    if origin is None:
        paths = list(getattr(module, "__path__", ()))
        origin = paths[0] if paths else None
    return origin


def _inside(module: Any, folder: Path) -> bool:
    origin = _origin(module)
    return origin is not None and Path(origin).resolve().is_relative_to(folder)

"""The code layout a newcomer relies on: DAG files only wire, a task id reaches its code in one hop, modules stay
small, and every path under the storage root is built in one place. (Import layers: lint-imports.)"""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from tests.conftest import BUNDLE

PACKAGE = BUNDLE / "plugins" / "crosschannel"
DAG_FILES = sorted((BUNDLE / "dags").glob("*.py"))
STAGE_OF = {"retail_ingest": ("ingest",), "retail_trusted": ("trusted",),
            "propensity_training": ("models", "recommendations"),  # the weekly training of both kinds of model
            "propensity_scoring": ("scoring",), "audience_activation": ("activation",),
            "campaign_readout": ("readouts",)}
ALLOWED_DAG_IMPORTS = ("airflow.sdk", "crosschannel.wiring", "crosschannel.core.config", "crosschannel.core.partition")
MAX_MODULE_LINES = 400
MAX_DAG_LINES = 150


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def test_every_dag_file_has_a_stage():
    assert sorted(p.stem for p in DAG_FILES) == sorted(STAGE_OF)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_only_wires(path):
    """No branching (the target is the steps' business), no business rules, imports of the wiring only, and at
    run time the DAG's own stage's `tasks`."""
    tree = _tree(path)
    branches = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.If | ast.IfExp | ast.Match)
                and not (isinstance(n, ast.If) and ast.unparse(n.test) == "__name__ == '__main__'")]
    assert not branches, f"{path.name}: branches at lines {branches}; put the decision in a step or a stage task"
    assert ".target" not in path.read_text(), f"{path.name} reads the target: use crosschannel.wiring.steps"
    stage_tasks = tuple(f"crosschannel.stages.{stage}.tasks" for stage in STAGE_OF[path.stem])
    plain = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [name for name in plain if name.startswith("crosschannel")], f"{path.name}: import crosschannel..."
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crosschannel"):
            top_level = node in tree.body
            allowed = ALLOWED_DAG_IMPORTS if top_level else tuple(s.removesuffix(".tasks") for s in stage_tasks)
            assert node.module.startswith(allowed), f"{path.name}:{node.lineno} imports {node.module}"
            if not top_level:
                assert [a.name for a in node.names] == ["tasks"], f"{path.name}:{node.lineno}"
    assert len(path.read_text().splitlines()) <= MAX_DAG_LINES


EMIT_ONLY = {"publish_models", "publish_scores"}  # tasks that only emit the asset event of their upstream's result


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_task_id_reaches_its_code_in_one_hop(path):
    """A @task in a DAG file calls the stage function of the same name (crosschannel.stages.<stage>.tasks), and
    every function of that module is a task of the DAG. (The other task ids are steps: the functions of the same
    name in crosschannel.wiring.steps, or the mapped SQL jobs named in `steps.sql_jobs(task_id, ...)`.)"""
    modules = [importlib.import_module(f"crosschannel.stages.{stage}.tasks") for stage in STAGE_OF[path.stem]]
    stage_functions = {name for module in modules for name, value in vars(module).items()
                       if callable(value) and getattr(value, "__module__", None) == module.__name__
                       and not name.startswith("_")}  # private helpers of the task functions
    called = set()
    for node in ast.walk(_tree(path)):
        if not (isinstance(node, ast.FunctionDef) and any("task" in ast.unparse(d) for d in node.decorator_list)):
            continue
        calls = {c.func.attr for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                 and isinstance(c.func.value, ast.Name) and c.func.value.id == "tasks"}
        assert calls == ({node.name} if node.name not in EMIT_ONLY else set()), \
            f"{path.name}: task {node.name} calls tasks.{sorted(calls)}"
        called |= calls
    assert called == stage_functions, f"{STAGE_OF[path.stem]} tasks functions that no task calls: " \
                                      f"{stage_functions - called}"


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_every_path_under_the_storage_root_is_built_in_core_paths():
    """A partition folder (dt=...) or a place inside a zone is spelled out in crosschannel.core.paths only;
    elsewhere `paths.zone(name)` may name a whole zone, nothing below it."""
    owners = {PACKAGE / "core" / "paths.py", PACKAGE / "core" / "storage.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in owners:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"storage\.(zone|root)\(|\bzone\([^)]*,|[\"']dt=|f\"dt=|\bdt=\{|\broot\(\)\s*/", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_subpackage_says_what_it_owns_and_may_import():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(_tree(init))
        assert doc, f"{init.relative_to(PACKAGE)} has no docstring"
        if init.parent != PACKAGE and init.parent.parent.name != "stages" and init.parent.name != "aws":
            assert "import" in doc, f"{init.relative_to(PACKAGE)}: say what it may import"

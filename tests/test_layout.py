"""The project's layout: its modules import one another without a cycle (imports inside functions included),
no two modules of the library share a name (a subpackage's `base.py` aside), and no file speaks of what a
user's clone does not have (internal issue numbers, folders beside the checkout)."""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "teacher_wrappers"


def python_files(folder: Path, root: Path = ROOT) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py")
                  if not any(part.startswith(".") or part == "runs" for part in path.relative_to(root).parts))


def module_file(name: str, roots: list[Path]) -> Path | None:
    """The project file that `import name` loads, searched from `roots` (None: not the project's)."""
    for root in roots:
        base = root.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def imported_files(path: Path, root: Path = ROOT) -> set[Path]:
    """The project files `path` imports, at module level or inside functions. A script folder without
    `__init__.py` (tests/, algorithms/) is on sys.path when its files run, so its modules import by bare name."""
    roots = [root] if (path.parent / "__init__.py").is_file() else [path.parent, root]
    package = path.relative_to(root).parts[:-1]  # a relative import's starting point
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*start, *([node.module] if node.module else [])])
            # `from package import module` imports the module; `from module import name`, the module
            names = [f"{module}.{alias.name}" if module_file(f"{module}.{alias.name}", roots) else module
                     for alias in node.names]
        else:
            continue
        found.update(file for file in (module_file(name, roots) for name in names) if file is not None)
    return found


def import_cycle(folders: list[Path], root: Path = ROOT) -> list[str] | None:
    """One import cycle among the files of `folders` (as paths from `root`), or None."""
    graph = {path: imported_files(path, root) for folder in folders for path in python_files(folder, root)}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return [str(path.relative_to(root)) for path in error.args[1]]
    return None


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import f\n")
    (package / "a.py").write_text("import json\n\n\ndef f():\n    from pkg import b\n    return b\n")
    (package / "b.py").write_text("from .c import g\n")
    (package / "c.py").write_text("g = 1\n")
    assert import_cycle([package], tmp_path) is None
    assert imported_files(package / "b.py", tmp_path) == {package / "c.py"}  # relative imports resolve
    (package / "c.py").write_text("from pkg.a import f\n\ng = 1\n")
    assert sorted(import_cycle([package], tmp_path)) == ["pkg/a.py", "pkg/a.py", "pkg/b.py", "pkg/c.py"]
    (package / "c.py").write_text("g = 1\n")
    (package / "b.py").write_text("def h():\n    from pkg import b\n")  # a module importing itself
    assert import_cycle([package], tmp_path) == ["pkg/b.py", "pkg/b.py"]


def test_the_project_imports_without_a_cycle():
    folders = [ROOT / name for name in ("teacher_wrappers", "algorithms", "examples", "tests", "scripts")]
    cycle = import_cycle([folder for folder in folders if folder.is_dir()])
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_benchmarks_import_without_a_cycle():
    cycle = import_cycle([ROOT / "benchmarks", LIBRARY])
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_sweep_engine_depends_one_way_and_keeps_no_global():
    """job <- local <- ray_backend <- cli <- benchmarks/run.py: a backend never imports the command line, and the
    sweep's state is passed along, not kept in a module (no `global` statement)."""
    package = ROOT / "benchmarks" / "sweep"
    order = [package / name for name in ("job.py", "local.py", "ray_backend.py", "cli.py")]
    assert sorted(order + [package / "__init__.py"]) == python_files(package)
    for index, path in enumerate(order):
        assert imported_files(path) & set(python_files(package)) <= set(order[:index]), path.name
    assert imported_files(ROOT / "benchmarks" / "run.py") & set(python_files(package)) == {package / "cli.py"}
    assert not [path.name for path in python_files(package)
                if any(isinstance(node, ast.Global) for node in ast.walk(ast.parse(path.read_text())))]


def test_no_two_library_modules_share_a_name():
    names = Counter(path.stem for path in python_files(LIBRARY) if path.name not in ("__init__.py", "base.py"))
    packages = Counter(path.parent.name for path in python_files(LIBRARY) if path.name == "__init__.py")
    assert [name for name, count in (names + packages).items() if count > 1] == []


# An issue number, or a folder outside the repository (written so that the pattern does not match itself).
OUTSIDE = re.compile(rb"issue[ -]?[0-9]|[.]library|[.][.]/shared")


def project_files() -> list[Path]:
    """The repository's files (git's list where there is one, else every file outside hidden folders)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [path for path in ROOT.rglob("*") if path.is_file()
                and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts)]
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_file_names_internal_issues_or_folders_outside_the_repository():
    files = project_files()
    assert ROOT / "README.md" in files and Path(__file__).resolve() in files
    assert OUTSIDE.search(b"see issue" + b" 9") and OUTSIDE.search(b".." + b"/shared/DESIGN.md")
    found = [f"{path.relative_to(ROOT)}: {match.group().decode()}" for path in files
             for match in [OUTSIDE.search(path.read_bytes())] if match]
    assert found == []

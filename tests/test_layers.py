"""The package's layers (pyproject.toml, [tool.importlinter]): a package imports only the packages below it, so
a new import cycle or an upward import fails the suite, naming the import."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_imports_point_one_way(capsys):
    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "1 kept, 0 broken" in report

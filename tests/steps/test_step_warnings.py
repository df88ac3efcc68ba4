"""A warning a step raises is shown, as Prefect's run_steps shows it (issue #12)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli

STEP = '''import warnings


def old_step(x):
    warnings.warn("old_step is deprecated; use new_step", DeprecationWarning, stacklevel=2)
    warnings.warn("old_step is deprecated; use new_step", DeprecationWarning, stacklevel=2)
    warnings.warn("x is large", UserWarning, stacklevel=2)
    return {"x": x}
'''


def test_a_deprecation_warning_from_a_users_step_is_shown_once(tmp_path: Path) -> None:
    (tmp_path / "mysteps.py").write_text(STEP)
    (tmp_path / "prefect.yaml").write_text("build:\n- mysteps.old_step:\n    x: 1\n")
    path = os.pathsep.join((str(REPO_ROOT), str(tmp_path)))
    result = run_cli("steps", "run", "build", cwd=tmp_path, env={"PYTHONPATH": path})
    assert result.code == 0, result.output
    assert result.stderr.count("DeprecationWarning: old_step is deprecated; use new_step") == 1, result.stderr
    assert "x is large" in result.stderr
    assert result.stdout == "x: 1\n"

"""Running the installed ``handshake-storage`` script, as a user does.

Every CLI test goes through :func:`run`: a subprocess of the console script
that ``pip install`` put beside the interpreter (or ``python -m
handshake_storage`` with ``module=True``), with the test's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).with_name("handshake-storage")
ENV = "HANDSHAKE_DATABASE_URL"


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def command(module: bool = False) -> list[str]:
    if module:
        return [sys.executable, "-m", "handshake_storage"]
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    return [str(SCRIPT)]


def run(
    *args: str,
    env: dict[str, str] | None = None,
    module: bool = False,
    stdin: str | None = None,
    timeout: float = 300,
) -> Result:
    """Run the installed command with ``args``; ``env`` adds to the environment."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("COLUMNS", None)
    done = subprocess.run(
        [*command(module), *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin if stdin is not None else "",
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(result: Result) -> list[str]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout.splitlines()


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]

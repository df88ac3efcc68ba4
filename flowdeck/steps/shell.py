"""``run_shell_script``: Prefect's shell step, with the same arguments, output and behaviour.

Each line of ``script`` is its own process (so ``cd`` does not carry over to the next line). Without
``shell: true`` a line is split with :func:`shlex.split` and executed directly: quoting works, pipes,
redirects and ``$VAR`` do not. With ``shell: true`` each non-blank line runs through the shell. The first
failing line stops the script and raises :class:`~flowdeck.errors.CommandError` with Prefect's message.

A value put into the script by a placeholder or an expression (``{{ build.tag }}``) stays inside the one
argument it was written in, whatever it holds: spaces, quotes, and above all newlines, which in Prefect
start a second command (an injection: a branch name or a step output is enough). The step runner marks
where each value goes (:func:`render_script`) and the script is split into lines and arguments *before*
the values are put in; this is the one deliberate difference that can change a script that works in
Prefect (a value meant to be several arguments); with ``shell: true`` the rendered text runs as before.

Other deliberate differences from Prefect, none of which changes a script that works there: a full-line
``# comment`` is skipped instead of failing as an unknown command ``#``; a missing program, a missing
``directory`` or unbalanced quotes are explained errors instead of tracebacks; ``~`` in ``directory`` is
expanded; and the error's stderr passes through :func:`~flowdeck.redact.redact`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowdeck.errors import CommandError
from flowdeck.redact import redact
from flowdeck.steps.workdir import existing_directory

if TYPE_CHECKING:
    from flowdeck.steps.process import Capture

__all__ = ["SHELL_STEP", "TemplatedScript", "render_script", "run_shell_script"]

logger = logging.getLogger("flowdeck.steps.shell")

_STEP = "`run_shell_script`"
# A whole argument that only means something to a shell (an operator, a redirect, $VAR, ~, a glob);
# used to explain the failure of a line that ran without one.
_SHELL_SYNTAX = re.compile(r"^(\|\|?|&&?|;|[0-9]*(>>?|<)(&[0-9-])?.*|\$.+|~.*|.*[*?].*)$")
# Shell builtins that have no program of their own on PATH.
_BUILTINS = frozenset({".", "alias", "cd", "export", "set", "source", "unset", "ulimit", "umask"})

#: The canonical name of this step, for the runner.
SHELL_STEP = "flowdeck.steps.run_shell_script"
# What the templating renders: a placeholder or an expression, on one line (as flowdeck.templating finds them).
_TEMPLATED = re.compile(r"\{\{(?:(?!\{\{|\}\})[^\n])*\}\}|<<(?:(?!<<|>>)[^\n])*>>")
# Where the i-th value goes. NUL cannot occur in YAML text, so no script contains it by itself.
_MARKER = re.compile("\x00([0-9]+)\x00")


class TemplatedScript(str):
    """A rendered script that remembers where its templated values go.

    As a ``str`` it is the rendered text, so any code that does not know this class sees what it would
    have seen. ``template`` is the script with each value replaced by a marker, ``values`` the values.
    """

    template: str
    values: tuple[str, ...]

    def __new__(cls, template: str, values: Sequence[str]) -> TemplatedScript:
        self = super().__new__(cls, _fill(template, tuple(values)))
        self.template = template
        self.values = tuple(values)
        return self


def _fill(text: str, values: tuple[str, ...]) -> str:
    return _MARKER.sub(lambda m: values[int(m.group(1))], text)


def render_script(script: str, render: Callable[[str], Any]) -> TemplatedScript | None:
    """Render each placeholder or expression of ``script`` on its own with ``render`` (which returns the
    value, or None when it resolves to nothing) and return the script marked with where the values go;
    None when the script has nothing templated."""
    pieces = _TEMPLATED.findall(script)
    if not pieces:
        return None
    values: list[str] = []
    marked: dict[str, str] = {}
    for piece in dict.fromkeys(pieces):
        value = render(piece)
        marked[piece] = f"\x00{len(values)}\x00"
        values.append("" if value is None else str(value))
    return TemplatedScript(_TEMPLATED.sub(lambda m: marked[m.group(0)], script), values)


async def run_shell_script(
    script: str,
    directory: str | None = None,
    env: Mapping[str, Any] | None = None,
    stream_output: bool = True,
    expand_env_vars: bool = False,
    shell: bool = False,
) -> dict[str, str]:
    """Run ``script`` line by line and return ``{"stdout", "stderr"}`` captured across all lines.

    Args:
        script: the commands, one per line.
        directory: the working directory of every line (default: the current one).
        env: variables added to the current environment (values are turned into strings).
        stream_output: echo the output to the console while it runs.
        expand_env_vars: replace ``$VAR`` and ``${VAR}`` with values from the environment (plus ``env``)
            before a line runs; unknown names are left as they are.
        shell: run each line through the shell, so pipes, redirects and globbing work.
    """
    # Here, not at the top: the step runner imports this module for every pull, and asyncio is not free.
    from flowdeck.steps.process import Capture, run_process

    merged_env = dict(os.environ)
    merged_env.update({str(key): str(value) for key, value in (env or {}).items()})
    cwd = os.fspath(existing_directory(directory)) if directory is not None else None
    # Prefect always uses the shell on Windows, where there is no exec without one.
    use_shell = shell or sys.platform == "win32"
    capture = Capture()
    # Without a shell the literal lines of the template are the commands; values are put into arguments.
    templated = script if isinstance(script, TemplatedScript) and not use_shell else None
    values = templated.values if templated is not None else ()
    lines = (templated.template if templated is not None else script).splitlines()
    for number, raw_line in enumerate(lines, start=1):
        marked = string.Template(raw_line).safe_substitute(merged_env) if expand_env_vars else raw_line
        line = _fill(marked, values) if values else marked
        command: str | list[str]
        if use_shell:
            command = line.strip()
        elif marked.lstrip().startswith("#"):
            continue
        else:
            command = [_fill(arg, values) for arg in _split(marked, number, line)]
        if not command:
            continue
        logger.debug("running line %d: %s", number, redact(line.strip()))
        try:
            code = await run_process(
                command, capture=capture, cwd=cwd, env=merged_env, stream_output=stream_output
            )
        except OSError as exc:
            raise _start_error(exc, command, number, capture) from exc
        if code != 0:
            skipped = any(rest.strip() for rest in lines[number:])
            raise _failure(code, line.strip(), number, capture, command, skipped=skipped)
    return capture.result()


def _split(marked: str, number: int, line: str) -> list[str]:
    try:
        return shlex.split(marked)
    except ValueError as exc:
        raise CommandError(
            f"{_STEP} cannot parse line {number}: {exc} in {redact(line.strip())!r}",
            hint="close the quote, or escape it with a backslash",
        ) from exc


def _failure(
    code: int, line: str, number: int, capture: Capture, command: str | list[str], *, skipped: bool
) -> CommandError:
    stderr = redact(capture.stderr.strip())
    hint = f"line {number} `{redact(line)}` exited with {code}"
    if skipped:
        hint += "; later lines did not run"
    if isinstance(command, str):
        if code == 127:
            hint += "; exit code 127 means the shell did not find the command: is it installed and on PATH?"
    elif any(_SHELL_SYNTAX.match(arg) for arg in command[1:]):
        hint += (
            "; the line contains shell syntax (pipes, redirects, $VAR, globs) but runs without a shell: "
            "set `shell: true` (or `expand_env_vars: true` for $VAR only)"
        )
    return CommandError(
        f"{_STEP} failed with error code {code}: {stderr}",
        returncode=code,
        stdout=redact(capture.stdout.strip()),
        stderr=stderr,
        hint=hint,
    )


def _start_error(exc: OSError, command: str | list[str], number: int, capture: Capture) -> CommandError:
    program = command if isinstance(command, str) else command[0]
    shown = redact(program)
    if isinstance(exc, FileNotFoundError):
        message = f"{_STEP} cannot run line {number}: command {shown!r} not found"
        if any(c.isspace() for c in program):
            hint = (
                "a templated value stays one argument when the script runs without a shell; "
                "set `shell: true` to run a command line held in a value"
            )
        elif program in _BUILTINS or "=" in program:
            hint = (
                f"{shown!r} is shell syntax, but the line runs without a shell: set `shell: true` "
                "(each line is still its own process, so use `directory:` and `env:` for state)"
            )
        else:
            hint = "is it installed and on PATH?"
    elif isinstance(exc, PermissionError):
        message = f"{_STEP} cannot run line {number}: {shown!r} is not executable"
        hint = f"make it executable (chmod +x {shown}) or run it through its interpreter"
    else:
        message = f"{_STEP} cannot run line {number}: {redact(str(exc))}"
        hint = None
    return CommandError(
        message,
        stdout=redact(capture.stdout.strip()),
        stderr=redact(capture.stderr.strip()),
        hint=hint,
    )

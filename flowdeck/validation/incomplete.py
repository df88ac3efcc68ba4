"""Block and variable references that lack a part: ``{{ prefect.blocks.secret }}``, ``{{ prefect.variables }}``.

Prefect leaves such a placeholder in the deployment as written (or fails at run time far from the
file); flowdeck reports it at its location with the full form it needs.
"""

from __future__ import annotations

from flowdeck.config import Project
from flowdeck.errors import Problem, TemplateError
from flowdeck.keys import format_key_path, iter_paths
from flowdeck.templating import referenced_names

__all__ = ["check_incomplete_references", "incomplete_reference"]

_BLOCKS = "prefect.blocks"
_VARIABLES = "prefect.variables"
BLOCK_FORM = "{{ prefect.blocks.<block-type-slug>.<block-document-name>[.<field>] }}"
VARIABLE_FORM = "{{ prefect.variables.<variable-name>[.<key path>] }}"


def incomplete_reference(name: str) -> tuple[str, str] | None:
    """For a block or variable reference that lacks a part: (what is missing, an example of the full form).

    ``None`` for a complete reference and for every other name.
    """
    if name == _BLOCKS or name.startswith(_BLOCKS + "."):
        parts = name[len(_BLOCKS) + 1:].split(".", 2) if name != _BLOCKS else []
        slug = parts[0] if parts and parts[0] else "<block-type-slug>"
        example = f"{{{{ prefect.blocks.{slug}.<block-document-name> }}}}"
        if not parts or not parts[0]:
            return "a block type and a block name", example
        if len(parts) < 2 or not parts[1]:
            return "a block name", example
        if len(parts) == 3 and (not parts[2] or parts[2].endswith(".") or ".." in parts[2]):
            return "a field name after the last '.'", f"{{{{ prefect.blocks.{slug}.{parts[1]}.<field> }}}}"
        return None
    if name == _VARIABLES or name.startswith(_VARIABLES + "."):
        rest = name[len(_VARIABLES) + 1:] if name != _VARIABLES else ""
        if not rest or rest.startswith("."):
            return "a variable name", "{{ prefect.variables.<variable-name> }}"
        if rest.endswith(".") or ".." in rest:
            return "a key after the last '.'", f"{{{{ prefect.variables.{rest.split('.', 1)[0]}.<key> }}}}"
    return None


def check_incomplete_references(project: Project) -> list[Problem]:
    """Every ``prefect.blocks`` / ``prefect.variables`` reference in the file that lacks a part."""
    problems: list[Problem] = []
    for path, value in iter_paths(project.data):
        if not isinstance(value, str) or "prefect." not in value:
            continue
        try:
            references = referenced_names(value, path)
        except TemplateError:
            continue  # reported by the template checks
        for reference in references:
            found = incomplete_reference(reference.name)
            if found is None:
                continue
            missing, example = found
            kind = "block" if reference.name.startswith(_BLOCKS) else "variable"
            problems.append(Problem(
                "error",
                f"'{reference.text}' is an incomplete {kind} reference: it lacks {missing}",
                location=project.locate(path),
                key_path=format_key_path(path),
                hint=f"write it in full, e.g. {example}; the form is "
                f"{BLOCK_FORM if kind == 'block' else VARIABLE_FORM}",
                code="incomplete-reference",
            ))
    return problems

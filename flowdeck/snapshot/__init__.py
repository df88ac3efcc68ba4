"""Immutable, content-addressed code snapshots stored beside a push step's folder.

Every storage push also writes a snapshot of the tree it uploads: file contents compressed with zstd into a
few *pack* objects, and a *snapshot manifest* (written last) naming every file with its size, sha256, mode and
where its bytes live. A snapshot's id is the sha256 of its file list, so the same tree always has the same id
and a pull can verify it got exactly that tree. A version recorded by ``deploy`` names its snapshots, so a
pull (and a rollback) of that version restores exactly the code it was deployed with.

Modules: :mod:`.layout` (keys and the manifest format), :mod:`.writer` (push), :mod:`.reader` (pull),
:mod:`.pin` (which snapshot a version's pull must fetch), :mod:`.admin` (ls, show, gc).
"""

from __future__ import annotations

__all__: list[str] = []

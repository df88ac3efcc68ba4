"""Real git servers for tests: HTTPS with a token (``git http-backend`` behind our server) and git-daemon.

Both serve the same directory of bare repositories, so one repository is reachable as
``https://<host>:<port>/<name>.git`` (token required; ``<host>`` may be ``github.localhost``,
``gitlab.localhost``, ``bitbucket.localhost``, ``bitbucketserver.localhost``, which libcurl resolves to
127.0.0.1) and as ``git://127.0.0.1:<port>/<name>.git`` (anonymous). Repositories under ``public/`` need no
token over HTTPS. Each test makes its own repositories with :func:`make_repo`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.process import ServerProcess, free_port, unavailable

__all__ = [
    "GitDaemon",
    "GitHttpServer",
    "RepoBuilder",
    "git_client_env",
    "git_daemon",
    "git_http_server",
    "git_repos_root",
    "git_tls",
    "make_repo",
    "make_test_tls",
]

SANS = (
    "DNS:localhost,IP:127.0.0.1,DNS:github.localhost,DNS:gitlab.localhost,DNS:bitbucket.localhost,"
    "DNS:bitbucketserver.localhost,DNS:api.prefect.test"
)
SERVER_SCRIPT = Path(__file__).with_name("git_http_server.py")
HOSTS = (
    "127.0.0.1",
    "localhost",
    "github.localhost",
    "gitlab.localhost",
    "bitbucket.localhost",
    "bitbucketserver.localhost",
)


def _run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def make_test_tls(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for the test host names (0.5 s with openssl)."""
    if shutil.which("openssl") is None:
        unavailable("openssl", "apt-get install openssl")
    d.mkdir(parents=True, exist_ok=True)
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=flowdeck-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "ext.cnf").write_text(
        f"subjectAltName={SANS}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        "server.pem",
        "-extfile",
        "ext.cnf",
        cwd=d,
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@pytest.fixture(scope="session")
def git_tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TLS material: ``ca``, ``cert``, ``key`` paths."""
    return make_test_tls(tmp_path_factory.mktemp("git-tls"))


@pytest.fixture(scope="session")
def git_repos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory both git servers serve."""
    root = tmp_path_factory.mktemp("git-repos")
    (root / "public").mkdir()
    return root


@dataclass
class GitHttpServer:
    """The running HTTPS server; :meth:`url` builds repository URLs, :meth:`requests` reads its log."""

    root: Path
    port: int
    token: str
    ca: Path
    log: Path
    deploy_user: str = "deploy-user"
    server: ServerProcess | None = None

    def url(self, name: str, host: str = "127.0.0.1", *, scheme: str = "https", prefix: str = "") -> str:
        """``https://<host>:<port>/<prefix><name>.git``."""
        return f"{scheme}://{host}:{self.port}/{prefix}{name}.git"

    def requests(self) -> list[dict[str, object]]:
        """Every request so far (JSON records, without secrets)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def mark(self) -> int:
        """A position in the request log, for :meth:`since`."""
        return len(self.requests())

    def since(self, mark: int) -> list[dict[str, object]]:
        """The requests after ``mark``."""
        return self.requests()[mark:]


@pytest.fixture(scope="session")
def git_http_server(
    tmp_path_factory: pytest.TempPathFactory, git_tls: dict[str, Path], git_repos_root: Path
) -> Iterator[GitHttpServer]:
    """The token-protected HTTPS git server (session-wide; repositories are per test)."""
    if shutil.which("git") is None:
        unavailable("git", "apt-get install git")
    work = tmp_path_factory.mktemp("git-http")
    # A sentinel with characters that need URL-encoding, so encoding mistakes show up as failures.
    token = "fdSENTINEL/" + secrets.token_hex(12) + "+x"
    info = GitHttpServer(
        root=git_repos_root, port=free_port(), token=token, ca=git_tls["ca"], log=work / "requests.jsonl"
    )
    secrets_file = work / "secrets.json"
    secrets_file.write_text(json.dumps({"token": token, "pairs": [[info.deploy_user, token]]}))
    secrets_file.chmod(0o600)
    argv = [
        sys.executable,
        str(SERVER_SCRIPT),
        "--root",
        str(git_repos_root),
        "--port",
        str(info.port),
        "--secrets",
        str(secrets_file),
        "--tls-cert",
        str(git_tls["cert"]),
        "--tls-key",
        str(git_tls["key"]),
        "--strict-host-users",
        "--request-log",
        str(info.log),
        "--git-config",
        "uploadpack.allowFilter=true",
        "--git-config",
        "uploadpack.allowReachableSHA1InWant=true",
    ]
    server = ServerProcess("git-http-server", argv, work / "server.log")
    server.start(lambda: "READY" in server.log_tail())
    info.server = server
    try:
        yield info
    finally:
        server.stop()


@dataclass
class GitDaemon:
    """The running git-daemon (anonymous ``git://``)."""

    root: Path
    port: int

    def url(self, name: str) -> str:
        """``git://127.0.0.1:<port>/<name>.git``."""
        return f"git://127.0.0.1:{self.port}/{name}.git"


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory, git_repos_root: Path) -> Iterator[GitDaemon]:
    """git-daemon serving the same repositories anonymously, with upload-pack defaults (v0 refuses shas)."""
    exec_path = _run("git", "--exec-path")
    binary = Path(exec_path) / "git-daemon"
    if not binary.exists():
        unavailable("git-daemon", "it ships with git; install the git package")
    port = free_port()
    argv = [
        str(binary),
        "--reuseaddr",
        "--listen=127.0.0.1",
        f"--port={port}",
        f"--base-path={git_repos_root}",
        "--export-all",
        "--informative-errors",
        str(git_repos_root),
    ]
    work = tmp_path_factory.mktemp("git-daemon")
    server = ServerProcess(
        "git-daemon",
        argv,
        work / "daemon.log",
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(work)},
    )
    probe = f"git://127.0.0.1:{port}/probe.git"
    _run("git", "init", "--quiet", "--bare", str(git_repos_root / "probe.git"))

    def ready() -> bool:
        return (
            subprocess.run(
                ["git", "ls-remote", probe],
                capture_output=True,
                check=False,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            ).returncode
            == 0
        )

    server.start(ready)
    try:
        yield GitDaemon(git_repos_root, port)
    finally:
        server.stop()


@pytest.fixture
def git_client_env(isolated_env: Path, monkeypatch: pytest.MonkeyPatch, git_tls: dict[str, Path]) -> None:
    """Trust the test CA (after the test-wide isolation has scrubbed GIT_ variables)."""
    monkeypatch.setenv("GIT_SSL_CAINFO", str(git_tls["ca"]))


@dataclass
class RepoBuilder:
    """A working repository whose commits are pushed into a bare repository the servers serve."""

    name: str
    work: Path
    bare: Path
    shas: list[str] = field(default_factory=list)

    def git(self, *args: str) -> str:
        """Run git in the working repository."""
        return _run("git", *args, cwd=self.work)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or delete, with None) files, commit, push every branch and tag; returns the sha."""
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        self.push()
        sha = self.git("rev-parse", "HEAD")
        self.shas.append(sha)
        return sha

    def push(self) -> None:
        """Push all branches and tags to the served bare repository."""
        self.git("push", "--quiet", "--force", str(self.bare), "--all")
        self.git("push", "--quiet", "--force", str(self.bare), "--tags")

    def branch(self, name: str) -> None:
        """Create and switch to a branch."""
        self.git("checkout", "--quiet", "-B", name)

    def add_submodule(self, path: str, url: str, sha: str) -> str:
        """Record a submodule at ``path`` pointing to ``url`` at ``sha`` (no network needed); commits."""
        gitmodules = self.work / ".gitmodules"
        text = gitmodules.read_text() if gitmodules.exists() else ""
        text += f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n'
        gitmodules.write_text(text)
        self.git("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
        self.git("add", ".gitmodules")
        # Not `add --all`: the submodule has no checkout here, which would stage its removal.
        self.git("commit", "--quiet", "-m", f"add submodule {path}")
        self.push()
        self.shas.append(self.git("rev-parse", "HEAD"))
        return self.shas[-1]


@pytest.fixture
def make_repo(git_repos_root: Path, git_client_env: None, tmp_path: Path) -> Callable[..., RepoBuilder]:
    """``make_repo(files={...}, public=False)``: a fresh served repository with one commit."""

    def make(
        files: dict[str, str | None] | None = None, *, public: bool = False, name: str | None = None
    ) -> RepoBuilder:
        name = name or f"repo-{uuid.uuid4().hex[:10]}"
        rel = f"public/{name}" if public else name
        bare = git_repos_root / f"{rel}.git"
        _run("git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        work = tmp_path / "src" / name
        _run("git", "init", "--quiet", "--initial-branch=main", str(work))
        builder = RepoBuilder(rel, work, bare)
        builder.commit(files or {"README.md": f"# {name}\n", "flows/flow.py": "print('hi')\n"}, "initial")
        return builder

    return make

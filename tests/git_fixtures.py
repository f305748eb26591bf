"""Real git remotes for the tests: bare repositories on disk, `git daemon`, and git's smart HTTP behind
Basic auth (git http-backend as CGI under a small http.server), all on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from tasks.delivery.write import WriteRequest, write_files
from tasks.project.discover import discover
from tests.helpers import free_port, host_processes_with, write_project

IDENTITY = ["-c", "user.name=Tester", "-c", "user.email=tester@example.com"]
# The tiny project every repository test starts from: one module, one test of its own.
CALC = {
    "calc.py": """
        def add(a, b):
            return a + b


        def sign(x):
            if x < 0:
                return -1
            return 1 if x else 0
        """,
    "tests/test_calc.py": """
        from calc import add


        def test_add():
            assert add(1, 2) == 3
        """,
}
SIGN_TESTS = """\
from calc import sign


def test_sign():
    assert sign(-3) == -1
    assert sign(0) == 0
    assert sign(5) == 1
"""


def run_git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> str:
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return run_git("rev-parse", "HEAD", cwd=repo).strip()


def write_generated(target: Path, source: str = SIGN_TESTS) -> Path:
    """calc.py's accepted tests written as a run writes them: one marked file under tests/generated, and the
    conftest.py that puts the project's root on sys.path (it has no pytest configuration doing that)."""
    project = discover(target)
    calc = next(m for m in project.modules if m.path == "calc.py")
    [written] = write_files(project, target / "tests" / "generated", [WriteRequest(module=calc, source=source)])
    return written.path


def plain_pytest(root: Path) -> subprocess.CompletedProcess:
    """The project's suite as a user runs it from its root: nothing of covsweep's on the path."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )


@pytest.fixture
def run_cache(tmp_path, monkeypatch) -> Path:
    """COVSWEEP_CACHE_DIR of the test's own (the runs' workspaces are below it), and no git token."""
    monkeypatch.setenv("COVSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COVSWEEP_GIT_TOKEN", raising=False)
    return tmp_path / "cache"


def planned(target: str, **options):
    """The plan a run makes of `target`, without Docker (local sandbox, measure only) or Prefect."""
    from tasks.core.options import RunOptions
    from tasks.plan import plan_run

    run = RunOptions(target=target, sandbox="local", generator="none", **options)
    return plan_run.fn(run, run_id=uuid.uuid4().hex, load_blocks=False)


def fresh_clone(origin_url: str, commit: str, where: Path) -> Path:
    run_git("clone", "-q", origin_url, str(where))
    run_git("-c", "advice.detachedHead=false", "checkout", "-q", commit, cwd=where)
    return where


def state_of(repo: Path) -> dict[str, object]:
    """Everything a delivery must leave alone in the user's checkout."""
    git_dir = repo / ".git"
    return {
        "index": (git_dir / "index").read_bytes(),
        "status": run_git("status", "--porcelain", "--untracked-files=all", cwd=repo),
        "refs": run_git("for-each-ref", cwd=repo),
        "head": (git_dir / "HEAD").read_text(),
        "objects": sorted(str(p) for p in (git_dir / "objects").rglob("*")),
    }


@dataclass
class Origin:
    """A bare repository: main (2 commits: `first`, `second`), tag v1 (annotated) at `first`, branch
    `feature` one commit past `second`."""

    bare: Path
    first: str
    second: str
    feature: str

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def refs(self) -> dict[str, str]:
        listing = run_git("for-each-ref", "--format=%(refname) %(objectname)", cwd=self.bare)
        return dict(line.split() for line in listing.splitlines())


def make_origin(root: Path) -> Origin:
    work = write_project(root / "work", CALC)
    run_git("init", "-q", "-b", "main", cwd=work)
    first = commit_all(work, "calc: add")
    run_git("tag", "-a", "v1", "-m", "version 1", cwd=work)
    (work / "README").write_text("calc\n")
    second = commit_all(work, "readme")
    run_git("checkout", "-q", "-b", "feature", cwd=work)
    (work / "calc.py").write_text((work / "calc.py").read_text() + "\n\ndef double(x):\n    return 2 * x\n")
    feature = commit_all(work, "calc: double")
    run_git("checkout", "-q", "main", cwd=work)
    bare = root / "origin.git"
    run_git("clone", "-q", "--bare", str(work), str(bare))
    return Origin(bare=bare, first=first, second=second, feature=feature)


@pytest.fixture
def origin(tmp_path) -> Origin:
    return make_origin(tmp_path / "remote")


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def served_by_git_daemon(origin: Origin, *options: str) -> Iterator[str]:
    """`git daemon` serving the origin's folder with `options`: the URL of the origin through it."""
    port = free_port()
    base = origin.bare.parent
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", f"--base-path={base}",
         "--export-all", *options, str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        yield f"git://127.0.0.1:{port}/{origin.bare.name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def git_daemon(origin) -> Iterator[str]:
    """Pushes allowed."""
    yield from served_by_git_daemon(origin, "--enable=receive-pack")


@pytest.fixture
def read_only_git_daemon(origin) -> Iterator[str]:
    """As `git daemon` serves by default: fetches only, no receive-pack."""
    yield from served_by_git_daemon(origin)


class GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, token: str, read_only: bool, delay: float):
        super().__init__(("127.0.0.1", 0), GitHTTPHandler)
        self.root, self.token, self.read_only, self.delay = root, token, read_only, delay


class GitHTTPHandler(BaseHTTPRequestHandler):
    """git's smart HTTP: any user name with the right token as password, as the forges take a token."""

    server: GitHTTPServer

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def user(self) -> str | None:
        kind, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if kind != "Basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user if password == self.server.token else None

    def answer(self, status: int, headers: list[tuple[str, str]] = (), body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def serve(self):
        time.sleep(self.server.delay)  # slow enough for the tests to watch the process list meanwhile
        user = self.user()
        if user is None:
            return self.answer(401, [("WWW-Authenticate", 'Basic realm="covsweep tests"')])
        path, _, query = self.path.partition("?")
        if self.server.read_only and "git-receive-pack" in path + query:
            return self.answer(403)
        body = self.body()
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": user,  # http-backend takes pushes from an authenticated user only
            "REMOTE_ADDR": "127.0.0.1",
        }
        cgi = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = cgi.partition(b"\r\n\r\n") if b"\r\n\r\n" in cgi else cgi.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.answer(status, headers, payload)


@dataclass
class HTTPRemote:
    server: GitHTTPServer
    token: str
    name: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{self.name}"

    def url_with(self, userinfo: str) -> str:
        return self.url.replace("http://", f"http://{userinfo}@", 1)


@pytest.fixture
def http_remote(origin) -> Iterator[HTTPRemote]:
    """The origin over smart HTTP, Basic auth with a token; the server answers each request after 0.2 s."""
    token = "tok_" + base64.b32encode(os.urandom(15)).decode().lower()
    server = GitHTTPServer(origin.bare.parent, token, read_only=False, delay=0.2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPRemote(server=server, token=token, name=origin.bare.name)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ProcessWatch:
    """Samples every process's command line while git runs: which mention `needle` (the token), and
    which mention `seen` (proof that git's processes were there to be looked at)."""

    needle: str
    seen: str
    leaks: list[str] = field(default_factory=list)
    sightings: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self):
        while not self.stop.is_set():
            self.leaks += host_processes_with(self.needle)
            self.sightings += len(host_processes_with(self.seen))
            time.sleep(0.01)


@pytest.fixture
def process_watch(http_remote) -> Iterator[ProcessWatch]:
    watch = ProcessWatch(needle=http_remote.token, seen=f"127.0.0.1:{http_remote.server.server_address[1]}")
    thread = threading.Thread(target=watch.sample, daemon=True)
    thread.start()
    yield watch
    watch.stop.set()
    thread.join(timeout=10)


def files_containing(text: str, *roots: Path) -> list[Path]:
    """Every file below roots (a .git folder's included) whose bytes contain text."""
    return [p for root in roots for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]

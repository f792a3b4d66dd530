"""BoxLite's runtime API over a boxlite server: Boxlite.rest(BoxliteRestOptions(url, credential)), create,
get, get_or_create, list_info, remove; a Box's start, stop, info, metrics, exec → Execution, copy_in/copy_out."""

import asyncio
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass, field

from .errors import BoxliteError, InvalidArgumentError
from .rest import ApiKeyCredential, BoxliteRestOptions, Rest


@dataclass
class BoxOptions:
    """What a box is made with (BoxLite's BoxOptions)."""

    image: str | None = None
    rootfs_path: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    disk_size_gb: int | None = None
    working_dir: str | None = None
    env: list[tuple[str, str]] | dict[str, str] | None = None
    user: str | None = None
    volumes: list[dict] | None = None
    network: dict | None = None
    secrets: list[dict] | None = None
    auto_remove: bool = True
    detach: bool = False

    def request(self, name: str | None) -> dict:
        if not self.image and not self.rootfs_path:
            raise InvalidArgumentError("BoxOptions: give image or rootfs_path")
        body = {k: v for k, v in {
            "image": self.image, "rootfs_path": self.rootfs_path, "cpus": self.cpus, "memory_mib": self.memory_mib,
            "disk_size_gb": self.disk_size_gb, "working_dir": self.working_dir, "user": self.user, "volumes": self.volumes,
            "network": self.network, "secrets": self.secrets, "name": name,
        }.items() if v is not None}
        if self.env:
            body["env"] = dict(self.env)
        return body


@dataclass
class BoxStateInfo:
    status: str
    running: bool
    pid: int | None = None


@dataclass
class BoxInfo:
    id: str
    name: str | None
    state: BoxStateInfo
    created_at: str
    image: str
    cpus: int
    memory_mib: int
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def of(cls, j: dict) -> "BoxInfo":
        return cls(j["box_id"], j.get("name"), BoxStateInfo(j["status"], j["status"] == "running", j.get("pid")), j["created_at"], j["image"], j["cpus"], j["memory_mib"], j)


@dataclass
class ExecResult:
    """A finished command (BoxLite's ExecResult)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    error_message: str | None = None


class _Stream:
    """One output stream of an execution: `async for chunk in stream`, chunks of text in order."""

    def __init__(self):
        self._q: asyncio.Queue = asyncio.Queue()

    def _put(self, item):
        self._q.put_nowait(item)

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        item = await self._q.get()
        if item is None:
            self._q.put_nowait(None)
            raise StopAsyncIteration
        return item


class _Stdin:
    def __init__(self, ex: "Execution"):
        self._ex = ex

    async def send_input(self, data: bytes | str) -> None:
        await self._ex._send(data.encode() if isinstance(data, str) else bytes(data))

    async def close(self) -> None:
        await self._ex._send(json.dumps({"type": "stdin_eof"}))


class Execution:
    """A command running in a box: stdout() and stderr() streams, stdin(), wait(), kill(), resize_tty()."""

    def __init__(self, rest: Rest, box_id: str, exec_id: str, ws):
        self._rest, self._box, self.id, self._ws = rest, box_id, exec_id, ws
        self._out, self._err = _Stream(), _Stream()
        self._exit: int | None = None
        self._error: str | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self):
        import codecs

        dec = {1: codecs.getincrementaldecoder("utf-8")("replace"), 2: codecs.getincrementaldecoder("utf-8")("replace")}
        try:
            async for m in self._ws:
                if isinstance(m, bytes):
                    ch = 2 if m[:1] == b"\x02" else 1
                    text = dec[ch].decode(m[1:])
                    if text:
                        (self._err if ch == 2 else self._out)._put(text)
                else:
                    c = json.loads(m)
                    if c.get("type") == "exit":
                        self._exit = c.get("exit_code")
                    elif c.get("type") == "error":
                        self._error = c.get("message")
        except Exception as e:  # noqa: BLE001 - a broken connection is reported by wait()
            self._error = self._error or f"the connection to the server ended: {e}"
        finally:
            self._out._put(None)
            self._err._put(None)

    async def _send(self, data):
        await self._ws.send(data)

    def stdout(self) -> _Stream:
        return self._out

    def stderr(self) -> _Stream:
        return self._err

    def stdin(self) -> _Stdin:
        return _Stdin(self)

    async def wait(self) -> ExecResult:
        await self._task
        if self._exit is None:
            raise BoxliteError(f"execution {self.id}: {self._error or 'ended without an exit status'}")
        _, info = await self._rest.json("GET", f"{self._rest.box(self._box)}/executions/{self.id}", ok=(404,))
        timed_out = bool(info and info.get("status") == "timed_out")
        return ExecResult(self._exit, "", "", timed_out, info.get("error_message") if info else None)

    async def kill(self) -> None:
        await self._rest.request("DELETE", f"{self._rest.box(self._box)}/executions/{self.id}", ok=(404,))

    async def resize_tty(self, rows: int, cols: int) -> None:
        await self._send(json.dumps({"type": "resize", "rows": rows, "cols": cols}))

    async def signal(self, signal: int) -> None:
        await self._rest.json("POST", f"{self._rest.box(self._box)}/executions/{self.id}/signal", {"signal": signal})


class Box:
    """A box on the server. `async with box:` starts it, and at the end stops it (removing an auto_remove box)."""

    def __init__(self, rest: Rest, j: dict, auto_remove: bool = False):
        self._rest, self._j, self._auto_remove = rest, j, auto_remove

    @property
    def id(self) -> str:
        return self._j["box_id"]

    @property
    def name(self) -> str | None:
        return self._j.get("name")

    def info(self) -> BoxInfo:
        return BoxInfo.of(self._j)

    async def start(self) -> None:
        _, self._j = await self._rest.json("POST", f"{self._rest.box(self.id)}/start")

    async def stop(self) -> None:
        _, self._j = await self._rest.json("POST", f"{self._rest.box(self.id)}/stop", {})

    async def metrics(self) -> dict:
        return (await self._rest.json("GET", f"{self._rest.box(self.id)}/metrics"))[1]

    async def __aenter__(self):
        if self._j["status"] != "running":
            await self.start()
        return self

    async def __aexit__(self, *exc):
        if self._auto_remove:
            await self._rest.request("DELETE", f"{self._rest.box(self.id)}?force=true", ok=(404,))
        else:
            await self.stop()

    async def exec(self, cmd: str, args: list[str] | None = None, env: list[tuple[str, str]] | dict | None = None, tty: bool = False,
                   user: str | None = None, timeout_secs: float | None = None, cwd: str | None = None, stdin: str | None = None) -> Execution:
        body = {"command": cmd, "args": list(args or [])}
        if env:
            body["env"] = dict(env)
        if tty:
            body["tty"] = True
        if user:
            body["user"] = user
        if timeout_secs:
            body["timeout_seconds"] = timeout_secs
        if cwd:
            body["working_dir"] = cwd
        if stdin is not None:
            body["stdin"] = stdin
        _, r = await self._rest.json("POST", f"{self._rest.box(self.id)}/exec", body)
        ws = await self._rest.attach(self.id, r["execution_id"])
        return Execution(self._rest, self.id, r["execution_id"], ws)

    async def copy_in(self, host_path: str, container_dest: str) -> None:
        """docker cp's rule: into container_dest when it is a folder in the box, else as that name."""
        into = (await (await self.exec("/.boxlite/bin/busybox", ["test", "-d", container_dest])).wait()).exit_code == 0
        dest = container_dest if into else os.path.dirname(container_dest.rstrip("/")) or "/"
        name = os.path.basename(os.path.abspath(host_path)) if into else os.path.basename(container_dest.rstrip("/"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(host_path, arcname=name, filter=lambda i: (setattr(i, "uid", 0), setattr(i, "gid", 0), setattr(i, "uname", ""), setattr(i, "gname", ""), i)[-1])
        await self._rest.request("PUT", f"{self._rest.box(self.id)}/files?path={urllib.parse.quote(dest)}", buf.getvalue(), {"Content-Type": "application/x-tar"})

    async def copy_out(self, container_src: str, host_dest: str) -> None:
        """Into host_dest when it is a folder, else as that name; what the box sent is unpacked as untrusted."""
        _, data, _ = await self._rest.request("GET", f"{self._rest.box(self.id)}/files?path={urllib.parse.quote(container_src)}")
        into = os.path.isdir(host_dest)
        parent = os.path.abspath(host_dest) if into else os.path.dirname(os.path.abspath(host_dest))
        if not os.path.isdir(parent):
            raise BoxliteError(f"cp: folder {parent} does not exist on the host")
        stage = tempfile.mkdtemp(prefix=".boxlite-cp-", dir=parent)
        try:
            top = safe_untar(data, stage)
            target = os.path.join(parent, top if into else os.path.basename(host_dest))
            if os.path.isdir(target) and not os.path.islink(target) and os.path.isdir(os.path.join(stage, top)):
                shutil.copytree(os.path.join(stage, top), target, symlinks=True, dirs_exist_ok=True)
            else:
                if os.path.lexists(target):
                    shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) else os.unlink(target)
                os.rename(os.path.join(stage, top), target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def safe_untar(data: bytes, root: str) -> str:
    """Unpacks a tar the box sent into root, trusting none of it: one top-level name, no absolute names or "..",
    no entry reached through a symlink the archive made, hard links only to files already unpacked, no devices or
    fifos, and no setuid, setgid or sticky bits. Returns the top-level name."""
    top = None
    dir_modes = []
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            if m.name.startswith("/") or ".." in parts:
                raise BoxliteError(f"cp: the box sent an entry {m.name!r} that leaves the folder being copied")
            top = top or parts[0]
            if parts[0] != top:
                raise BoxliteError(f"cp: entry {m.name!r} is outside {top}, the folder being copied")
            for i in range(1, len(parts)):
                if os.path.islink(os.path.join(root, *parts[:i])):
                    raise BoxliteError(f"cp: entry {m.name!r} would be written through a symlink the box sent")
            dest = os.path.join(root, *parts)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            mode = m.mode & 0o777
            if m.isdir():
                if not os.path.isdir(dest) or os.path.islink(dest):
                    if os.path.lexists(dest):
                        os.unlink(dest)
                    os.mkdir(dest, 0o700)
                dir_modes.append((dest, mode))
                continue
            if os.path.lexists(dest):
                shutil.rmtree(dest) if os.path.isdir(dest) and not os.path.islink(dest) else os.unlink(dest)
            if m.issym():
                os.symlink(m.linkname, dest)
            elif m.islnk():
                lparts = [p for p in m.linkname.split("/") if p not in ("", ".")]
                src = os.path.join(root, *lparts)
                if m.linkname.startswith("/") or ".." in lparts or any(os.path.islink(os.path.join(root, *lparts[:i])) for i in range(1, len(lparts) + 1)) or not os.path.isfile(src):
                    raise BoxliteError(f"cp: hard link {m.name!r} points outside what was copied")
                os.link(src, dest)
            elif m.isfile():
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    shutil.copyfileobj(t.extractfile(m), f)
                os.chmod(dest, mode)
            # devices and fifos: not made on the host
    for d, mode in reversed(dir_modes):
        if os.path.isdir(d) and not os.path.islink(d):
            os.chmod(d, mode)
    if top is None:
        raise BoxliteError("cp: the box sent nothing to copy")
    return top


class Boxlite:
    """BoxLite's runtime: here always a server's (Boxlite.rest), or the local `boxlite serve` (Boxlite.default)."""

    def __init__(self, options: BoxliteRestOptions):
        self._rest = Rest(options)

    @classmethod
    def rest(cls, options: BoxliteRestOptions) -> "Boxlite":
        return cls(options)

    @classmethod
    def default(cls) -> "Boxlite":
        """The server at BOXLITE_HOST (default http://127.0.0.1:8100), with BOXLITE_API_KEY or, for a server of this
        user on loopback, the key it keeps in its home (serve.key)."""
        url = os.environ.get("BOXLITE_HOST") or "http://127.0.0.1:8100"
        cred = ApiKeyCredential.from_env()
        if cred is None:
            home = os.environ.get("BOXLITE_HOME") or os.path.expanduser("~/.boxlite")
            host = urllib.parse.urlparse(url).hostname or ""
            try:
                if host in ("localhost", "::1") or host.startswith("127."):
                    with open(os.path.join(home, "serve.key")) as f:
                        cred = ApiKeyCredential(f.read().strip())
            except OSError:
                pass
        return cls(BoxliteRestOptions(url, cred))

    async def create(self, options: BoxOptions, name: str | None = None) -> Box:
        _, j = await self._rest.json("POST", self._rest.boxes, options.request(name))
        return Box(self._rest, j, options.auto_remove)

    async def get(self, id_or_name: str) -> Box | None:
        status, j = await self._rest.json("GET", self._rest.box(id_or_name), ok=(404,))
        return None if status == 404 else Box(self._rest, j)

    async def get_or_create(self, options: BoxOptions, name: str | None = None) -> tuple[Box, bool]:
        if name:
            b = await self.get(name)
            if b is not None:
                return b, False
        return await self.create(options, name), True

    async def get_info(self, id_or_name: str) -> BoxInfo | None:
        b = await self.get(id_or_name)
        return b.info() if b else None

    async def list_info(self) -> list[BoxInfo]:
        out, token = [], None
        while True:
            _, page = await self._rest.json("GET", self._rest.boxes + (f"?pageToken={urllib.parse.quote(token)}" if token else ""))
            out += [BoxInfo.of(j) for j in page["boxes"]]
            token = page.get("next_page_token")
            if not token:
                return out

    async def remove(self, id_or_name: str, force: bool = False) -> None:
        await self._rest.request("DELETE", self._rest.box(id_or_name) + ("?force=true" if force else ""))

    async def metrics(self) -> dict:
        return (await self._rest.json("GET", "/v1/metrics"))[1]

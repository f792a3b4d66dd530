"""SimpleBox and CodeBox, BoxLite's one-object boxes, over a runtime (a server's; by default the local
`boxlite serve`): made and started by `async with`, stopped (and removed, with auto_remove) at its end."""

import asyncio
import shlex

from .boxes import BoxOptions, Boxlite, ExecResult
from .errors import ExecError, TimeoutError


class SimpleBox:
    def __init__(self, image: str | None = None, rootfs_path: str | None = None, memory_mib: int | None = None, cpus: int | None = None,
                 runtime: Boxlite | None = None, name: str | None = None, auto_remove: bool = True, reuse_existing: bool = False, **kwargs):
        if not image and not rootfs_path:
            raise ValueError("Either 'image' or 'rootfs_path' must be provided")
        self._runtime = runtime or Boxlite.default()
        self._options = BoxOptions(image=image, rootfs_path=rootfs_path, memory_mib=memory_mib, cpus=cpus, auto_remove=auto_remove, **kwargs)
        self._name = name
        self._reuse = reuse_existing
        self._box = None
        self._created: bool | None = None

    async def __aenter__(self):
        if self._box is None:
            if self._reuse:
                self._box, self._created = await self._runtime.get_or_create(self._options, name=self._name)
            else:
                self._box, self._created = await self._runtime.create(self._options, name=self._name), True
            await self._box.__aenter__()
        return self

    async def start(self):
        return await self.__aenter__()

    async def __aexit__(self, *exc):
        if self._box is not None:
            box, self._box = self._box, None
            if self._created:
                await box.__aexit__(*exc)
            else:
                await box.stop()

    def _need(self):
        if self._box is None:
            raise RuntimeError("Box not started. Use 'async with SimpleBox(...) as box:' or call 'await box.start()' first.")
        return self._box

    @property
    def id(self) -> str:
        return self._need().id

    @property
    def created(self) -> bool | None:
        return self._created

    def info(self):
        return self._need().info()

    async def metrics(self) -> dict:
        return await self._need().metrics()

    async def exec(self, cmd: str, *args: str, env: dict[str, str] | None = None, user: str | None = None, timeout: float | None = None, cwd: str | None = None) -> ExecResult:
        ex = await self._need().exec(cmd, list(args), env, user=user, timeout_secs=timeout, cwd=cwd, stdin="")

        async def collect(stream):
            return "".join([c async for c in stream])

        out, err, res = await asyncio.gather(collect(ex.stdout()), collect(ex.stderr()), ex.wait())
        if res.timed_out:
            raise TimeoutError(f"Command '{shlex.join([cmd, *args])}' timed out" + (f" after {timeout:g} seconds" if timeout else ""))
        return ExecResult(res.exit_code, out, err, res.timed_out, res.error_message)

    async def copy_in(self, host_path: str, container_dest: str) -> None:
        await self._need().copy_in(host_path, container_dest)

    async def copy_out(self, container_src: str, host_dest: str) -> None:
        await self._need().copy_out(container_src, host_dest)

    async def stop(self):
        await self.__aexit__(None, None, None)

    shutdown = stop


class CodeBox(SimpleBox):
    """A box for running Python code (python3 or python in the image)."""

    def __init__(self, image: str = "python:slim", **kwargs):
        super().__init__(image=image, **kwargs)

    async def run(self, code: str, timeout: float | None = None) -> str:
        r = await self.exec("sh", "-c", 'exec "$(command -v python3 || command -v python)" -c "$0"', code, timeout=timeout)
        if r.exit_code != 0:
            raise ExecError("python", r.exit_code, r.stderr)
        return r.stdout

    async def install_package(self, package: str) -> str:
        r = await self.exec("sh", "-c", 'exec "$(command -v python3 || command -v python)" -m pip install --no-cache-dir "$0"', package)
        if r.exit_code != 0:
            raise ExecError("pip install", r.exit_code, r.stderr)
        return r.stdout

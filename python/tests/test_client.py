"""The Python client against a live `boxlite serve` (started by test/vm/python.test.ts, which sets BOXLITE_HOST,
BOXLITE_API_KEY, BOXLITE_TEST_IMAGE and BOXLITE_TEST_PY_IMAGE), in BoxLite's Python shapes."""

import asyncio
import io
import os
import tarfile
import tempfile
import unittest

import boxlite
from boxlite.boxes import safe_untar

URL = os.environ.get("BOXLITE_HOST", "")
KEY = os.environ.get("BOXLITE_API_KEY", "")
IMAGE = os.environ.get("BOXLITE_TEST_IMAGE", "")
PY_IMAGE = os.environ.get("BOXLITE_TEST_PY_IMAGE", "")


def runtime() -> boxlite.Boxlite:
    return boxlite.Boxlite.rest(boxlite.BoxliteRestOptions(URL, boxlite.ApiKeyCredential(KEY)))


class QuickStart(unittest.IsolatedAsyncioTestCase):
    async def test_readme_quick_start(self):
        # BoxLite's README quick start as written (the image is the test's python one): the default runtime is the
        # server at BOXLITE_HOST.
        printed = []
        async with boxlite.SimpleBox(image=PY_IMAGE) as box:
            result = await box.exec("python3", "-c", "print('Hello from BoxLite!')")
            printed.append(result.stdout)
        self.assertEqual(printed, ["Hello from BoxLite!\n"])

    async def test_codebox(self):
        async with boxlite.CodeBox(image=PY_IMAGE, runtime=runtime()) as codebox:
            self.assertEqual(await codebox.run("import math\nprint(f'Pi is approximately {math.pi}')"), "Pi is approximately 3.141592653589793\n")
            with self.assertRaises(boxlite.ExecError) as e:
                await codebox.run("print(undefined_variable)")
            self.assertEqual(e.exception.exit_code, 1)
            self.assertIn("NameError", e.exception.stderr)


class SimpleBoxes(unittest.IsolatedAsyncioTestCase):
    async def test_exec_forms_files_and_removal(self):
        rt = runtime()
        async with boxlite.SimpleBox(image=IMAGE, runtime=rt, name="py-simple") as box:
            self.assertTrue(box.created)
            r = await box.exec("sh", "-c", "echo $X; pwd; id -un; echo e >&2; exit 3", env={"X": "1"}, cwd="/tmp", user="app")
            self.assertEqual((r.exit_code, r.stdout, r.stderr), (3, "1\n/tmp\napp\n", "e\n"))
            with self.assertRaises(boxlite.TimeoutError):
                await box.exec("sleep", "30", timeout=0.5)
            with tempfile.TemporaryDirectory() as d:
                os.makedirs(f"{d}/src/sub")
                with open(f"{d}/src/sub/a.txt", "w") as f:
                    f.write("alpha\n")
                await box.copy_in(f"{d}/src", "/app")
                self.assertEqual((await box.exec("cat", "/app/sub/a.txt")).stdout, "alpha\n")
                os.makedirs(f"{d}/out")
                await box.copy_out("/app", f"{d}/out")
                with open(f"{d}/out/app/sub/a.txt") as f:
                    self.assertEqual(f.read(), "alpha\n")
            self.assertEqual(box.info().state.status, "running")
        self.assertIsNone(await rt.get("py-simple"))  # auto_remove


class Runtime(unittest.IsolatedAsyncioTestCase):
    async def test_create_get_list_exec_stream_remove(self):
        rt = runtime()
        box = await rt.create(boxlite.BoxOptions(image=IMAGE, memory_mib=256, env={"G": "hi"}), name="py-rt")
        try:
            self.assertEqual((await rt.get("py-rt")).id, box.id)
            infos = await rt.list_info()
            self.assertIn(("py-rt", "configured"), [(i.name, i.state.status) for i in infos])
            with self.assertRaises(boxlite.AlreadyExistsError):
                await rt.create(boxlite.BoxOptions(image=IMAGE), name="py-rt")
            _, created = await rt.get_or_create(boxlite.BoxOptions(image=IMAGE), name="py-rt")
            self.assertFalse(created)
            await box.start()
            ex = await box.exec("sh", ["-c", "echo $G; cat; exit 4"])
            stdin = ex.stdin()
            await stdin.send_input("typed\n")
            await stdin.close()
            chunks = [c async for c in ex.stdout()]
            self.assertEqual("".join(chunks), "hi\ntyped\n")
            self.assertEqual((await ex.wait()).exit_code, 4)
            self.assertGreater((await box.metrics())["commands_executed_total"], 0)
        finally:
            await rt.remove("py-rt", force=True)
        self.assertIsNone(await rt.get("py-rt"))
        with self.assertRaises(boxlite.NotFoundError):
            await rt.remove("py-rt")

    async def test_wrong_key(self):
        rt = boxlite.Boxlite.rest(boxlite.BoxliteRestOptions(URL, boxlite.ApiKeyCredential("wrong")))
        with self.assertRaises(boxlite.AuthError):
            await rt.list_info()
        self.assertNotIn(KEY, repr(boxlite.ApiKeyCredential(KEY)))


def tar_of(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, extra in entries:
            i = tarfile.TarInfo(name)
            if kind == "dir":
                i.type = tarfile.DIRTYPE
                t.addfile(i)
            elif kind == "sym":
                i.type, i.linkname = tarfile.SYMTYPE, extra
                t.addfile(i)
            elif kind == "lnk":
                i.type, i.linkname = tarfile.LNKTYPE, extra
                t.addfile(i)
            else:
                data = extra.encode()
                i.size, i.mode = len(data), 0o4755
                t.addfile(i, io.BytesIO(data))
    return buf.getvalue()


class HostileArchives(unittest.TestCase):
    """What a box sends back is unpacked as untrusted (as `boxlite cp` does)."""

    def test_refused(self):
        cases = [
            [("x/../../escape", "file", "x")],
            [("/etc/owned", "file", "x")],
            [("x", "dir", None), ("x/link", "sym", "/tmp"), ("x/link/planted", "file", "x")],
            [("x", "dir", None), ("x/h", "lnk", "../../etc/passwd")],
            [("x/a", "file", "x"), ("y/b", "file", "x")],
        ]
        for entries in cases:
            with tempfile.TemporaryDirectory() as d, self.subTest(entries=entries):
                with self.assertRaises(boxlite.BoxliteError):
                    safe_untar(tar_of(entries), d)
                self.assertFalse(os.path.exists("/tmp/planted"))

    def test_modes_masked(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(safe_untar(tar_of([("x", "dir", None), ("x/f", "file", "data")]), d), "x")
            self.assertEqual(os.stat(f"{d}/x/f").st_mode & 0o7777, 0o755)


if __name__ == "__main__":
    unittest.main()

"""boxlite: BoxLite's Python API over a boxlite server (`boxlite serve`), with the standard library and websockets.

    import asyncio, boxlite

    async def main():
        rt = boxlite.Boxlite.rest(boxlite.BoxliteRestOptions("http://127.0.0.1:8100", boxlite.ApiKeyCredential.from_env()))
        async with boxlite.SimpleBox(image="python:slim", runtime=rt) as box:
            print((await box.exec("python", "-c", "print('hi')")).stdout)

    asyncio.run(main())
"""

from .boxes import Box, BoxInfo, Boxlite, BoxOptions, BoxStateInfo, Execution, ExecResult
from .errors import AlreadyExistsError, AuthError, BoxliteError, ExecError, InvalidArgumentError, InvalidStateError, NotFoundError, TimeoutError
from .rest import ApiKeyCredential, BoxliteRestOptions
from .simplebox import CodeBox, SimpleBox

__version__ = "0.1.0"
__all__ = [
    "AlreadyExistsError", "ApiKeyCredential", "AuthError", "Box", "BoxInfo", "Boxlite", "BoxliteError", "BoxliteRestOptions", "BoxOptions",
    "BoxStateInfo", "CodeBox", "ExecError", "ExecResult", "Execution", "InvalidArgumentError", "InvalidStateError", "NotFoundError",
    "SimpleBox", "TimeoutError",
]

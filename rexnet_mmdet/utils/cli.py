"""The one way a command-line tool of this project fails: ``error: <message>`` on stderr, exit
status 1, no traceback. The message says what was wrong and what to do; a traceback would only hide it."""
import functools
import sys
from typing import Callable, NoReturn, Optional, Sequence, Tuple, Type

#: Errors the package raises for what a user can fix (a bad argument, a missing or wrong file, a
#: missing optional package). Anything else is a bug and keeps its traceback.
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError, ImportError)


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 1."""
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(1)


def tool_main(main: Optional[Callable] = None, *, errors: Tuple[Type[BaseException], ...] = ()):
    """Decorate a tool's ``main(argv=None) -> int``: :data:`USER_ERRORS` (and ``errors``) become
    :func:`fail`; a ``None`` result counts as success (0).

    Used bare (``@tool_main``) or with extra error types (``@tool_main(errors=(MyError,))``).
    """
    caught = USER_ERRORS + tuple(errors)

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(argv: Optional[Sequence[str]] = None) -> int:
            try:
                code = fn(argv)
            except caught as e:
                fail(str(e))
            return 0 if code is None else int(code)
        return wrapper

    return wrap(main) if main is not None else wrap


__all__ = ['USER_ERRORS', 'fail', 'tool_main']

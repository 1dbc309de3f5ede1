"""What the command-line tools share: the one way a tool fails (``error: <message>`` on stderr, exit
status 1, no traceback: the message says what was wrong and what to do; a traceback would only hide
it), and the one way they take an image size (``--shape WIDTH [HEIGHT]``)."""
import contextlib
import functools
import os
import sys
from typing import Callable, Iterator, List, NoReturn, Optional, Sequence, Tuple, Type

#: Errors the package raises for what a user can fix (a bad argument, a missing or wrong file, a
#: missing optional package). Anything else is a bug and keeps its traceback.
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError, ImportError)


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 1."""
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(1)


#: Set (to anything but 0 or empty) to see the traceback behind a tool's one-line error.
TRACEBACK_VARIABLE = 'REXNET_MMDET_TRACEBACK'


#: Set on an exception that :func:`keep_tracebacks` let through: :func:`tool_main` re-raises it.
KEEP_TRACEBACK = '_rexnet_keeps_traceback'


@contextlib.contextmanager
def keep_tracebacks(except_for: Tuple[Type[BaseException], ...] = ()) -> Iterator[None]:
    """Around code that is not the project's (mmengine's ``Runner.train()``, mmdet's models): its errors
    keep their traceback under :func:`tool_main`, even a ``ValueError``, which deep inside a run is no
    message to a user. The project's own errors (``except_for``) still become one line."""
    try:
        yield
    except except_for:
        raise
    except Exception as e:
        setattr(e, KEEP_TRACEBACK, True)
        raise


def tool_main(main: Optional[Callable] = None, *, errors: Tuple[Type[BaseException], ...] = ()):
    """Decorate a tool's ``main(argv=None) -> int``: :data:`USER_ERRORS` (and ``errors``) become
    :func:`fail`, unless the environment sets :data:`TRACEBACK_VARIABLE` or the error came through
    :func:`keep_tracebacks`; a ``None`` result counts as success (0).

    Used bare (``@tool_main``) or with extra error types (``@tool_main(errors=(MyError,))``).
    """
    caught = USER_ERRORS + tuple(errors)

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(argv: Optional[Sequence[str]] = None) -> int:
            try:
                code = fn(argv)
            except caught as e:
                if getattr(e, KEEP_TRACEBACK, False) or os.environ.get(TRACEBACK_VARIABLE, '') not in ('', '0'):
                    raise
                fail(str(e))
            return 0 if code is None else int(code)
        return wrapper

    return wrap(main) if main is not None else wrap


def add_shape_argument(parser, default: Optional[List[int]] = None, default_text: str = '') -> None:
    """``--shape WIDTH [HEIGHT]``, width first as in mmdet's ``Resize`` scale; one number is a square.
    Read it with :func:`shape_wh`."""
    parser.add_argument('--shape', type=int, nargs='+', metavar=('WIDTH', 'HEIGHT'), default=default,
                        help='input WIDTH [HEIGHT] in pixels, width first as in mmdet\'s Resize scale; one number '
                             'for a square' + (f' (default: {default_text})' if default_text else ''))


def shape_wh(shape: Sequence[int], minimum: int = 32) -> Tuple[int, int]:
    """``(W, H)`` of a ``--shape WIDTH [HEIGHT]`` value; ``ValueError`` for anything else."""
    if not 1 <= len(shape) <= 2:
        raise ValueError(f'--shape takes WIDTH [HEIGHT], got {" ".join(map(str, shape))}')
    w, h = (shape[0], shape[-1])
    if min(w, h) < minimum:
        raise ValueError(f'--shape {" ".join(map(str, shape))} is too small: at least {minimum} pixels a side '
                         f'(ReXNet downsamples by 32)')
    return w, h


__all__ = ['USER_ERRORS', 'TRACEBACK_VARIABLE', 'fail', 'keep_tracebacks', 'tool_main', 'add_shape_argument', 'shape_wh']

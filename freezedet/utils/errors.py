"""User errors (bad data, config, arguments) and the wrapper every ``tools/*.py`` runs under.

A :class:`UserError` is a problem the user fixes in their files or command line; its message
says what is wrong, which file / key, and what to do. :func:`run_tool` prints such an error as
one paragraph, ``freezedet: error: <message>``, on stderr and exits with status 2, without a
traceback; ``--debug`` (anywhere on the command line) or ``FREEZEDET_DEBUG=1`` shows the
traceback instead. Any other exception is a bug and keeps its traceback.

The subclasses are also the built-in type a caller may already catch (``ValueError``,
``FileNotFoundError``, ``KeyError``). Only the standard library is imported here.
"""

import os
import re
import sys
from typing import Callable, Optional

__all__ = [
    "DEBUG_ENV",
    "UserError",
    "UserFileNotFoundError",
    "UserKeyError",
    "UserValueError",
    "call_main",
    "debug_enabled",
    "format_user_error",
    "run_tool",
]

DEBUG_ENV = "FREEZEDET_DEBUG"
EXIT_USER_ERROR = 2  # as argparse exits for a bad argument


class UserError(Exception):
    """Bad input of the user's (data, config, arguments): the message names the file or key and
    says what to do; tools print it without a traceback."""

    def __str__(self):  # KeyError would print repr(message), quotes and escaped newlines
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UserValueError(UserError, ValueError):
    """A bad value in the user's data, config or arguments."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named (or their data names) does not exist."""


class UserKeyError(UserError, KeyError):
    """A key missing from (or unknown to) the user's config or annotation file."""


def debug_enabled() -> bool:
    """Whether ``FREEZEDET_DEBUG`` asks for tracebacks of user errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _after_last(text: str, classes) -> Optional[str]:
    """The message after the last ``\n<module>.<Class>: `` of ``classes`` in a traceback text."""
    ends = []
    for cls in classes:
        for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
            marker = f"\n{name}: "
            if marker in text:
                ends.append(text.rindex(marker) + len(marker))
    return text[max(ends) :].strip() if ends else None


def _user_error_classes(cls=UserError) -> list:
    return [cls] + [c for sub in cls.__subclasses__() for c in _user_error_classes(sub)]


def _message(error: BaseException) -> str:
    text = str(error)
    # re-raised by torch's DataLoader from a worker: "Caught X in DataLoader worker process 0.
    # Original Traceback (most recent call last): ... module.X: message"
    if "Original Traceback" in text:
        return _after_last(text, [type(error)]) or text.strip()
    return text.strip()


def _from_other_process(error: BaseException) -> Optional[str]:
    """The message of a :class:`UserError` raised in a process that ``--num-gpus`` started:
    torch.multiprocessing re-raises it in the parent as a ``ProcessRaisedException`` that
    carries only the worker's traceback text."""
    if type(error).__name__ != "ProcessRaisedException":
        return None
    return _after_last(str(error), _user_error_classes())


def format_user_error(error: BaseException, prog: str) -> str:
    """``<prog>: error: <message>`` as one paragraph, then how to see the traceback."""
    message = _from_other_process(error) or _message(error)
    paragraph = re.sub(r"[ \t]*\n[ \t]*", " ", message)
    return (
        f"{prog}: error: {paragraph}\n"
        f"(a problem with the input, not a bug: --debug or {DEBUG_ENV}=1 shows the traceback)"
    )


def call_main(
    main: Callable[..., Optional[int]], *args, prog: str, debug: Optional[bool] = None
) -> int:
    """``main(*args)``'s exit status (0 unless it returns an int); a :class:`UserError` is printed by
    :func:`format_user_error` to stderr and gives status 2, unless ``debug`` (default:
    :func:`debug_enabled`), where it propagates with its traceback; so is one raised in a
    process that ``--num-gpus`` started. Other exceptions propagate.
    """
    debug = debug_enabled() if debug is None else debug
    try:
        status = main(*args)
    except Exception as e:
        if debug or not (isinstance(e, UserError) or _from_other_process(e)):
            raise
        sys.stdout.flush()
        print(format_user_error(e, prog), file=sys.stderr)
        return EXIT_USER_ERROR
    return status if isinstance(status, int) else 0


def run_tool(main: Callable[[], Optional[int]], *, prog: str = "freezedet") -> int:
    """Run a tool's ``main()`` (which parses ``sys.argv``) under :func:`call_main`; ``--debug``
    is taken out of ``sys.argv`` first and turns tracebacks on (also in processes it starts,
    through ``FREEZEDET_DEBUG``). Use as ``sys.exit(run_tool(main))``."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv[1:] = [a for a in sys.argv[1:] if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    return call_main(main, prog=prog, debug=debug or None)

#!/usr/bin/env python3
"""An example comrade pool worker in Python:

    new Pool({ command: ['python3', 'examples/python/worker.py'] })
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comrade_worker import Worker  # noqa: E402

worker = Worker()


@worker.default()
def echo(value=None, *_rest):
    return value


@worker.function()
def add(a, b):
    return a + b


@worker.function()
def upper(s):
    return s.upper()


@worker.function()
def fail(message):
    err = ValueError(message)
    err.code = "E_PY"
    raise err


@worker.function()
def pid():
    return os.getpid()


@worker.function()
def reverse_bytes(data):
    """Binary in, binary out: `data` arrives as bytes (a Buffer in JS); so does the result."""
    return {"type": type(data).__name__, "reversed": data[::-1], "empty": b""}


# Broadcasts (pool.broadcast(message)) this worker got, for `messages`; {"fail": why} raises.
_messages = []


@worker.on_message
def on_message(message):
    if isinstance(message, dict) and "fail" in message:
        err = ValueError(message["fail"])
        err.code = "E_MESSAGE"
        raise err
    _messages.append(message)


@worker.function()
def messages():
    return _messages


@worker.function(context=True)
def emit(ctx, name, data=None):
    ctx.emit(name, data)
    return None


if __name__ == "__main__":
    worker.run()

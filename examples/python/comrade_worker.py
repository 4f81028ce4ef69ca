"""Make a Python program a comrade pool worker (docs/PROTOCOL.md). Standard library only.

    from comrade_worker import Worker, WorkerError
    worker = Worker()

    @worker.function()                 # pool.call('add', 2, 3)
    def add(a, b):
        return a + b

    @worker.default()                  # pool.run('hi')
    def echo(value=None):
        return value

    @worker.function(context=True)     # the function gets a Context first
    def count(ctx, n):
        for i in range(n):
            if ctx.cancelled:          # the pool cancelled this call (an abort, a timeout)
                raise WorkerError("cancelled", name="AbortError", code="ABORT_ERR")
            ctx.progress(i)
        return n

    @worker.teardown                   # runs when the pool stops this worker on purpose
    def bye():
        ...

    @worker.on_message                 # pool.broadcast(message): runs, then the worker acks
    def reload(message):
        ...

    worker.run()

An exception answers the call as a JS error: `name` is the exception's class name (or
WorkerError's `name`), `message` is str(exc), `stack` the Python traceback, `code` the
exception's `code` attribute when it is a string, and a `fields` dict attribute is copied onto the
JS error. Arguments that do not fit the function's signature answer a TypeError with code
ERR_INVALID_ARGS.
"""

import inspect
import json
import os
import re
import socket
import sys
import traceback

__all__ = ["Worker", "WorkerError", "Context"]

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# Binary attachments (docs/PROTOCOL.md, protocol version 3): bytes, bytearray or memoryview in a
# result travel as raw bytes after the line ({"$b": i} in the JSON); bytes in the arguments
# arrive as `bytes`. _dumps_result collects them into _bins (the encoder asks only for values
# JSON has no type for, so a result without one costs nothing more).
_BIN_PREFIX = b'{"b":['
_bins = []


def _bin_default(o):
    if isinstance(o, (bytes, bytearray, memoryview)):
        _bins.append(o if isinstance(o, bytes) else bytes(o))
        return {"$b": len(_bins) - 1}
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


_dumps_result = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_bin_default).encode
_READ_SIZE = 256 * 1024
_MAX_ID = 2**32 - 1
_CANCEL = re.compile(rb'\{"t":"cancel","id":(\d+)\}')
_DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


def _pool_max_message():
    """The pool's maxMessage (COMRADE_MAX_MESSAGE): the longest line this worker may send."""
    try:
        n = int(os.environ.get("COMRADE_MAX_MESSAGE", ""))
    except ValueError:
        return _DEFAULT_MAX_MESSAGE
    return n if n > 0 else _DEFAULT_MAX_MESSAGE


class WorkerError(Exception):
    """An error with an explicit JS `name` (e.g. "RangeError"), `code` and extra fields."""

    def __init__(self, message, name=None, code=None, **fields):
        super().__init__(message)
        self.name = name
        self.code = code
        self.fields = fields


class ProtocolError(Exception):
    """The pool sent something that is not a valid message (a bug on the pool's side)."""


def error_object(exc, skip_frames=0):
    """The protocol's error object for an exception (as JSON text)."""
    name = type(exc).__name__
    if isinstance(exc, WorkerError) and exc.name:
        name = exc.name
    message = str(exc)
    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    stack = "%s: %s\n%s" % (name, message, "".join(traceback.format_tb(tb)))
    e = {"name": name, "message": message, "stack": stack.rstrip("\n")}
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        e["code"] = code
    fields = getattr(exc, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            if key not in e:
                e[key] = value
    try:
        return _dumps(e)
    except (TypeError, ValueError):  # a field that is not JSON: send the rest
        e = {k: v for k, v in e.items() if k in ("name", "message", "stack", "code")}
        return _dumps(e)


class Context:
    """Handed to functions registered with context=True. Each message is written at once."""

    def __init__(self, worker, call_id):
        self._worker = worker
        self.id = call_id

    def progress(self, value):
        """Reports progress of this call (any JSON value). Raises WorkerError with code
        ERR_MESSAGE_TOO_LARGE, sending nothing, when the message would exceed maxMessage."""
        line = '{"t":"progress","id":%d,"v":%s}\n' % (self.id, _dumps(value))
        self._worker._check_size(line, "the progress value")
        self._worker._send(line)

    def emit(self, name, data=None):
        """Emits an event for the pool's 'event' listeners (same size limit as progress)."""
        line = '{"t":"event","name":%s,"data":%s}\n' % (_dumps(name), _dumps(data))
        self._worker._check_size(line, "the event")
        self._worker._send(line)

    @property
    def cancelled(self):
        """True once the pool cancelled this call ({"t":"cancel"}: its caller aborted it, or
        it ran past its timeout). Check it now and then in a long call and raise (say a
        WorkerError with name "AbortError"): the answer is not delivered, but it frees this
        worker for the next call; a worker that has not answered within the pool's
        cancelGraceMs is killed. The loop is single-threaded: this looks at what was already
        read and peeks at the channel without consuming it (one non-blocking recv)."""
        worker = self._worker
        if self.id in worker._cancels:
            return True
        if worker._peek is not None:
            try:
                data = worker._peek.recv(64 * 1024, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError, OSError):
                data = b""
            for m in _CANCEL.finditer(data):
                if int(m.group(1)) == self.id:
                    worker._cancels.add(self.id)
                    return True
        return False

    def retire(self):
        """Asks the pool to send no more calls; it stops this worker once they are answered."""
        if not self._worker._retired:
            self._worker._retired = True
            self._worker._send('{"t":"retire"}\n')


class Worker:
    def __init__(self):
        self._functions = {}
        self._default = None
        self._init = None
        self._retired = False
        self._out = []
        self._fd = None
        self._ready = False
        self._teardown = None
        self._on_message = None
        self._cancels = set()  # calls the pool cancelled, as far as read
        self._peek = None  # a socket on the channel, for Context.cancelled
        self._stopped = False
        self._max_message = _pool_max_message()

    @staticmethod
    def _entry(fn, context):
        try:
            sig = inspect.signature(fn)
            if context:
                sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        except (TypeError, ValueError):  # some builtins have no signature: call unchecked
            sig = None
        return (fn, context, sig)

    def function(self, name=None, context=False):
        """Decorator: registers a function under `name` (default: its own name)."""
        def register(fn):
            self._functions[name or fn.__name__] = self._entry(fn, context)
            return fn
        return register

    def default(self, context=False):
        """Decorator: registers the default function (pool.run)."""
        def register(fn):
            self._default = self._entry(fn, context)
            return fn
        return register

    def teardown(self, fn):
        """Decorator: fn() runs when the pool stops this worker on purpose ({"t":"stop"}: close,
        idle, recycled, retired), after the last answer; then the worker exits 0. The pool
        SIGKILLs a worker still alive killGraceMs later."""
        self._teardown = fn
        return fn

    def on_message(self, fn):
        """Decorator: fn(message) runs for each broadcast (pool.broadcast(message)), between
        calls; the worker acknowledges the message once fn returned, which counts it as reached.
        An exception still lets the ack go, with the error: the broadcast rejects with
        ERR_BROADCAST_FAILED. Without a handler, messages are acknowledged and ignored."""
        self._on_message = fn
        return fn

    def init(self, fn):
        """Decorator: fn(init_data) runs once before any call; raising makes the worker fatal."""
        self._init = fn
        return fn

    # -- the loop ---------------------------------------------------------------------------

    def _too_large(self, what, size):
        return WorkerError(
            "%s is %d bytes of JSON as a message to the pool, more than maxMessage (%d)"
            % (what, size, self._max_message),
            name="PoolError", code="ERR_MESSAGE_TOO_LARGE", bytes=size, maxMessage=self._max_message)

    def _check_size(self, line, what):
        # _dumps escapes every non-ASCII character: a line's length is its size in bytes.
        if len(line) - 1 > self._max_message:
            raise self._too_large(what, len(line) - 1)

    def _reply_within(self, call_id, line, exc=None):
        """`line`, or when it is longer than maxMessage an ERR_MESSAGE_TOO_LARGE error for the call
        (a result or an error too large fails its own call; the worker goes on)."""
        size = len(line) - 1
        if size <= self._max_message:
            return line
        what = "the function's result" if exc is None else "the function's error"
        err = self._too_large(what, size)
        if exc is not None:
            err.args = ("%s: %s" % (err.args[0], str(exc)[:200]),)
        return '{"t":"err","id":%d,"e":%s}\n' % (call_id, error_object(err))

    def _binary_reply(self, call_id, text):
        """The `ok` of a result holding binaries: its line, their bytes and a newline (bytes)."""
        bins = list(_bins)
        del _bins[:]
        total = sum(len(b) for b in bins)
        if total > self._max_message:
            err = WorkerError(
                "the function's result holds %d bytes of binaries, more than maxMessage (%d)"
                % (total, self._max_message),
                name="PoolError", code="ERR_MESSAGE_TOO_LARGE", bytes=total, maxMessage=self._max_message)
            return '{"t":"err","id":%d,"e":%s}\n' % (call_id, error_object(err))
        line = '{"b":[%s],"t":"ok","id":%d,"v":%s}\n' % (",".join(str(len(b)) for b in bins), call_id, text)
        checked = self._reply_within(call_id, line)
        if checked is not line:
            return checked
        return line.encode("utf-8") + b"".join(bins) + b"\n"

    def _send(self, text):
        """Queues `text` and writes everything queued (used for progress/events/retire)."""
        self._out.append(text)
        self._flush()

    def _flush(self):
        if not self._out:
            return
        if any(type(p) is bytes for p in self._out):  # a reply with attachments
            data = b"".join(p if type(p) is bytes else p.encode("utf-8") for p in self._out)
        else:
            data = "".join(self._out).encode("utf-8")
        self._out.clear()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _call(self, msg):
        call_id = msg.get("id")
        if type(call_id) is not int or not 0 <= call_id <= _MAX_ID:
            raise ProtocolError("call without a valid id: %r" % (call_id,))
        args = msg.get("args")
        if type(args) is not list:
            raise ProtocolError("call args is not an array: %r" % (args,))
        name = msg.get("fn")
        if name is None:
            entry = self._default
        elif isinstance(name, str):
            entry = self._functions.get(name)
        else:
            raise ProtocolError("call fn is neither a string nor null: %r" % (name,))
        if entry is None:
            message = 'no function named "%s"' % name if name is not None else "this worker has no default function"
            return '{"t":"err","id":%d,"e":%s}\n' % (call_id, _dumps(
                {"name": "Error", "message": message, "code": "ERR_UNKNOWN_FUNCTION"}))
        fn, context, sig = entry
        if sig is not None:
            try:
                sig.bind(*args)
            except TypeError as exc:
                return '{"t":"err","id":%d,"e":%s}\n' % (call_id, _dumps({
                    "name": "TypeError", "code": "ERR_INVALID_ARGS",
                    "message": "invalid arguments for %s: %s" % (
                        '"%s"' % name if name is not None else "the default function", exc)}))
        try:
            value = fn(Context(self, call_id), *args) if context else fn(*args)
        except Exception as exc:  # noqa: BLE001 - every failure is the caller's error
            return self._reply_within(
                call_id, '{"t":"err","id":%d,"e":%s}\n' % (call_id, error_object(exc, 1)), exc)
        try:
            del _bins[:]
            text = _dumps_result(value)
            if _bins:
                return self._binary_reply(call_id, text)
            return self._reply_within(call_id, '{"t":"ok","id":%d,"v":%s}\n' % (call_id, text))
        except (TypeError, ValueError, RecursionError) as exc:
            return '{"t":"err","id":%d,"e":%s}\n' % (call_id, _dumps({
                "name": "TypeError", "code": "ERR_SERIALIZE",
                "message": "could not serialize the return value: %s" % exc}))

    def _message(self, line, bins=None):
        try:
            if bins is None:
                msg = json.loads(line.decode("utf-8"))
            else:
                def attachment(d):
                    i = d.get("$b") if len(d) == 1 else None
                    return bins[i] if type(i) is int and 0 <= i < len(bins) else d
                msg = json.loads(line.decode("utf-8"), object_hook=attachment)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError("invalid JSON: %s" % exc) from None
        if not isinstance(msg, dict):
            raise ProtocolError("message is not a JSON object")
        t = msg.get("t")
        if t == "call":
            if not self._ready:
                raise ProtocolError("call before init")
            if msg.get("id") in self._cancels:  # cancelled before it started: not run
                self._out.append('{"t":"err","id":%d,"e":%s}\n' % (msg["id"], _dumps({
                    "name": "AbortError", "code": "ABORT_ERR",
                    "message": "the call was cancelled by the pool"})))
                return
            self._out.append(self._call(msg))
        elif t == "init":
            if self._ready:
                raise ProtocolError("init received twice")
            self._ready = True
            if self._init is not None:
                try:
                    self._init(msg.get("data"))
                except Exception as exc:  # noqa: BLE001
                    self._out.append('{"t":"fatal","e":%s}\n' % error_object(exc, 1))
                    self._flush()
                    print("comrade worker: init failed: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
                    sys.exit(1)
            self._out.append('{"t":"ready"}\n')
            self._flush()  # at once: the pool's run timeouts start when it reads "ready"
        elif t == "cancel":
            self._cancels.discard(msg.get("id"))  # its call came before it: answered already
        elif t == "message":
            if not self._ready:
                raise ProtocolError("message before init")
            message_id = msg.get("id")
            if type(message_id) is not int:
                raise ProtocolError('message without an integer "id"')
            ack = '{"t":"ack","id":%d}\n' % message_id
            if self._on_message is not None:
                try:
                    self._on_message(msg.get("data"))
                except Exception as exc:  # noqa: BLE001
                    ack = '{"t":"ack","id":%d,"e":%s}\n' % (message_id, error_object(exc, 1))
                    if len(ack) - 1 > self._max_message:
                        err = self._too_large("the message handler's error", len(ack) - 1)
                        err.args = ("%s: %s" % (err.args[0], str(exc)[:200]),)
                        ack = '{"t":"ack","id":%d,"e":%s}\n' % (message_id, error_object(err))
            self._out.append(ack)
        elif t == "stop":
            self._flush()
            if self._teardown is not None:
                try:
                    self._teardown()
                except Exception as exc:  # noqa: BLE001
                    print("comrade worker: teardown failed: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
            self._stopped = True
        elif t is None:
            raise ProtocolError('message has no "t"')
        else:
            raise ProtocolError('unknown message type "t": %r' % (t,))

    def serve(self, fd):
        """Serves on file descriptor `fd` until end of file."""
        self._fd, self._ready, pending = fd, False, []
        want = 0  # bytes a message with attachments needs, from the start of `pending`
        held = 0
        while True:
            chunk = os.read(fd, _READ_SIZE)
            if not chunk:
                return
            if pending:  # a long line, or attachments: joined once complete
                pending.append(chunk)
                held += len(chunk)
                if (held < want) if want else (b"\n" not in chunk):
                    continue
                chunk = b"".join(pending)
                pending.clear()
            elif b"\n" not in chunk:
                pending.append(chunk)
                held = len(chunk)
                continue
            want = 0
            for m in _CANCEL.finditer(chunk):
                self._cancels.add(int(m.group(1)))
            if _BIN_PREFIX not in chunk:
                lines = chunk.split(b"\n")
                if lines[-1]:
                    pending.append(lines[-1])
                    held = len(lines[-1])
                for line in lines[:-1]:
                    self._message(line)
                    if self._stopped:
                        return
            else:
                start = self._messages(chunk)
                if start < 0:
                    return
                if start < len(chunk):
                    pending.append(chunk[start:])
                    held = len(chunk) - start
                    want = self._want
            self._flush()  # every reply to this read in one write, before blocking again

    def _messages(self, data):
        """Handles the messages of `data`, with their attachments; returns where the rest starts
        (setting self._want when it is a message with attachments not complete yet), or -1 once
        stopped."""
        start, self._want = 0, 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                return start
            if not data.startswith(_BIN_PREFIX, start):
                self._message(data[start:nl])
                start = nl + 1
            else:
                try:
                    lens = json.loads(data[start:nl].decode("utf-8")).get("b")
                except (UnicodeDecodeError, ValueError) as exc:
                    raise ProtocolError("invalid JSON: %s" % exc) from None
                if type(lens) is not list or not all(type(n) is int and n >= 0 for n in lens):
                    raise ProtocolError('"b" is not a list of lengths')
                end = nl + 1 + sum(lens) + 1
                if end > len(data):
                    self._want = end - start
                    return start
                if data[end - 1] != 0x0A:
                    raise ProtocolError("attachments not followed by a newline")
                bins, at = [], nl + 1
                for n in lens:
                    bins.append(data[at:at + n])
                    at += n
                self._message(data[start:nl], bins)
                start = end
            if self._stopped:
                return -1

    def run(self):
        """Serves the pool on the channel it started this process with; exits at its end."""
        value = os.environ.get("COMRADE_CHANNEL_FD", "3")
        try:
            fd = int(value)
            os.fstat(fd)
            os.set_blocking(fd, True)
            os.set_inheritable(fd, False)  # programs this worker starts must not hold the channel
        except (ValueError, OSError):
            print("this program is a comrade pool worker; start it with new Pool({ command: [...] }) "
                  "(file descriptor %s is not open)" % value, file=sys.stderr)
            sys.exit(2)
        try:
            self._peek = socket.socket(fileno=os.dup(fd))
        except OSError:
            self._peek = None
        try:
            self.serve(fd)
        except ProtocolError as exc:
            try:
                self._flush()  # the calls answered before the bad line did complete
            except OSError:
                pass
            print("comrade worker: protocol error: %s" % exc, file=sys.stderr)
            sys.exit(3)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the pool is gone
        sys.exit(0)

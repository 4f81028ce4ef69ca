#!/usr/bin/env python3
"""Benchmark worker for bench/large-args.js (the Python example's module): takes a large
argument and answers its size, or makes a large result."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python"))

from comrade_worker import Worker  # noqa: E402

worker = Worker()


@worker.function()
def size(value):
    return len(value)


@worker.function()
def make(n):
    return "r" * n


if __name__ == "__main__":
    worker.run()

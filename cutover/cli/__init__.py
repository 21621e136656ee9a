"""The ``cutover`` command: parse, call one use-case, render."""

"""The Python environments the extension manages beside its host.

- host_deps: small pure-Python packages for the code running inside A1111's process, kept in
  `<extension>/.deps` so A1111's venv is never changed.
- the trainer environment: the interpreter the builtin engine trains with - a Python the user
  points to (validated), or a venv the extension creates on first use (reusing the host's torch
  where it can), or, standalone and in the tests, this interpreter.

Standard library only at import time (install.py and A1111's process import it).
"""

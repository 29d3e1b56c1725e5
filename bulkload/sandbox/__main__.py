"""`python -m bulkload.sandbox`: the sandbox command without the rest of the CLI."""

from __future__ import annotations

from bulkload.sandbox.command import sandbox_command

sandbox_command(prog_name="python -m bulkload.sandbox")

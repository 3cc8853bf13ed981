"""POSIX sh snippets shared by Meridian's init containers.

A failure is reported twice: on stderr for `kubectl logs`, and in the container's termination
message (/dev/termination-log) so it reaches pod status, where reconcile reads it (see failures.py).
Every such message starts with MESSAGE_PREFIX so it can be told apart from a tool's own output.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

MESSAGE_PREFIX = "meridian: "
PROGRESS_PREFIX = "[meridian] "  # progress lines differ, so a log tail is never mistaken for a failure

# `fail MSG`: report and exit 1.  `run CMD...`: run CMD with its output streamed to the log and kept in
# $out; sets $status to CMD's exit code (a pipeline alone would give tee's).
PRELUDE = """\
set -u
out="${TMPDIR:-/tmp}/meridian-$$.log"
fail() {
  msg="meridian: $1"
  printf '%s\\n' "$msg" >&2
  printf '%s' "$msg" > "${TERMINATION_LOG:-/dev/termination-log}" 2>/dev/null || true
  exit 1
}
run() {
  status=$( { { "$@" 2>&1; echo $? >&3; } | tee "$out" >&2; } 3>&1 )
  [ "$status" = 0 ]
}
"""


def q(text: str) -> str:
    """One shell word, quoted."""
    return shlex.quote(text)


def command(args: Sequence[str]) -> str:
    return shlex.join(list(args))


def say(text: str) -> str:
    """A progress line on stderr."""
    return f"printf '%s\\n' {q(PROGRESS_PREFIX + text)} >&2"


def script(*lines: str) -> str:
    return PRELUDE + "\n".join(lines) + "\n"

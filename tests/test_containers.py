"""The one lifecycle of covsweep's containers: how a command is made to end itself after its budget."""

from __future__ import annotations

from tasks.sandbox.containers import SELF_KILL_GRACE_S, self_ending


def test_a_sandbox_command_is_killed_outright_after_its_budget_and_the_grace():
    assert self_ending(["sh", "-c", "x"], 4.7) == ["timeout", "-s", "KILL", str(4 + SELF_KILL_GRACE_S), "sh", "-c", "x"]


def test_a_command_that_cleans_up_gets_sigterm_first_and_sigkill_after_its_grace():
    command = self_ending(["python", "-m", "openhands.core.main"], 60, term_grace_s=10)
    assert command == [
        "timeout",
        "-k",
        "10",
        "-s",
        "TERM",
        str(60 + SELF_KILL_GRACE_S),
        "python",
        "-m",
        "openhands.core.main",
    ]

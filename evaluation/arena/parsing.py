"""Reading a judge's reply as the reference does: only its last line counts.

GPTEval3D asks for a short analysis per criterion and a final line of integers, one per criterion:
1 = left better, 2 = right better, 3 = cannot decide. A reply counts only when its last line holds
exactly one integer in {1, 2, 3} per asked criterion, separated by whitespace, and nothing else;
any other reply is discarded (counted as malformed), never guessed. Trailing blank lines and extra
spaces are ignored. Each completion of a request is parsed on its own and is a separate vote.
"""

from __future__ import annotations

from dataclasses import dataclass

LEFT_BETTER, RIGHT_BETTER, CANNOT_DECIDE = 1, 2, 3
VALID_VOTES = frozenset({LEFT_BETTER, RIGHT_BETTER, CANNOT_DECIDE})


@dataclass(frozen=True)
class ParsedReply:
    """`votes`: one of {1, 2, 3} per criterion (left/right as shown), or None when the reply is malformed,
    with `error` saying why."""

    votes: tuple[int, ...] | None
    error: str | None = None

    @property
    def is_valid(self) -> bool:
        return self.votes is not None


def parse_reply(reply: str, num_criteria: int) -> ParsedReply:
    """Parse one completion: its last non-empty line must be `num_criteria` integers in {1, 2, 3}."""
    if num_criteria < 1:
        raise ValueError(f"num_criteria must be at least 1, got {num_criteria}")
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    if not lines:
        return ParsedReply(None, "empty reply")
    tokens = lines[-1].split()
    if not all(token.isascii() and token.isdigit() for token in tokens):
        return ParsedReply(None, f"last line is not only integers: {lines[-1][:80]!r}")
    votes = tuple(int(token) for token in tokens)
    if len(votes) != num_criteria:
        return ParsedReply(None, f"last line has {len(votes)} integers, expected {num_criteria}")
    if not set(votes) <= VALID_VOTES:
        return ParsedReply(None, f"last line has values outside {{1, 2, 3}}: {lines[-1]!r}")
    return ParsedReply(votes)


def unswap(votes: tuple[int, ...], swapped: bool) -> tuple[int, ...]:
    """Votes as shown → votes about the scheduled pair (a, b): when a was shown on the right, 1 and 2 trade."""
    if not swapped:
        return votes
    return tuple({LEFT_BETTER: RIGHT_BETTER, RIGHT_BETTER: LEFT_BETTER}.get(vote, vote) for vote in votes)

"""Password hashing with argon2id.

Parameters: OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): ~40 ms per hash on the
2-core reference machine. At most two hashes run at once (one per core) so a burst of sign-ins
queues instead of taking all the memory; a stored hash made with other parameters is rehashed at
the next successful sign-in.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_SLOTS = threading.BoundedSemaphore(2)
_DUMMY: str | None = None


def hash_password(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(password)


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("not the password of anyone")
    return _DUMMY


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one verification, so an
    unknown user name takes as long to refuse as a wrong password."""
    target = stored or _dummy()
    try:
        with _SLOTS:
            ok = _HASHER.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True

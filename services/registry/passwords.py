"""argon2id password hashes. Hashing is slow on purpose, so it runs off the event loop."""

import asyncio
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.registry.settings import RegistrySettings


@lru_cache
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def hasher(settings: RegistrySettings) -> PasswordHasher:
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism
    )


async def hash_password(settings: RegistrySettings, password: str) -> str:
    return await asyncio.to_thread(hasher(settings).hash, password)


@lru_cache
def _dummy_hash(ph: PasswordHasher) -> str:
    return ph.hash("no such user: spend the same time as a real check")


def _verify(ph: PasswordHasher, stored: str | None, password: str) -> bool:
    try:
        return ph.verify(stored or _dummy_hash(ph), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(settings: RegistrySettings, stored: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (stored None) costs a real check too."""
    return await asyncio.to_thread(_verify, hasher(settings), stored, password)


def needs_rehash(settings: RegistrySettings, stored: str) -> bool:
    return hasher(settings).check_needs_rehash(stored)


@lru_cache
def _bootstrap_hash(ph: PasswordHasher, password: str) -> str:
    return ph.hash(password)


async def bootstrap_hash(settings: RegistrySettings, password: str) -> str:
    """The bootstrap admin's hash, once per process (tests start many empty registries)."""
    return await asyncio.to_thread(_bootstrap_hash, hasher(settings), password)


COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@lru_cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(p.strip().casefold() for p in lines if p.strip() and not p.startswith("#"))


def password_problem(password: str, *, username: str, min_length: int) -> str | None:
    """Why `password` is refused, or None: long enough, not a common one (spaces and case
    aside), not the username inside it, and not a run of two or three characters."""
    folded = password.casefold()
    if len(password) < min_length:
        return f"at least {min_length} characters"
    if len(set(folded.replace(" ", ""))) < 4:
        return "too few different characters"
    if folded in common_passwords() or folded.replace(" ", "") in common_passwords():
        return "too common: it is on the list of passwords tried first"
    name = username.strip().casefold()
    if name and name in folded:
        return "must not contain the username"
    return None

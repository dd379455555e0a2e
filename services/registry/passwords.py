"""argon2id password hashes. Hashing is slow on purpose, so it runs off the event loop."""

import asyncio
from functools import lru_cache

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
def _dev_admin_hash(ph: PasswordHasher) -> str:
    return ph.hash("admin")


async def dev_admin_hash(settings: RegistrySettings) -> str:
    # 'admin' is public anyway; one hash per process keeps every embedded start fast.
    return await asyncio.to_thread(_dev_admin_hash, hasher(settings))

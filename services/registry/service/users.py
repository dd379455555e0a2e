"""Users, roles and credentials (identity lives in the registry; tokens are JWTs)."""

import secrets
import uuid
from typing import Any

from sqlalchemy import String, cast, event, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import ensure_in_scope, scope_clause, under
from services.registry.models import Cadre, OrgUnit, User
from services.registry.passwords import (
    bootstrap_hash,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from services.registry.schemas import PasswordChange, UserCreate, UserUpdate
from services.registry.service.common import (
    by_created,
    emit,
    fetch_page,
    flush_unique,
    get_or_404,
)
from services.registry.settings import RegistrySettings
from shared.auth import Principal, issue_token
from shared.clock import Clock
from shared.contracts.enums import Role
from shared.contracts.registry import UserUpserted
from shared.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from shared.keys import KeyRing
from shared.pagination import PageParams
from shared.revocation import TABLE as TOKEN_VERSIONS
from shared.revocation import TokenVersions
from shared.settings import KernelSettings


def user_event(user: User) -> tuple[UserUpserted, uuid.UUID]:
    payload = UserUpserted(
        user_id=user.id,
        username=user.username,
        roles=user.roles,
        unit_id=user.unit_id,
        cadre_id=user.cadre_id,
        active=user.active,
        token_version=user.token_version,
    )
    return payload, user.id


def revoke_tokens(session: AsyncSession, user: User, clock: Clock) -> None:
    """End every token the user holds (the caller publishes the user's event).

    This process's own cache learns the new version the moment the change commits (all
    three services' cache, embedded); the other processes learn it from the event.
    """
    user.token_version = (user.token_version or 1) + 1
    user.updated_at = clock.now()
    versions: TokenVersions | None = session.info.get("token_versions")
    if versions is not None:
        learnt = (user.id, user.token_version, user.active)
        event.listen(
            session.sync_session, "after_commit", lambda _: versions.learn(*learnt), once=True
        )


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        roles=user.roles,
        unit_id=user.unit_id,
        cadre_id=user.cadre_id,
        token_version=user.token_version,
    )


def check_password_policy(
    settings: RegistrySettings, password: str, field: str, *, username: str
) -> None:
    """422 naming `field` unless the password passes the policy (services/registry/passwords)."""
    problem = password_problem(password, username=username, min_length=settings.password_min_length)
    if problem:
        raise InvalidInput(field, problem, code="weak_password")


async def issue(
    session: AsyncSession,
    *,
    kernel: KernelSettings,
    keys: KeyRing,
    versions: TokenVersions,
    settings: RegistrySettings,
    clock: Clock,
    username: str,
    password: str,
) -> tuple[str, int]:
    """A token for good credentials of an active user; 401 alike for every other case.

    The registry learns the version it signs, so the token works here at once even if the
    user's event has not come back through the bus yet.
    """
    user = await session.scalar(select(User).where(User.username == username.strip()))
    ok = await verify_password(settings, user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    if needs_rehash(settings, user.password_hash):
        user.password_hash = await hash_password(settings, password)
    versions.learn(user.id, user.token_version, user.active)
    return issue_token(keys, kernel, clock, principal_of(user))


async def _check_links(
    session: AsyncSession,
    principal: Principal,
    *,
    unit_id: uuid.UUID | None,
    cadre_id: uuid.UUID | None,
    roles: list[Role],
    user_id: uuid.UUID | None = None,
) -> None:
    if unit_id is not None:
        await get_or_404(session, OrgUnit, unit_id, "unit")
    # A scoped admin hands out scopes inside their own subtree only, never an unscoped user.
    await ensure_in_scope(session, principal, unit_id)
    if Role.cadre in roles and cadre_id is None:
        raise InvalidInput("cadre_id", "a cadre user must be linked to a cadre")
    if cadre_id is not None:
        cadre = await get_or_404(session, Cadre, cadre_id, "cadre")
        # A login for a cadre is handed out only by an admin over that cadre's unit.
        await ensure_in_scope(session, principal, cadre.unit_id)
        holder = await session.scalar(select(User.id).where(User.cadre_id == cadre_id))
        if holder is not None and holder != user_id:
            raise Conflict("that cadre already has a user", code="cadre_has_user")


def ensure_grantable(principal: Principal, roles: list[Role], held: list[str] = ()) -> None:
    """Nobody grants a role they don't hold. Two grants are part of the job: every org_admin
    issues `cadre` logins (for cadres in its subtree), and the county-wide org_admin (the
    organisation department) hands out the staff roles; roles the user holds already stay."""
    if principal.unit_id is None and principal.has(Role.org_admin):
        return
    grantable = {*principal.roles, Role.cadre, *held}
    if missing := [r.value for r in roles if r not in grantable]:
        raise Forbidden(
            f"you cannot grant roles you do not hold: {', '.join(missing)}", code="role_not_held"
        )


async def create_user(
    session: AsyncSession,
    *,
    settings: RegistrySettings,
    clock: Clock,
    principal: Principal,
    data: UserCreate,
) -> User:
    check_password_policy(settings, data.password, "password", username=data.username)
    roles = list(dict.fromkeys(data.roles))
    ensure_grantable(principal, roles)
    unit_id = data.unit_id if data.unit_id is not None else principal.unit_id
    await _check_links(session, principal, unit_id=unit_id, cadre_id=data.cadre_id, roles=roles)
    taken = Conflict(f"username {data.username} is taken", code="username_taken")
    if await session.scalar(select(User.id).where(User.username == data.username)):
        raise taken
    now = clock.now()
    user = User(
        username=data.username,
        password_hash=await hash_password(settings, data.password),
        roles=[str(r) for r in roles],
        unit_id=unit_id,
        cadre_id=data.cadre_id,
        password_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await flush_unique(session, taken)
    await emit(session, clock, user_event(user))
    return user


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    """Self always; org_admin and auditor within their scope (403 outside it)."""
    user = await get_or_404(session, User, user_id, "user")
    if user.id != principal.user_id:
        if not principal.has(Role.org_admin, Role.auditor):
            raise Forbidden("not your record", code="not_own_record")
        await ensure_in_scope(session, principal, user.unit_id)
    return user


async def _managed_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    user = await get_or_404(session, User, user_id, "user")
    await ensure_in_scope(session, principal, user.unit_id)
    return user


async def update_user(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    user_id: uuid.UUID,
    data: UserUpdate,
) -> User:
    user = await _managed_user(session, principal, user_id)
    given = data.model_fields_set
    roles = list(dict.fromkeys(data.roles)) if data.roles is not None else list(user.roles)
    unit_id = data.unit_id if "unit_id" in given else user.unit_id
    cadre_id = data.cadre_id if "cadre_id" in given else user.cadre_id
    changed = (set(roles) != set(user.roles), unit_id != user.unit_id, cadre_id != user.cadre_id)
    if user.id == principal.user_id and any(changed):
        raise Forbidden("nobody changes their own roles or scope", code="own_user")
    ensure_grantable(principal, roles, held=user.roles)
    await _check_links(
        session, principal, unit_id=unit_id, cadre_id=cadre_id, roles=roles, user_id=user.id
    )
    claims_change = (set(user.roles), user.unit_id, user.cadre_id) != (
        {str(r) for r in roles},
        unit_id,
        cadre_id,
    )
    user.roles = [str(r) for r in roles]
    user.unit_id, user.cadre_id = unit_id, cadre_id
    user.updated_at = clock.now()
    if claims_change:  # tokens carry roles, scope and cadre link: the old ones end
        revoke_tokens(session, user, clock)
    await flush_unique(session, Conflict("that cadre already has a user", code="cadre_has_user"))
    await emit(session, clock, user_event(user))
    return user


async def set_active(
    session: AsyncSession, *, clock: Clock, principal: Principal, user_id: uuid.UUID, active: bool
) -> User:
    user = await _managed_user(session, principal, user_id)
    if not active and user.id == principal.user_id:
        raise Conflict("you cannot deactivate yourself", code="cannot_deactivate_self")
    if user.active != active:
        user.active = active
        revoke_tokens(session, user, clock)
        await emit(session, clock, user_event(user))
    return user


async def change_password(
    session: AsyncSession,
    *,
    settings: RegistrySettings,
    clock: Clock,
    principal: Principal,
    data: PasswordChange,
) -> None:
    user = await get_or_404(session, User, principal.user_id, "user")
    if not await verify_password(settings, user.password_hash, data.current_password):
        raise InvalidInput("current_password", "does not match", code="wrong_password")
    check_password_policy(settings, data.new_password, "new_password", username=user.username)
    user.password_hash = await hash_password(settings, data.new_password)
    user.password_changed_at = clock.now()
    revoke_tokens(session, user, clock)
    await emit(session, clock, user_event(user))


async def reset_password(
    session: AsyncSession,
    *,
    settings: RegistrySettings,
    clock: Clock,
    principal: Principal,
    user_id: uuid.UUID,
    new_password: str,
) -> None:
    user = await _managed_user(session, principal, user_id)
    check_password_policy(settings, new_password, "new_password", username=user.username)
    user.password_hash = await hash_password(settings, new_password)
    user.password_changed_at = clock.now()
    revoke_tokens(session, user, clock)
    await emit(session, clock, user_event(user))


async def list_users(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    unit_id: uuid.UUID | None = None,
    role: Role | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    stmt = select(User)
    if (clause := scope_clause(principal, User.unit_id)) is not None:
        stmt = stmt.where(clause)
    if unit_id is not None:
        stmt = stmt.where(under(User.unit_id, unit_id))
    if role is not None:
        # roles is a JSON list: match the quoted value in its text, same on both backends.
        stmt = stmt.where(cast(User.roles, String).like(f'%"{role.value}"%'))
    if active is not None:
        stmt = stmt.where(User.active == active)
    return await fetch_page(session, stmt, page, by_created(User))


async def publish_unprojected_users(session: AsyncSession, *, clock: Clock) -> int:
    """Publish every user the registry's own token-version projection lacks or has behind.

    The projection is fed by these very events, so after the first start (or an upgrade
    from before token versions) this finds nothing: users created before the projection
    existed, and a bootstrap admin, reach every service this way.
    """
    seen = User.metadata.tables[TOKEN_VERSIONS]
    users = await session.scalars(
        select(User)
        .outerjoin(seen, seen.c.user_id == User.id)
        .where(or_(seen.c.user_id.is_(None), seen.c.version < User.token_version))
    )
    events = [user_event(u) for u in users]
    if events:
        await emit(session, clock, *events)
    return len(events)


async def bootstrap_admin(
    session: AsyncSession, *, kernel: KernelSettings, settings: RegistrySettings, clock: Clock
) -> None:
    """Ensure the first org_admin: from settings, or, for an empty embedded run, `admin` with
    a random password printed once (there is no default password to guess). The bootstrap
    password is the operator's choice and is not held to the user password policy."""
    username = kernel.bootstrap_admin_username.strip() or "admin"
    password = kernel.bootstrap_admin_password
    if password:
        user = await session.scalar(select(User).where(User.username == username))
        if user is None:
            await _add_admin(session, clock, username, await bootstrap_hash(settings, password))
            return
        changed = False
        if not await verify_password(settings, user.password_hash, password):
            user.password_hash = await hash_password(settings, password)
            user.password_changed_at = clock.now()
            changed = True
        if Role.org_admin not in user.roles or not user.active or user.unit_id is not None:
            user.roles = sorted({*user.roles, Role.org_admin.value})
            user.active, user.unit_id = True, None
            changed = True
        if changed:
            revoke_tokens(session, user, clock)
            await emit(session, clock, user_event(user))
        return
    if kernel.mode == "embedded" and not await session.scalar(select(func.count(User.id))):
        generated = secrets.token_urlsafe(12)
        await _add_admin(session, clock, username, await hash_password(settings, generated))
        # Printed once, on the start that made the user; never stored or logged elsewhere.
        print(
            f"  generated admin login: {username} / {generated}"
            "  (shown once; change it, or set FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD)",
            flush=True,
        )


async def _add_admin(session: AsyncSession, clock: Clock, username: str, password_hash: str):
    now = clock.now()
    user = User(
        username=username,
        password_hash=password_hash,
        roles=[Role.org_admin.value],
        password_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await emit(session, clock, user_event(user))

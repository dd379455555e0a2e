"""Users: create, read, change roles and scope, passwords, deactivation."""

import uuid

from fastapi import APIRouter, Response

from services.registry.access import Admin, Myself, UserReader, UserReaderOrSelf
from services.registry.api.deps import Session, Settings
from services.registry.schemas import (
    PasswordChange,
    PasswordReset,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from services.registry.service import users as user_service
from shared.contracts.enums import Role
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(tags=["registry: users"])


@router.post("/users", response_model=UserPublic, status_code=201)
async def create_user(
    data: UserCreate, session: Session, settings: Settings, clock: ClockDep, principal: Admin
):
    """Create a user with roles, an optional unit scope and an optional cadre link."""
    return await user_service.create_user(
        session, settings=settings, clock=clock, principal=principal, data=data
    )


@router.get("/users", response_model=Page[UserPublic])
async def list_users(
    session: Session,
    principal: UserReader,
    paging: Paging,
    unit_id: uuid.UUID | None = None,
    role: Role | None = None,
    active: bool | None = None,
):
    """Users in the caller's scope, filtered by unit subtree, role and status."""
    return await user_service.list_users(
        session, principal=principal, page=paging, unit_id=unit_id, role=role, active=active
    )


@router.get("/users/me", response_model=UserPublic)
async def me(session: Session, principal: Myself):
    """The caller's own user."""
    return await user_service.get_user(session, principal, principal.user_id)


@router.post("/users/me/password", status_code=204)
async def change_password(
    data: PasswordChange, session: Session, settings: Settings, clock: ClockDep, principal: Myself
) -> Response:
    """Change one's own password (the current one is required)."""
    await user_service.change_password(
        session, settings=settings, clock=clock, principal=principal, data=data
    )
    return Response(status_code=204)


@router.get("/users/{user_id}", response_model=UserPublic)
async def get_user(user_id: uuid.UUID, session: Session, principal: UserReaderOrSelf):
    """One user: oneself, or any in scope for org_admin and auditor."""
    return await user_service.get_user(session, principal, user_id)


@router.patch("/users/{user_id}", response_model=UserPublic)
async def update_user(
    user_id: uuid.UUID, data: UserUpdate, session: Session, clock: ClockDep, principal: Admin
):
    """Change a user's roles, unit scope or cadre link."""
    return await user_service.update_user(
        session, clock=clock, principal=principal, user_id=user_id, data=data
    )


@router.post("/users/{user_id}/password", status_code=204)
async def reset_password(
    user_id: uuid.UUID,
    data: PasswordReset,
    session: Session,
    settings: Settings,
    clock: ClockDep,
    principal: Admin,
) -> Response:
    """Set another user's password (org_admin)."""
    await user_service.reset_password(
        session,
        settings=settings,
        clock=clock,
        principal=principal,
        user_id=user_id,
        new_password=data.new_password,
    )
    return Response(status_code=204)


@router.post("/users/{user_id}/deactivate", response_model=UserPublic)
async def deactivate_user(user_id: uuid.UUID, session: Session, clock: ClockDep, principal: Admin):
    """Deactivate a user: no new tokens (issued ones run out by their expiry)."""
    return await user_service.set_active(
        session, clock=clock, principal=principal, user_id=user_id, active=False
    )


@router.post("/users/{user_id}/activate", response_model=UserPublic)
async def activate_user(user_id: uuid.UUID, session: Session, clock: ClockDep, principal: Admin):
    """Reactivate a user."""
    return await user_service.set_active(
        session, clock=clock, principal=principal, user_id=user_id, active=True
    )

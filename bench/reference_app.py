"""The reference the sign-in path is measured against: bare FastAPI + pydantic + one asyncpg
`INSERT … ON CONFLICT DO NOTHING` per request (no auth, no flags, no outbox).

  REF_DSN=postgresql://... uvicorn bench.reference_app:app --no-access-log
"""

import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from fastapi import FastAPI, Request
from pydantic import AwareDatetime, BaseModel, Field

TABLE = """CREATE TABLE IF NOT EXISTS ref_sign_ins (
  id uuid PRIMARY KEY, cadre_id uuid NOT NULL, idempotency_key varchar(100) NOT NULL,
  device_time timestamptz NOT NULL, received_at timestamptz NOT NULL, lat float8 NOT NULL,
  lon float8 NOT NULL, accuracy_m float8 NOT NULL, device_id varchar(100) NOT NULL,
  mock_location boolean NOT NULL, UNIQUE (cadre_id, idempotency_key))"""
INSERT = """INSERT INTO ref_sign_ins VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING"""


class SignIn(BaseModel):
    idempotency_key: str = Field(min_length=1, max_length=100)
    cadre_id: uuid.UUID
    device_time: AwareDatetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float = Field(ge=0)
    device_id: str = Field(default="", max_length=100)
    mock_location: bool = False


class Stored(BaseModel):
    id: uuid.UUID
    idempotency_key: str
    cadre_id: uuid.UUID
    device_time: datetime


@asynccontextmanager
async def lifespan(app: FastAPI):
    if not os.environ.get("REF_DSN"):  # idle reference: no database at all
        yield
        return
    app.state.pool = await asyncpg.create_pool(os.environ["REF_DSN"], min_size=10, max_size=10)
    await app.state.pool.execute(TABLE)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/assessment/v1/sign-ins", response_model=Stored, status_code=201)
async def sign_in(body: SignIn, request: Request) -> Stored:
    new_id = uuid.uuid4()
    await request.app.state.pool.execute(
        INSERT,
        new_id,
        body.cadre_id,
        body.idempotency_key,
        body.device_time,
        body.lat,
        body.lon,
        body.accuracy_m,
        body.device_id,
        body.mock_location,
    )
    return Stored(
        id=new_id,
        idempotency_key=body.idempotency_key,
        cadre_id=body.cadre_id,
        device_time=body.device_time,
    )

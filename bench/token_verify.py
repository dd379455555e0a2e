"""Token verification cost: it runs on every request, the sign-in hot path included.

Prints µs per token through the request dependency (`current_principal`): a token seen
before (the verified-token cache; expiry and version still checked), a token seen for the
first time (EdDSA verify with the parsed public key cached), and for comparison the cost
of parsing the public key on every call (what caching the key avoids).

  .venv/bin/python bench/token_verify.py [N]
"""

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from types import SimpleNamespace  # noqa: E402

from fastapi.security import HTTPAuthorizationCredentials  # noqa: E402

from shared.auth import Principal, current_principal, issue_token, token_kid  # noqa: E402
from shared.clock import Clock  # noqa: E402
from shared.keys import ALGORITHM, KeyRing, public_pem  # noqa: E402
from shared.revocation import TokenVersions  # noqa: E402
from shared.settings import KernelSettings  # noqa: E402


def per_call_us(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def per_request_us(request, tokens: list[str]) -> float:
    start = time.perf_counter()
    for token in tokens:
        creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        await current_principal(request, creds)
    return (time.perf_counter() - start) / len(tokens) * 1e6


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kernel = KernelSettings(var_dir=Path(tmp))
        keys, clock = KeyRing.from_settings(kernel, signs=True), Clock()
        user = uuid.uuid4()
        versions = TokenVersions()
        versions.learn(user, 1, True)
        token = issue_token(
            keys, kernel, clock, Principal(user_id=user, username="u", roles=["cadre"])
        )[0]
        pem = public_pem(keys.get(keys.signing_kid)).encode()

        state = SimpleNamespace(keys=keys, kernel=kernel, clock=clock, token_versions=versions)
        request = SimpleNamespace(app=SimpleNamespace(state=state), state=SimpleNamespace())

        def principal(i: int) -> Principal:
            return Principal(user_id=user, username=f"u{i}", roles=["cadre"])

        fresh = [issue_token(keys, kernel, clock, principal(i))[0] for i in range(n)]
        first = asyncio.run(per_request_us(request, fresh))
        again = asyncio.run(per_request_us(request, [token] * n))

        def parse_each_time() -> None:
            token_kid(token)
            jwt.decode(token, pem, algorithms=[ALGORITHM], options={"verify_exp": False})

        print(f"token seen before (cache hit):  {again:7.1f} µs/request")
        print(f"token seen first (EdDSA verify): {first:7.1f} µs/request")
        print(f"verify, key parsed every call:  {per_call_us(parse_each_time, n):7.1f} µs/token")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)

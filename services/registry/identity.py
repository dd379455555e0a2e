"""A cadre's identity and bank fields: the checks, and their encrypted, masked storage.

`id_card_no` is an 18-character PRC resident ID (GB 11643-1999): 6 digits of region, the
birth date YYYYMMDD, 3 digits of sequence and a check character from ISO 7064 MOD 11-2
(`X` for 10). `bank_account` is 10-30 digits (spaces and hyphens as written on a card are
dropped). Problems name no value: a 422 or an import report never echoes the number.
"""

from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

from shared.fieldcrypt import FieldCipher, mask
from shared.types import Text

_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_CHECK = "10X98765432"
# Encrypted at rest and in events, masked in reads. The bank's name identifies nobody: it is
# kept, shown and sent as written (finance must see which bank a line goes to).
SECRET_FIELDS = ("id_card_no", "bank_account")


def id_card_problem(value: str) -> str | None:
    if (
        len(value) != 18
        or not value[:17].isdigit()
        or not (value[17].isdigit() or value[17] == "X")
    ):
        return "must be 18 characters: 17 digits and a check digit or X"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "the birth date in it is not a date"
    if not date(1900, 1, 1) <= born <= date(2100, 12, 31):
        return "the birth date in it is out of range"
    if _CHECK[sum(int(c) * w for c, w in zip(value, _WEIGHTS, strict=False)) % 11] != value[17]:
        return "the check digit does not match (GB 11643)"
    return None


def _id_card(value: str) -> str:
    value = value.strip().upper()
    if problem := id_card_problem(value):
        raise ValueError(problem)
    return value


def _account(value: str) -> str:
    value = value.replace(" ", "").replace("-", "")
    if not value.isdigit() or not 10 <= len(value) <= 30:
        raise ValueError("must be 10 to 30 digits")
    return value


IdCardNo = Annotated[str, StringConstraints(max_length=40), AfterValidator(_id_card)]
BankAccount = Annotated[str, StringConstraints(max_length=60), AfterValidator(_account)]
BankName = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def bank_problem(bank_name: str | None, bank_account: str | None) -> tuple[str, str] | None:
    """(field, problem) when only one half of the bank details is there."""
    if bank_name and not bank_account:
        return "bank_account", "a bank name needs an account"
    if bank_account and not bank_name:
        return "bank_name", "a bank account needs the bank's name"
    return None


def sealed(cipher: FieldCipher, field: str, value: str | None) -> dict[str, Any]:
    """The columns of one secret field: its ciphertext and its masked form."""
    enc = cipher.encrypt(field, value) if value is not None else None
    return {f"{field}_enc": enc, f"{field}_masked": mask(value)}

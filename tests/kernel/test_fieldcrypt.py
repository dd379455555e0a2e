"""Personal fields encrypted at rest (shared/fieldcrypt.py): a round trip, a refusal for
another key, another field or an edited token, the key file embedded, and distributed
mode refusing to start without FRONTLINE_FIELD_KEY."""

import base64
import os
import stat

import pytest

from shared.fieldcrypt import KEY_FILE, FieldCipher, FieldCryptError, mask, new_key
from shared.keys import KeyConfigError
from shared.settings import KernelSettings


def test_round_trip_and_every_token_is_different():
    cipher = FieldCipher.from_settings(KernelSettings(field_key=new_key()))
    a = cipher.encrypt("bank_account", "6222020200112233445")
    b = cipher.encrypt("bank_account", "6222020200112233445")
    assert a != b and "6222020200112233445" not in a
    assert cipher.decrypt("bank_account", a) == "6222020200112233445"


def test_another_key_field_or_an_edit_is_refused():
    cipher = FieldCipher.from_settings(KernelSettings(field_key=new_key()))
    other = FieldCipher.from_settings(KernelSettings(field_key=new_key()))
    token = cipher.encrypt("id_card_no", "11010519491231002X")
    with pytest.raises(FieldCryptError, match="sealed under key"):
        other.decrypt("id_card_no", token)
    with pytest.raises(FieldCryptError, match="does not open"):
        cipher.decrypt("bank_account", token)
    # Flip one bit of the sealed bytes: editing a base64 character can touch only the
    # padding bits of the last group and decode to the same bytes (a flaky test once).
    head, body = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 0x01
    edited = f"{head}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(FieldCryptError, match="does not open"):
        cipher.decrypt("id_card_no", edited)
    with pytest.raises(FieldCryptError, match="not an encrypted field"):
        cipher.decrypt("id_card_no", "11010519491231002X")


def test_embedded_keeps_its_key_under_var(tmp_path):
    kernel = KernelSettings(var_dir=tmp_path)
    token = FieldCipher.from_settings(kernel).encrypt("f", "x")
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert FieldCipher.from_settings(kernel).decrypt("f", token) == "x"


def test_distributed_refuses_without_the_key_and_names_it(tmp_path):
    kernel = KernelSettings(var_dir=tmp_path, mode="distributed")
    with pytest.raises(KeyConfigError, match="FRONTLINE_FIELD_KEY"):
        FieldCipher.from_settings(kernel)
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(KeyConfigError, match="32 bytes"):
        FieldCipher.from_settings(KernelSettings(mode="distributed", field_key="c2hvcnQ="))


def test_mask_keeps_four_and_four():
    assert mask("522301199001011234") == "5223**********1234"
    assert mask("6222020200112233445") == "6222***********3445"
    assert mask("12345678") == "********"
    assert mask(None) is None


def test_services_holding_personal_fields_refuse_to_start_without_the_key(tmp_path):
    from services.main import service_app
    from shared.keys import new_private_pem

    kernel = KernelSettings(
        var_dir=tmp_path,
        mode="distributed",
        cursor_secret="fieldcrypt-test-cursor-secret",
        jwt_private_key=new_private_pem().decode(),
        jwks_url="http://registry/jwks",
    )
    for name in ("registry", "incentives"):
        with pytest.raises(KeyConfigError, match="FRONTLINE_FIELD_KEY"):
            service_app(name, kernel=kernel)
    service_app("assessment", kernel=kernel)  # holds none: starts without it
